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

from typing import Optional

from twisted.internet import tcp
from twisted.web.http import HTTPChannel, Request
from zope.interface import implementer

from .interfaces import IEvent, IFraming


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


class StreamWriter:
    """
    Writes the body of one streaming response once its headers are out.

    On an HTTP/1.x connection (L{HTTPChannel}) it writes to the transport
    itself, already chunked when the response is; on a plain TCP or UNIX
    socket whose send buffer is empty it writes straight to the socket.
    Anything else (HTTP/2, a test transport) goes through L{Request.write}.

    @ivar request: the L{Request}, whose headers have been written.
    @ivar chunked: whether the response uses chunked transfer-encoding.
    """

    def __init__(self, request: Request) -> None:
        self.request = request
        self.chunked = bool(request.chunked)
        self.transport = None
        self.socket = None
        self.direct = False
        channel = request.channel
        if isinstance(channel, HTTPChannel) and request.startedWriting and request.method != b"HEAD":
            transport = channel.transport
            self.transport = transport
            if isinstance(transport, tcp.Connection) and not transport.TLS:
                self.direct = True
                self.socket = transport.socket

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
        if (
            self.direct
            and not transport._tempDataLen
            and transport.offset == len(transport.dataBuffer)
            and transport.connected
            and not transport.disconnecting
        ):
            try:
                sent = self.socket.send(wire)
            except OSError:
                # Would block, interrupted, or the connection is broken: in
                # the last case the reactor finds out once transport.write
                # has registered the socket for writing.
                sent = 0
            if sent == len(wire):
                return
            if sent:
                wire = wire[sent:]
        transport.write(wire)


def writeThrough(transport: object, data: bytes) -> None:
    """
    Write C{data} to C{transport}, straight to its socket when it is a
    plain (not TLS) TCP or UNIX connection with nothing buffered, as
    L{StreamWriter} does for a response; what the socket does not take, and
    everything for any other transport, goes through C{transport.write}.
    For protocols that own their connection (WebSocket).
    """
    if (
        isinstance(transport, tcp.Connection)
        and not transport.TLS
        and not transport._tempDataLen
        and transport.offset == len(transport.dataBuffer)
        and transport.connected
        and not transport.disconnecting
    ):
        try:
            sent = transport.socket.send(data)
        except OSError:
            # Would block, interrupted, or the connection is broken: in the
            # last case the reactor finds out once transport.write has
            # registered the socket for writing.
            sent = 0
        if sent == len(data):
            return
        if sent:
            data = data[sent:]
    transport.write(data)  # type: ignore[attr-defined]
