# -*- test-case-name: tests.transports.test_websocket,tests.transports.test_bayeux_websocket -*-
"""
What both WebSocket endpoints (the comet transport, L{txcomet._transports.websocket},
and Bayeux's, L{txcomet._transports.bayeux.websocket}) share: the text
frame and the close codes, the handshake's origin check, Autobahn's
options and timers on the hub's clock (L{HubWebSocketFactory}),
L{ClosedNotice}, and the upgrade itself (L{upgradeUnderGuard}).

The close codes (the WebSocket section of C{docs/transports.md}): L{CLOSE_CODES} for the
close reasons every transport shares, C{4000 + status} for an error that
ends the connection (C{4404} for an unknown session), and RFC 6455's own
for protocol failures (1002, 1003, 1007, 1009).
"""

import struct
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple
from urllib.parse import urlsplit

from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.compress import PerMessageDeflateOffer, PerMessageDeflateOfferAccept
from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger
from twisted.protocols.policies import ProtocolWrapper
from zope.interface import implementer

from txcomet._model.config import CometConfig
from txcomet._model.errors import CometError
from txcomet._model.event import Event
from txcomet._model.wire import HEARTBEAT
from txcomet.interfaces import IFraming

log = Logger()

#: Autobahn's state of an open connection.
OPEN = WebSocketServerProtocol.STATE_OPEN


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


#: RFC 6455: a message of a type the endpoint cannot accept (binary here).
UNSUPPORTED_DATA = 1003


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


def acceptDeflate(offers: Sequence[Any]) -> Optional[PerMessageDeflateOfferAccept]:
    """
    Accept a client's permessage-deflate offer (C{--ws-compression}).
    """
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


class HubWebSocketFactory(WebSocketServerFactory):
    """
    What every txcomet WebSocket endpoint's factory (the comet one, and
    Bayeux's) shares: the hub, whose clock runs Autobahn's timers (pings,
    the close handshake) too; the open connections; whether the service
    has stopped; and these Autobahn options from the hub's config: no
    status page, close frames rather than dropped connections for protocol
    errors, the message size limit, pings every heartbeat interval, and no
    compression unless C{perMessageCompressionAccept} says otherwise.
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
            **dict({"perMessageCompressionAccept": lambda offers: None}, **options),
        )


def _protocolSlot(transport: Any) -> Tuple[Any, str]:
    """
    Where Autobahn's C{WebSocketResource.render} puts the WebSocket
    protocol on C{transport}: the object and the attribute, in the same
    order of cases.
    """
    if isinstance(transport, ProtocolWrapper):
        return transport, "wrappedProtocol"  # TLS as the transport
    if isinstance(getattr(transport, "protocol", None), ProtocolWrapper):
        return transport.protocol, "wrappedProtocol"  # TLS started on TCP
    return transport, "protocol"


def upgradeUnderGuard(upgrade: Any, request: Any) -> Any:
    """
    Render C{upgrade} (Autobahn's C{WebSocketResource}) for C{request},
    and keep the connection's guard in front of the WebSocket protocol.

    Autobahn takes the connection over by making the WebSocket protocol
    the transport's protocol (or the TLS layer's), in the place where the
    guard (L{txcomet._server.guard}) stood.  The guard then never heard of
    the connection's end, and counted it open for ever: after as many
    WebSocket connections as its cap (the open-file limit less 256) had
    come and gone, the server answered every new connection 503.  Here
    the guard goes back to its place, and passes everything on to the
    WebSocket protocol (C{adoptUpgrade}).
    """
    transport = request.channel.transport
    if transport is None:
        return upgrade.render(request)  # HTTP/2: Autobahn answers 426
    holder, attribute = _protocolSlot(transport)
    guard = getattr(holder, attribute, None)
    result = upgrade.render(request)
    upgraded = getattr(holder, attribute, None)
    adopt = getattr(guard, "adoptUpgrade", None)
    if adopt is not None and upgraded is not guard:
        adopt(upgraded)
        setattr(holder, attribute, guard)
    return result

