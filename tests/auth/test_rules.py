"""
The channel rules file: parsing with clear errors, first-match decisions
for every action and every kind of "who", and wildcard subscriptions that
can never reach a channel the session could not subscribe to by name.
"""

from hypothesis import example, given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from txcomet._auth.rules import NEEDS_TOKEN, ChannelRules, RulesError
from txcomet._model.channels import Pattern
from txcomet._model.errors import CometError

from tests.support.auth import EXAMPLE, tempPath



class RulesMixin:
    def setUp(self):
        self.rules = ChannelRules.fromText(EXAMPLE)

    def allowed(self, action, channel, user, subscribed=()):
        return self.rules.decide(action, channel, user, lambda c: c in subscribed)

    def forbidden(self, action, channel, user, subscribed=()):
        with self.assertRaises(CometError) as caught:
            self.allowed(action, channel, user, subscribed)
        self.assertEqual(caught.exception.code, "forbidden")
        return caught.exception.message


class ParseTests(SynchronousTestCase):
    def bad(self, text, words):
        with self.assertRaises(RulesError) as caught:
            ChannelRules.fromText(text)
        self.assertIn(words, str(caught.exception))

    def test_errors(self):
        """
        An invalid file is refused with a message naming the rule and the
        problem: bad TOML, unknown keys and tables, unknown "who" values,
        owner without {sub}, an action that cannot take a value, a bad
        pattern.
        """
        self.bad("[[channel]\n", "not valid TOML")
        self.bad('[[channel]]\npattern = "a"\nsubscrib = "anyone"\n', "unknown key 'subscrib'")
        self.bad('[server]\nx = 1\n', "unknown table 'server'")
        self.bad('[[channel]]\npattern = "a"\nsubscribe = "everyone"\n', "subscribe = 'everyone'")
        self.bad('[[channel]]\npattern = "a/*"\nsubscribe = "owner"\n', "needs a {sub}")
        self.bad('[[channel]]\npattern = "a"\nsubscribe = "subscribers"\n', "subscribe = 'subscribers'")
        self.bad('[[channel]]\npattern = "a"\npublish = "token"\n', "publish = 'token'")
        self.bad('[[channel]]\npattern = "a/**/b"\n', "rule 1: pattern")
        self.bad('[[channel]]\nsubscribe = "anyone"\n', "'pattern' is a non-empty string")
        self.bad('[[channel]]\npattern = "a"\nnotices = "yes"\n', "notices is true or false")

    def test_file(self):
        """
        A rules file is read from disk; a missing one is a clear error.
        """
        path = tempPath(self)
        with open(path, "w") as f:
            f.write(EXAMPLE)
        self.assertEqual(len(ChannelRules.fromFile(path).rules), 5)
        with self.assertRaises(RulesError) as caught:
            ChannelRules.fromFile(path + ".missing")
        self.assertIn("cannot read", str(caught.exception))


class DecideTests(RulesMixin, SynchronousTestCase):
    def test_owner(self):
        """
        A user channel may be subscribed to by its user only; not by
        another user nor anonymously.
        """
        self.assertIsNone(self.allowed("subscribe", "notifications/alice", "alice"))
        message = self.forbidden("subscribe", "notifications/alice", "bob")
        self.assertIn('rule 1 (pattern "notifications/{sub}", subscribe = "owner")', message)
        self.forbidden("subscribe", "notifications/alice", None)
        self.assertIsNone(self.allowed("publish", "users/bob/inbox", "bob"))
        self.forbidden("publish", "users/bob/inbox", "alice")

    def test_token(self):
        """
        A private channel asks for a channel token.
        """
        self.assertEqual(self.allowed("subscribe", "private/x", "alice"), NEEDS_TOKEN)

    def test_authenticatedAndSubscribers(self):
        """
        C{authenticated} needs a user; C{subscribers} needs a subscription.
        """
        self.assertIsNone(self.allowed("subscribe", "chat/room", "alice"))
        self.forbidden("subscribe", "chat/room", None)
        self.forbidden("publish", "chat/room", "alice")
        self.assertIsNone(self.allowed("publish", "chat/room", "alice", ["chat/room"]))
        self.assertIsNone(self.allowed("presence", "chat/room", "alice", ["chat/room"]))
        self.forbidden("presence", "notifications/alice", "alice")

    def test_defaults(self):
        """
        A rule that omits an action: publish is nobody's, history and
        presence are the subscribers'.
        """
        self.forbidden("publish", "news", "alice")
        self.assertIsNone(self.allowed("history", "news", None))
        self.forbidden("history", "private/x", "alice")

    def test_noRuleIsClosed(self):
        """
        A channel no rule matches allows nothing.
        """
        self.assertIn("No channel rule", self.forbidden("subscribe", "other", "alice"))

    def test_notices(self):
        """
        Join/leave notices follow the rule's C{notices} (true by default).
        """
        self.assertFalse(self.rules.notices("chat/room"))
        self.assertTrue(self.rules.notices("news"))
        self.assertFalse(self.rules.notices("nowhere"))


class WildcardTests(RulesMixin, SynchronousTestCase):
    def test_everythingRefused(self):
        """
        C{**} could read other users' channels: refused, for everyone.
        """
        self.forbidden("subscribe", "**", "alice")
        self.forbidden("subscribe", "*", None)

    def test_insideOneRule(self):
        """
        A pattern inside a rule that allows the session is allowed.
        """
        self.assertIsNone(self.allowed("subscribe", "chat/*", "alice"))
        self.assertIsNone(self.allowed("subscribe", "chat/**", "alice"))
        self.forbidden("subscribe", "chat/*", None)

    def test_ownersOwn(self):
        """
        A pattern reaching other users' channels is refused; one inside the
        user's own is allowed.
        """
        self.forbidden("subscribe", "notifications/*", "alice")
        self.forbidden("subscribe", "users/*/inbox", "alice")
        self.forbidden("subscribe", "users/**", "alice")

    def test_tokenChannelsNeverByWildcard(self):
        """
        Private channels are never reached by a pattern.
        """
        self.forbidden("subscribe", "private/*", "alice")


_SEGMENTS = st.sampled_from(["chat", "news", "private", "notifications", "users", "alice", "bob", "inbox"])
_PATTERNS = st.lists(st.one_of(_SEGMENTS, st.just("*")), min_size=1, max_size=3).flatmap(
    lambda segs: st.sampled_from(["/".join(segs), "/".join(segs + ["**"])])
)


class NoLeakTests(SynchronousTestCase):
    @settings(max_examples=500, deadline=None)
    @given(
        pattern=_PATTERNS,
        fill=st.lists(_SEGMENTS, min_size=6, max_size=6),
        user=st.sampled_from(["alice", "bob", None]),
    )
    @example(pattern="notifications/*", fill=["", "bob", "", "", "", ""], user="alice")
    @example(pattern="users/*/inbox", fill=["", "bob", "", "", "", ""], user="alice")
    @example(pattern="*/**", fill=["private", "a", "b", "", "", ""], user="alice")
    def test_patternNeverReachesARefusedChannel(self, pattern, fill, user):
        """
        For any wildcard pattern the rules let a session subscribe to,
        every channel it matches (made by filling its wildcards) is one
        that session may subscribe to by name without a token.
        """
        if "*" not in pattern:
            return
        rules = ChannelRules.fromText(EXAMPLE)
        try:
            verdict = rules.decide("subscribe", pattern, user)
        except CometError:
            return
        self.assertIsNone(verdict)
        segments = []
        for i, segment in enumerate(pattern.split("/")):
            if segment == "*":
                segments.append(fill[i])
            elif segment == "**":
                segments.extend(fill[i : i + 2])
            else:
                segments.append(segment)
        channel = "/".join(segments)
        self.assertTrue(Pattern(pattern).matches(channel))
        self.assertIsNone(rules.decide("subscribe", channel, user), (pattern, channel, user))
