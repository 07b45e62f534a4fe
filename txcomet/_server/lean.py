# -*- test-case-name: tests.server.test_lean,tests.server.test_pipelined -*-
"""
A lean HTTP/1.1 path for request-shaped work: the txcomet server's
long-polls, polls, control requests and publishes without twisted.web's
per-request machinery.

A long-poll client asks again and again on one keep-alive connection, and
each ask costs twisted.web far more than txcomet's own work: header
parsing line by line, a L{twisted.web.server.Request} (header containers,
the local address asked of the kernel, a body file), resource traversal,
and a generic response writer.  L{LeanSite} answers the plainest such
requests itself: C{GET} or C{POST} of one of its routes (exact paths, a
polling data channel resource or the control channel each; or a path
under one of its prefixes, the publish API's C{<mount>/publish/}) over
HTTP/1.1, with at most a small body framed by C{Content-Length} and no
header it would have to act on.  The resource renders a L{LeanRequest}, a small request
with the part of L{Request}'s interface that txcomet's polling resources
use, and the answer has the status line and headers twisted.web would
send.

Anything else on a connection (another path or method, HTTP/1.0, a body,
C{Connection: close}, an unusual header, TLS that negotiated HTTP/2) hands
the connection, with the bytes not yet consumed, to twisted.web's own
protocol for good: requests are answered in order, and what the lean path
does not handle is handled exactly as before.
"""

import re
import time
from io import BytesIO
from typing import Any, Callable, Dict, List, Optional, Tuple
from urllib.parse import unquote_to_bytes

from twisted.internet.defer import Deferred
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.protocols.policies import TimeoutMixin
from twisted.python.failure import Failure
from twisted.web.http import RESPONSES, datetimeToString, parse_qs
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site, version as serverVersion

from txcomet._fastpath.writer import writeThrough
from txcomet._model.errors import CometError
from txcomet._transports.http import finishWhole, redactURI, writeError

log = Logger()

#: A request head longer than this is left to twisted.web (which has its
#: own limits and errors).
MAX_HEAD = 8192

_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_VALUE = re.compile(rb"[\x20-\x7e\t]*\Z")

#: Request headers that ask the server to do something the lean path does
#: not: a body, another protocol, an expectation.  (C{Connection} is
#: handed over too unless it is C{keep-alive}, what HTTP/1.1 does anyway.)
_HAND_OVER = frozenset([b"transfer-encoding", b"upgrade", b"expect", b"te", b"http2-settings"])

#: The largest request body the lean path reads (a control request's);
#: larger ones go to twisted.web and the limits of L{CometRequest}.
MAX_BODY = 65536

_FORMS = frozenset([b"application/x-www-form-urlencoded", b"multipart/form-data"])

_dateCache: List[Any] = [None, b""]


def httpDate() -> bytes:
    """
    The C{Date} header's value now, made at most once a second.
    """
    now = int(time.time())
    if _dateCache[0] != now:
        _dateCache[0] = now
        _dateCache[1] = datetimeToString(now)
    return _dateCache[1]


def parseHead(head: bytes) -> Optional[Tuple[bytes, bytes, Dict[bytes, List[bytes]], int]]:
    """
    The method, target, headers (lower-case names) and body length of a
    request head (without its final empty line) the lean path may answer,
    or C{None}.  A C{POST} may have a body of up to L{MAX_BODY} bytes,
    framed by C{Content-Length}, that is not a form submission (whose
    fields twisted.web would add to the request's arguments).
    """
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or parts[0] not in (b"GET", b"POST") or parts[2] != b"HTTP/1.1":
        return None
    headers: Dict[bytes, List[bytes]] = {}
    length = 0
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not _TOKEN.match(name):
            return None
        value = value.strip(b" \t")
        if not _VALUE.match(value):
            return None
        name = name.lower()
        if name in _HAND_OVER or name == b"connection" and value.lower() != b"keep-alive":
            return None
        values = headers.get(name)
        if values is None:
            headers[name] = [value]
        elif name == b"content-length":
            return None
        else:
            values.append(value)
        if name == b"content-length":
            if parts[0] != b"POST" or not value.isdigit() or len(value) > 7:
                return None
            length = int(value)
            if length > MAX_BODY:
                return None
        elif name == b"content-type" and value.split(b";")[0].strip().lower() in _FORMS:
            return None
    return parts[0], parts[1], headers, length


class LeanRequest:
    """
    One request on the lean path: what txcomet's polling resources use of
    L{twisted.web.server.Request}.  Header names are given as bytes in
    their canonical case; C{getHeader} takes either type and answers in
    the type it was given.
    """

    clientproto = b"HTTP/1.1"
    code = 200
    startedWriting = False
    finished = False
    _disconnected = False
    chunked = False
    sentLength = 0

    bodyTooLarge = False

    def __init__(
        self,
        protocol: "LeanHTTPProtocol",
        method: bytes,
        uri: bytes,
        headers: Dict[bytes, List[bytes]],
        body: bytes = b"",
        postpath: Optional[List[bytes]] = None,
    ) -> None:
        self.protocol = protocol
        #: The path segments below a prefix route (as twisted.web's
        #: C{postpath} below a leaf resource), percent-decoded.
        self.postpath = postpath if postpath is not None else []
        self.method = method
        self.uri = uri
        self.requestHeaders = headers
        self.content = BytesIO(body)
        path, sep, query = uri.partition(b"?")
        self.path = path
        self.args = parse_qs(query, 1) if sep else {}
        self._responseHeaders: Dict[bytes, bytes] = {b"Server": serverVersion, b"Date": httpDate()}
        self._watcher: Optional[Callable[[Optional[Failure]], None]] = None
        self._notifications: List[Deferred] = []

    def __repr__(self) -> str:
        return "<LeanRequest %s %r>" % (self.method.decode("ascii"), redactURI(self.uri))

    # what a resource asks

    def getClientAddress(self) -> Any:
        """
        The client's address, as the connection was accepted from.
        """
        return self.protocol.addr

    def getHeader(self, name: Any) -> Any:
        key = name.lower() if isinstance(name, bytes) else name.lower().encode("ascii")
        values = self.requestHeaders.get(key)
        if not values:
            return None
        value = values[-1]
        # As CometRequest.getHeader: bytes that are not UTF-8 are replaced,
        # so a bad header is refused for its meaning, never a 500.
        return value if isinstance(name, bytes) else value.decode("utf-8", "replace")

    def setHeader(self, name: bytes, value: bytes) -> None:
        if b"\r" in value or b"\n" in value:
            value = b" ".join(value.splitlines())
        self._responseHeaders[name] = value

    def setResponseCode(self, code: int) -> None:
        self.code = code

    # answering

    def write(self, data: bytes) -> None:
        if self.finished:
            raise RuntimeError("LeanRequest.write called after finish.")
        if self._disconnected:
            return
        if not self.startedWriting:
            self.startedWriting = True
            headers = self._responseHeaders
            if b"Content-Length" not in headers:
                headers[b"Transfer-Encoding"] = b"chunked"
                self.chunked = True
            out = [b"HTTP/1.1 %d %s\r\n" % (self.code, RESPONSES.get(self.code, b"Unknown Status"))]
            for name, value in headers.items():
                out.append(name + b": " + value + b"\r\n")
            out.append(b"\r\n")
            if data:
                self.sentLength += len(data)
                out.append(b"%x\r\n%s\r\n" % (len(data), data) if self.chunked else data)
            writeThrough(self.protocol.transport, b"".join(out))
            return
        if data:
            self.sentLength += len(data)
            writeThrough(self.protocol.transport, b"%x\r\n%s\r\n" % (len(data), data) if self.chunked else data)

    def finish(self) -> None:
        if self._disconnected:
            raise RuntimeError("LeanRequest.finish called after the connection was lost.")
        if self.finished:
            return
        if not self.startedWriting:
            self.write(b"")
        if self.chunked:
            writeThrough(self.protocol.transport, b"0\r\n\r\n")
        self.finished = True
        # The resource learns first (a data channel detaches from its
        # session), then the connection takes its next request.
        self._tell(None)
        self.protocol.requestDone(self)

    # what a resource is told

    def watchFinish(self, watcher: Callable[[Optional[Failure]], None]) -> None:
        """
        See L{txcomet.CometRequest.watchFinish}.
        """
        self._watcher = watcher

    def notifyFinish(self) -> Deferred:
        d: Deferred = Deferred()
        self._notifications.append(d)
        return d

    def connectionLost(self, reason: Failure) -> None:
        self._disconnected = True
        self._tell(reason)

    def _tell(self, result: Optional[Failure]) -> None:
        watcher, self._watcher = self._watcher, None
        notifications, self._notifications = self._notifications, []
        if watcher is not None:
            watcher(result)
        for d in notifications:
            if result is None:
                d.callback(None)
            else:
                d.errback(result)


class LeanHTTPProtocol(Protocol, TimeoutMixin):
    """
    One connection of a L{LeanSite}: answers lean requests one at a time,
    and hands the connection to twisted.web at the first other one.
    """

    def __init__(self, site: "LeanSite", addr: Any) -> None:
        self.site = site
        self.addr = addr
        self.callLater = site.reactor.callLater
        self._buffer = b""
        self._request: Optional[LeanRequest] = None
        # A request whose head has arrived and whose body has not (all of it).
        self._head: Optional[tuple] = None
        self._inner: Any = None
        self._paused = False

    def connectionMade(self) -> None:
        negotiated = getattr(self.transport, "negotiatedProtocol", None)
        if negotiated is not None and negotiated != b"http/1.1":
            self._handOver()
            return
        self.setTimeout(self.site.timeOut)

    def dataReceived(self, data: bytes) -> None:
        if self._inner is not None:
            self._inner.dataReceived(data)
            return
        self.resetTimeout()
        self._buffer += data
        if self._request is None:
            self._next()
        if self._request is not None and self._buffer and not self._paused and self._inner is None:
            # A request sent before the held one was answered: read no
            # more until it has been.
            self._paused = True
            self.transport.pauseProducing()

    def _next(self) -> None:
        while self._request is None and self._inner is None and self._buffer:
            head = self._head
            if head is None:
                buffer = self._buffer
                end = buffer.find(b"\r\n\r\n")
                if end < 0:
                    if len(buffer) > MAX_HEAD:
                        self._handOver()
                    return
                parsed = parseHead(buffer[:end]) if end <= MAX_HEAD else None
                if parsed is None:
                    self._handOver()
                    return
                resource, postpath = self.site.route(parsed[1].partition(b"?")[0])
                if resource is None:
                    self._handOver()
                    return
                self._buffer = buffer[end + 4 :]
                head = self._head = (resource, postpath) + parsed
            resource, postpath, method, uri, headers, length = head
            if len(self._buffer) < length:
                # The rest of the body is still coming.
                return
            body, self._buffer = self._buffer[:length], self._buffer[length:]
            self._head = None
            request = self._request = LeanRequest(self, method, uri, headers, body, postpath)
            self._render(resource, request)

    def _render(self, resource: Resource, request: LeanRequest) -> None:
        try:
            body = resource.render(request)
        except Exception:
            log.failure("Rendering {uri} failed", uri=redactURI(request.uri))
            if request.startedWriting:
                self.transport.loseConnection()
                return
            body = writeError(request, CometError("internal_error"))
        if body is NOT_DONE_YET:
            return
        finishWhole(request, body)

    def requestDone(self, request: LeanRequest) -> None:
        """
        C{request} was answered: take the next one.
        """
        if request is not self._request:
            return
        self._request = None
        self.resetTimeout()
        if self._paused:
            self._paused = False
            self.transport.resumeProducing()
        if self._buffer:
            self._next()

    def timeoutConnection(self) -> None:
        if self._request is not None:
            # A held request is never cut by the idle timeout.
            self.setTimeout(self.timeOut)
            return
        self.transport.loseConnection()

    def _handOver(self) -> None:
        self.setTimeout(None)
        if self._paused:
            self._paused = False
            self.transport.resumeProducing()
        inner = self._inner = Site.buildProtocol(self.site, self.addr)
        transport = self.transport
        inner.makeConnection(transport)
        if getattr(transport, "protocol", None) is self:
            # The connection reads into twisted.web's protocol directly
            # from now on; this one is not kept for the connection's life.
            transport.protocol = inner
        data, self._buffer = self._buffer, b""
        if data:
            inner.dataReceived(data)

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        if self._inner is not None:
            self._inner.connectionLost(reason)
            return
        self.setTimeout(None)
        request, self._request = self._request, None
        if request is not None and not request.finished:
            request.connectionLost(reason)


class LeanSite(Site):
    """
    A L{Site} whose connections take the lean path for its C{leanRoutes}:
    exact request paths (C{b"/comet/longpoll"}) to the resources at them,
    or path prefixes ending in C{/} (C{b"/comet/publish/"}) to a leaf
    resource that reads the rest as C{postpath}.  With no routes it is a
    plain L{Site}.

    Lean requests are not logged: use it as a site that keeps no access
    log.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.leanRoutes: Dict[bytes, Resource] = {}

    def route(self, path: bytes) -> Tuple[Optional[Resource], Optional[List[bytes]]]:
        """
        The resource for request path C{path} on the lean path, and the
        segments below its prefix (C{None} for an exact route); C{(None,
        None)} when the path is twisted.web's.
        """
        routes = self.leanRoutes
        resource = routes.get(path)
        if resource is not None:
            return resource, None
        slash = path.rfind(b"/", 0, len(path) - 1) if path.endswith(b"/") else path.rfind(b"/")
        while slash > 0:
            resource = routes.get(path[: slash + 1])
            if resource is not None:
                return resource, [unquote_to_bytes(segment) for segment in path[slash + 1 :].split(b"/")]
            slash = path.rfind(b"/", 0, slash)
        return None, None

    def buildProtocol(self, addr: Any) -> Any:
        if not self.leanRoutes:
            return Site.buildProtocol(self, addr)
        protocol = LeanHTTPProtocol(self, addr)
        protocol.factory = self
        return protocol
