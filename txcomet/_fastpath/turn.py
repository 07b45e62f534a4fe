# -*- test-case-name: tests.fastpath.test_turn,tests.fastpath.test_writer,tests.fastpath.test_roster,tests.fastpath.test_contracts -*-
"""
The turn: what one reactor turn writes to a connection beyond its first
event waits, and goes out in one write when the turn ends.
"""

from typing import Any, List, Optional

from twisted.logger import Logger

_log = Logger()


#: Pending bytes past which a connection writes what a turn gathered at
#: once, rather than at the turn's end: a turn that publishes a great deal
#: must not pile it up in memory beyond the reach of flow control.
TURN_FLUSH_BYTES = 16384


class Turn:
    """
    One reactor turn's writes, for the connections that get more than one
    event in it.

    The first event a connection gets in a turn is written at once
    (straight to the socket, as a rule); what it gets after that in the
    same turn waits in its pending list, and all of it goes out in one
    write when the turn ends (or once it passes L{TURN_FLUSH_BYTES}).  A single event costs no more than a write;
    a burst of events costs two writes per connection, not one per event.

    A writer records C{count} when it writes directly; it has written in
    this turn when its record equals C{count}.  L{begin} starts a turn
    (the first delivery of a turn calls it, when C{open} is false) and
    schedules L{end}, which flushes every writer that L{add} registered
    (their C{flushPending}).
    """

    def __init__(self, clock: Any) -> None:
        self.clock = clock
        self.count = 0
        self.open = False
        self.waiting: List[Any] = []

    def begin(self) -> None:
        """
        A turn with deliveries starts: new count, end scheduled.
        """
        self.count += 1
        self.open = True
        self.clock.callLater(0, self.end)

    def add(self, writer: Any) -> None:
        """
        C{writer} has something pending: flush it when the turn ends.
        """
        self.waiting.append(writer)
        if not self.open:
            self.begin()

    def end(self) -> None:
        """
        The turn is over: write what waited.
        """
        self.open = False
        waiting, self.waiting = self.waiting, []
        for writer in waiting:
            try:
                writer.flushPending()
            except Exception:
                _log.failure("Writing to {writer!r} failed", writer=writer)


class TurnBatch:
    """
    The turn rule, written once for everything that writes to connections:
    a data channel's stream (SSE, XHR streaming, iframe, multipart), a
    WebSocket connection and a roster (which writes to all of its members
    at once).

    The first write of a reactor turn goes at once (L{writeNow}); what is
    written after it in the same turn waits in C{pending} and goes in one
    L{writeNow} when the turn ends, or as soon as more than
    L{TURN_FLUSH_BYTES} wait.  L{writeInTurn} is the whole rule; the
    direct paths (a sink's C{deliverEvent}, L{txcomet._fastpath.roster.Roster.deliver})
    make its first comparison inline and call L{hold} only for the second
    and later writes of a turn, because a call per delivery is what the
    call-count test pins.

    A subclass provides L{writeNow} and calls L{startTurns} before
    writing.  Its state: C{turn} (the L{Turn}), C{turnCount} (the turn it
    last wrote in), C{pending} (bytes held back; empty until the first
    hold, to keep a quiet connection small), C{pendingSize} and
    C{pendingEvents} (how many events the held bytes carry, for counters).
    """

    __slots__ = ()

    turn: Turn
    turnCount = -1
    pending: Any = ()
    pendingSize = 0
    pendingEvents = 0

    def startTurns(self, turn: Turn) -> None:
        """
        Write in C{turn}'s reactor turns, nothing held yet.
        """
        self.turn = turn
        self.turnCount = -1
        self.pending = ()
        self.pendingSize = 0
        self.pendingEvents = 0

    def writeNow(self, data: bytes, events: int) -> None:
        """
        Write C{data}, carrying C{events} events, at once.
        """
        raise NotImplementedError()

    def writeInTurn(self, data: bytes, events: int = 0) -> None:
        """
        Write C{data} (C{events} events) by the turn rule: at once if it is
        the first write in this turn, else at the turn's end.
        """
        turn = self.turn
        if not turn.open:
            turn.begin()
        if self.turnCount == turn.count:
            self.hold(data, events)
        else:
            self.turnCount = turn.count
            self.writeNow(data, events)

    def hold(self, data: bytes, events: int = 0) -> None:
        """
        Keep C{data} for the turn's end (this turn has written already).
        """
        pending = self.pending
        if not pending:
            self.turn.add(self)
            pending = self.pending = []
        pending.append(data)
        self.pendingEvents += events
        size = self.pendingSize = self.pendingSize + len(data)
        if size > TURN_FLUSH_BYTES:
            self.flushPending()

    def heldBytes(self) -> Optional[bytes]:
        """
        What this turn held back, as one write (still held).
        """
        pending = self.pending
        if not pending:
            return None
        return pending[0] if len(pending) == 1 else b"".join(pending)

    def flushPending(self) -> None:
        """
        Write what this turn held back, in one write (the L{Turn} calls
        this when the turn ends).
        """
        pending = self.pending
        if pending:
            events = self.pendingEvents
            self.pending = ()
            self.pendingSize = 0
            self.pendingEvents = 0
            self.writeNow(pending[0] if len(pending) == 1 else b"".join(pending), events)
