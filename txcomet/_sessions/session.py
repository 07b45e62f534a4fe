# -*- test-case-name: tests.sessions.test_session,tests.sessions.test_closed,tests.sessions.test_resume,tests.test_layers -*-
"""
Sessions: one client each (the hub that owns them is L{txcomet._sessions.hub}).

A session is one client: its subscriptions, its outbound queue, a replay
buffer of what it was last sent, and the data channel (at most one) that
events are written to.  Its states:

    joined ----attach----> listening ----detach----> joined
      |                        |
      +---- close (leave, expiry, slow consumer, replay gap, shutdown) --> closed

A joined session with no data channel expires after C{sessionTimeout}
seconds.  An I{ephemeral} session, made by a data channel request that named
channels instead of a session (join-listen in one request), closes as soon
as its data channel ends; its clients resume through history instead.

The states are a plain attribute rather than an Automat machine: C{deliver}
is the fan-out hot path, and it runs once per subscriber per event.
"""

import secrets
from typing import Any, Dict, Iterable, List, Optional

from twisted.logger import Logger
from zope.interface import implementer

from txcomet._model.errors import CometError, sessionClosed
from txcomet._model.event import Event, formatId
from txcomet._model.wire import CLOSE_REASONS
from txcomet._fastpath.contracts import IDirectChannel, IRosterSubscriber
from txcomet._model.stats import RESUMES, tally
from txcomet.interfaces import IDataChannel, IGapListener
from txcomet._sessions.operations import SessionOperations
from txcomet._sessions.states import CLOSED, JOINED, LISTENING

#: Close reasons that are no news to the client that named the session: it
#: left, or it moved to another node (no reason).
_UNREMEMBERED = frozenset([None, "left"])

#: The direct path drops delivered events from the front of the replay
#: buffer this many at a time (it keeps replayLength to replayLength + this).
_TRIM_BATCH = 32


@implementer(IGapListener, IRosterSubscriber)
class Session(SessionOperations):
    """
    One client of the hub; see the module docstring.

    @ivar id: the session id: 192 random bits, the client's credential.
    @ivar clientId: a public id for presence lists (never the session id).
    @ivar subscriptions: the patterns and channels subscribed, in order.
    """

    log = Logger()

    __slots__ = (
        "hub",
        "id",
        "clientId",
        "user",
        "info",
        "ephemeral",
        "presence",
        "state",
        "closeReason",
        "closeReconnect",
        "_allowance",
        "_allowanceAt",
        "subscriptions",
        "_buffer",
        "_base",
        "_sent",
        "_pendingBytes",
        "_channel",
        "_expiry",
        "_resuming",
        "_sink",
        "_replayLength",
        "keepsReplay",
        "grant",
        "_tally",
        "__weakref__",
    )

    def __init__(
        self,
        hub: Any,  # the Hub (its module imports this one)
        user: Optional[str] = None,
        info: Optional[dict] = None,
        ephemeral: bool = False,
        presence: Optional[bool] = None,
    ) -> None:
        self.hub = hub
        self.id = hub.sessionPrefix + secrets.token_urlsafe(24)
        self.clientId = secrets.token_urlsafe(9)
        self.user = user
        self.info = info
        self.ephemeral = ephemeral
        if presence is None:
            presence = user is not None
        self.presence = presence and not ephemeral
        self.state = JOINED
        self.closeReason: Optional[str] = None
        self.closeReconnect = True
        self._allowance = float(hub.config.controlBurst)
        self._allowanceAt = hub.clock.seconds()
        self.subscriptions: Dict[str, None] = {}
        # Every event queued to this session, delivered or not, in order.
        # _base is the absolute index of _buffer[0]; _sent is the absolute
        # index of the first event not yet written to a data channel.  A
        # list, not a deque: an idle session's costs 56 bytes, not 600, and
        # the front is dropped in batches.
        self._buffer: List[Event] = []
        self._base = 0
        self._sent = 0
        self._pendingBytes = 0
        self._channel: Optional[IDataChannel] = None
        self._expiry = None
        self._resuming: Optional[Dict[str, List[Event]]] = None
        # The attached channel's direct path (its "sink"), while nothing is
        # pending, no subscription is resuming and the session listens; see
        # deliver.
        self._sink: Any = None
        self._replayLength = hub.config.replayLength
        #: Whether delivered events are kept for replay (see attach).  Only
        #: a session nothing can attach to again nor resume (an HTTP
        #: join-listen stream's) does without.
        self.keepsReplay = True
        #: The authorizer's L{IGrant} this session joined with, or C{None}.
        self.grant: Any = None
        # The delivery counters of the attached data channel's transport.
        self._tally: Any = None

    def __repr__(self) -> str:
        return "<Session client=%s %s subscriptions=%r>" % (
            self.clientId,
            self.state,
            list(self.subscriptions),
        )

    # what others may ask

    @property
    def dataChannel(self) -> Optional[IDataChannel]:
        """
        The attached data channel, if any.
        """
        return self._channel

    @property
    def pending(self) -> int:
        """
        How many queued events have not been written to a data channel.
        """
        return self._base + len(self._buffer) - self._sent

    @property
    def resumePoint(self) -> str:
        """
        The C{last} with which a client that has received everything written
        to this session's data channels so far resumes exactly: the id of
        the last event written, or, before the first, the start marker
        C{"<epoch>-0"} (offset 0 is no event's id).  A client that has
        received no event yet sends the start marker as C{last}, so that
        what was written to a connection that died before reaching it is
        sent again.
        """
        self._settle()
        index = self._sent - self._base - 1
        if 0 <= index < len(self._buffer):
            return self._buffer[index].id
        return formatId(self.hub.bus.epoch, 0)

    def member(self) -> dict:
        """
        How this session appears in presence lists and notices.
        """
        member: Dict[str, Any] = {"client": self.clientId}
        if self.user is not None:
            member["user"] = self.user
        if self.info is not None:
            member["info"] = self.info
        return member

    def chargeControl(self) -> None:
        """
        Count one control operation against the session's allowance (a
        token bucket of C{controlBurst}, refilled at C{controlRate} a
        second); L{CometError} C{rate_limited} when it is spent.
        """
        config = self.hub.config
        rate = config.controlRate
        if not rate:
            return
        now = self.hub.clock.seconds()
        allowance = min(float(config.controlBurst), self._allowance + (now - self._allowanceAt) * rate)
        self._allowanceAt = now
        if allowance < 1.0:
            self._allowance = allowance
            raise CometError(
                "rate_limited",
                "More than %d control operations at once, or %g a second: slow down." % (config.controlBurst, rate),
            )
        self._allowance = allowance - 1.0

    def checkOpen(self) -> None:
        """
        Raise L{CometError} C{unknown_session} if the session is closed.
        """
        if self.state == CLOSED:
            if self.closeReason in _UNREMEMBERED:
                raise CometError("unknown_session", "The session is closed (%s)." % (self.closeReason,))
            raise sessionClosed(self.closeReason, self.closeReconnect)

    # ISubscriber

    def deliver(self, event: Event) -> None:
        sink = self._sink
        if sink is not None:
            # The fan-out fast path: a streaming channel with nothing
            # pending takes the event straight away.  The replay buffer
            # keeps it, marked sent, as _flush would.
            if self.keepsReplay:
                buffer = self._buffer
                buffer.append(event)
                self._sent += 1
                if len(buffer) > self._replayLength + _TRIM_BATCH:
                    del buffer[:_TRIM_BATCH]
                    self._base += _TRIM_BATCH
            sink.deliverEvent(event)
            tally = self._tally
            tally.deliveries += 1
            tally.bytes += event.size  # made by the sink's framing
            return
        if self.state == CLOSED:
            return
        resuming = self._resuming
        if resuming is not None:
            held = resuming.get(event.channel)
            if held is not None:
                held.append(event)
                return
        self._buffer.append(event)
        self._pendingBytes += len(event.json)
        if self._channel is not None:
            self._flush()
        else:
            self._checkLimits()

    def gap(self) -> None:
        """
        The bus may have lost events on their way here, so this session's
        stream can no longer be trusted to be complete: close it with
        C{replay_unavailable}.  Its client joins again and resumes each
        channel from history, which says whether anything was lost.
        """
        self.close("replay_unavailable")

    def _enqueueMany(self, events: Iterable[Event]) -> None:
        for event in events:
            self._buffer.append(event)
            self._pendingBytes += len(event.json)
        if self._channel is not None:
            self._flush()
        else:
            self._checkLimits()

    def _checkLimits(self) -> None:
        config = self.hub.config
        if self.pending > config.queueMessages or self._pendingBytes > config.queueBytes:
            self.close("slow_consumer")

    def _flush(self) -> None:
        buffer = self._buffer
        start = self._sent - self._base
        end = len(buffer)
        if start >= end:
            return
        channel = self._channel
        assert channel is not None
        if end - start == 1:
            events: List[Event] = [buffer[start]]
        else:
            # A slice: islice would step over the replay buffer first.
            events = buffer[start:end]
        self._sent = self._base + end
        tally = self._tally
        tally.deliveries += end - start
        tally.bytes += self._pendingBytes
        self._pendingBytes = 0
        # Trim what the replay buffer need not keep.
        excess = self._sent - self._base - (self._replayLength if self.keepsReplay else 0)
        if excess > 0:
            del buffer[:excess]
            self._base += excess
        if channel.oneShot:
            # Settle first: writing the answer can render the next long-poll
            # pipelined on the same connection, which attaches at once.
            self._channel = None
            self._detached()
            channel.writeEvents(events)
        else:
            channel.writeEvents(events)
            self._updateSink()

    def _updateSink(self) -> None:
        """
        Let L{deliver} hand events straight to the data channel's C{sink}
        (an object with C{deliverEvent}; see
        L{txcomet._transports.streaming.StreamingDataChannel.sink}) when that is what
        the slow path would do: the session listens on a streaming channel
        that offers one, nothing is pending and no subscription is resuming.
        """
        channel = self._channel
        if (
            channel is not None
            and self.state == LISTENING
            and self._resuming is None
            and self._sent == self._base + len(self._buffer)
        ):
            direct = IDirectChannel(channel, None)
            self._sink = direct.sink if direct is not None else None
        else:
            self._dropSink()

    def _dropSink(self) -> None:
        """
        Stop handing events to the data channel's sink; if it is in its
        channel's roster (see L{joinRoster}), it leaves.
        """
        self._settle()
        self._sink = None

    def joinRoster(self, sink: Any) -> Optional[bool]:
        """
        Let C{sink}, this session's sink, take events straight from its
        channel's L{txcomet._fastpath.roster.Roster}: it asks after it has written
        an event cleanly.

        @return: whether it joined; C{None} when this session never may
            (the bus has no rosters).
        """
        rosters = self.hub.rosters
        if rosters is None:
            return None
        if sink is not self._sink or not rosters.join(self, sink):
            return False
        if self.keepsReplay:
            sink.seat.roster.addReplayer(self._replayLength)
        return True

    def leftRoster(self, seat: Any) -> None:
        """
        This session's sink has left its roster (C{seat}): what the roster
        delivered meanwhile counts as sent, and its replay buffer takes it
        from the roster's log.
        """
        if not self.keepsReplay:
            return
        roster = seat.roster
        delivered = roster.delivered - seat.delivered
        if delivered:
            tail = roster.tail(seat.delivered)
            buffer = self._buffer
            if len(tail) < delivered:
                # Older events than the log holds: gone from here too.
                buffer.clear()
            buffer.extend(tail)
            excess = len(buffer) - self._replayLength
            if excess > 0:
                del buffer[:excess]
            self._sent += delivered
            self._base = self._sent - len(buffer)
        roster.removeReplayer()

    def _settle(self) -> None:
        """
        Bring the replay buffer up to date: the sink leaves its roster.
        """
        sink = self._sink
        if sink is not None and sink.seat is not None:
            sink.leaveRoster()

    def attach(self, channel: IDataChannel, last: Optional[str] = None) -> None:
        """
        Make C{channel} this session's data channel, replacing (and closing
        with reason C{replaced}) any other, and write it what is pending.

        @param last: the id of the last event the client received in this
            session.  Everything queued after it is sent again, so a client
            that lost a connection mid-stream misses nothing and sees
            nothing twice.  An id this session does not hold closes the
            session with reason C{replay_unavailable}: its client should
            join again and resume per channel from history.  The start
            marker (see L{resumePoint}) sends everything again, as long as
            the session still holds all of it.
        """
        self.checkOpen()
        self._dropSink()
        self._endChannel()
        self._cancelExpiry()
        self._channel = channel
        self._tally = tally(channel.transportName)
        self.state = LISTENING
        if last is not None:
            index = self._find(last)
            if index is None and self._base == 0 and last == formatId(self.hub.bus.epoch, 0):
                index = -1  # the start marker: the client has received nothing
            RESUMES.labels("true" if index is not None else "false").inc()
            if index is None:
                self.close("replay_unavailable")
                return
            self._sent = index + 1
            # A slice, not islice: islice would step over the whole replay
            # buffer before the (usually empty) tail, on every long-poll.
            self._pendingBytes = sum([len(e.json) for e in self._buffer[self._sent - self._base :]])
        self._flush()
        self._updateSink()

    def _find(self, eventId: str) -> Optional[int]:
        buffer = self._buffer
        for i in range(len(buffer) - 1, -1, -1):
            if buffer[i].id == eventId:
                return self._base + i
        return None

    def detach(self, channel: IDataChannel) -> None:
        """
        C{channel} has ended (the client went away, or a one-shot channel
        answered).  Events go on queueing for the next data channel.
        """
        if self._channel is channel:
            self._channel = None
            self._dropSink()
            self._detached()

    def _detached(self) -> None:
        if self.state == CLOSED:
            return
        self.state = JOINED
        if self.ephemeral:
            self.close(None)
        elif self._expiry is None:
            self._expiry = self.hub.clock.callLater(self.hub.config.sessionTimeout, self._expire)

    def _endChannel(self) -> None:
        """
        End the data channel, if any, with reason C{replaced}: the client's
        next one has come (here, or on another node).
        """
        channel = self._channel
        if channel is not None:
            self._channel = None
            channel.closeChannel("replaced", CLOSE_REASONS["replaced"])

    def _cancelExpiry(self) -> None:
        if self._expiry is not None:
            if self._expiry.active():
                self._expiry.cancel()
            self._expiry = None

    def _expire(self) -> None:
        self._expiry = None
        self.close("expired")

    def close(self, reason: Optional[str], reconnect: Optional[bool] = None) -> None:
        """
        Close the session: tell its data channel why (unless C{reason} is
        C{None}), drop its subscriptions and presence, forget it.
        """
        if self.state == CLOSED:
            return
        self.state = CLOSED
        self.closeReason = reason
        if reconnect is None:
            reconnect = CLOSE_REASONS.get(reason, True)
        self.closeReconnect = reconnect
        self._cancelExpiry()
        channel = self._channel
        self._channel = None
        self._dropSink()
        self._buffer.clear()
        self._pendingBytes = 0
        if channel is not None and reason is not None:
            channel.closeChannel(reason, reconnect)
        self.hub._sessionClosed(self, channel.transportName if channel is not None else None)

    # control operations




