# -*- test-case-name: tests.fastpath.test_roster,tests.system.test_fastpath_real,tests.fastpath.test_turn -*-
"""
Rosters: the streams of one channel and framing that take fan-out's
shortest way, one frame sent to every member's socket in one loop.
"""

import heapq
import socket
from typing import Any, List, Optional, Tuple

from twisted.logger import Logger

from txcomet._fastpath.turn import Turn, TurnBatch
from txcomet._fastpath.writer import _AGAIN
from txcomet.interfaces import IEvent, IFraming

_log = Logger()


class Seat:
    """
    One member's place in a L{Roster}: the one record of its membership.

    The member holds it (C{seat}) while it is in the roster, the registry
    that keeps the rosters (L{txcomet._bus.subscribers.LocalSubscribers})
    finds it by subscriber, and the roster by C{position}.  Its marks are
    the roster's counters when the member joined or last looked, from
    which the member and its session tell what the roster did for them.

    @ivar roster: the L{Roster}.
    @ivar member: the data channel's sink in it.
    @ivar subscriber: the session the member writes for.
    @ivar position: the member's index in the roster's C{seats} and
        C{sockets}.
    @ivar events: the roster's C{events} when the member last looked (has
        the roster written to it since? for heartbeats).
    @ivar bytes: the roster's C{bytes} when the member joined (what it has
        been sent since, for its byte count).
    @ivar delivered: the roster's C{delivered} when the member joined (what
        its session has been sent since, for its replay buffer).
    """

    __slots__ = ("roster", "member", "subscriber", "position", "events", "bytes", "delivered")

    def __init__(self, roster: "Roster", member: Any, subscriber: Any, position: int) -> None:
        self.roster = roster
        self.member = member
        self.subscriber = subscriber
        self.position = position
        self.events = roster.events
        self.bytes = roster.bytes
        self.delivered = roster.delivered

    def __repr__(self) -> str:
        return "<Seat %d in %r>" % (self.position, self.roster)


class RosterMember:
    """
    What a data channel's sink has of its own as a L{Roster} member: its
    L{Seat} while it is in one.
    """

    __slots__ = ()

    seat: Optional[Seat] = None

    def joinedRoster(self, joined: Optional[bool]) -> bool:
        """
        The session's answer to joining (see
        L{txcomet._sessions.session.Session.joinRoster}): C{False} when it
        never may, to ask no more.
        """
        return joined is not None

    def leaveRoster(self) -> None:
        """
        Leave the roster, if in one (before writing anything else).
        """
        seat = self.seat
        if seat is not None:
            seat.roster.owner.evict(self)

    def rosterWrote(self) -> bool:
        """
        Whether the roster wrote to this connection since the last call.
        """
        seat = self.seat
        if seat is None:
            return False
        events = seat.roster.events
        if events == seat.events:
            return False
        seat.events = events
        return True


#: C{socket.send}, unbound: the roster calls it with each member's socket,
#: so no bound method per member is kept or looked up.
_socketSend = socket.socket.send


class Roster(TurnBatch):
    """
    The subscribers to one channel whose events go straight to their
    sockets, all in one wire framing: fan-out's shortest way.

    A connection whose session listens on one channel only and has nothing
    waiting joins
    its channel's roster (L{txcomet._bus.subscribers.LocalSubscribers.join})
    after it has written an event cleanly.  From then on an event of the
    channel is framed once and sent to every member's socket in one tight
    loop, with none of the per-subscriber Python (the session's
    C{deliver}, the channel's C{deliverEvent}, the writer) in between: that
    Python costs about as much again as the kernel's C{send} it wraps.
    The turn rule (L{TurnBatch}) holds for the roster as a whole: the
    first event of a reactor turn goes at once, the rest of the turn in
    one write at its end.

    A member leaves (L{txcomet._bus.subscribers.LocalSubscribers.evict}) before
    anything else is written to its connection, when its socket does not
    take a whole write (the rest then waits in its transport, and the
    member's own path, which looks there first, takes over), and when its
    session changes (a subscription more or less, a new data channel,
    closing).  What the roster held back in the turn goes to it as it
    leaves, so its stream stays in order.  A session that keeps a replay
    buffer does not add each event to it while in the roster: the roster
    keeps one log of the last events for all of them, and a session takes
    what it missed from there as its connection leaves (L{tail}).

    What a member (the data channel's C{sink}) provides: C{seat} (its
    L{Seat} in this roster, or C{None}), C{rosterSocket}, C{rosterFraming}, C{rosterTurn},
    C{rosterTally} (its transport's delivery counters) and C{rosterBudget} (bytes it may take, or C{None}); C{rosterLeft(seat,
    pending)} when it leaves (C{pending}: bytes it must write first, or
    C{None}); C{rosterSpill(data)} for what its socket did not take;
    C{rosterSpent()} once it has had its budget.

    @ivar events: events sent so far (members compare it to a mark of
        their own to tell whether they have been written to).
    @ivar bytes: bytes sent to each member so far.
    """

    __slots__ = (
        "owner", "channel", "framing", "turn", "seats", "sockets",
        "pending", "pendingSize", "pendingEvents", "turnCount", "events", "bytes",
        "delivered", "log", "logBase", "replayers", "keep", "budgets", "tally", "pendingSizes",
    )

    def __init__(self, owner: Any, channel: str, framing: IFraming, turn: Turn, tally: Any) -> None:
        self.owner = owner
        #: The delivery counters of the members' transport
        #: (L{txcomet._model.stats.Tally}): a batch counts in one addition.
        self.tally = tally
        # The events' envelope bytes held back in this turn.
        self.pendingSizes = 0
        self.channel = channel
        self.framing = framing
        self.startTurns(turn)
        #: The members' L{Seat}s and sockets, at the same positions.
        self.seats: List[Seat] = []
        self.sockets: List[Any] = []
        self.events = 0
        self.bytes = 0
        self.delivered = 0
        self.log: List[IEvent] = []
        self.logBase = 0
        self.replayers = 0
        self.keep = 0
        #: A heap of (C{bytes} at which, id, seat): members that must leave
        #: then (a stream recycled after so many bytes).
        self.budgets: List[Tuple[int, int, Any]] = []

    def __repr__(self) -> str:
        return "<Roster %s %s, %d members>" % (self.channel, self.framing.name, len(self.seats))

    def add(self, member: Any, subscriber: Any, budget: Optional[int] = None) -> Seat:
        """
        Seat C{member}, the sink C{subscriber} writes through.

        @param budget: the bytes C{member} may take before it must leave
            (to be recycled); C{None} for no limit.
        @return: its L{Seat}, which it holds as C{seat}.
        """
        seats = self.seats
        seat = member.seat = Seat(self, member, subscriber, len(seats))
        seats.append(seat)
        self.sockets.append(member.rosterSocket)
        if budget is not None:
            budgets = self.budgets
            if len(budgets) > 2 * len(seats) + 64:
                # Drop what members that have left since pushed.
                budgets[:] = [entry for entry in budgets if entry[2].member.seat is entry[2]]
                heapq.heapify(budgets)
            heapq.heappush(budgets, (self.bytes + budget, id(seat), seat))
        return seat

    def remove(self, seat: Seat) -> None:
        """
        Take C{seat}'s member out (the last member takes its place).
        """
        i = seat.position
        seats = self.seats
        sockets = self.sockets
        last = seats.pop()
        lastSocket = sockets.pop()
        if last is not seat:
            seats[i] = last
            sockets[i] = lastSocket
            last.position = i
        seat.member.seat = None

    # what sessions that keep a replay buffer need

    def addReplayer(self, keep: int) -> None:
        """
        A member's session keeps a replay buffer of C{keep} events: keep a
        log of at least as many, for it to catch up from when it leaves.
        """
        if not self.replayers:
            self.log = []
            self.logBase = self.delivered
        self.replayers += 1
        self.keep = max(self.keep, keep)

    def removeReplayer(self) -> None:
        self.replayers -= 1
        if not self.replayers:
            self.log = []
            self.logBase = self.delivered
            self.keep = 0

    def tail(self, mark: int) -> List[IEvent]:
        """
        The events delivered since C{mark} (a value of C{delivered}) that
        the log still holds: the last C{keep} of them at least.
        """
        return self.log[max(mark - self.logBase, 0):]

    def deliver(self, event: IEvent) -> None:
        self.delivered += 1
        if self.replayers:
            log = self.log
            log.append(event)
            if len(log) > self.keep + 64:
                del log[:64]
                self.logBase += 64
        # Once per event for the whole roster: the cached framing will do.
        wire = event.framed(self.framing)
        turn = self.turn
        if not turn.open:
            turn.begin()
        if self.turnCount == turn.count:
            # Written to in this turn already: the rest goes at its end
            # (TurnBatch.writeInTurn, its first test made here).
            self.pendingSizes += event.size
            self.hold(wire, 1)
            return
        self.turnCount = turn.count
        self._sendAll(wire, 1, event.size)

    def writeNow(self, data: bytes, events: int) -> None:
        """
        Send what the turn held back (L{TurnBatch.flushPending}).
        """
        sizes = self.pendingSizes
        self.pendingSizes = 0
        self._sendAll(data, events, sizes)

    def _sendAll(self, data: bytes, events: int, sizes: int) -> None:
        """
        Send C{data}, C{events} events framed, to every member.

        @param sizes: the events' envelope bytes, for the counters.
        """
        size = len(data)
        self.events += events
        self.bytes += size
        members = len(self.sockets)
        tally = self.tally
        tally.deliveries += events * members
        tally.bytes += sizes * members
        send = _socketSend
        short = None
        for i, sock in enumerate(self.sockets):
            try:
                sent = send(sock, data)
            except OSError as e:
                # EAGAIN: not now.  Anything else: Twisted meets the same
                # error when the member's transport writes.
                sent = 0 if e.errno in _AGAIN else -1
            if sent != size:
                if short is None:
                    short = []
                short.append((i, sent))
        if short is not None:
            self._takeBack(short, data)
        budgets = self.budgets
        if budgets and budgets[0][0] <= self.bytes:
            self._spent()

    def _spent(self) -> None:
        """
        Members past their byte budget leave, to be recycled.
        """
        budgets = self.budgets
        while budgets and budgets[0][0] <= self.bytes:
            seat = heapq.heappop(budgets)[2]
            member = seat.member
            if member.seat is seat:
                self.owner.evict(member)
                try:
                    member.rosterSpent()
                except Exception:
                    _log.failure("Recycling {member!r} failed", member=member)

    def _takeBack(self, short: List[Tuple[Any, int]], data: bytes) -> None:
        """
        The members whose sockets did not take all of C{data}: they leave,
        and their own paths write the rest.
        """
        seats = [(self.seats[i], sent) for i, sent in short]
        for seat, sent in seats:
            member = seat.member
            if member.seat is seat:
                self.owner.evict(member)
            try:
                member.rosterSpill(data[sent:] if sent > 0 else data)
            except Exception:
                _log.failure("Writing to {member!r} failed", member=member)
