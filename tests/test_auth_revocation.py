"""
Revocation: C{Comet.disconnect(user)} and C{Comet.unsubscribe(user,
channel)} reach that user's sessions on every node sharing the bus (in
memory, two Redis nodes, two workers on one hub), close them with
C{kicked} (no reconnect), and leave other users alone; the channel the
orders travel on is the server's own.
"""

from twisted.internet.defer import inlineCallbacks
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase

from txcomet._model.channels import REVOCATION_CHANNEL
from txcomet._model.errors import CometError
from txcomet._server.service import Comet
from txcomet.testing import RecordingDataChannel, RecordingSubscriber

from .test_redisbus import RedisBusMixin, waitUntil
from .test_workers import HubFixture


def joinAs(comet, user, channels=()):
    session = comet.hub.join(user=user)
    session = session.result
    for channel in channels:
        session.subscribe(channel)
    channel = RecordingDataChannel(oneShot=False)
    session.attach(channel)
    return session, channel


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


class RedisNodesTests(RedisBusMixin, TestCase):
    timeout = 30

    @inlineCallbacks
    def test_disconnectOnOtherNode(self):
        """
        C{disconnect} on node A ends the user's session on node B.
        """
        nodes = []
        for _ in range(2):
            bus = yield self.makeRedisBus()
            comet = Comet(bus=bus)
            yield comet.revocations.start()
            nodes.append(comet)
        a, b = nodes
        session, channel = joinAs(b, "alice")
        other, otherChannel = joinAs(b, "bob")
        yield a.disconnect("alice")
        yield waitUntil(lambda: channel.closed is not None, "the session on B to close")
        self.assertEqual(channel.closed, ("kicked", False))
        self.assertIsNone(otherChannel.closed)
        yield a.unsubscribe("bob", "news")


class WorkersTests(HubFixture, TestCase):
    timeout = 30

    @inlineCallbacks
    def test_disconnectOnOtherWorker(self):
        """
        C{disconnect} on one worker ends the user's session on another.
        """
        yield self.startHub()
        nodes = []
        for _ in range(2):
            bus = yield self.joinWorker()
            comet = Comet(bus=bus)
            yield comet.revocations.start()
            nodes.append(comet)
        a, b = nodes
        watcher = RecordingSubscriber()
        yield a.bus.subscribe("news", watcher)
        session, channel = joinAs(b, "alice", ["news"])
        yield a.unsubscribe("alice", "news")
        yield waitUntil(
            lambda: [e.kind for e in watcher.events] == ["join", "leave"], "alice's leave from news on B"
        )
        self.assertEqual(list(session.subscriptions), [])
        yield a.disconnect("alice", "banned")
        yield waitUntil(lambda: channel.closed is not None, "the session on B to close")
        self.assertEqual(channel.closed, ("banned", False))
