# -*- test-case-name: tests.transports.test_http,tests.server.test_pipelined -*-
"""
The resources under the mount point: the control channel, the publish API,
and L{CometResource}, which holds every transport.
"""

from typing import Any, Dict, List, Optional

from twisted.application.service import IService, MultiService
from twisted.web.resource import Resource
from twisted.web.server import Request

from txcomet._model.channels import validateChannel
from txcomet._server.api import checkAccess, keyMatches, presentedKey
from txcomet._auth.tokens import bearerToken
from txcomet._sessions.control import ControlDispatcher
from txcomet._transports.datachannel import LongPollResource, PollResource
from txcomet._server.static import staticFile
from txcomet._model.errors import CometError
from txcomet._transports.http import (
    JSONResource,
    NotFound,
    applyCORS,
    decodeJSON,
    forwardedHeaders,
    queryArgs,
    readBody,
    respondLater,
    singleArg,
    validateCallback,
    writeJSON,
    writeScript,
)
from txcomet._sessions.hub import Hub
from txcomet._transports.streaming import (
    EventSourceResource,
    IframeResource,
    JSONPResource,
    MultipartResource,
    XHRStreamResource,
)
from txcomet._transports.websocket import WebSocketTransport
from txcomet._transports.bayeux.longpoll import makeBayeux

#: Room for the envelope around a message in a control body.
_ENVELOPE_ALLOWANCE = 4096


class ControlResource(JSONResource):
    """
    C{/comet/control}: the control channel.

    C{POST} takes one JSON object (any content type, so C{sendBeacon} and
    simple cross-origin requests work) and answers JSON.  C{GET} takes the
    same fields as query parameters (C{data} and C{info} as JSON text) and,
    with C{callback=NAME}, answers C{/**/NAME({...});} for script tags.
    """

    isLeaf = True

    def __init__(self, hub: Hub, dispatcher: ControlDispatcher) -> None:
        super().__init__()
        self.hub = hub
        self.config = hub.config
        self.dispatcher = dispatcher

    def _context(self, request: Request) -> dict:
        return {
            "origin": request.getHeader("Origin"),
            "token": bearerToken(request.getHeader("Authorization")),
            "transport": "control",
            "headers": forwardedHeaders(request, self.config),
        }

    def render_POST(self, request: Request) -> Any:
        applyCORS(request, self.config)
        body = readBody(request, self.config.maxMessageSize + _ENVELOPE_ALLOWANCE)
        message = decodeJSON(body)
        d = self.dispatcher.dispatch(message, self._context(request))
        return respondLater(request, d, lambda reply: writeJSON(request, 200, reply), what="a control request")

    def render_GET(self, request: Request) -> Any:
        applyCORS(request, self.config)
        args = queryArgs(request)
        callback = singleArg(args, "callback")
        if callback is not None:
            validateCallback(callback)
            request.cometCallback = callback  # errors from here on are script calls
        message: Dict[str, Any] = {}
        for name in ("op", "session", "channel", "since", "user", "auth", "token"):
            value = singleArg(args, name)
            if value is not None:
                message[name] = value
        ref = singleArg(args, "ref")
        if ref is not None:
            message["ref"] = ref
        presence = singleArg(args, "presence")
        if presence is not None:
            if presence not in ("true", "false"):
                raise CometError("invalid_request", "presence is true or false.")
            message["presence"] = presence == "true"
        if "channels" in args:
            message["channels"] = args["channels"]
        for name in ("data", "info"):
            value = singleArg(args, name)
            if value is not None:
                if len(value.encode("utf-8")) > self.config.maxMessageSize:
                    raise CometError("too_large")
                message[name] = decodeJSON(value.encode("utf-8"))
        d = self.dispatcher.dispatch(message, self._context(request))
        if callback is not None:
            render = lambda reply: writeScript(request, callback, reply)
        else:
            render = lambda reply: writeJSON(request, 200, reply)
        return respondLater(request, d, render, callback, what="a control request")


class PublishResource(JSONResource):
    """
    C{POST /comet/publish/<channel>}: the publish API for backends.

    The body is the event's data: JSON when the content type is
    C{application/json}, else UTF-8 text, published as a string.  When a
    publisher secret or an API key is configured, the request must carry
    one as C{Authorization: Bearer <secret>}, C{X-Comet-Secret: <secret>}
    or C{X-API-Key: <key>} (else 403 C{forbidden}); with neither, only
    clients on this machine may publish (else 401 C{unauthorized}).
    Answers C{{"ok": true, "channel": ..., "id": ...}}.
    """

    isLeaf = True
    subpaths = True  # the channel

    def __init__(self, hub: Hub) -> None:
        super().__init__()
        self.hub = hub
        self.config = hub.config

    def _checkSecret(self, request: Request) -> None:
        config = self.config
        keys = [key for key in (config.publisherSecret, config.apiKey) if key]
        if not keys:
            checkAccess(request, keys, "The publish API")
            return
        given = request.getHeader("X-Comet-Secret")
        if given is None:
            given = presentedKey(request)
        if not keyMatches(given, keys):
            raise CometError("forbidden", "Publishing needs the publisher secret (or the API key).")

    def _channel(self, request: Request) -> str:
        try:
            name = "/".join(segment.decode("ascii") for segment in request.postpath)
        except UnicodeDecodeError:
            name = "\x00"
        if not name:
            raise CometError("invalid_channel", "Publish to /publish/<channel>.")
        return validateChannel(name)

    def render_POST(self, request: Request) -> Any:
        applyCORS(request, self.config)
        self._checkSecret(request)
        channel = self._channel(request)
        body = readBody(request, self.config.maxMessageSize)
        contentType = (request.getHeader("Content-Type") or "").split(";")[0].strip().lower()
        if contentType == "application/json" or contentType.endswith("+json"):
            data = decodeJSON(body)
        else:
            try:
                data = body.decode("utf-8")
            except UnicodeDecodeError:
                raise CometError("unsupported_encoding", "A text body must be UTF-8.")
        d = self.hub.publish(channel, data)
        return respondLater(
            request,
            d,
            lambda event: writeJSON(request, 200, {"ok": True, "channel": channel, "id": event.id}),
            what="a publish",
        )


class CometResource(JSONResource):
    """
    The one resource an application mounts (C{root.putChild(b"comet", ...)}):
    the control channel, the publish API and every transport below it.

    C{GET} on it answers what it serves, as JSON.  Transports are children
    named in L{transports}; L{addTransport} adds one.
    """

    headIsGet = True

    def __init__(self, hub: Hub) -> None:
        super().__init__()
        self.hub = hub
        self.config = hub.config
        self.dispatcher = hub.dispatcher
        self.transports: List[str] = []
        #: The services of transports that hold state of their own (open
        #: connections, a protocol factory); the L{Comet} service starts
        #: and stops them with itself.
        self.transportServices = MultiService()
        self.putChild(b"control", ControlResource(hub, self.dispatcher))
        self.putChild(b"publish", PublishResource(hub))
        # The browser client, as a classic script and as an ES module.
        self.putChild(b"txcomet.js", staticFile("txcomet.js", self.config))
        self.putChild(b"txcomet.mjs", staticFile("txcomet.mjs", self.config))
        self.addTransport("poll", PollResource(hub))
        self.addTransport("longpoll", LongPollResource(hub))
        self.addTransport("jsonp", JSONPResource(hub))
        self.addTransport("xhr-stream", XHRStreamResource(hub))
        self.addTransport("iframe", IframeResource(hub))
        self.addTransport("sse", EventSourceResource(hub))
        self.addTransport("multipart", MultipartResource(hub))
        ws = WebSocketTransport(hub, self.dispatcher)
        self.addTransport("ws", ws, ws.service)
        #: The Bayeux endpoint (CometD and Faye clients), at <mount>/bayeux.
        self.bayeux = makeBayeux(hub)
        self.addTransport("bayeux", self.bayeux, self.bayeux.service)

    def addTransport(self, name: str, resource: Resource, service: Optional[IService] = None) -> None:
        """
        Serve a data channel transport at C{<mount>/<name>}.

        @param service: a service whose life is the transport's (for
            WebSocket, the protocol factory and its open connections): it
            joins L{transportServices}.
        """
        self.transports.append(name)
        if hasattr(resource, "transportName"):
            resource.transportName = name
        self.putChild(name.encode("ascii"), resource)
        if service is not None:
            service.setServiceParent(self.transportServices)

    def getChild(self, path: bytes, request: Request) -> Resource:
        if path == b"":
            return self
        return NotFound(self.config)

    def render_GET(self, request: Request) -> bytes:
        from txcomet._version import __version__

        return writeJSON(
            request,
            200,
            {
                "server": "txcomet",
                "version": __version__,
                "control": "control",
                "publish": "publish/<channel>",
                "transports": self.transports,
                "heartbeat": self.config.heartbeat,
                "timeout": self.config.sessionTimeout,
                # Whether anyone may subscribe to anything (no rules,
                # tokens or hooks): see docs/auth.md.
                "open": self.config.isOpen,
            },
        )
