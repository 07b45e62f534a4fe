"""
The fan-out fast path: the same pre-framed bytes to many HTTP/1.x streams.

Fan-out is txcomet's hot loop.  An event is framed once per framing (see
L{txcomet.interfaces.IEvent.framed}); for an HTTP/1.1 chunked response the
chunk around it (C{<hex length>CRLF ... CRLF}) depends only on those bytes,
so it is cached on the event too (L{ChunkedFraming}), and every connection
gets the very same L{bytes} object.

L{StreamWriter} then writes those bytes without L{Request.write}'s
per-call work, and, when the connection's send buffer is empty (the common
case for a healthy subscriber), straight to the socket: Twisted's
C{transport.write} would buffer them and register the socket for writing
with the reactor, to unregister it once they are sent, three system calls
where one C{send} does.  Whatever the socket does not take goes through
C{transport.write} as usual, so ordering, back-pressure (the producer is
paused past the transport's buffer size) and connection loss behave exactly
as they would without the fast path.
"""

import errno
import heapq
import socket
from typing import Any, List, Optional, Tuple

from twisted.internet import tcp
from twisted.logger import Logger
from twisted.web.http import HTTPChannel, Request
from zope.interface import implementer

from txcomet.interfaces import IEvent, IFraming

_log = Logger()


def chunk(data: bytes) -> bytes:
    """
    C{data} as one HTTP/1.1 chunk.
    """
    return b"%x\r\n%s\r\n" % (len(data), data)


@implementer(IFraming)
class ChunkedFraming:
    """
    Another framing's bytes as one HTTP/1.1 chunk, cached on the event
    beside them.
    """

    def __init__(self, inner: IFraming) -> None:
        self.inner = inner
        self.name = inner.name + "+chunked"

    def frameEvent(self, event: IEvent) -> bytes:
        return chunk(event.framed(self.inner))


#: send() errors that only mean "not now": the bytes wait in the
#: transport's buffer for the reactor to send.
_AGAIN = frozenset([errno.EAGAIN, errno.EWOULDBLOCK, errno.ENOBUFS, errno.EINTR])


def directTransport(transport: Any) -> Optional[tcp.Connection]:
    """
    C{transport}, if bytes may be written straight to its socket: a plain
    TCP or UNIX connection of Twisted's own (not TLS, whose bytes must be
    encrypted by the transport; not a wrapper; not a test double).
    """
    if isinstance(transport, tcp.Connection) and not transport.TLS:
        return transport
    return None


class DirectWriter:
    """
    Writes to one plain TCP or UNIX connection (see L{directTransport}):
    straight to its socket when the transport's buffer is empty, the rest
    (what the socket did not take, or everything when something is already
    waiting) with C{transport.write}, so the stream keeps its order.

    C{transport.write} would buffer the bytes, register the socket with the
    reactor for writing, send when told and unregister it: three system
    calls around the one send.  A send that fails for good (the peer reset
    the connection) hands the bytes to C{transport.write} too; Twisted then
    meets the error itself and reports the connection lost, as it would
    have without this path.  TLS connections never come here: their bytes
    must be encrypted by the transport.

    @ivar exclusive: whether this writer is the only thing that writes to
        the transport (an HTTP response body, once its headers are out).
        Then the transport's buffer is looked at only after a write was
        left in it (C{spilled}); otherwise (a WebSocket connection, whose
        library writes pings and close frames itself) before every write.
    """

    __slots__ = ("transport", "socket", "exclusive", "spilled")

    def __init__(self, transport: tcp.Connection, exclusive: bool = False) -> None:
        self.transport = transport
        self.socket = transport.socket
        self.exclusive = exclusive
        # Whatever was written before this writer (headers) may still be
        # in the transport's buffer.
        self.spilled = True

    def write(self, data: bytes) -> bool:
        """
        Write C{data} (not empty).

        @return: whether something is left in the transport's buffer.
        """
        if self.spilled or not self.exclusive:
            transport = self.transport
            if transport.dataBuffer or transport._tempDataLen or transport.disconnecting or not transport.connected:
                transport.write(data)
                self.spilled = True
                return True
            self.spilled = False
        try:
            sent = self.socket.send(data)
        except OSError as e:
            # EAGAIN: not now, the reactor sends it when it can.  Anything
            # else: Twisted meets the same error on its own write.
            sent = 0 if e.errno in _AGAIN else -1
        if sent != len(data):
            self.spilled = True
            self.transport.write(data[sent:] if sent > 0 else data)
            return True
        return False


class _TransportWriter(DirectWriter):
    """
    A L{DirectWriter} that never writes to the socket itself: everything
    goes through C{transport.write}, so its stream never finds its socket
    idle (the C{"transport"} write mode of L{setStreamWriteMode}).
    """

    def write(self, data: bytes) -> bool:
        self.transport.write(data)
        self.spilled = True
        return True


#: The ways a L{StreamWriter} can write a stream's body; see
#: L{setStreamWriteMode}.
STREAM_WRITE_MODES = ("direct", "transport", "request")


def setStreamWriteMode(mode: str) -> None:
    """
    Choose how the streams opened from now on write their bodies, for
    benchmarks that compare the ways (C{bench/fanout_server.py}); a server
    keeps the default.

    @param mode: C{"direct"} (the default: shared, pre-framed bytes
        straight to an idle socket), C{"transport"} (the same bytes, always
        through C{transport.write}) or C{"request"} (no direct path: through
        twisted.web's C{Request.write}, as on a connection that is not plain
        HTTP/1.x over TCP).
    @raise ValueError: for another mode.
    """
    if mode not in STREAM_WRITE_MODES:
        raise ValueError("unknown stream write mode %r (one of %s)" % (mode, ", ".join(STREAM_WRITE_MODES)))
    StreamWriter.writeMode = mode


def writeThrough(transport: Any, data: bytes) -> None:
    """
    Write C{data} to C{transport}: through its socket when it is a plain
    TCP or UNIX connection with nothing buffered (see L{DirectWriter}),
    with C{transport.write} otherwise (TLS, wrappers, test transports).
    For protocols that own their connection and write once per reactor
    turn (WebSocket); a stream writing per event keeps a L{DirectWriter}.
    """
    direct = directTransport(transport)
    if direct is None:
        transport.write(data)
    else:
        DirectWriter(direct).write(data)


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


class StreamWriter:
    """
    Writes the body of one streaming response once its headers are out.

    On an HTTP/1.x connection (L{HTTPChannel}) it writes to the transport
    itself, already chunked when the response is, through a L{DirectWriter}
    on a plain TCP or UNIX connection.  Anything else (HTTP/2, a test
    transport) goes through L{Request.write}.

    @ivar request: the L{Request}, whose headers have been written.
    @ivar chunked: whether the response uses chunked transfer-encoding.
    @ivar direct: the L{DirectWriter} for the connection, or C{None}.
    """

    __slots__ = ("request", "chunked", "transport", "direct")

    #: How streams write (see L{setStreamWriteMode}): C{"direct"}.
    writeMode = "direct"

    def __init__(self, request: Request) -> None:
        self.request = request
        self.chunked = bool(request.chunked)
        self.transport = None
        self.direct: Optional[DirectWriter] = None
        channel = request.channel
        mode = self.writeMode
        if (
            isinstance(channel, HTTPChannel)
            and request.startedWriting
            and request.method != b"HEAD"
            and mode != "request"
        ):
            transport = channel.transport
            self.transport = transport
            direct = directTransport(transport)
            if direct is not None:
                # The response body is all that is written from now on.
                self.direct = (DirectWriter if mode == "direct" else _TransportWriter)(direct, exclusive=True)

    def write(self, data: bytes, wire: Optional[bytes] = None) -> None:
        """
        Write C{data} (not empty) as response body.

        @param wire: C{data} as it goes on the connection (one chunk when
            the response is chunked), if the caller has it already: shared,
            pre-framed bytes.
        """
        transport = self.transport
        if transport is None:
            self.request.write(data)
            return
        if wire is None:
            wire = chunk(data) if self.chunked else data
        self.request.sentLength += len(data)
        if self.direct is not None:
            self.direct.write(wire)
        else:
            transport.write(wire)


class RosterMember:
    """
    What a data channel's sink has of its own as a L{Roster} member: the
    roster it is in, and a mark of the roster's C{events} for telling
    whether the roster wrote to it (for heartbeats).
    """

    __slots__ = ()

    roster: Any = None
    rosterMark = 0

    def joinedRoster(self, joined: Optional[bool]) -> bool:
        """
        The session's answer to joining (see
        L{txcomet._sessions.session.Session.joinRoster}): note the roster's count if
        it joined; C{False} when it never may, to ask no more.
        """
        if joined:
            self.rosterMark = self.roster.events
        return joined is not None

    def leaveRoster(self) -> None:
        """
        Leave the roster, if in one (before writing anything else).
        """
        roster = self.roster
        if roster is not None:
            roster.owner.evict(self)

    def rosterWrote(self) -> bool:
        """
        Whether the roster wrote to this connection since the last call.
        """
        roster = self.roster
        if roster is None or roster.events == self.rosterMark:
            return False
        self.rosterMark = roster.events
        return True


#: C{socket.send}, unbound: the roster calls it with each member's socket,
#: so no bound method per member is kept or looked up.
_socketSend = socket.socket.send


class Roster:
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
    The turn rule of L{Turn} holds for the roster as a whole: the first
    event of a reactor turn goes at once, the rest of the turn in one write
    at its end.

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

    What a member (the data channel's C{sink}) provides: C{roster} (this
    roster or C{None}), C{rosterSocket}, C{rosterFraming}, C{rosterTurn}
    and C{rosterBudget} (bytes it may take, or C{None}); C{rosterLeft(roster,
    pending)} when it leaves (C{pending}: bytes it must write first, or
    C{None}); C{rosterSpill(data)} for what its socket did not take;
    C{rosterSpent()} once it has had its budget.

    @ivar events: events sent so far (members compare it to a mark of
        their own to tell whether they have been written to).
    @ivar bytes: bytes sent to each member so far.
    """

    __slots__ = (
        "owner", "channel", "framing", "turn", "members", "sockets",
        "index", "pending", "pendingSize", "pendingEvents", "count", "events", "bytes",
        "delivered", "log", "logBase", "replayers", "keep", "budgets",
    )

    def __init__(self, owner: Any, channel: str, framing: IFraming, turn: Turn) -> None:
        self.owner = owner
        self.channel = channel
        self.framing = framing
        self.turn = turn
        self.members: List[Any] = []
        self.sockets: List[Any] = []
        self.index: dict = {}
        self.pending: List[bytes] = []
        self.pendingSize = 0
        self.pendingEvents = 0
        self.count = -1
        self.events = 0
        self.bytes = 0
        self.delivered = 0
        self.log: List[IEvent] = []
        self.logBase = 0
        self.replayers = 0
        self.keep = 0
        #: A heap of (C{bytes} at which, member): members that must leave
        #: then (a stream recycled after so many bytes).
        self.budgets: List[Tuple[int, int, Any]] = []

    def __repr__(self) -> str:
        return "<Roster %s %s, %d members>" % (self.channel, self.framing.name, len(self.members))

    def add(self, member: Any, budget: Optional[int] = None) -> None:
        """
        @param budget: the bytes C{member} may take before it must leave
            (to be recycled); C{None} for no limit.
        """
        self.index[member] = len(self.members)
        self.members.append(member)
        self.sockets.append(member.rosterSocket)
        member.roster = self
        if budget is not None:
            budgets = self.budgets
            if len(budgets) > 2 * len(self.members) + 64:
                # Drop what members that have left since pushed.
                budgets[:] = [entry for entry in budgets if entry[2].roster is self]
                heapq.heapify(budgets)
            heapq.heappush(budgets, (self.bytes + budget, id(member), member))

    def remove(self, member: Any) -> None:
        """
        Take C{member} out (the last member takes its place).
        """
        i = self.index.pop(member)
        members = self.members
        sockets = self.sockets
        last = members.pop()
        lastSocket = sockets.pop()
        if last is not member:
            members[i] = last
            sockets[i] = lastSocket
            self.index[last] = i
        member.roster = None

    def takePending(self) -> Optional[bytes]:
        """
        What this turn held back, as one write, for a member that leaves.
        """
        pending = self.pending
        if not pending:
            return None
        return pending[0] if len(pending) == 1 else b"".join(pending)

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
        if self.count == turn.count:
            # Written to in this turn already: the rest goes at its end.
            if not self.pending:
                turn.add(self)
            self.pending.append(wire)
            self.pendingSize += len(wire)
            self.pendingEvents += 1
            if self.pendingSize > TURN_FLUSH_BYTES:
                self.flushPending()
            return
        self.count = turn.count
        self._sendAll(wire, 1)

    def flushPending(self) -> None:
        data = self.takePending()
        if data is None:
            return
        events = self.pendingEvents
        self.pending = []
        self.pendingSize = 0
        self.pendingEvents = 0
        self._sendAll(data, events)

    def _sendAll(self, data: bytes, events: int) -> None:
        size = len(data)
        self.events += events
        self.bytes += size
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
            member = heapq.heappop(budgets)[2]
            if member.roster is self:
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
        members = [(self.members[i], sent) for i, sent in short]
        for member, sent in members:
            if member.roster is self:
                self.owner.evict(member)
            try:
                member.rosterSpill(data[sent:] if sent > 0 else data)
            except Exception:
                _log.failure("Writing to {member!r} failed", member=member)
