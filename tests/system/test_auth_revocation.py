"""
Revocation across nodes: C{Comet.disconnect(user)} and
C{Comet.unsubscribe(user, channel)} reach that user's sessions on every
node sharing the bus (two Redis nodes, two workers on one hub) and close
them with C{kicked} or the reason given, never to reconnect.  (One node:
tests/server/test_revocation.py.)
"""

from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import TestCase

from tests.support.auth import joinAs
from txcomet._server.service import Comet
from txcomet.testing import RecordingSubscriber

from tests.system.test_redisbus import RedisBusMixin, waitUntil
from tests.system.test_workers import HubFixture


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
