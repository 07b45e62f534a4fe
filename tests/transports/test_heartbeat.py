"""
Tests for L{txcomet._transports.heartbeat}: the one heartbeat timer and
the rule every streaming connection beats by.
"""

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from txcomet._transports.datachannel import HTTPDataChannel
from txcomet._transports.heartbeat import Beating, HeartbeatTimer
from txcomet._transports.websocket import CometWebSocketProtocol


class Due:
    """
    A channel as L{HeartbeatTimer} sees one: it records its beats and asks
    for the next.
    """

    def __init__(self, timer, name, fail=False):
        self.timer = timer
        self.name = name
        self.fail = fail
        self.beats = []
        self._beatAt = None

    def _beat(self):
        self.beats.append(self.timer.clock.seconds())
        self.timer.add(self)
        if self.fail:
            raise RuntimeError(self.name)


class HeartbeatTimerTests(SynchronousTestCase):
    def test_dueEachInterval(self):
        """
        A channel is due an interval after it was added, rounded down to
        the resolution; channels due in the same second share the call.
        """
        clock = Clock()
        timer = HeartbeatTimer(clock, 10)
        a = Due(timer, "a")
        timer.add(a)
        clock.advance(3)
        b, c = Due(timer, "b"), Due(timer, "c")
        timer.add(b)
        clock.advance(0.5)
        timer.add(c)
        self.assertEqual(len(clock.getDelayedCalls()), 1)
        for step in [6.5, 3, 7, 3, 7, 3]:
            clock.advance(step)
        self.assertEqual((a.beats, b.beats, c.beats), ([10, 20, 30], [13, 23, 33], [13, 23, 33]))

    def test_removed(self):
        """
        A removed channel is not called; with none left, no call waits.
        """
        clock = Clock()
        timer = HeartbeatTimer(clock, 10)
        a, b = Due(timer, "a"), Due(timer, "b")
        timer.add(a)
        timer.add(b)
        timer.remove(a)
        timer.remove(a)
        clock.advance(10)
        self.assertEqual((a.beats, b.beats), ([], [10]))
        timer.remove(b)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_failingBeat(self):
        """
        A channel whose heartbeat fails is logged; the others beat, and the
        timer goes on.
        """
        clock = Clock()
        timer = HeartbeatTimer(clock, 10)
        channels = [Due(timer, "a"), Due(timer, "b", fail=True), Due(timer, "c")]
        for channel in channels:
            timer.add(channel)
        clock.advance(10)
        clock.advance(10)
        self.assertEqual([c.beats for c in channels], [[10, 20]] * 3)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 2)


class Connection(Beating):
    """
    A connection that beats by the rule: it records its heartbeats.
    """

    def __init__(self, timer):
        self.heartbeats = timer
        self.beating = True
        self.roster = False
        self.sent = []

    def rosterWrote(self):
        wrote, self.roster = self.roster, False
        return wrote

    def writeHeartbeat(self):
        self.sent.append(self.heartbeats.clock.seconds())


class BeatingTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.timer = HeartbeatTimer(self.clock, 10, resolution=1)
        self.connection = Connection(self.timer)
        self.connection.startBeating()

    def test_quiet(self):
        """
        A connection that wrote nothing in an interval sends a heartbeat,
        which does not count as writing: the next quiet interval sends
        another.
        """
        self.clock.advance(10)
        self.assertEqual(self.connection.sent, [10])
        self.assertFalse(self.connection.wrote)
        self.clock.advance(10)
        self.assertEqual(self.connection.sent, [10, 20])

    def test_wrote(self):
        """
        A connection that wrote (itself, or its roster for it) sends no
        heartbeat that interval, and one the next if quiet then.
        """
        self.connection.wrote = True
        self.clock.advance(10)
        self.connection.roster = True
        self.clock.advance(10)
        self.assertEqual(self.connection.sent, [])
        self.clock.advance(10)
        self.assertEqual(self.connection.sent, [30])

    def test_stops(self):
        """
        A connection that no longer beats is not called again, and one that
        stops leaves the timer.
        """
        self.connection.beating = False
        self.clock.advance(10)
        self.assertEqual((self.connection.sent, self.timer.due), ([], {}))
        other = Connection(self.timer)
        other.startBeating()
        other.stopBeating()
        self.assertEqual((self.timer.due, self.clock.getDelayedCalls()), ({}, []))

    def test_everyConnection(self):
        """
        HTTP data channels and WebSocket connections beat by this rule and
        no other.
        """
        for cls in (HTTPDataChannel, CometWebSocketProtocol):
            self.assertTrue(issubclass(cls, Beating), cls)
            self.assertIs(cls._beat, Beating._beat, cls)
