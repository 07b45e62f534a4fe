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
