# -*- test-case-name: tests.transports.test_heartbeat,tests.transports.test_websocket -*-
"""
Heartbeats, for every connection that streams: HTTP data channels,
WebSocket connections and held long-polls.

A connection that wrote nothing in the last interval writes a heartbeat
(L{Beating}, the rule, written once); L{HeartbeatTimer} is the one timer
that calls it, shared by many connections on one clock call.
"""

import math
from typing import Any, Dict, Optional, Set

from twisted.logger import Logger

log = Logger()


class HeartbeatTimer:
    """
    The heartbeat timer of many data channels, on one clock call at a time.

    A channel scheduled with L{add} is due C{interval} seconds later, when
    its C{_beat} is called (which may L{add} it again).  Channels falling
    due in the same C{resolution} seconds share one call of the clock, a
    little early rather than late: each is due at C{interval} seconds after
    it was added, rounded down to a multiple of C{resolution}.  A channel
    costs a set entry instead of a L{DelayedCall} of its own (a few hundred
    bytes), and the clock's queue holds one call for all of them.

    @ivar due: bucket time -> the channels due then.
    """

    def __init__(self, clock: Any, interval: float, resolution: float = 1.0) -> None:
        self.clock = clock
        self.interval = interval
        self.resolution = min(resolution, interval / 10)
        self.due: Dict[float, Set[Any]] = {}
        self._call: Any = None
        self._callAt = 0.0
        self._running = False

    def add(self, channel: Any) -> None:
        """
        Call C{channel._beat()} C{interval} seconds from now (up to
        C{resolution} sooner).  The channel remembers its bucket in
        C{_beatAt} until then.
        """
        resolution = self.resolution
        at = math.floor((self.clock.seconds() + self.interval) / resolution) * resolution
        channels = self.due.get(at)
        if channels is None:
            channels = self.due[at] = set()
        channels.add(channel)
        channel._beatAt = at
        if self._call is None or at < self._callAt:
            self._schedule()

    def remove(self, channel: Any) -> None:
        """
        Forget C{channel}, if it is waiting.
        """
        at = channel._beatAt
        if at is None:
            return
        channel._beatAt = None
        channels = self.due.get(at)
        if channels is not None:
            channels.discard(channel)
            if not channels:
                del self.due[at]
                if not self.due:
                    self._schedule()

    def _schedule(self) -> None:
        if self._running:
            return
        call = self._call
        if call is not None and call.active():
            call.cancel()
        self._call = None
        if self.due:
            self._callAt = at = min(self.due)
            self._call = self.clock.callLater(max(0.0, at - self.clock.seconds()), self._run)

    def _run(self) -> None:
        self._call = None
        self._running = True
        try:
            now = self.clock.seconds()
            for at in sorted(at for at in self.due if at <= now):
                for channel in self.due.pop(at):
                    channel._beatAt = None
                    try:
                        channel._beat()
                    except Exception:
                        log.failure("A heartbeat to {channel!r} failed", channel=channel)
        finally:
            self._running = False
        self._schedule()



class Beating:
    """
    The heartbeat rule: every interval, a connection that wrote nothing
    since the last beat writes a heartbeat, so a client never waits more
    than two intervals in silence.  "Wrote" is one flag, C{wrote}, set by
    whatever writes an event or a reply (not by the heartbeat itself), or
    a roster's write since the last look (L{rosterWrote}).

    A connection provides C{heartbeats} (its L{HeartbeatTimer}),
    C{beating} (whether it still beats: open, not ended),
    L{rosterWrote} and C{writeHeartbeat}.  It calls L{startBeating} once
    it is open and L{stopBeating} when it closes.
    """

    __slots__ = ()

    #: Whether something went out since the last beat.
    wrote = False
    #: The L{HeartbeatTimer} bucket this connection waits in, if any.
    _beatAt: Optional[float] = None

    heartbeats: "HeartbeatTimer"
    beating: bool

    def rosterWrote(self) -> bool:
        raise NotImplementedError()

    def writeHeartbeat(self) -> None:
        raise NotImplementedError()

    def startBeating(self) -> None:
        """
        Beat from now on, the first time an interval from now.
        """
        self.heartbeats.add(self)

    def stopBeating(self) -> None:
        """
        Beat no more.
        """
        if self._beatAt is not None:
            self.heartbeats.remove(self)

    def _beat(self) -> None:
        """
        The timer's call: write a heartbeat if quiet, and wait for the
        next interval.
        """
        if not self.beating:
            return
        if self.wrote or self.rosterWrote():
            self.wrote = False
        else:
            self.writeHeartbeat()
            self.wrote = False
            if not self.beating:
                return
        self.heartbeats.add(self)
