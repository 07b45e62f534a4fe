# -*- test-case-name: tests.transports.test_bayeux -*-
"""
Bayeux over HTTP at C{<mount>/bayeux}: C{long-polling} (C{POST} of a JSON
array, or of a form with the array in C{message=}) and C{callback-polling}
(C{GET ?message=...&jsonp=NAME}, answered C{/**/NAME([...]);}).  The
sub-paths CometD's client appends (C{/bayeux/handshake}, C{/bayeux/connect},
...) are the same endpoint.

A request is answered with one array: the replies to its messages, in
order, then, when it carried a C{/meta/connect}, the deliveries and the
connect reply.  A connect alone in its request is held until there is
something to deliver or the heartbeat interval passes; one that rides with
other messages, or asks for C{advice: {timeout: 0}}, is answered at once.
A client's second connect answers its first at once (the session attaches
one data channel at a time).
"""

from typing import Any, List, Optional, Sequence
from urllib.parse import parse_qs

from twisted.python.failure import Failure
from twisted.web.server import NOT_DONE_YET, Request

from txcomet._model.errors import CometError
from txcomet._model.event import Event, encodeJSON
from txcomet._sessions.hub import Hub
from txcomet._transports.bayeux.endpoint import BayeuxEndpoint, ConnectRequest
from txcomet._transports.bayeux.websocket import BayeuxWebSocketFactory
from txcomet._transports.wscommon import checkHandshakeOrigin, upgradeUnderGuard
from txcomet._transports.bayeux.protocol import (
    CALLBACK_POLLING,
    LONG_POLLING,
    WEBSOCKET,
    deliveries,
    encodeArray,
    fromCometError,
    parseMessages,
)
from txcomet._transports.datachannel import HTTPDataChannel
from txcomet._transports.heartbeat import HeartbeatTimer
from txcomet._transports.http import (
    JSONResource,
    RequestTracker,
    applyCORS,
    asCometError,
    decodeJSON,
    escapeScript,
    queryArgs,
    readBody,
    singleArg,
    validateCallback,
    writeError,
    writeJSON,
    writeScript,
)

#: Room for the envelopes around a batch's messages, beyond the largest
#: message.
BATCH_ALLOWANCE = 16 * 1024

#: The sub-paths CometD's client may append to the URL.
SUBPATHS = frozenset([b"", b"handshake", b"connect", b"subscribe", b"unsubscribe", b"disconnect"])

SCRIPT_TYPE = b"application/javascript; charset=utf-8"


class BayeuxConnectChannel(HTTPDataChannel):
    """
    The data channel of one held (or at once answered) C{/meta/connect}:
    it answers its request with the replies that came before the connect,
    the deliveries, and the connect reply.
    """

    transportName = "bayeux"

    def __init__(
        self,
        resource: "BayeuxResource",
        request: Request,
        connect: ConnectRequest,
        replies: List[bytes],
        callback: Optional[str],
    ) -> None:
        super().__init__(resource, request, None)  # type: ignore[arg-type]
        self.endpoint = resource.endpoint
        self.connect = connect
        self.replies = replies
        self.callback = callback
        if callback is not None:
            self.contentType = SCRIPT_TYPE

    def _answer(self, framed: List[bytes], reply: dict) -> None:
        body = encodeArray(self.replies + framed + [encodeJSON(reply)])
        if self.callback is not None:
            body = b"/**/" + self.callback.encode("ascii") + b"(" + escapeScript(body) + b");\n"
        else:
            body += b"\n"
        self.end(body)

    def writeEvents(self, events: Sequence[Event]) -> None:
        self._answer(deliveries(events), self.endpoint.connectReply(self.connect, events[-1].id))

    def writeHeartbeat(self) -> None:
        if self.session is not None:
            self.session.detach(self)
        self._answer([], self.endpoint.connectReply(self.connect, None))

    def closeChannel(self, reason: str, reconnect: bool) -> None:
        self._answer([], self.endpoint.closedReply(self.connect, reason, reconnect))


class BayeuxResource(JSONResource):
    """
    C{<mount>/bayeux}: see the module docstring.

    @ivar endpoint: the L{BayeuxEndpoint} that runs the messages.
    @ivar heartbeats: the timer that answers held connects.
    """

    isLeaf = True
    subpaths = True  # CometD's /handshake, /connect, ... (checked in render)

    def __init__(self, hub: Hub, endpoint: BayeuxEndpoint, factory: Any = None) -> None:
        super().__init__()
        self.hub = hub
        self.config = hub.config
        self.endpoint = endpoint
        self.heartbeats = HeartbeatTimer(hub.clock, hub.config.heartbeat)
        #: The WebSocket connections' factory, or C{None} for none.
        self.factory = factory
        #: The resource that takes WebSocket upgrades, if any.
        self.upgrade: Any = None
        #: The service whose life is the WebSocket connections', if any.
        self.service: Any = None
        if factory is not None:
            from autobahn.twisted.resource import WebSocketResource

            from txcomet._transports.websocket import WebSocketService

            self.upgrade = WebSocketResource(factory)
            self.service = WebSocketService(factory)

    @property
    def limit(self) -> int:
        """
        The largest request body (or C{message} parameter) read, in bytes.
        """
        return self.config.maxMessageSize + BATCH_ALLOWANCE

    def _checkPath(self, request: Request) -> None:
        if len(request.postpath) > 1 or request.postpath and request.postpath[0] not in SUBPATHS:
            raise CometError("not_found")

    def render_POST(self, request: Request) -> Any:
        self._checkPath(request)
        applyCORS(request, self.config)
        body = readBody(request, self.limit)
        # A form (Faye's cross-origin transport) is told by its field, not
        # its content type: curl -d sends JSON as a form too.
        if body.startswith(b"message="):
            try:
                form = parse_qs(body.decode("utf-8"), errors="strict")
            except (UnicodeDecodeError, ValueError):
                raise CometError("malformed_json", "The form is not UTF-8.")
            values = form.get("message")
            if not values or len(values) > 1:
                raise CometError("invalid_request", "A form body holds one message= field.")
            body = values[0].encode("utf-8")
        messages = parseMessages(decodeJSON(body))
        return self._run(request, messages, (LONG_POLLING,), None)

    def render_GET(self, request: Request) -> Any:
        self._checkPath(request)
        upgrade = request.getHeader("Upgrade") or ""
        if self.upgrade is not None and "websocket" in [t.strip().lower() for t in upgrade.split(",")]:
            checkHandshakeOrigin(self.config, request)
            if self.factory.stopped:
                raise CometError("unavailable", "The server is shutting down.")
            return upgradeUnderGuard(self.upgrade, request)
        applyCORS(request, self.config)
        args = queryArgs(request)
        callback = singleArg(args, "jsonp")
        if callback is None:
            raise CometError(
                "invalid_request",
                "This is the Bayeux endpoint: POST message arrays, or GET ?message=...&jsonp=NAME.",
            )
        validateCallback(callback)
        request.cometCallback = callback  # errors from here on are script calls
        message = singleArg(args, "message")
        if message is None:
            raise CometError("invalid_request", "The message parameter is required.")
        encoded = message.encode("utf-8")
        if len(encoded) > self.limit:
            raise CometError("too_large")
        messages = parseMessages(decodeJSON(encoded))
        return self._run(request, messages, (CALLBACK_POLLING,), callback)

    def _run(self, request: Request, messages: List[dict], types: Sequence[str], callback: Optional[str]) -> Any:
        tracker = RequestTracker(request)
        d = self.endpoint.process(messages, types, request.getHeader("Origin"))
        d.addCallback(self._answer, request, tracker, callback)
        d.addErrback(self._failed, request, tracker, callback)
        return NOT_DONE_YET

    def _answer(self, result: Any, request: Request, tracker: RequestTracker, callback: Optional[str]) -> None:
        replies, connect = result
        if connect is None:
            tracker.finish(self._render(request, replies, callback))
            return
        if tracker.gone:
            return
        channel = BayeuxConnectChannel(self, request, connect, [encodeJSON(r) for r in replies], callback)
        channel.setHeaders()
        session = connect.session
        try:
            channel.begin(session)
            session.attach(channel, connect.last)
        except CometError as error:
            # The session closed while the batch ran.
            channel._answer([], self.endpoint.failure(connect.message, fromCometError(error)))
            return
        if not channel.ended and (replies or not connect.hold):
            channel.writeHeartbeat()

    def _render(self, request: Request, replies: List[dict], callback: Optional[str]) -> bytes:
        if callback is not None:
            return writeScript(request, callback, replies)
        return writeJSON(request, 200, replies)

    def _failed(self, failure: Failure, request: Request, tracker: RequestTracker, callback: Optional[str]) -> None:
        tracker.finish(writeError(request, asCometError(failure, "a Bayeux request"), callback))


def makeBayeux(hub: Hub, types: Sequence[str] = (WEBSOCKET, LONG_POLLING, CALLBACK_POLLING)) -> BayeuxResource:
    """
    The Bayeux endpoint of C{hub}, offering C{types} (with C{websocket},
    WebSocket upgrades on the same URL, and a service to stop them with).
    """
    endpoint = BayeuxEndpoint(hub, types)
    if WEBSOCKET not in types:
        return BayeuxResource(hub, endpoint)
    return BayeuxResource(hub, endpoint, BayeuxWebSocketFactory(hub, endpoint))


__all__ = ["BayeuxResource", "BayeuxConnectChannel", "makeBayeux"]
