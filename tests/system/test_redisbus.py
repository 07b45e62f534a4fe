"""
The Redis bus against a real C{redis-server} of its own: the bus
conformance suite, unchanged, and what is particular to Redis.
"""

import json

from twisted.internet import reactor, task
from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import TestCase
from zope.interface import implementer

from txcomet._bus.redis import RedisBus, RedisUnavailable
from txcomet._model.errors import CometError
from txcomet.interfaces import IGapListener
from txcomet.testing import RecordingSubscriber

from tests.support.busconformance import BusConformanceMixin
from tests.support.redisserver import RedisServer, freePort
from tests.support.tcpproxy import CuttableProxy


class RedisBusMixin:
    """
    For a trial L{TestCase}: C{makeRedisBus()} gives a started L{RedisBus}
    on this test's own C{redis-server}, stopped in cleanup.
    """

    def redisServer(self) -> RedisServer:
        server = getattr(self, "_redisServer", None)
        if server is None:
            server = self._redisServer = RedisServer.forTest(self)
        return server

    @inlineCallbacks
    def makeRedisBus(self, historyLength=100, url=None, **kwargs):
        if url is None:
            url = self.redisServer().url
        bus = RedisBus(url, historyLength=historyLength, reactor=reactor, **kwargs)
        yield bus.start()
        self.addCleanup(bus.stop)
        return bus


class RedisBusConformanceTests(RedisBusMixin, BusConformanceMixin, TestCase):
    """
    The Redis bus passes the bus conformance suite.
    """

    timeout = 30

    def makeBus(self, historyLength):
        return self.makeRedisBus(historyLength)


@implementer(IGapListener)
class GapRecorder(RecordingSubscriber):
    """
    A recording subscriber that also counts the gaps it is told of.
    """

    def __init__(self) -> None:
        RecordingSubscriber.__init__(self)
        self.gaps = 0

    def gap(self) -> None:
        self.gaps += 1


@inlineCallbacks
def waitUntil(predicate, what="a condition", timeout=20.0):
    """
    Poll C{predicate} on the real reactor until it is true; fail with
    C{what} after C{timeout} seconds (a bound for a hung test, never a
    measurement).
    """
    waited = 0.0
    while not predicate():
        if waited >= timeout:
            raise AssertionError("Timed out waiting for %s" % (what,))
        yield task.deferLater(reactor, 0.02, lambda: None)
        waited += 0.02


def sleep(seconds):
    return task.deferLater(reactor, seconds, lambda: None)


class RedisBusTests(RedisBusMixin, TestCase):
    """
    Two nodes (two buses) on one Redis, faults, history age and presence
    expiry.
    """

    timeout = 60

    @inlineCallbacks
    def test_twoNodesSeeOneOrder(self):
        """
        Events published alternately on two nodes reach the subscribers of
        both with the same ids, in the same order, with offsets that grow.
        """
        a = yield self.makeRedisBus()
        b = yield self.makeRedisBus()
        self.assertEqual(a.epoch, b.epoch)
        onA, onB = RecordingSubscriber(), RecordingSubscriber()
        yield a.subscribe("room", onA)
        yield b.subscribe("room/**", onB)
        yield b.subscribe("room", onB)
        published = []
        for i in range(20):
            event = yield (a if i % 2 else b).publish("room", i)
            published.append(event.id)
        yield waitUntil(lambda: len(onA.events) >= 20 and len(onB.events) >= 20, "20 events on each node")
        self.assertEqual([e.id for e in onA.events], published)
        self.assertEqual([e.id for e in onB.events], published)
        self.assertEqual(onA.data, list(range(20)))
        offsets = [e.offset for e in onA.events]
        self.assertEqual(offsets, sorted(offsets))
        # The bytes every node hands its transports are the envelope itself.
        self.assertEqual(json.loads(onB.events[3].json), onB.events[3].asDict())

    @inlineCallbacks
    def test_historyWaitsForPubSubToCatchUp(self):
        """
        History is read on one connection and events arrive on another:
        history answers only once every event published before the read
        has arrived through pub/sub, so a subscriber resuming from it (and
        holding what arrives meanwhile) never gets an event twice.
        """
        bus = yield self.makeRedisBus()
        other = yield self.makeRedisBus()
        subscriber = RecordingSubscriber()
        yield bus.subscribe("h", subscriber)
        start = yield bus.position()
        bus.pubsub.protocol.transport.pauseProducing()
        event = yield other.publish("h", "x")
        answered = []
        d = bus.history("h", start)
        d.addCallback(lambda history: answered.append((history, list(subscriber.events))))
        yield sleep(0.3)
        self.assertEqual(answered, [])
        bus.pubsub.protocol.transport.resumeProducing()
        yield d
        [(history, deliveredBefore)] = answered
        self.assertEqual([e.id for e in history.events], [event.id])
        self.assertEqual([e.id for e in deliveredBefore], [event.id])

    @inlineCallbacks
    def test_unreachableAtStart(self):
        """
        With nothing listening where Redis should be, start fails with
        RedisUnavailable naming the address and the reason, and leaves no
        connection attempt behind.
        """
        port = freePort()
        bus = RedisBus("redis://127.0.0.1:%d/0" % (port,), reactor=reactor)
        error = yield self.assertFailure(bus.start(), RedisUnavailable)
        self.assertIn("redis://127.0.0.1:%d/0" % (port,), str(error))
        self.assertIn("refused", str(error).lower())

    @inlineCallbacks
    def test_wrongPasswordAtStart(self):
        """
        A Redis that wants a password it was not given fails the start
        with the server's own reason.
        """
        server = RedisServer.forTest(self, extraArgs=["--requirepass", "s3cret"])
        bus = RedisBus(server.url, reactor=reactor)
        error = yield self.assertFailure(bus.start(), RedisUnavailable)
        self.assertIn("NOAUTH", str(error))
        bus = RedisBus("redis://:wrong@127.0.0.1:%d/0" % (server.port,), reactor=reactor)
        error = yield self.assertFailure(bus.start(), RedisUnavailable)
        self.assertIn("refused the login", str(error))
        bus = RedisBus("redis://:s3cret@127.0.0.1:%d/0" % (server.port,), reactor=reactor)
        yield bus.start()
        self.addCleanup(bus.stop)
        event = yield bus.publish("a", 1)
        self.assertEqual(event.offset, 1)

    @inlineCallbacks
    def test_badDatabaseAtStart(self):
        """
        A database number the server does not have fails the start.
        """
        bus = RedisBus("redis://127.0.0.1:%d/999" % (self.redisServer().port,), reactor=reactor)
        error = yield self.assertFailure(bus.start(), RedisUnavailable)
        self.assertIn("out of range", str(error))

    @inlineCallbacks
    def test_databasesAndPrefixesAreApart(self):
        """
        Buses on other databases or other prefixes of one server share
        nothing: not events, not offsets.
        """
        server = self.redisServer()
        main = yield self.makeRedisBus()
        other = RedisBus("redis://127.0.0.1:%d/3" % (server.port,), reactor=reactor)
        yield other.start()
        self.addCleanup(other.stop)
        prefixed = yield self.makeRedisBus(prefix="app2")
        seen = RecordingSubscriber()
        yield other.subscribe("x", seen)
        yield prefixed.subscribe("x", seen)
        yield main.publish("x", "main")
        mine = yield other.publish("x", "other")
        theirs = yield prefixed.publish("x", "prefixed")
        yield waitUntil(lambda: len(seen.events) >= 2, "two events")
        self.assertEqual(sorted(seen.data), ["other", "prefixed"])
        self.assertEqual((mine.offset, theirs.offset), (1, 1))

    @inlineCallbacks
    def test_redisRestartedEmpty(self):
        """
        Redis stops and comes back without its data.  Meanwhile a publish
        reaches this node's subscribers (with an id in a local epoch, which
        no history covers) and commands fail at once instead of queueing.
        When Redis is back the bus reconnects by itself, adopts the new
        epoch, tells every local subscriber of the gap, and publishing
        through Redis works again; positions from before are not covered.
        (The bus's C{outage="local"} mode.)
        """
        server = self.redisServer()
        bus = yield self.makeRedisBus(outage="local")
        news, other = GapRecorder(), GapRecorder()
        yield bus.subscribe("news", news)
        yield bus.subscribe("other/*", other)
        before = yield bus.publish("news", "before")
        yield waitUntil(lambda: news.events, "the first event")
        oldEpoch = bus.epoch
        server.stop()
        yield waitUntil(lambda: not bus.commands.ready and not bus.pubsub.ready, "the bus to notice")
        during = yield bus.publish("news", "during")
        self.assertNotEqual(during.epoch, oldEpoch)
        self.assertEqual(news.data, ["before", "during"])
        position = yield bus.position()
        self.assertEqual(position, during.id)
        history = yield bus.history("news", before.id)
        self.assertFalse(history.covered)
        failed = []
        bus.commands.execute(b"PING").addErrback(failed.append)
        self.assertEqual(len(failed), 1)
        failed[0].trap(RedisUnavailable)
        self.assertEqual((news.gaps, other.gaps), (0, 0))
        server.start()
        yield waitUntil(lambda: news.gaps and other.gaps, "the gap to be reported")
        self.assertEqual((news.gaps, other.gaps), (1, 1))
        self.assertNotEqual(bus.epoch, oldEpoch)
        after = yield bus.publish("news", "after")
        self.assertEqual(after.epoch, bus.epoch)
        yield waitUntil(lambda: len(news.events) >= 3, "the event after")
        self.assertEqual(news.data, ["before", "during", "after"])
        for old in (before.id, during.id):
            history = yield bus.history("news", old)
            self.assertFalse(history.covered)
            self.assertEqual([e.data for e in history.events], ["after"])

    @inlineCallbacks
    def test_partitionedNodeReportsWhatItMissed(self):
        """
        A node cut off from Redis while another node publishes tells its
        subscribers of the gap when it is back; Redis kept the events, so
        history after the last position they saw recovers them, covered.
        """
        server = self.redisServer()
        proxy = CuttableProxy(server.port)
        proxy.start()
        self.addCleanup(proxy.stop)
        cut = yield self.makeRedisBus(url=proxy.url)
        other = yield self.makeRedisBus()
        subscriber = GapRecorder()
        yield cut.subscribe("news", subscriber)
        seen = yield other.publish("news", "seen")
        yield waitUntil(lambda: subscriber.events, "the first event")
        yield proxy.cut()
        yield waitUntil(lambda: not cut.pubsub.ready, "the cut to be noticed")
        yield other.publish("news", "missed")
        proxy.restore()
        yield waitUntil(lambda: subscriber.gaps, "the gap to be reported")
        self.assertEqual(subscriber.data, ["seen"])
        history = yield cut.history("news", seen.id)
        self.assertTrue(history.covered)
        self.assertEqual([e.data for e in history.events], ["missed"])
        yield other.publish("news", "later")
        yield waitUntil(lambda: len(subscriber.events) >= 2, "the next event")
        self.assertEqual(subscriber.data, ["seen", "later"])

    @inlineCallbacks
    def test_publishRefusedWhileCutOff(self):
        """
        By default a node cut off from Redis refuses a publish
        (C{unavailable}) instead of acknowledging an event the other nodes
        would never deliver; its own subscribers get nothing either.
        Presence notices still reach its own subscribers.  When Redis is
        back, publishing works again.
        """
        server = self.redisServer()
        proxy = CuttableProxy(server.port)
        proxy.start()
        self.addCleanup(proxy.stop)
        cut = yield self.makeRedisBus(url=proxy.url)
        local = GapRecorder()
        yield cut.subscribe("news", local)
        yield proxy.cut()
        yield waitUntil(lambda: not cut.commands.ready, "the cut to be noticed")
        error = yield self.assertFailure(cut.publish("news", "refused"), CometError)
        self.assertEqual(error.code, "unavailable")
        yield cut.publish("news", {"client": "x"}, kind="join", store=False)
        self.assertEqual([e.kind for e in local.events], ["join"])
        proxy.restore()
        yield waitUntil(lambda: cut.commands.ready, "Redis to be back")
        event = yield cut.publish("news", "after")
        yield waitUntil(lambda: [e.data for e in local.events if e.kind == "event"] == ["after"], "the event after")
        self.assertEqual(event.epoch, cut.epoch)

    @inlineCallbacks
    def test_publishWhileCutOffIsAGapElsewhere(self):
        """
        A node cut off from Redis still delivers its own publishes to its
        own subscribers.  When it is back it marks positions before then
        as not covered on the channels it published on, and the other
        nodes tell their subscribers of those channels (only those) of the
        gap.
        (The bus's C{outage="local"} mode.)
        """
        server = self.redisServer()
        proxy = CuttableProxy(server.port)
        proxy.start()
        self.addCleanup(proxy.stop)
        cut = yield self.makeRedisBus(url=proxy.url, outage="local")
        other = yield self.makeRedisBus()
        local, news, quiet = GapRecorder(), GapRecorder(), GapRecorder()
        yield cut.subscribe("news", local)
        yield other.subscribe("news/**", news)
        yield other.subscribe("news", news)
        yield other.subscribe("quiet", quiet)
        first = yield other.publish("news", "first")
        yield other.publish("quiet", "q")
        yield waitUntil(lambda: local.events and news.events and quiet.events, "the first events")
        yield proxy.cut()
        yield waitUntil(lambda: not cut.commands.ready, "the cut to be noticed")
        during = yield cut.publish("news", "only here")
        self.assertEqual(local.data, ["first", "only here"])
        self.assertNotEqual(during.epoch, cut.epoch)
        proxy.restore()
        yield waitUntil(lambda: news.gaps, "the gap notice")
        yield other.publish("quiet", "q2")
        yield waitUntil(lambda: len(quiet.events) >= 2, "a later event")
        self.assertEqual((news.gaps, quiet.gaps, local.gaps), (1, 0, 0))
        self.assertEqual(news.data, ["first"])
        history = yield other.history("news", first.id)
        self.assertFalse(history.covered)
        history = yield other.history("quiet", first.id)
        self.assertTrue(history.covered)

    @inlineCallbacks
    def test_historyAge(self):
        """
        Events older than historyAge leave the history, and positions
        before them are no longer covered, also when the channel's history
        expired as a whole and a new event started it again.
        """
        bus = yield self.makeRedisBus(historyAge=1.0)
        start = yield bus.position()
        old = yield bus.publish("h", "old")
        yield bus.publish("gone", "x")
        yield sleep(1.2)
        history = yield bus.history("h", None)
        self.assertEqual((list(history.events), history.covered), ([], False))
        history = yield bus.history("h", start)
        self.assertFalse(history.covered)
        new = yield bus.publish("h", "new")
        history = yield bus.history("h", old.id)
        self.assertTrue(history.covered)
        self.assertEqual([e.data for e in history.events], ["new"])
        history = yield bus.history("h", start)
        self.assertFalse(history.covered)
        history = yield bus.history("gone", start)
        self.assertFalse(history.covered)
        # A channel that never had events: covered from any recent position.
        history = yield bus.history("never", new.id)
        self.assertTrue(history.covered)

    @inlineCallbacks
    def test_deadNodesMembersExpire(self):
        """
        A node that stops refreshing its members (it died) leaves no
        ghosts: after the presence TTL they are no longer listed, and
        their leave is announced.
        """
        dying = yield self.makeRedisBus(presenceTTL=0.5)
        alive = yield self.makeRedisBus(presenceTTL=0.5)
        watcher = RecordingSubscriber()
        yield alive.subscribe("room", watcher)
        added = yield dying.addMember("room", "ghost", {"user": "ann"})
        self.assertTrue(added)
        yield alive.addMember("room", "living", {})
        members = yield alive.members("room")
        self.assertEqual(sorted(m["client"] for m in members), ["ghost", "living"])
        yield dying.stop()
        yield sleep(0.8)
        members = yield alive.members("room")
        self.assertEqual([m["client"] for m in members], ["living"])
        yield waitUntil(lambda: watcher.events, "the ghost's leave")
        [leave] = watcher.events
        self.assertEqual((leave.kind, leave.data), ("leave", {"client": "ghost", "user": "ann"}))

    @inlineCallbacks
    def test_refreshKeepsMembersAndRestoresExpiredOnes(self):
        """
        A live node's refresh keeps its members listed past the TTL; a
        member that expired anyway (the node stalled) is listed again at
        the next refresh, with a join notice.
        """
        clock = task.Clock()
        bus = yield self.makeRedisBus(presenceTTL=1.0, clock=clock)
        watcher = RecordingSubscriber()
        yield bus.subscribe("room", watcher)
        yield bus.addMember("room", "c1", {})
        yield sleep(1.3)
        self.assertEqual((yield bus.members("room")), [])
        yield waitUntil(lambda: watcher.events, "the leave of the expired member")
        clock.advance(1.0 / 3)
        yield waitUntil(lambda: len(watcher.events) >= 2, "the join of the restored member")
        self.assertEqual([e.kind for e in watcher.events], ["leave", "join"])
        self.assertEqual([m["client"] for m in (yield bus.members("room"))], ["c1"])
        yield sleep(0.6)
        clock.advance(1.0 / 3)
        yield sleep(0.6)
        self.assertEqual([m["client"] for m in (yield bus.members("room"))], ["c1"])
        self.assertEqual(len(watcher.events), 2)


class PresenceOutageTests(RedisBusMixin, TestCase):
    timeout = 30

    @inlineCallbacks
    def test_removeDuringOutageExpiresTheMember(self):
        """
        Removing a member while Redis is away does not fail (its session
        is closing); the member is no longer vouched for, so it expires and
        its leave is announced when it is reaped.
        """
        server = self.redisServer()
        server.stop()
        server.extraArgs = ["--appendonly", "yes", "--appendfsync", "always"]
        server.start()
        bus = yield self.makeRedisBus(presenceTTL=2.0)
        other = yield self.makeRedisBus(presenceTTL=2.0)
        watcher = RecordingSubscriber()
        yield other.subscribe("room", watcher)
        yield bus.addMember("room", "c1", {})
        server.stop()
        yield waitUntil(lambda: not bus.commands.ready, "the outage to be noticed")
        removed = yield bus.removeMember("room", "c1")
        self.assertFalse(removed)
        server.start()
        # Nobody lists the channel: the node with a subscriber on it reaps
        # the member once it expired, and announces its leave.
        yield waitUntil(lambda: [e for e in watcher.events if e.kind == "leave"], "the leave")
        self.assertEqual([e.data for e in watcher.events], [{"client": "c1"}])
        members = yield other.members("room")
        self.assertEqual(members, [])
