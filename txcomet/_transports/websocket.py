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
so L{WebSocketFraming} frames an event once (cached on the event) and every
connection that did not negotiate compression sends the same bytes.  The
first event a connection gets in a reactor turn goes straight to the socket
when nothing is buffered (the session's direct path, L{deliverEvent});
what follows in the same turn is gathered and sent in one write at the
turn's end (L{txcomet._fastpath.turn.Turn}).

The close codes (the WebSocket section of C{docs/transports.md}): L{CLOSE_CODES} for the
close reasons every transport shares, C{4000 + status} for an error that
ends the connection (C{4404} for an unknown session), and RFC 6455's own
for protocol failures (1002, 1003, 1007, 1009).
"""

import struct
from collections import deque
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple
from urllib.parse import parse_qs, urlsplit

from autobahn.twisted.resource import WebSocketResource
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.compress import PerMessageDeflateOffer, PerMessageDeflateOfferAccept
from autobahn.websocket.types import ConnectionDeny
from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, inlineCallbacks, succeed
from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.server import Request
from zope.interface import implementer

from txcomet._auth.tokens import bearerToken
from txcomet._model.config import CometConfig
from txcomet._sessions.control import OPS, ControlDispatcher
from txcomet._transports.datachannel import DataChannelParams, DataChannelResource
from txcomet._model.errors import CometError
from txcomet._model.event import Event, encodeJSON
from txcomet._model.stats import tally
from txcomet._model.wire import HEARTBEAT, closeMessage
from txcomet._fastpath.contracts import IDirectChannel, IRosterMember
from txcomet._fastpath.roster import RosterMember
from txcomet._fastpath.turn import TurnBatch
from txcomet._transports.heartbeat import Beating, HeartbeatTimer
from txcomet._fastpath.writer import DirectWriter, directTransport, writeThrough
from txcomet._transports.http import JSONResource, asCometError, decodeJSON, writeJSON
from txcomet._sessions.session import Session
from txcomet._sessions.hub import Hub
from txcomet.interfaces import IFraming

log = Logger()

#: close reason -> the WebSocket close code that ends the connection after
#: the C{{"type": "close", ...}} message.  The close frame's reason text is
#: the reason itself.
CLOSE_CODES: Dict[str, int] = {
    "left": 4000,
    "expired": 4001,
    "slow_consumer": 4002,
    "replay_unavailable": 4003,
    "replaced": 4004,
    "shutdown": 4005,
    "kicked": 4006,
    "recycle": 4007,
    "token_expired": 4008,
    "invalid_token": 4009,
}

#: The close code for a close reason not in L{CLOSE_CODES}.
OTHER_REASON_CODE = 4099

#: An error that ends a connection (an unknown session, a bad query) closes
#: it with this plus the error's HTTP status: 4400, 4403, 4404, 4500, 4503;
#: a token error with its close reason's code (4008 C{token_expired}, 4009
#: C{invalid_token}).
ERROR_CODE_BASE = 4000

#: Control messages refused as C{rate_limited} in a row after which the
#: connection is closed (code 4429).
RATE_LIMIT_STRIKES = 20

#: RFC 6455: a message of a type the endpoint cannot accept (binary here).
UNSUPPORTED_DATA = 1003

#: The WebSocket subprotocol a client may ask for (C{new WebSocket(url,
#: "txcomet")}); asking is optional.
SUBPROTOCOL = "txcomet"

#: Room for the control envelope around a message's data: a frame or
#: message may be this much larger than C{maxMessageSize}.
MESSAGE_ALLOWANCE = 4096

_DEFAULT_PORTS = {"http": 80, "https": 443}


def frameText(payload: bytes) -> bytes:
    """
    One complete, unfragmented, unmasked WebSocket text frame carrying
    C{payload} (UTF-8): what a server sends, identical for every client.
    """
    length = len(payload)
    if length < 126:
        return bytes((0x81, length)) + payload
    if length < 0x10000:
        return struct.pack("!BBH", 0x81, 126, length) + payload
    return struct.pack("!BBQ", 0x81, 127, length) + payload


@implementer(IFraming)
class WebSocketFraming:
    """
    Frames an event as the text frame of its JSON envelope.
    """

    name = "ws"

    def frameEvent(self, event: Event) -> bytes:
        return frameText(event.json)


FRAMING = WebSocketFraming()
_FRAMING_NAME = FRAMING.name

#: The heartbeat message's frame, the same for every connection.
HEARTBEAT_FRAME = frameText(HEARTBEAT)


def _hostPort(netloc: str, scheme: str) -> Optional[Tuple[str, Optional[int]]]:
    try:
        parts = urlsplit("//" + netloc)
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    if not host:
        return None
    return host.lower(), port if port is not None else _DEFAULT_PORTS.get(scheme)


def originAllowed(config: CometConfig, origin: Optional[str], host: Optional[str]) -> bool:
    """
    Whether a WebSocket handshake with this C{Origin} may proceed: no
    C{Origin} (not a browser: C{None} or empty), an origin whose host and port are the
    C{Host} the request was sent to (the page came from this server), or
    one the configuration allows (C{allowedOrigins}; C{"*"} allows any).

    A browser sends cookies and HTTP credentials with a WebSocket handshake
    from any page; refusing foreign origins is what prevents cross-site
    WebSocket hijacking.
    """
    if not origin:
        return True
    if config.originAllowed(origin):
        return True
    if host is None:
        return False
    try:
        parts = urlsplit(origin)
    except ValueError:
        return False
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        return False
    theirs = _hostPort(parts.netloc, scheme)
    return theirs is not None and theirs == _hostPort(host, scheme)


def checkHandshakeOrigin(config: CometConfig, request: Any) -> None:
    """
    Refuse a WebSocket handshake whose C{Origin} L{originAllowed} refuses,
    malformed ones included, with C{403 forbidden} and txcomet's JSON
    body, before Autobahn sees it (which would answer an empty 403, or a
    bare text 400 for an origin it cannot parse).
    """
    origin = request.getHeader("Origin")
    if not originAllowed(config, origin, request.getHeader("Host")):
        log.info(
            "Refused a WebSocket handshake from {origin}: {reason}",
            origin=origin,
            reason="Origin not allowed",
        )
        # As Autobahn's refusal did: the connection ends with the answer.
        request.setHeader(b"Connection", b"close")
        channel = getattr(request, "channel", None)
        if channel is not None:
            channel.persistent = False
        raise CometError(
            "forbidden",
            "Origin not allowed: serve the page from this server's host and port, "
            "or allow its origin (--allow-origin).",
        )


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


def _ref(message: object) -> Any:
    if isinstance(message, dict):
        ref = message.get("ref")
        if isinstance(ref, (str, int)) and not isinstance(ref, bool):
            return ref
    return None


def _acceptDeflate(offers: Sequence[Any]) -> Optional[PerMessageDeflateOfferAccept]:
    for offer in offers:
        if isinstance(offer, PerMessageDeflateOffer):
            # No context takeover on our side: each message is compressed
            # alone, so no connection keeps a compression window between
            # messages.
            return PerMessageDeflateOfferAccept(offer, no_context_takeover=True)
    return None


class _ClockCall:
    __slots__ = ("_call",)

    def __init__(self, call: Any) -> None:
        self._call = call

    def cancel(self) -> None:
        if self._call.active():
            self._call.cancel()


class _ClockTimer:
    """
    What Autobahn asks of its factory's timer (C{call_later} returning
    something with C{cancel}), on the hub's clock, so pings, ping timeouts
    and handshake timeouts run on an injected clock.
    """

    def __init__(self, clock: Any) -> None:
        self.clock = clock

    def call_later(self, delay: float, func: Callable[..., Any], *args: Any, **kwargs: Any) -> _ClockCall:
        return _ClockCall(self.clock.callLater(delay, func, *args, **kwargs))


_OPEN = WebSocketServerProtocol.STATE_OPEN


class ClosedNotice:
    """
    L{whenClosed}, for both txcomet WebSocket protocols: C{_lost} is set
    once the connection has ended, when the protocol calls L{_tellClosed}.
    C{_closeWaiters} is C{None} until someone waits, to keep an idle
    connection small.
    """

    __slots__ = ()

    _lost: bool
    _closeWaiters: Optional[List[Deferred]]

    def whenClosed(self) -> Deferred:
        """
        A L{Deferred} that fires when the connection has ended.
        """
        if self._lost:
            return succeed(None)
        d: Deferred = Deferred()
        if self._closeWaiters is None:
            self._closeWaiters = []
        self._closeWaiters.append(d)
        return d

    def _tellClosed(self) -> None:
        waiters, self._closeWaiters = self._closeWaiters, None
        for waiter in waiters or ():
            waiter.callback(None)


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
        if pending is not None and protocol.state == _OPEN and not protocol._lost:
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
class CometWebSocketProtocol(WebSocketServerProtocol, TurnBatch, Beating, ClosedNotice):
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
        hub = self.factory.hub
        session = None
        position = None
        recovered = True
        try:
            credentials = self._context()
            credentials["auth"] = credentials.pop("token")
            session = yield hub.join(ephemeral=True, credentials=credentials)
            self._newSession = session
            for name in params.channels:
                ack = yield session.subscribe(name, params.last)
                if position is None:
                    position = ack["position"]
                if ack.get("recovered") is False:
                    recovered = False
        except Exception:
            self._newSession = None
            if session is not None:
                session.close(None)
            self._error = asCometError(Failure(), "a WebSocket join-listen")
            return subprotocol
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

    def _context(self) -> dict:
        token, headers = self._auth or (None, {})
        return {"origin": self._origin, "token": token, "transport": "ws", "headers": headers}

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        if self.state != self.STATE_OPEN:
            return
        if isBinary:
            self.sendCloseFrame(UNSUPPORTED_DATA, b"binary messages are not supported")
            return
        try:
            message = decodeJSON(payload)
        except CometError as error:
            self._sendError(error, None)
            return
        ref = _ref(message)
        op = message.get("op") if isinstance(message, dict) else None
        if op == "join":
            self._join(message, ref)
            return
        session = self.session
        if session is not None and isinstance(message, dict):
            given = message.get("session")
            if given is not None and given != session.id:
                self._sendError(
                    CometError(
                        "invalid_request",
                        "This connection belongs to one session, implied: leave 'session' out.",
                    ),
                    ref,
                )
                return
            message = dict(message, session=session.id)
        elif op in OPS and isinstance(message, dict) and "session" not in message:
            self._sendError(
                CometError(
                    "invalid_request",
                    'This connection has no session yet: send {"op": "join"} first, or connect'
                    " with ?session=ID or ?channel=NAME.",
                ),
                ref,
            )
            return
        self._dispatch(message, ref)

    def _dispatch(self, message: Any, ref: Any) -> None:
        # A close that the operation itself causes (leave) waits until its
        # reply is sent, so the client sees the reply, then the close.
        self._holdClose = True
        try:
            d = self.factory.dispatcher.dispatch(message, self._context())
        finally:
            self._holdClose = False
        d.addCallbacks(self._replied, self._refused, errbackArgs=(ref,))
        d.addErrback(lambda f: log.failure("Answering a WebSocket control message failed", f))
        held, self._heldClose = self._heldClose, None
        if held is not None:
            self._close(*held)

    def _join(self, message: dict, ref: Any) -> None:
        if self.session is not None or self._joining:
            self._sendError(
                CometError("invalid_request", "This connection has a session already; it carries one."),
                ref,
            )
            return
        self._joining = True
        d = self.factory.dispatcher.dispatch(message, self._context())

        def joined(reply: dict) -> None:
            self._joining = False
            session = self.factory.hub.sessions.get(reply["session"])
            if session is None:
                self._sendError(CometError("unknown_session"), ref)
                return
            if self.state != self.STATE_OPEN:
                session.close(None)
                return
            self._sendReply(reply)
            self._listen(session, None)

        def failed(failure: Failure) -> None:
            self._joining = False
            self._sendError(asCometError(failure, "a WebSocket join"), ref)

        d.addCallbacks(joined, failed)
        d.addErrback(lambda f: log.failure("Answering a WebSocket join failed", f))

    def _sendReply(self, reply: dict) -> None:
        answer: Dict[str, Any] = {"type": "reply"}
        answer.update(reply)
        self._sendText(encodeJSON(answer))

    def _errorMessage(self, error: CometError, ref: Any) -> Dict[str, Any]:
        answer: Dict[str, Any] = {"type": "error"}
        answer.update(error.asDict())
        if ref is not None:
            answer["ref"] = ref
        return answer

    def _sendError(self, error: CometError, ref: Any) -> None:
        self._sendText(encodeJSON(self._errorMessage(error, ref)))

    def _replied(self, reply: dict) -> None:
        self._strikes = 0
        self._sendReply(reply)

    def _refused(self, failure: Failure, ref: Any) -> None:
        error = asCometError(failure, "a WebSocket control message")
        if error.code == "rate_limited":
            # A client that goes on past the limit is cut off (4429).
            self._strikes += 1
            if self._strikes > RATE_LIMIT_STRIKES:
                self._fail(error)
                return
        self._sendError(error, ref)

    def _fail(self, error: CometError) -> None:
        """
        End the connection for C{error}: the error message, then a close
        with code C{4000 + status}.
        """
        if self.state != self.STATE_OPEN:
            return
        self._flushAll()
        self._sendNow(encodeJSON(self._errorMessage(error, None)))
        self.sendClose(CLOSE_CODES.get(error.code, ERROR_CODE_BASE + error.status), error.code)

    # IDataChannel

    def writeEvents(self, events: Sequence[Event]) -> None:
        # The fan-out hot path: once per subscriber per event.
        if self.state != _OPEN:
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
        if self.state == _OPEN and not self._paused and not self._backlog:
            self._write(HEARTBEAT_FRAME, 1)

    # Beating (the heartbeat rule)

    @property
    def heartbeats(self) -> HeartbeatTimer:
        return self.factory.heartbeats

    @property
    def beating(self) -> bool:
        return self.state == _OPEN and not self._lost

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
        if self.state == _OPEN:
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

    def _sendText(self, payload: bytes) -> None:
        if self.state != self.STATE_OPEN:
            return
        if self._perMessageCompress is None:
            self._write(frameText(payload), 1)
        else:
            self._writeMessage(payload)

    def _sendNow(self, payload: bytes) -> None:
        """
        Send a last message past any flow control: the connection is being
        closed, and what waited has just been written.
        """
        if self._perMessageCompress is None:
            if self._direct is not None:
                self.sink.leaveRoster()
                self._direct.spilled = True
            self.transport.write(frameText(payload))
        else:
            self.sendMessage(payload)

    def _write(self, frames: bytes, count: int) -> None:
        self.wrote = True
        sink = self.sink
        if sink is not None and sink.seat is not None:
            sink.leaveRoster()
        if self._paused or self._backlog:
            self._backlog.append((True, frames))
            self._queued(len(frames), count)
            return
        self.writeInTurn(frames, count)

    def _writeMessage(self, payload: bytes) -> None:
        self.wrote = True
        if self._paused or self._backlog:
            self._backlog.append((False, payload))
            self._queued(len(payload), 1)
        else:
            self.sendMessage(payload)

    def writeNow(self, data: bytes, events: int) -> None:
        """
        Write frames now, in one write (see L{TurnBatch}).
        """
        if self._direct is not None:
            self._direct.write(data)
        else:
            writeThrough(self.transport, data)

    def _queued(self, size: int, count: int, check: bool = True) -> None:
        self._backlogBytes += size
        self._backlogCount += count
        config = self.factory.hub.config
        if check and (self._backlogCount > config.queueMessages or self._backlogBytes > config.queueBytes):
            if self.session is not None:
                self.session.close("slow_consumer")
            else:
                self.closeChannel("slow_consumer", True)

    def _flushBacklog(self, force: bool = False) -> None:
        backlog = self._backlog
        while backlog and (force or not self._paused):
            isFrame, data = backlog.popleft()
            if isFrame:
                # Join what follows, up to a send's worth.
                chunk = [data]
                size = len(data)
                while backlog and backlog[0][0] and size < 65536:
                    data = backlog.popleft()[1]
                    chunk.append(data)
                    size += len(data)
                data = chunk[0] if len(chunk) == 1 else b"".join(chunk)
                if self._direct is not None:
                    self._direct.write(data)
                else:
                    writeThrough(self.transport, data)
            else:
                self.sendMessage(data)
        if not backlog:
            self._backlogBytes = 0
            self._backlogCount = 0

    def _flushAll(self) -> None:
        self.flushPending()
        self._flushBacklog(force=True)

    # IPushProducer

    def _unblock(self) -> None:
        """
        Let the direct path write again if the connection is open, not
        paused and has no backlog.
        """
        if self.sink is not None:
            self.sink.blocked = bool(self._paused or self._backlog or self.state != _OPEN)

    def _startBacklog(self) -> None:
        # Paused: what is written from now on waits in a deque.
        self._paused = True
        if not isinstance(self._backlog, deque):
            self._backlog = deque()

    def pauseProducing(self) -> None:
        self._startBacklog()
        if self.sink is not None:
            self.sink.leaveRoster()
            self.sink.blocked = True
        data = self.heldBytes()
        if data is not None:
            # Keep their place ahead of what comes next.  The limits are
            # checked on the next write, not here, inside the transport's.
            count = self.pendingEvents
            self.pending = ()
            self.pendingSize = 0
            self.pendingEvents = 0
            self._backlog.appendleft((True, data))
            self._queued(len(data), count, check=False)

    def resumeProducing(self) -> None:
        self._paused = False
        if self._backlog and self.state == self.STATE_OPEN:
            self._flushBacklog()
        if not self._paused and not self._backlog:
            # Writing it may have paused the connection again.
            self._backlog = ()
        self._unblock()

    def stopProducing(self) -> None:
        self._startBacklog()
        if self.sink is not None:
            self.sink.leaveRoster()
            self.sink.blocked = True


def _refuseDeflate(offers: Any) -> None:
    return None


class HubWebSocketFactory(WebSocketServerFactory):
    """
    What every txcomet WebSocket endpoint's factory (the comet one, and
    Bayeux's) shares: the hub, whose clock runs Autobahn's timers (pings,
    the close handshake) too; the open connections; whether the service
    has stopped; and these Autobahn options from the hub's config: no
    status page, close frames rather than dropped connections for protocol
    errors, the message size limit, and pings every heartbeat interval.
    Origins are checked in C{onConnect}, against the Host as well as the
    configured list; Autobahn's own check is a pattern list that knows
    nothing of the Host, so it lets every origin through.

    @ivar connections: the open connections.
    @ivar stopped: whether the service has stopped; new handshakes are
        refused (503).
    """

    noisy = False

    def __init__(self, hub: Any, **options: Any) -> None:
        WebSocketServerFactory.__init__(self, server="txcomet", reactor=hub.clock)
        self.hub = hub
        self.connections: set = set()
        self.stopped = False
        self._batched_timer = _ClockTimer(hub.clock)
        config = hub.config
        limit = config.maxMessageSize + MESSAGE_ALLOWANCE
        self.setProtocolOptions(
            webStatus=False,
            failByDrop=False,
            maxFramePayloadSize=limit,
            maxMessagePayloadSize=limit,
            autoPingInterval=config.heartbeat,
            autoPingTimeout=config.webSocketPingTimeout,
            allowedOrigins=["*"],
            allowNullOrigin=True,
            **options,
        )


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
        HubWebSocketFactory.__init__(
            self,
            hub,
            echoCloseCodeReason=True,
            perMessageCompressionAccept=_acceptDeflate if hub.config.webSocketCompression else _refuseDeflate,
        )

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
        return self._upgrade.render(request)
