# -*- test-case-name: tests.transports.test_websocket,tests.system.test_websocket_real,tests.fastpath.test_turn,tests.fastpath.test_contracts -*-
"""
The WebSocket transport: C{GET <mount>/ws}, upgraded by Autobahn's
L{WebSocketResource} inside the same twisted.web site as every other
transport, so one port serves everything.

One connection carries both channels.  Text frames from the client are
control operations (the JSON objects C{POST <mount>/control} takes, with
the session implied by the connection); text frames from the server are
the messages every data channel carries: event envelopes, replies, errors,
heartbeats (on a quiet connection) and the close notice.  Every connection
is also pinged each heartbeat interval; a peer that does not answer in time
is dropped.

A connection gets its session in one of three ways:

  - C{?session=ID} (and C{last=ID}): it attaches to a session joined over
    HTTP or over an earlier connection, and is sent what the client missed;
  - C{?channel=NAME} (repeatable, and C{last=ID}): join-listen, an
    ephemeral session that ends with the connection;
  - neither: the client sends C{{"op": "join"}} and the connection attaches
    to the session that makes.

Fan-out writes one frame per event: a server-to-client frame is unmasked,
so L{txcomet._transports.wscommon.WebSocketFraming} frames an event once
(cached on the event) and every connection that did not negotiate
compression sends the same bytes.  The first event a connection gets in a
reactor turn goes straight to the socket when nothing is buffered (the
session's direct path, L{_WebSocketSink.deliverEvent}); what follows in the
same turn is gathered and sent in one write at the turn's end (the turn
rule, L{txcomet._fastpath.turn.TurnBatch}).

The protocol is one object per connection, written in three modules: this
one (the handshake, the session, the data channel, closing), the control
channel (L{txcomet._transports.wscontrol}) and writing with flow control
(L{txcomet._transports.wsflow}); what it shares with Bayeux's WebSocket
(frames, close codes, origin checks, Autobahn's set-up) is in
L{txcomet._transports.wscommon}.
"""

from collections import deque
from typing import Any, Dict, List, Optional, Sequence, Tuple
from urllib.parse import parse_qs, urlsplit

from autobahn.twisted.resource import WebSocketResource
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.types import ConnectionDeny
from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, inlineCallbacks
from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.server import Request
from zope.interface import implementer

from txcomet._auth.tokens import bearerToken
from txcomet._model.config import CometConfig
from txcomet._sessions.control import ControlDispatcher
from txcomet._transports.datachannel import DataChannelParams, DataChannelResource
from txcomet._model.errors import CometError
from txcomet._model.event import Event
from txcomet._model.stats import tally
from txcomet._model.wire import closeMessage
from txcomet._fastpath.contracts import IDirectChannel, IRosterMember
from txcomet._fastpath.roster import RosterMember
from txcomet._fastpath.turn import TurnBatch
from txcomet._transports.heartbeat import Beating, HeartbeatTimer
from txcomet._transports.wscommon import (
    CLOSE_CODES,
    FRAMING,
    HEARTBEAT_FRAME,
    OPEN,
    OTHER_REASON_CODE,
    ClosedNotice,
    HubWebSocketFactory,
    acceptDeflate,
    checkHandshakeOrigin,
    originAllowed,
    upgradeUnderGuard,
)
from txcomet._transports.wscontrol import WebSocketControl
from txcomet._transports.wsflow import WebSocketFlow
from txcomet._fastpath.writer import DirectWriter, directTransport
from txcomet._transports.http import JSONResource, asCometError, writeJSON
from txcomet._sessions.session import Session
from txcomet._sessions.hub import Hub

log = Logger()

#: The WebSocket subprotocol a client may ask for (C{new WebSocket(url,
#: "txcomet")}); asking is optional.
SUBPROTOCOL = "txcomet"


def connectParams(uri: str, headers: Dict[str, str], maxChannels: int) -> Optional[DataChannelParams]:
    """
    The data channel parameters of a handshake's request URI and headers,
    by the rules every data channel follows, or C{None} when the URI names
    neither a session nor a channel (the client will join over the
    socket); L{CometError} when they are invalid.
    """
    try:
        args = parse_qs(urlsplit(uri).query, keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:
        raise CometError("invalid_request", "Query parameters must be UTF-8.")
    known = DataChannelResource.parameters
    unknown = sorted(set(args) - known)
    if unknown:
        raise CometError(
            "invalid_request",
            "Unknown parameter %r; this endpoint takes %s." % (unknown[0][:40], ", ".join(sorted(known))),
        )
    if "session" not in args and "channel" not in args:
        if "last" in args or "lastEventId" in args:
            raise CometError("invalid_request", "last= resumes a session=ID or channel=NAME; give one.")
        return None
    return DataChannelParams.fromArgs(args, headers.get("last-event-id"), maxChannels)


def _hookHeaders(config: CometConfig, headers: Dict[str, str]) -> Dict[str, str]:
    """
    The handshake headers backend hooks are given (lower-case names).
    """
    if not (config.connectHook or config.subscribeHook or config.publishHook):
        return {}
    return {name: headers[name] for name in config.hookHeaders if name in headers}


_FRAMING_NAME = FRAMING.name


@implementer(IRosterMember)
class _WebSocketSink(RosterMember):
    """
    The session's direct path into one WebSocket connection.

    What the first event of a reactor turn needs is here, in a few slots,
    away from the protocol's hundred-odd attributes.  Anything else (a
    connection that is closing, backed up or already written to in this
    turn) goes by the protocol's own path,
    L{CometWebSocketProtocol.writeEvents}, which gathers the rest of the
    turn into one write.  After a clean write the sink joins its channel's
    L{txcomet._fastpath.roster.Roster}, and then the roster writes to it, until
    the protocol writes anything itself.

    @ivar count: the L{Turn} count when this connection last wrote.
    @ivar blocked: whether the protocol's own path must be taken: the
        connection is not open for writing, is paused or has a backlog.
    """

    __slots__ = ("protocol", "direct", "turn", "blocked", "seat", "ready")

    #: What a roster member says of itself (see L{txcomet._fastpath.roster.Roster}).
    rosterFraming = FRAMING
    rosterTally = tally("ws")
    rosterBudget = None

    def __init__(self, protocol: "CometWebSocketProtocol", direct: DirectWriter) -> None:
        self.protocol = protocol
        self.direct = direct
        self.turn = protocol.turn
        self.blocked = False
        #: Its L{txcomet._fastpath.roster.Seat} while in a roster, or C{None}.
        self.seat: Any = None
        #: Whether this connection may join a roster.
        self.ready = True

    def deliverEvent(self, event: Event) -> None:
        turn = self.turn
        if not turn.open:
            turn.begin()
        protocol = self.protocol
        if self.blocked or protocol.turnCount == turn.count:
            # Blocked, or TurnBatch.writeInTurn's second case.
            protocol.writeEvents([event])
            return
        frames = event._frames
        wire = frames.get(_FRAMING_NAME) if frames is not None else None
        if wire is None:
            wire = event.framed(FRAMING)
        protocol.turnCount = turn.count
        protocol.wrote = True
        if not self.direct.write(wire) and self.ready:
            self._joinRoster()

    # the roster

    def _joinRoster(self) -> None:
        session = self.protocol.session
        joined = session.joinRoster(self) if session is not None else None
        self.ready = self.joinedRoster(joined)

    @property
    def rosterSocket(self) -> Any:
        return self.direct.socket

    @property
    def rosterTurn(self) -> Any:
        return self.turn

    def rosterLeft(self, seat: Any, pending: Optional[bytes]) -> None:
        """
        This connection has left its roster (C{seat}); C{pending}, what the
        roster held back in this turn, goes before anything else written to
        it.
        """
        protocol = self.protocol
        if seat.roster.events != seat.events:
            protocol.wrote = True
        if pending is not None and protocol.state == OPEN and not protocol._lost:
            protocol._write(pending, 1)

    def rosterSpill(self, data: bytes) -> None:
        self.direct.spilled = True
        self.protocol.transport.write(data)

    def rosterSpent(self) -> None:
        """
        Never called: a WebSocket has no byte budget (C{rosterBudget} is
        C{None}); it is not recycled.
        """


#: What Autobahn keeps per connection (set in its C{__init__}, its
#: C{connectionMade}, the handshake, frame processing, pings and closing),
#: and the base class defaults of the same that a connection overrides at
#: once (C{factory}, C{transport}, C{connected}, C{peer}, the observable's
#: event tables).  In an instance dict these are a hash table of 3 KiB per
#: connection; as slots they are 8 bytes each.  A name missing here is no
#: error, only memory: it lands in the instance dict.
_AUTOBAHN_STATE = (
    "factory", "transport", "connected", "peer", "_valid_events", "_results",
    "is_open", "is_closed", "_transport_details", "_perMessageCompress", "_isMessageCompressed",
    "trackedTimings", "trafficStats", "state", "send_state", "data", "send_queue", "triggered",
    "utf8validator", "utf8validateIncomingCurrentMessage", "utf8validateLast",
    "wasMaxFramePayloadSizeExceeded", "wasMaxMessagePayloadSizeExceeded",
    "closedByMe", "failedByMe", "droppedByMe", "wasClean", "wasNotCleanReason",
    "wasServerConnectionDropTimeout", "wasOpenHandshakeTimeout", "wasCloseHandshakeTimeout",
    "wasServingFlashSocketPolicyFile", "localCloseCode", "localCloseReason", "remoteCloseCode",
    "remoteCloseReason", "openHandshakeTimeoutCall", "closeHandshakeTimeoutCall",
    "autoPingTimeoutCall", "autoPingPending", "autoPingPendingCall", "autoPingPendingSeq",
    "autoPingPendingSent", "http_request_data", "http_status_line", "http_headers",
    "http_request_uri", "http_request_path", "http_request_params", "http_request_host",
    "http_response_data", "websocket_version", "websocket_protocols", "websocket_origin",
    "websocket_extensions", "websocket_protocol_in_use", "websocket_extensions_in_use", "_wskey",
    "inside_message", "current_frame", "current_frame_masker", "control_frame_data",
    "frame_length", "frame_data", "message_is_binary", "message_data", "message_data_total_length",
    "send_compressed", "send_message_opcode", "send_message_frame_length",
    "send_message_frame_mask", "send_message_frame_masker",
)

#: What the handshake leaves behind that Autobahn reads no more once the
#: connection is open (on a server): released in L{CometWebSocketProtocol.onOpen}.
_HANDSHAKE_LEFTOVERS = (
    "http_request_data", "http_status_line", "http_headers", "http_request_uri",
    "http_request_path", "http_request_params", "http_request_host", "http_response_data",
    "websocket_protocols", "websocket_origin", "websocket_extensions", "_wskey",
)


@implementer(IDirectChannel, IPushProducer)
class CometWebSocketProtocol(WebSocketControl, WebSocketFlow, WebSocketServerProtocol, TurnBatch, Beating, ClosedNotice):
    """
    One WebSocket connection: a streaming data channel for its session and
    a control channel for the operations the client sends.

    It is its transport's producer: when the transport's buffer is full,
    what the session writes waits here, and past the session queue limits
    (C{queueMessages}, C{queueBytes}) the session is closed as a slow
    consumer.

    An idle connection is kept small: its state (Autobahn's too) is in
    slots, the factory's options are class attributes (see
    L{CometWebSocketFactory._configureProtocol}), what the handshake leaves
    is released once open, and containers are made when first needed.
    """

    __slots__ = _AUTOBAHN_STATE + (
        "session", "sink", "_params", "_error", "_origin", "_auth", "_newSession", "_joining", "_lost",
        "_paused", "_backlog", "_backlogBytes", "_backlogCount", "turn", "turnCount", "pending",
        "pendingSize", "pendingEvents", "_direct", "wrote", "_beatAt", "_holdClose", "_heldClose", "_closeWaiters", "_strikes",
    )

    oneShot = False
    transportName = "ws"

    factory: "CometWebSocketFactory"
    #: The session's direct path (a L{_WebSocketSink}) on an uncompressed
    #: plain TCP connection; else C{None}.
    sink: Any

    def __init__(self) -> None:
        # The base classes' defaults of what is a slot here.
        self.factory = None  # type: ignore[assignment]
        self.transport = None
        self.connected = 0
        self.peer = None
        super().__init__()
        self.session: Optional[Session] = None
        self.sink = None
        self._params: Optional[DataChannelParams] = None
        self._error: Optional[CometError] = None
        self._origin: Optional[str] = None
        # The handshake's token and forwarded headers, if it had either.
        self._auth: Optional[Tuple[Optional[str], Dict[str, str]]] = None
        # A join-listen session made during the handshake, not yet attached.
        self._newSession: Optional[Session] = None
        self._joining = False
        self._lost = False
        self._paused = False
        # control messages refused as rate_limited in a row
        self._strikes = 0
        # (isFrame, bytes): a frame to write, or a message to compress
        # first.  A deque whenever the connection is paused or has a
        # backlog; else an empty tuple, to keep an idle connection small.
        self._backlog: Any = ()
        self._backlogBytes = 0
        self._backlogCount = 0
        # The turn rule (TurnBatch), on the factory's turn once connected.
        self.startTurns(None)  # type: ignore[arg-type]
        self._direct: Optional[DirectWriter] = None
        # Beating: whether something went out since the last beat.
        self.wrote = False
        self._beatAt: Optional[float] = None
        self._holdClose = False
        self._heldClose: Optional[Tuple[str, bool]] = None
        self._closeWaiters: Optional[List[Deferred]] = None

    # connection

    def connectionMade(self) -> None:
        WebSocketServerProtocol.connectionMade(self)
        # Autobahn's queue for chopped and synchronous writes, which this
        # protocol never makes: made if one is (see sendData).
        self.send_queue = ()
        self.factory.connections.add(self)
        self.turn = self.factory.turn
        # twisted.web's channel registered itself as the transport's
        # producer; the connection is ours now, and so is its flow control.
        transport = self.transport
        try:
            transport.unregisterProducer()
            transport.registerProducer(self, True)
        except Exception:
            log.failure("Taking over flow control of {transport!r} failed", transport=transport)

    def onConnect(self, request: Any) -> Any:
        factory = self.factory
        hub = factory.hub
        self._origin = request.origin or None
        if not originAllowed(hub.config, self._origin, request.headers.get("host")):
            raise ConnectionDeny(403, "Origin not allowed")
        if factory.stopped:
            raise ConnectionDeny(503, "Shutting down")
        token = bearerToken(request.headers.get("authorization"))
        if token is None:
            token = (request.params.get("token") or [None])[0]
        headers = _hookHeaders(hub.config, request.headers)
        if token is not None or headers:
            self._auth = (token, headers)
        # A client may name the protocol it expects; txcomet's is "txcomet".
        subprotocol = SUBPROTOCOL if SUBPROTOCOL in request.protocols else None
        try:
            params = connectParams(self.http_request_uri, request.headers, hub.config.maxSubscriptions)
        except CometError as error:
            self._error = error
            return subprotocol
        self._params = params
        if params is not None and params.channels:
            return self._joinListen(params, subprotocol)
        if params is not None and params.session is not None:
            # Where this connection starts, as every data channel says it:
            # the last given, or the session's resume point.  (An unknown
            # session is reported once the connection is open.)
            session = hub.sessions.get(params.session)
            if session is not None:
                return subprotocol, {"X-Comet-Position": params.last or session.resumePoint}
            if hub.router is not None:
                # Another node sharing the bus may hold it: move it here.
                return self._claim(params, subprotocol)
        return subprotocol

    @inlineCallbacks
    def _claim(self, params: DataChannelParams, subprotocol: Optional[str]):
        try:
            session = yield self.factory.hub.findSession(params.session)
        except Exception:
            self._error = asCometError(Failure(), "moving a session to this node")
            return subprotocol
        return subprotocol, {"X-Comet-Position": params.last or session.resumePoint}

    @inlineCallbacks
    def _joinListen(self, params: DataChannelParams, subprotocol: Optional[str]):
        credentials = self._context()
        credentials["auth"] = credentials.pop("token")
        try:
            # The connection is also a control channel: its session keeps
            # the replay buffer a subscribe with since is answered from.
            session, position, recovered = yield self.factory.hub.joinListen(
                params.channels, params.last, credentials, control=True
            )
        except Exception:
            self._error = asCometError(Failure(), "a WebSocket join-listen")
            return subprotocol
        self._newSession = session
        if self._lost:
            self._newSession = None
            session.close(None)
            raise ConnectionDeny(400, "Gone")
        headers = {"X-Comet-Position": position}
        if params.last is not None:
            # Resuming through history: whether it was complete, as over
            # HTTP, so a gap is never silent.
            headers["X-Comet-Recovered"] = "true" if recovered else "false"
        expires = getattr(session.grant, "expires", None)
        if expires is not None:
            headers["X-Comet-Token-Expires"] = "%d" % (expires,)
        return subprotocol, headers

    def onOpen(self) -> None:
        for name in _HANDSHAKE_LEFTOVERS:
            setattr(self, name, None)
        params, self._params = self._params, None
        if self._lost:
            return
        self.startBeating()
        if self._error is not None:
            self._fail(self._error)
            return
        if self._newSession is not None:
            session, self._newSession = self._newSession, None
            self._listen(session, None)
            return
        if params is not None and params.session is not None:
            try:
                session = self.factory.hub.getSession(params.session)
            except CometError as error:
                self._fail(error)
                return
            self._listen(session, params.last)

    def _listen(self, session: Session, last: Optional[str]) -> None:
        self.session = session
        direct = directTransport(self.transport)
        if direct is not None and self._perMessageCompress is None:
            # Autobahn writes pings, pongs and close frames itself, through
            # sendData, which marks the writer spilled: it then looks at the
            # transport's buffer before its next write.
            self._direct = DirectWriter(direct, exclusive=True)
            self.sink = _WebSocketSink(self, self._direct)
        try:
            session.attach(self, last)
        except CometError as error:
            self.session = None
            self._fail(error)

    def onClose(self, wasClean: bool, code: Optional[int], reason: Optional[str]) -> None:
        self._lost = True
        if self.sink is not None:
            self.sink.leaveRoster()
            self.sink.blocked = True
        # Autobahn leaves this timer behind when the peer drops the
        # connection instead of answering our close; nothing is left to time.
        if self.closeHandshakeTimeoutCall is not None:
            self.closeHandshakeTimeoutCall.cancel()
            self.closeHandshakeTimeoutCall = None
        self.factory.connections.discard(self)
        self.stopBeating()
        self._backlog = deque() if self._paused else ()
        self.pending = ()
        self.pendingSize = 0
        self.pendingEvents = 0
        session, self.session = self.session, None
        if session is not None:
            session.detach(self)
        newSession, self._newSession = self._newSession, None
        if newSession is not None:
            newSession.close(None)
        self._tellClosed()

    # control channel


    # IDataChannel

    def writeEvents(self, events: Sequence[Event]) -> None:
        # The fan-out hot path: once per subscriber per event.
        if self.state != OPEN:
            return
        sink = self.sink
        if sink is not None and sink.seat is not None:
            sink.leaveRoster()
        if self._perMessageCompress is not None:
            for event in events:
                self._writeMessage(event.json)
            return
        if len(events) == 1:
            frames = events[0].framed(FRAMING)
        else:
            frames = b"".join([e.framed(FRAMING) for e in events])
        if self._paused or self._backlog:
            self._backlog.append((True, frames))
            self._queued(len(frames), len(events))
            return
        self.wrote = True
        self.writeInTurn(frames, len(events))

    def writeHeartbeat(self) -> None:
        """
        Send C{{"type": "heartbeat"}}, the message every stream sends when
        it has been quiet, so a browser (which never sees ping frames) can
        tell a live connection from a dead one.  Nothing is sent while the
        client is not reading what is already waiting.
        """
        if self.state == OPEN and not self._paused and not self._backlog:
            self._write(HEARTBEAT_FRAME, 1)

    # Beating (the heartbeat rule)

    @property
    def heartbeats(self) -> HeartbeatTimer:
        return self.factory.heartbeats

    @property
    def beating(self) -> bool:
        return self.state == OPEN and not self._lost

    def rosterWrote(self) -> bool:
        sink = self.sink
        return sink is not None and sink.rosterWrote()

    def closeChannel(self, reason: str, reconnect: bool) -> None:
        if self._holdClose:
            self._heldClose = (reason, reconnect)
            return
        self._close(reason, reconnect)

    def _close(self, reason: str, reconnect: bool) -> None:
        self.session = None
        if self.state != self.STATE_OPEN:
            return
        self._flushAll()
        self._sendNow(closeMessage(reason, reconnect))
        self.sendClose(CLOSE_CODES.get(reason, OTHER_REASON_CODE), reason)

    def sendCloseFrame(self, code: Optional[int] = None, reasonUtf8: Optional[bytes] = None, isReply: bool = False) -> None:
        # Whoever closes (we, Autobahn failing the connection, or Autobahn
        # answering the client's close), what was written before goes first,
        # and nothing more goes the direct way.
        if self.sink is not None:
            self.sink.leaveRoster()
            self.sink.blocked = True
        if self.state == OPEN:
            self._flushAll()
        WebSocketServerProtocol.sendCloseFrame(self, code, reasonUtf8, isReply)

    def sendData(self, data: bytes, sync: bool = False, chopsize: Optional[int] = None) -> None:
        # Autobahn's own writes (pings, pongs, close frames) go through the
        # transport's buffer: the direct path must look there first.
        if self._direct is not None:
            self.sink.leaveRoster()
            self._direct.spilled = True
        if (sync or chopsize) and not isinstance(self.send_queue, deque):
            self.send_queue = deque()
        WebSocketServerProtocol.sendData(self, data, sync, chopsize)

    def dropConnection(self, abort: bool = False) -> None:
        if self.sink is not None:
            self.sink.leaveRoster()
            self.sink.blocked = True
        WebSocketServerProtocol.dropConnection(self, abort)

    def goAway(self) -> None:
        """
        The server is stopping: close the connection (reason C{shutdown}).
        """
        if self.state == self.STATE_OPEN:
            self._close("shutdown", True)
        elif self.state == self.STATE_CONNECTING:
            self.dropConnection(abort=True)

    # writing, with flow control
    #
    # The turn rule (TurnBatch), as for every stream: the first frame of a
    # reactor turn goes straight to the socket (deliverEvent, through the
    # connection's DirectWriter, or writeNow), frames written after it in
    # the same turn wait in pending until the end of the turn, then go out
    # in one write: at most two sends per connection per turn, however many
    # events the turn published.  While the transport is full (paused),
    # frames wait in _backlog instead, within the session queue limits.
    # pending is only ever non-empty while not paused and _backlog is
    # empty, so pending always comes first.


    # IPushProducer


class CometWebSocketFactory(HubWebSocketFactory):
    """
    Makes a L{CometWebSocketProtocol} per connection, configured from the
    hub's L{CometConfig} (see L{HubWebSocketFactory}), with compression
    only when enabled.
    """

    protocol = CometWebSocketProtocol

    def __init__(self, hub: Hub, dispatcher: ControlDispatcher) -> None:
        self.dispatcher = dispatcher
        self.turn = hub.turn
        self.heartbeats = HeartbeatTimer(hub.clock, hub.config.heartbeat)
        options: Dict[str, Any] = {"echoCloseCodeReason": True}
        if hub.config.webSocketCompression:
            options["perMessageCompressionAccept"] = acceptDeflate
        HubWebSocketFactory.__init__(self, hub, **options)

    def setProtocolOptions(self, **options: Any) -> None:
        WebSocketServerFactory.setProtocolOptions(self, **options)
        self._configureProtocol()

    def resetProtocolOptions(self) -> None:
        WebSocketServerFactory.resetProtocolOptions(self)
        self._configureProtocol()

    def _configureProtocol(self) -> None:
        """
        Make the protocol class of new connections a subclass of the
        factory class's C{protocol} that holds this factory's options as
        class attributes.

        Autobahn copies every option (about thirty) from the factory into
        each connection's own attributes unless the connection already has
        it, and pretty-prints the lot for a debug log on every connection;
        as class attributes they cost a connection nothing, and with
        nothing left to copy (C{CONFIG_ATTRS} is empty) the copy and its
        log line are skipped.  As with Autobahn's copy, options set later
        apply to connections made after.
        """
        base = type(self).protocol
        attributes: Dict[str, Any] = {
            "__slots__": (),
            "__module__": base.__module__,
            "__qualname__": base.__qualname__,
            "CONFIG_ATTRS": (),
        }
        for name in WebSocketServerProtocol.CONFIG_ATTRS:
            value = getattr(self, name)
            if hasattr(type(value), "__get__"):
                # A function (perMessageCompressionAccept) must not become
                # a method of the connection.
                value = staticmethod(value)
            attributes[name] = value
        self.protocol = type(base.__name__, (base,), attributes)


class WebSocketService(Service):
    """
    The life of the WebSocket factory: stopping it closes every open
    connection (reason C{shutdown}) and waits until they have ended.
    """

    def __init__(self, factory: CometWebSocketFactory) -> None:
        self.factory = factory

    def startService(self) -> None:
        Service.startService(self)
        self.factory.stopped = False
        self.factory.doStart()

    def stopService(self) -> Deferred:
        Service.stopService(self)
        factory = self.factory
        factory.stopped = True
        waiting = []
        for protocol in list(factory.connections):
            waiting.append(protocol.whenClosed())
            protocol.goAway()
        d = DeferredList(waiting)
        d.addCallback(lambda _: factory.doStop())
        return d


class WebSocketTransport(JSONResource):
    """
    C{GET <mount>/ws}: hands a WebSocket handshake to Autobahn's
    L{WebSocketResource}; any other request gets a JSON error (426 for a
    plain GET).

    @ivar factory: the L{CometWebSocketFactory}.
    @ivar service: the L{WebSocketService} the L{Comet} service runs.
    """

    isLeaf = True

    def __init__(self, hub: Hub, dispatcher: Optional[ControlDispatcher] = None) -> None:
        super().__init__()
        self.hub = hub
        self.config = hub.config
        if dispatcher is None:
            dispatcher = hub.dispatcher
        self.factory = CometWebSocketFactory(hub, dispatcher)
        self.service = WebSocketService(self.factory)
        self._upgrade = WebSocketResource(self.factory)

    def render_GET(self, request: Request) -> Any:
        upgrade = request.getHeader("Upgrade") or ""
        if "websocket" not in [token.strip().lower() for token in upgrade.split(",")]:
            error = CometError(
                "invalid_request",
                "This is the WebSocket endpoint: connect with a WebSocket client.",
                status=426,
            )
            body = writeJSON(request, error.status, error.asDict())
            request.setResponseCode(426, b"Upgrade Required")
            request.setHeader(b"Upgrade", b"websocket")
            return body
        checkHandshakeOrigin(self.config, request)
        if self.factory.stopped:
            raise CometError("unavailable", "The server is shutting down.")
        return upgradeUnderGuard(self._upgrade, request)
