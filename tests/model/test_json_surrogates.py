"""
JSON that spells a lone UTF-16 surrogate is refused where it arrives, so it
never reaches an event that every subscriber must be sent.
"""

import json

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from txcomet._model.errors import CometError
from txcomet._transports.http import decodeJSON
from txcomet.testing import MemoryCometClient, makeComet


class DecodeJSONTests(SynchronousTestCase):
    def test_loneSurrogateRefused(self):
        """
        A lone surrogate escape anywhere in the value is C{malformed_json}.
        """
        for body in [b'"\\ud800"', b'{"a": ["x", "\\uDFFF"]}', b'{"\\udc00": 1}']:
            with self.assertRaises(CometError) as caught:
                decodeJSON(body)
            self.assertEqual(caught.exception.code, "malformed_json")
            self.assertIn("surrogate", caught.exception.message)

    def test_pairedSurrogatesAndEscapedBackslash(self):
        """
        A surrogate pair is one character, and an escaped backslash before
        C{ud800} is plain text: both decode.
        """
        self.assertEqual(decodeJSON(b'"\\ud83d\\ude00"'), "\U0001F600")
        self.assertEqual(decodeJSON(b'"\\\\ud800"'), "\\ud800")

    @given(st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(),
        lambda children: st.lists(children) | st.dictionaries(st.text(), children),
        max_leaves=10,
    ))
    def test_validValuesRoundTrip(self, value):
        """
        Any JSON value made of real characters decodes to itself, however
        it is escaped.
        """
        for ascii in (True, False):
            body = json.dumps(value, ensure_ascii=ascii).encode("utf-8", "surrogatepass")
            try:
                body.decode("utf-8")
            except UnicodeDecodeError:
                continue  # text() may hold surrogates; not real characters
            try:
                decoded = decodeJSON(body)
            except CometError:
                # Only a value that really holds a lone surrogate is refused.
                self.assertRaises(UnicodeEncodeError, json.dumps(value, ensure_ascii=False).encode, "utf-8")
            else:
                self.assertEqual(decoded, value)


class SurrogateJoinTests(SynchronousTestCase):
    def test_joinWithSurrogateUserCostsOthersNothing(self):
        """
        A join whose user is a lone surrogate is refused (400), and the
        sessions already on the channel go on receiving its events.  (Before,
        the join was accepted and its presence notice, which cannot be
        encoded, broke every other subscriber's poll.)
        """
        comet, clock = makeComet()
        client = MemoryCometClient(comet)
        session = client.join(channels=["room"])
        response = client.request(
            "POST", "control", b'{"op": "join", "user": "\\ud800", "channels": ["room"]}'
        )
        self.assertEqual(response.code, 400)
        self.assertEqual(response.json()["error"], "malformed_json")
        client.publish("room", "hello")
        self.assertEqual([e["data"] for e in client.poll(session)], ["hello"])
