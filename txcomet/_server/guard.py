# -*- test-case-name: tests.server.test_guard,tests.system.test_guard,tests.node.test_site -*-
"""
The listening socket's guard: deadlines for request heads and caps on
connections, in front of whatever protocol the site builds (twisted.web's,
the lean path's, a WebSocket after its upgrade).

  - A request head (the request line and headers, up to the blank line)
    must arrive within C{headTimeout} seconds of its first byte, or of the
    connection's start for the first one.  A client that trickles a header
    line every few seconds is cut off; one that sent its head and waits
    for a long response (a stream, a held long-poll, a WebSocket) is
    untouched.  Idle keep-alive connections are twisted.web's own idle
    timeout's (the site's C{timeOut}, 60 s by default).
  - At most C{maxConnections} connections at once: the next one is
    answered C{503 unavailable} (JSON, C{Retry-After}) and closed at once,
    instead of the process running out of file descriptors and failing
    accepts for everyone.
  - At most C{maxPerAddress} at once from one client address: the next is
    answered C{429 too_many_connections} and closed.  Connections from a
    C{trustedProxies} address count against the client address the proxy
    names in the first request's C{X-Forwarded-For} (its last entry: the
    address the proxy saw) or C{Forwarded: for=}; a connection whose head
    names none counts against the proxy, which is exempt from the cap.

  - A malformed request head (a request line that is not C{METHOD TARGET
    HTTP/x.y}, a header line without a token name and a colon, a NUL in a
    value, more than 500 header lines or 24 KiB) is answered C{400
    invalid_request} with txcomet's JSON body and closed, line by line as
    it arrives, before twisted.web's parser would answer it with a bare 400.

The guard reads the bytes of request heads only to check them, find where they end and,
for a trusted proxy's connections, the forwarded address; everything
reaches the wrapped protocol as it came.  twisted.protocols.policies has
per-peer and total connection limits, but they only close (the client
cannot tell why) and know nothing of request heads or forwarded
addresses, so the guard is written here on its L{WrappingFactory}.
"""

import json
import re
from typing import Any, Dict, Optional, Sequence

from twisted.logger import Logger
from twisted.internet.interfaces import IProtocolNegotiationFactory
from twisted.internet.protocol import Protocol
from twisted.protocols.policies import WrappingFactory
from zope.interface import implementer

from txcomet._model.errors import CometError
from txcomet._transports.heartbeat import HeartbeatTimer

log = Logger()

#: The most head bytes kept to find a forwarded address in.
_MAX_KEPT = 16384

_FORWARDED_FOR = re.compile(rb"(?im)^x-forwarded-for[ \t]*:[ \t]*([^\r\n]*)")
_FORWARDED = re.compile(rb"(?im)^forwarded[ \t]*:[ \t]*([^\r\n]*)")
_FOR = re.compile(rb'(?i)for="?\[?([^\]";,\s]+)')


def defaultMaxConnections() -> int:
    """
    The process's soft limit of open files less 256 (for listening
    sockets, Redis, files and the worker hub), or 10,000 where there is no
    such limit.
    """
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ImportError, ValueError, OSError):
        return 10000
    if soft == resource.RLIM_INFINITY or soft <= 0:
        return 10000
    return max(16, soft - 256)


def forwardedAddress(head: bytes) -> Optional[str]:
    """
    The client address a proxy names in a request head: the last entry of
    its C{X-Forwarded-For} (what the proxy itself saw; earlier entries are
    the client's word), else the last C{for=} of C{Forwarded}; C{None} if
    neither names one.
    """
    found = _FORWARDED_FOR.findall(head)
    if found:
        last = found[-1].split(b",")[-1].strip()
        return last.decode("latin-1") or None
    found = _FORWARDED.findall(head)
    if found:
        names = _FOR.findall(found[-1])
        if names:
            return names[-1].decode("latin-1")
    return None


def refusal(error: CometError, retryAfter: Optional[int] = None) -> bytes:
    """
    A complete HTTP/1.1 answer carrying C{error}'s JSON body, which closes
    the connection.
    """
    body = json.dumps(error.asDict()).encode("utf-8") + b"\n"
    reason = {400: b"Bad Request", 429: b"Too Many Requests", 503: b"Service Unavailable"}.get(error.status, b"Error")
    head = [
        b"HTTP/1.1 %d %s" % (error.status, reason),
        b"Content-Type: application/json; charset=utf-8",
        b"Content-Length: %d" % (len(body),),
        b"Cache-Control: no-store",
        b"Connection: close",
    ]
    if retryAfter is not None:
        head.append(b"Retry-After: %d" % (retryAfter,))
    return b"\r\n".join(head) + b"\r\n\r\n" + body


_CONTENT_LENGTH = re.compile(rb"(?im)^content-length[ \t]*:[ \t]*(\d+)[ \t]*\r?$")
_UNFOLLOWED = re.compile(rb"(?im)^(upgrade|transfer-encoding)[ \t]*:")

#: A head longer than this is refused (twisted.web's own limit, 16 KiB of
#: header lines, refuses it too).
_MAX_HEAD = 16384 + 8192

#: Header lines one head may have (twisted.web's C{maxHeaders}).
_MAX_HEADER_LINES = 500

_REQUEST_LINE = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+ [^\x00-\x20\x7f]+ HTTP/\d\.\d\Z")
_HEADER_LINE = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[^\x00\r\n]*\Z")


def lineProblem(line: bytes, first: bool) -> Optional[str]:
    """
    What is wrong with one line of a request head, or C{None}: the checks
    twisted.web's parser makes, so that txcomet answers them with its JSON
    error before that parser answers with a bare 400.
    """
    if first:
        if _REQUEST_LINE.match(line) is None:
            return "the request line is not METHOD TARGET HTTP/x.y"
        return None
    if _HEADER_LINE.match(line) is None:
        return "a header line is not NAME: VALUE (a token, a colon, no NUL)"
    return None

#: How an HTTP/2 connection starts (RFC 9113, 3.4).
_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


# What a connection's bytes are, as far as the guard follows them.
_HEAD, _BODY, _IDLE, _DONE = range(4)


class _GuardedConnection(Protocol):
    """
    One connection through a L{ConnectionGuard}: it times request heads,
    finds a trusted proxy's forwarded address, and is counted.

    It stands between the transport and the site's protocol for reading
    only: the site's protocol is given the transport itself, so what it
    writes goes straight to the socket (fan-out's direct path needs the
    real TCP connection).  It follows the request stream just enough to
    know where each head ends: a head, then C{Content-Length} bytes of
    body, then the next head.  After an C{Upgrade} (a WebSocket) or a
    chunked body it stops following.
    """

    def __init__(self, guard: "ConnectionGuard", inner: Any, address: str) -> None:
        self.guard = guard
        self.inner = inner
        self.address = address
        self.countedAs: Optional[str] = None
        # The bucket of the guard's deadline timer this connection's head
        # is due in (see _arm), if it is being timed.
        self._beatAt: Optional[float] = None
        self.counted = False
        self.refused: Optional[bytes] = None
        self._state = _HEAD
        self._head = b""
        self._bodyLeft = 0
        self._first = True
        self._innerConnected = False
        # how far into the current head the lines were checked, and how many
        self._checked = 0
        self._lines = 0

    def makeConnection(self, transport: Any) -> None:
        self.transport = transport
        self.connected = 1
        if self.refused is not None:
            # Refused before anything is read: answer and close.
            transport.write(self.refused)
            transport.loseConnection()
            return
        self.guard.counted(self, self.address)
        self._arm()
        self._innerConnected = True
        self.inner.makeConnection(transport)

    # The head deadline rides on one coarse timer for all connections
    # (L{HeartbeatTimer}, the one heartbeats use: a set entry per timed
    # head, one clock call per second of deadlines), not a DelayedCall
    # made and cancelled per request; a head is cut up to a second before
    # its deadline rather than after it.

    def _arm(self) -> None:
        deadlines = self.guard.deadlines
        if deadlines is not None and self._beatAt is None:
            deadlines.add(self)

    def _disarm(self) -> None:
        if self._beatAt is not None:
            self.guard.deadlines.remove(self)

    def _beat(self) -> None:
        """
        The deadline timer's call: the head did not come in time.
        """
        log.info(
            "Closed a connection from {address}: no complete request head within {timeout} s",
            address=self.address,
            timeout=self.guard.headTimeout,
        )
        self.transport.abortConnection()

    def dataReceived(self, data: bytes) -> None:
        if self._state != _DONE:
            self._follow(data)
            if self.refused is not None:
                return
        self.inner.dataReceived(data)

    def _follow(self, data: bytes) -> None:
        while data and self._state != _DONE:
            state = self._state
            if state == _IDLE:
                # The next request on a kept-alive connection: its head is
                # due within the deadline too.
                self._state = _HEAD
                self._arm()
            elif state == _BODY:
                taken = min(len(data), self._bodyLeft)
                self._bodyLeft -= taken
                data = data[taken:]
                if not self._bodyLeft:
                    self._state = _IDLE
            else:
                seen = self._head + data
                if self._first and seen[:14] == _H2_PREFACE[: len(seen[:14])]:
                    if len(seen) < 14:
                        self._head = seen  # too short to tell yet
                        return
                    # HTTP/2 (prior knowledge, or ALPN under TLS): frames,
                    # not heads, from here on; twisted.web's h2 has its own
                    # limits.
                    self._disarm()
                    self._state = _DONE
                    return
                end = seen.find(b"\r\n\r\n")
                problem = self._checkLines(seen, end + 2 if end >= 0 else seen.rfind(b"\r\n"))
                if problem is None and end < 0 and len(seen) > _MAX_HEAD:
                    problem = "the request head is larger than %d bytes" % (_MAX_HEAD,)
                if problem is not None:
                    self.refuse(CometError("invalid_request", "Malformed request: %s." % (problem,)))
                    return
                if end < 0:
                    self._head = seen
                    return
                head, data = seen[: end + 4], seen[end + 4 :]
                self._head = b""
                self._checked = self._lines = 0
                self._disarm()
                self._headDone(head)

    def _checkLines(self, seen: bytes, upTo: int) -> Optional[str]:
        """
        Check the complete lines of the head so far (up to offset C{upTo})
        that were not checked yet.
        """
        if upTo <= self._checked:
            return None
        lines = seen[self._checked : upTo].split(b"\r\n")
        if lines and lines[-1] == b"":
            lines.pop()
        self._checked = upTo + 2
        for line in lines:
            if not line and not self._lines:
                continue  # a blank line before a request is tolerated
            problem = lineProblem(line, self._lines == 0)
            self._lines += 1
            if problem is not None:
                return problem
            if self._lines > _MAX_HEADER_LINES:
                return "more than %d header lines" % (_MAX_HEADER_LINES,)
        return None

    def _headDone(self, head: bytes) -> None:
        first, self._first = self._first, False
        if first and self.guard.isTrusted(self.address):
            forwarded = forwardedAddress(head)
            if forwarded is not None:
                self.guard.recount(self, forwarded)
                if self.refused is not None:
                    self._state = _DONE
                    return
        if _UNFOLLOWED.search(head) is not None:
            self._state = _DONE
            return
        length = _CONTENT_LENGTH.search(head)
        self._bodyLeft = int(length.group(1)) if length is not None else 0
        self._state = _BODY if self._bodyLeft else _IDLE

    def refuse(self, error: CometError) -> None:
        """
        Answer C{error} and close (the connection is over its cap, or its
        request is malformed).
        """
        self.refused = refusal(error, 1 if error.status == 429 else None)
        self._disarm()
        self.transport.write(self.refused)
        self.transport.loseConnection()

    def adoptUpgrade(self, protocol: Any) -> None:
        """
        The connection was upgraded (a WebSocket): C{protocol} took the
        place of this one on the transport and has been connected.  This
        one goes back in front of it (see
        L{txcomet._transports.wscommon.upgradeUnderGuard}), so that the
        connection's end is counted, and passes everything on untouched.
        """
        self.inner = protocol
        self._disarm()
        self._state = _DONE

    # the rest of what a transport tells its protocol, passed on

    def readConnectionLost(self) -> None:
        forward = getattr(self.inner, "readConnectionLost", None)
        if forward is not None:
            forward()
        else:
            self.transport.loseConnection()

    def writeConnectionLost(self) -> None:
        forward = getattr(self.inner, "writeConnectionLost", None)
        if forward is not None:
            forward()

    def connectionLost(self, reason: Any) -> None:
        self.connected = 0
        self._disarm()
        if self.counted:
            self.guard.uncounted(self)
        if self._innerConnected:
            self._innerConnected = False
            self.inner.connectionLost(reason)


@implementer(IProtocolNegotiationFactory)
class ConnectionGuard(WrappingFactory):
    """
    Wraps a site's factory (see the module docstring).

    Under TLS it offers the site's ALPN protocols (C{h2} when twisted.web
    can speak HTTP/2, and C{http/1.1}) as its own: Twisted asks the
    outermost factory, and one that names none fails every handshake of a
    client that offers ALPN (every browser, curl).

    @ivar count: the open connections.
    @ivar byAddress: open connections per client address.
    """

    protocol = _GuardedConnection

    def __init__(
        self,
        wrappedFactory: Any,
        clock: Any,
        headTimeout: float = 10.0,
        maxConnections: Optional[int] = None,
        maxPerAddress: int = 1000,
        trustedProxies: Sequence[str] = (),
    ) -> None:
        WrappingFactory.__init__(self, wrappedFactory)
        self.clock = clock
        self.headTimeout = headTimeout
        #: The head deadlines of its connections (none when C{headTimeout}
        #: is 0).
        self.deadlines = HeartbeatTimer(clock, headTimeout) if headTimeout else None
        self.maxConnections = maxConnections if maxConnections is not None else defaultMaxConnections()
        self.maxPerAddress = maxPerAddress
        self.trustedProxies = frozenset(trustedProxies)
        self.count = 0
        self.byAddress: Dict[str, int] = {}

    def logPrefix(self) -> str:
        # The site's own name in the log ("Site starting on 8080"), as
        # without the guard: log watchers and tests look for it.
        wrapped = self.wrappedFactory
        prefix = getattr(wrapped, "logPrefix", None)
        return prefix() if prefix is not None else wrapped.__class__.__name__

    def acceptableProtocols(self) -> Sequence[bytes]:
        wrapped = IProtocolNegotiationFactory(self.wrappedFactory, None)
        if wrapped is None:
            return [b"http/1.1"]
        return wrapped.acceptableProtocols()

    def isTrusted(self, address: str) -> bool:
        return address in self.trustedProxies

    def buildProtocol(self, addr: Any) -> Any:
        address = getattr(addr, "host", None) or str(addr)
        if self.count >= self.maxConnections:
            connection = self.protocol(self, None, address)
            connection.refused = refusal(
                CometError("unavailable", "The server is at its connection limit; try again shortly."), 1
            )
            log.warn("Refused a connection from {address}: at the limit of {limit}", address=address,
                     limit=self.maxConnections)
            return connection
        if not self.isTrusted(address) and self.byAddress.get(address, 0) >= self.maxPerAddress:
            connection = self.protocol(self, None, address)
            connection.refused = refusal(
                CometError(
                    "too_many_connections",
                    "At most %d connections from one address at a time." % (self.maxPerAddress,),
                ),
                1,
            )
            return connection
        return self.protocol(self, self.wrappedFactory.buildProtocol(addr), address)

    def counted(self, connection: _GuardedConnection, address: str) -> None:
        connection.counted = True
        self.count += 1
        if not self.isTrusted(address):
            connection.countedAs = address
            self.byAddress[address] = self.byAddress.get(address, 0) + 1

    def recount(self, connection: _GuardedConnection, address: str) -> None:
        """
        A trusted proxy's connection is for client C{address}: count it
        there, or refuse it if that address is at its cap.
        """
        if connection.countedAs is not None:
            return
        if self.byAddress.get(address, 0) >= self.maxPerAddress:
            connection.refuse(
                CometError(
                    "too_many_connections",
                    "At most %d connections from one address at a time." % (self.maxPerAddress,),
                )
            )
            return
        connection.countedAs = address
        self.byAddress[address] = self.byAddress.get(address, 0) + 1

    def uncounted(self, connection: _GuardedConnection) -> None:
        connection.counted = False
        self.count -= 1
        address = connection.countedAs
        if address is not None:
            connection.countedAs = None
            left = self.byAddress.get(address, 1) - 1
            if left > 0:
                self.byAddress[address] = left
            else:
                self.byAddress.pop(address, None)
