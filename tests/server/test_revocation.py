"""
Revocation on one node: C{Comet.disconnect(user)} closes that user's
sessions with C{kicked} (no reconnect), C{Comet.unsubscribe(user,
channel)} ends a subscription, and the orders' channel is the server's own.
(Across Redis nodes and workers: tests/system/test_auth_revocation.py.)
"""

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from tests.support.auth import joinAs
from txcomet._model.channels import REVOCATION_CHANNEL
from txcomet._model.errors import CometError
from txcomet._server.service import Comet
from txcomet.testing import RecordingSubscriber


class InMemoryTests(SynchronousTestCase):
    def setUp(self):
        self.comet = Comet(clock=Clock())
        self.comet.startService()

    def test_disconnect(self):
        """
        Every session of the user is closed with C{kicked}, told not to
        reconnect; another user's session stays.
        """
        a1, c1 = joinAs(self.comet, "alice")
        a2, c2 = joinAs(self.comet, "alice")
        bob, cb = joinAs(self.comet, "bob")
        self.successResultOf(self.comet.disconnect("alice"))
        self.assertEqual((c1.closed, c2.closed), (("kicked", False), ("kicked", False)))
        self.assertIsNone(cb.closed)
        self.assertEqual(list(self.comet.hub.sessions), [bob.id])

    def test_unsubscribe(self):
        """
        The user's subscription to the channel, and a pattern matching it,
        end; other subscriptions and users keep theirs.
        """
        alice, _ = joinAs(self.comet, "alice", ["chat/a", "chat/*", "news"])
        bob, _ = joinAs(self.comet, "bob", ["chat/a"])
        self.successResultOf(self.comet.unsubscribe("alice", "chat/a"))
        self.assertEqual(list(alice.subscriptions), ["news"])
        self.assertEqual(list(bob.subscriptions), ["chat/a"])

    def test_reservedChannel(self):
        """
        Clients may not subscribe to or publish on the orders' channel; a
        C{**} subscriber does not receive them.
        """
        session, _ = joinAs(self.comet, "eve")
        for attempt in [session.subscribe(REVOCATION_CHANNEL), session.publish(REVOCATION_CHANNEL, 1)]:
            self.assertEqual(self.failureResultOf(attempt, CometError).value.code, "forbidden")
        self.assertRaises(CometError, self.comet.publish, REVOCATION_CHANNEL, 1)
        watcher = RecordingSubscriber()
        self.comet.bus.subscribe("**", watcher)
        self.comet.disconnect("alice")
        self.assertEqual(watcher.events, [])


