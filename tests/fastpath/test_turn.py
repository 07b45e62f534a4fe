"""
Tests for L{txcomet._fastpath.turn}: the turn rule, written once.
"""

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from txcomet._fastpath.roster import Roster
from txcomet._fastpath.turn import TURN_FLUSH_BYTES, Turn, TurnBatch
from txcomet._transports.streaming import StreamingDataChannel
from txcomet._transports.websocket import CometWebSocketProtocol


class Recorder(TurnBatch):
    """
    A L{TurnBatch} that records its writes.
    """

    def __init__(self, turn: Turn) -> None:
        self.startTurns(turn)
        self.writes = []

    def writeNow(self, data, events):
        self.writes.append((data, events))


class TurnTests(SynchronousTestCase):
    def test_turnEndFlushes(self):
        """
        begin() starts a turn with a new count and schedules its end; the
        end flushes every writer added, once, and closes the turn.
        """
        clock = Clock()
        turn = Turn(clock)
        flushed = []

        class Writer:
            def __init__(self, name):
                self.name = name

            def flushPending(self):
                flushed.append(self.name)

        turn.add(Writer("a"))
        self.assertTrue(turn.open)
        self.assertEqual(turn.count, 1)
        turn.add(Writer("b"))
        self.assertEqual(turn.count, 1)
        clock.advance(0)
        self.assertEqual(flushed, ["a", "b"])
        self.assertFalse(turn.open)
        turn.begin()
        self.assertEqual(turn.count, 2)

    def test_failingWriterLogged(self):
        """
        A writer whose flush raises is logged; the others are flushed.
        """
        clock = Clock()
        turn = Turn(clock)
        flushed = []

        class Broken:
            def flushPending(self):
                raise RuntimeError("broken")

        class Fine:
            def flushPending(self):
                flushed.append(True)

        turn.add(Broken())
        turn.add(Fine())
        clock.advance(0)
        self.assertEqual(flushed, [True])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)


class TurnBatchTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.turn = Turn(self.clock)
        self.writer = Recorder(self.turn)

    def test_firstAtOnce(self):
        """
        The first write of a turn goes at once.
        """
        self.writer.writeInTurn(b"a", 1)
        self.assertEqual(self.writer.writes, [(b"a", 1)])
        self.assertEqual(self.writer.pending, ())

    def test_restAtTheEnd(self):
        """
        What a turn writes after its first goes in one write, with its
        event count, when the turn ends; the next turn writes at once again.
        """
        for data in (b"a", b"b", b"c"):
            self.writer.writeInTurn(data, 1)
        self.writer.writeInTurn(b"reply")
        self.assertEqual(self.writer.writes, [(b"a", 1)])
        self.assertEqual(self.writer.heldBytes(), b"bcreply")
        self.clock.advance(0)
        self.assertEqual(self.writer.writes, [(b"a", 1), (b"bcreply", 2)])
        self.assertEqual((self.writer.pending, self.writer.pendingSize, self.writer.pendingEvents), ((), 0, 0))
        self.writer.writeInTurn(b"d", 1)
        self.assertEqual(self.writer.writes[-1], (b"d", 1))

    def test_heldBytesKeeps(self):
        """
        L{TurnBatch.heldBytes} says what is held without writing or
        forgetting it.
        """
        self.assertIsNone(self.writer.heldBytes())
        self.writer.writeInTurn(b"a")
        self.writer.writeInTurn(b"b")
        self.assertEqual(self.writer.heldBytes(), b"b")
        self.assertEqual(self.writer.heldBytes(), b"b")
        self.clock.advance(0)
        self.assertEqual(self.writer.writes[-1], (b"b", 0))

    def test_flushPastLimit(self):
        """
        Once more than L{TURN_FLUSH_BYTES} are held, they go at once.
        """
        self.writer.writeInTurn(b"first")
        self.writer.writeInTurn(b"x" * TURN_FLUSH_BYTES, 1)
        self.assertEqual(len(self.writer.writes), 1)
        self.writer.writeInTurn(b"y", 1)
        self.assertEqual(self.writer.writes[1], (b"x" * TURN_FLUSH_BYTES + b"y", 2))
        self.clock.advance(0)
        self.assertEqual(len(self.writer.writes), 2)

    def test_writersShareTurns(self):
        """
        Writers on one L{Turn} share its turns: one turn-end call flushes
        them all.
        """
        other = Recorder(self.turn)
        self.writer.writeInTurn(b"a")
        other.writeInTurn(b"b")
        self.writer.writeInTurn(b"c")
        other.writeInTurn(b"d")
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.clock.advance(0)
        self.assertEqual([d for d, _ in self.writer.writes], [b"a", b"c"])
        self.assertEqual([d for d, _ in other.writes], [b"b", b"d"])


class OneImplementationTests(SynchronousTestCase):
    """
    Every connection writer takes the turn rule from L{TurnBatch} and
    writes it nowhere else.
    """

    def test_writers(self):
        for cls in (Roster, StreamingDataChannel, CometWebSocketProtocol):
            self.assertTrue(issubclass(cls, TurnBatch), cls)
            for name in ("writeInTurn", "hold", "heldBytes", "flushPending"):
                self.assertIs(getattr(cls, name), getattr(TurnBatch, name), (cls, name))
            self.assertIsNot(cls.writeNow, TurnBatch.writeNow, cls)
