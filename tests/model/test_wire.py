"""
The protocol's own messages, as every transport and the client use them.
"""

import json

from twisted.trial.unittest import SynchronousTestCase

from txcomet._model.wire import CHANNEL_REASONS, CLOSE_REASONS, HEARTBEAT, closeMessage


class WireTests(SynchronousTestCase):
    def test_messages(self):
        self.assertEqual(json.loads(HEARTBEAT), {"type": "heartbeat"})
        self.assertEqual(
            json.loads(closeMessage("slow_consumer", True)),
            {"type": "close", "reason": "slow_consumer", "reconnect": True},
        )

    def test_reasonsAreDocumented(self):
        """
        Every close reason, and whether to reconnect after it, is in the
        protocol's documentation; the channel-only reasons are among them.
        """
        import os

        here = os.path.dirname(os.path.abspath(__file__))
        with open(os.path.join(here, "..", "..", "docs", "protocol.md"), encoding="utf-8") as f:
            protocol = f.read()
        for reason in CLOSE_REASONS:
            self.assertIn("`%s`" % (reason,), protocol)
        self.assertLessEqual(CHANNEL_REASONS, set(CLOSE_REASONS))


class EnvelopeTests(SynchronousTestCase):
    """
    An event built with its data already encoded (a publish encodes it
    once) has the very envelope bytes one encoded whole would have.
    """

    def test_sameBytes(self):
        from hypothesis import given, settings
        from hypothesis import strategies as st

        from txcomet._model.event import Event, encodeJSON

        values = st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
            | st.text(max_size=20),
            lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
            max_leaves=10,
        )

        @settings(max_examples=200, deadline=None)
        @given(values, st.sampled_from(["event", "join", "leave"]), st.sampled_from(["news", "a/b-c", "x~y@z"]))
        def check(data, kind, channel):
            whole = Event(channel, data, "e1", 7, kind)
            encoded = Event(channel, data, "e1", 7, kind, encodeJSON(data))
            self.assertEqual(encoded.json, whole.json)
            self.assertEqual(encoded.size, len(whole.json))

        check()
