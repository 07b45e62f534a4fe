"""
A raw HTTP/1.x client over a real socket for the integration tests: it
sends one GET, decodes the response (chunked or not) as it arrives, and
lets the test stop reading (so the server's send buffer fills) or cut the
connection.
"""

from typing import Any, Callable, Dict, List, Optional

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol
from twisted.internet.task import deferLater


class RawHTTPClient(Protocol):
    """
    One request's response: C{status}, C{headers} (lower-case names),
    C{body} (de-chunked), C{ended} (the last chunk, C{Content-Length}
    bytes, or the connection's end).
    """

    def __init__(self, request: bytes) -> None:
        self.request = request
        self.raw = b""
        self.status: Optional[int] = None
        self.headers: Dict[str, str] = {}
        self.body = b""
        self.chunked = False
        self.ended = False
        self.lost = Deferred()
        self._rest = b""
        self._waiters: List[Any] = []

    def connectionMade(self) -> None:
        self.transport.write(self.request)

    def dataReceived(self, data: bytes) -> None:
        self.raw += data
        if self.status is None:
            self._rest += data
            head, sep, rest = self._rest.partition(b"\r\n\r\n")
            if not sep:
                return
            lines = head.decode("latin-1").split("\r\n")
            self.status = int(lines[0].split()[1])
            for line in lines[1:]:
                name, _, value = line.partition(":")
                self.headers[name.strip().lower()] = value.strip()
            self.chunked = self.headers.get("transfer-encoding") == "chunked"
            self._rest = b""
            data = rest
        if self.chunked:
            self._rest += data
            self._dechunk()
        else:
            self.body += data
            length = self.headers.get("content-length")
            if length is not None and len(self.body) >= int(length):
                self.ended = True
        self._check()

    def _dechunk(self) -> None:
        while True:
            size, sep, rest = self._rest.partition(b"\r\n")
            if not sep:
                return
            length = int(size, 16)
            if len(rest) < length + 2:
                return
            assert rest[length : length + 2] == b"\r\n", rest[length : length + 2]
            if length == 0:
                self.ended = True
                self._rest = b""
                return
            self.body += rest[:length]
            self._rest = rest[length + 2 :]

    def connectionLost(self, reason: Any) -> None:
        self.ended = True
        self._check()
        self.lost.callback(None)

    def _check(self) -> None:
        for waiter in list(self._waiters):
            condition, d = waiter
            if condition():
                self._waiters.remove(waiter)
                d.callback(None)

    def waitFor(self, condition: Callable[[], bool]) -> Deferred:
        """
        A L{Deferred} that fires once C{condition()} is true after data has
        arrived (at once if it is already).
        """
        d: Deferred = Deferred()
        if condition():
            d.callback(None)
        else:
            self._waiters.append((condition, d))
        return d


def rawRequest(
    port: int,
    path: str,
    headers: Optional[Dict[str, str]] = None,
    version: bytes = b"HTTP/1.1",
    method: bytes = b"GET",
    body: bytes = b"",
) -> Deferred:
    """
    Connect to 127.0.0.1:C{port} and send one request; fires with the
    L{RawHTTPClient} once connected.
    """
    lines = [method + b" " + path.encode("ascii") + b" " + version, b"Host: 127.0.0.1:%d" % (port,)]
    for name, value in (headers or {}).items():
        lines.append(name.encode("ascii") + b": " + (value if isinstance(value, bytes) else value.encode("utf-8")))
    if body:
        lines.append(b"Content-Length: %d" % (len(body),))
    request = b"\r\n".join(lines) + b"\r\n\r\n" + body
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port)
    return connectProtocol(endpoint, RawHTTPClient(request))


async def publish(port: int, channel: str, body: bytes, contentType: str = "application/json") -> Any:
    """
    POST C{body} to the publish API over a real connection; return the
    decoded answer.
    """
    import json

    client = await rawRequest(
        port,
        "/comet/publish/" + channel,
        {"Content-Type": contentType, "Connection": "close"},
        method=b"POST",
        body=body,
    )
    await client.lost
    assert client.status == 200, (client.status, client.body)
    return json.loads(client.body)


async def until(condition: Callable[[], bool], step: float = 0.005) -> None:
    """
    Wait, turning the reactor, until C{condition()} is true (the test's
    own timeout bounds the wait; nothing asserts how long it took).
    """
    while not condition():
        await deferLater(reactor, step, lambda: None)


async def serveNode(testCase: Any, *argv: str) -> Any:
    """
    Start the stand-alone server as C{twist txcomet ARGV} would build it
    (the lean path too, with C{--no-access-log}) on a free loopback port,
    stopped when C{testCase} ends; returns C{(comet, port number)}.
    """
    from txcomet._node.site import guardedFactory, leanRoutes, makeComet, makeRoot, makeSite
    from txcomet.tap import Options

    options = Options()
    options.parseOptions(list(argv))
    comet = makeComet(options)
    await comet.startService()
    testCase.addCleanup(comet.stopService)
    site = makeSite(options, comet, makeRoot(options, comet))
    if "--no-access-log" in argv:
        site.leanRoutes = leanRoutes(options, comet)
    # behind the connection guard, as twist txcomet listens
    port = reactor.listenTCP(0, guardedFactory(options, site), interface="127.0.0.1")
    testCase.addCleanup(port.stopListening)
    return comet, port.getHost().port


async def exchange(port: int, method: bytes, path: str, headers: Optional[Dict[str, str]] = None, body: bytes = b"") -> RawHTTPClient:
    """
    One request on a connection of its own (C{Connection: close}), read to
    its end: the L{RawHTTPClient} with status, headers and body.
    """
    headers = dict(headers or {}, Connection="close")
    client = await rawRequest(port, path, headers, method=method, body=body)
    await client.lost
    return client
