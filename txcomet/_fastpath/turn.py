# -*- test-case-name: tests.fastpath.test_writer,tests.fastpath.test_roster -*-
"""
The turn: what one reactor turn writes to a connection beyond its first
event waits, and goes out in one write when the turn ends.
"""

from typing import Any, List

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
