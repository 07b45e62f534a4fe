"""
Channel names, patterns and positions: syntax and matching, with
properties checked by Hypothesis against a plain model.
"""

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from txcomet import CometError
from txcomet._model.channels import Pattern, validateChannel, validatePattern
from txcomet._model.event import formatId, parsePosition

SEGMENT_CHARS = "abcXYZ019_-.~:@=+"
segments = st.text(alphabet=SEGMENT_CHARS, min_size=1, max_size=8)
channels = st.lists(segments, min_size=1, max_size=6).map("/".join)


def modelMatch(pattern, channel):
    """
    A direct, slow statement of the pattern rules.
    """
    p, c = pattern.split("/"), channel.split("/")
    if p[-1] == "**":
        return len(c) > len(p) - 1 and all(a in ("*", b) for a, b in zip(p[:-1], c))
    return len(p) == len(c) and all(a in ("*", b) for a, b in zip(p, c))


@st.composite
def patterns(draw):
    parts = draw(st.lists(st.one_of(segments, st.just("*")), min_size=1, max_size=5))
    if draw(st.booleans()):
        parts.append("**")
    return "/".join(parts)


class SyntaxTests(SynchronousTestCase):
    def test_valid(self):
        """
        Ordinary names are accepted as channels and as patterns.
        """
        for name in ("news", "chat/room1", "user/42/alerts", "a.b~c:d@e=f+g-h_i", "x" * 64):
            self.assertEqual(validateChannel(name), name)
            self.assertEqual(validatePattern(name), name)

    def test_invalid(self):
        """
        Empty segments, leading or trailing slashes, spaces, other
        characters, overlong segments or names and too many segments are
        refused with invalid_channel.
        """
        for name in ("", "/a", "a/", "a//b", "a b", "é", "a%2F", "x" * 65, "/".join(["a"] * 17),
                     "/".join(["x" * 60] * 5), None, 5, ["a"]):
            error = self.assertRaises(CometError, validateChannel, name)
            self.assertEqual(error.code, "invalid_channel")

    def test_wildcardsOnlyInPatterns(self):
        """
        * and a final ** are for patterns; ** elsewhere and partial
        wildcards are refused.
        """
        for pattern in ("a/*", "*/b", "a/**", "*", "**", "a/*/c/**"):
            validatePattern(pattern)
            self.assertRaises(CometError, validateChannel, pattern)
        for bad in ("a/**/b", "a*", "a/b*", "***"):
            self.assertRaises(CometError, validatePattern, bad)

    @given(channels)
    def test_generatedChannelsValid(self, channel):
        """
        Anything built from the documented alphabet and rules is valid.
        """
        self.assertEqual(validateChannel(channel), channel)

    @settings(max_examples=300)
    @given(patterns(), channels)
    def test_matchingAgreesWithModel(self, pattern, channel):
        """
        Pattern matching agrees with the plain statement of the rules.
        """
        self.assertEqual(Pattern(pattern).matches(channel), modelMatch(pattern, channel))

    @given(channels)
    def test_deepWildcardNeverMatchesParent(self, channel):
        """
        C{X/**} matches every channel below X, never X itself.
        """
        self.assertFalse(Pattern(channel + "/**").matches(channel))
        self.assertTrue(Pattern(channel + "/**").matches(channel + "/x/y"))


class PositionTests(SynchronousTestCase):
    @given(st.text(alphabet="0123456789abcdef", min_size=1, max_size=16), st.integers(min_value=0, max_value=2**63))
    def test_roundTrip(self, epoch, offset):
        """
        An id formats and parses back to its epoch and offset.
        """
        self.assertEqual(parsePosition(formatId(epoch, offset)), (epoch, offset))

    def test_invalid(self):
        """
        Anything else is invalid_position.
        """
        for bad in ("", "abc", "-1", "abc-", "abc-x", "abc-1.5", "abc-١", None, 7, "a" * 100 + "-1"):
            error = self.assertRaises(CometError, parsePosition, bad)
            self.assertEqual(error.code, "invalid_position")
