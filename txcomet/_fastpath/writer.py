# -*- test-case-name: tests.fastpath.test_writer,tests.fastpath.test_writemode,tests.fastpath.test_writethrough,tests.transports.test_streaming_framing -*-
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

import errno
from typing import Any, Callable, Optional

from twisted.internet import tcp
from twisted.logger import Logger
from twisted.web.http import HTTPChannel, Request
from zope.interface import implementer

from txcomet.interfaces import IEvent, IFraming

_log = Logger()


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


#: send() errors that only mean "not now": the bytes wait in the
#: transport's buffer for the reactor to send.
_AGAIN = frozenset([errno.EAGAIN, errno.EWOULDBLOCK, errno.ENOBUFS, errno.EINTR])


def directTransport(transport: Any) -> Optional[tcp.Connection]:
    """
    C{transport}, if bytes may be written straight to its socket: a plain
    TCP or UNIX connection of Twisted's own (not TLS, whose bytes must be
    encrypted by the transport; not a wrapper; not a test double).
    """
    if isinstance(transport, tcp.Connection) and not transport.TLS:
        return transport
    return None


try:
    from twisted.protocols.tls import _AggregateSmallWrites
except ImportError:  # a Twisted without it gathers nothing to skip
    _AggregateSmallWrites = None


def immediateWrite(transport: Any) -> Optional[Callable[[bytes], None]]:
    """
    A function that writes to C{transport}, a TLS transport of Twisted's,
    at once; C{None} for any other transport (its own C{write} does).

    Twisted's TLS transport gathers small writes and sends them in a
    C{callLater(0)} that it schedules for each connection.  txcomet already
    writes a turn's bytes to a connection in one write (L{TurnBatch}), so
    that DelayedCall, made and run for each connection for each event, is
    only cost: about a sixth of the server's CPU in fan-out over TLS.  For
    such a transport (a TCP connection that started TLS, or the TLS
    protocol itself), the function returned flushes what Twisted's gatherer
    holds, to keep the order, and writes through TLS at once; once the
    connection is lost, it is C{transport.write}.  This reads two private
    names of Twisted's (C{_aggregator}, C{_AggregateSmallWrites}), because
    Twisted has no public way to turn the gathering off.  If they change,
    this returns C{None} (so C{transport.write} is used), and
    tests/fastpath/test_writer.py fails.
    """
    tls = transport.protocol if getattr(transport, "TLS", False) else transport
    aggregator = getattr(tls, "_aggregator", None)
    if _AggregateSmallWrites is None or type(aggregator) is not _AggregateSmallWrites:
        return None
    send = aggregator._write

    def write(data: bytes) -> None:
        if tls._aggregator is not aggregator:
            transport.write(data)  # lost: Twisted's own writer drops it
            return
        if aggregator._buffer:
            aggregator.flush()
        send(data)

    return write


class DirectWriter:
    """
    Writes to one plain TCP or UNIX connection (see L{directTransport}):
    straight to its socket when the transport's buffer is empty, the rest
    (what the socket did not take, or everything when something is already
    waiting) with C{transport.write}, so the stream keeps its order.

    C{transport.write} would buffer the bytes, register the socket with the
    reactor for writing, send when told and unregister it: three system
    calls around the one send.  A send that fails for good (the peer reset
    the connection) hands the bytes to C{transport.write} too; Twisted then
    meets the error itself and reports the connection lost, as it would
    have without this path.  TLS connections never come here: their bytes
    must be encrypted by the transport.

    @ivar exclusive: whether this writer is the only thing that writes to
        the transport (an HTTP response body, once its headers are out).
        Then the transport's buffer is looked at only after a write was
        left in it (C{spilled}); otherwise (a WebSocket connection, whose
        library writes pings and close frames itself) before every write.
    """

    __slots__ = ("transport", "socket", "exclusive", "spilled")

    def __init__(self, transport: tcp.Connection, exclusive: bool = False) -> None:
        self.transport = transport
        self.socket = transport.socket
        self.exclusive = exclusive
        # Whatever was written before this writer (headers) may still be
        # in the transport's buffer.
        self.spilled = True

    def write(self, data: bytes) -> bool:
        """
        Write C{data} (not empty).

        @return: whether something is left in the transport's buffer.
        """
        if self.spilled or not self.exclusive:
            transport = self.transport
            if transport.dataBuffer or transport._tempDataLen or transport.disconnecting or not transport.connected:
                transport.write(data)
                self.spilled = True
                return True
            self.spilled = False
        try:
            sent = self.socket.send(data)
        except OSError as e:
            # EAGAIN: not now, the reactor sends it when it can.  Anything
            # else: Twisted meets the same error on its own write.
            sent = 0 if e.errno in _AGAIN else -1
        if sent != len(data):
            self.spilled = True
            self.transport.write(data[sent:] if sent > 0 else data)
            return True
        return False


class _TransportWriter(DirectWriter):
    """
    A L{DirectWriter} that never writes to the socket itself: everything
    goes through C{transport.write}, so its stream never finds its socket
    idle (the C{"transport"} write mode of L{setStreamWriteMode}).
    """

    def write(self, data: bytes) -> bool:
        self.transport.write(data)
        self.spilled = True
        return True


#: The ways a L{StreamWriter} can write a stream's body; see
#: L{setStreamWriteMode}.
STREAM_WRITE_MODES = ("direct", "transport", "request")


def setStreamWriteMode(mode: str) -> None:
    """
    Choose how the streams opened from now on write their bodies, for
    benchmarks that compare the ways (C{bench/fanout_server.py}); a server
    keeps the default.

    @param mode: C{"direct"} (the default: shared, pre-framed bytes
        straight to an idle socket), C{"transport"} (the same bytes, always
        through C{transport.write}) or C{"request"} (no direct path: through
        twisted.web's C{Request.write}, as on a connection that is not plain
        HTTP/1.x over TCP).
    @raise ValueError: for another mode.
    """
    if mode not in STREAM_WRITE_MODES:
        raise ValueError("unknown stream write mode %r (one of %s)" % (mode, ", ".join(STREAM_WRITE_MODES)))
    StreamWriter.writeMode = mode


def writeThrough(transport: Any, data: bytes) -> None:
    """
    Write C{data} to C{transport}: through its socket when it is a plain
    TCP or UNIX connection with nothing buffered (see L{DirectWriter}),
    with C{transport.write} otherwise (TLS, wrappers, test transports).
    For protocols that own their connection and write once per reactor
    turn (WebSocket); a stream writing per event keeps a L{DirectWriter}.
    """
    direct = directTransport(transport)
    if direct is not None:
        DirectWriter(direct).write(data)
    else:
        (immediateWrite(transport) or transport.write)(data)


class StreamWriter:
    """
    Writes the body of one streaming response once its headers are out.

    On an HTTP/1.x connection (L{HTTPChannel}) it writes to the transport
    itself, already chunked when the response is, through a L{DirectWriter}
    on a plain TCP or UNIX connection.  Anything else (HTTP/2, a test
    transport) goes through L{Request.write}.

    @ivar request: the L{Request}, whose headers have been written.
    @ivar chunked: whether the response uses chunked transfer-encoding.
    @ivar direct: the L{DirectWriter} for the connection, or C{None}.
    """

    __slots__ = ("request", "chunked", "transport", "direct", "_write")

    #: How streams write (see L{setStreamWriteMode}): C{"direct"}.
    writeMode = "direct"

    def __init__(self, request: Request) -> None:
        self.request = request
        self.chunked = bool(request.chunked)
        self.transport = None
        self.direct: Optional[DirectWriter] = None
        self._write: Optional[Callable[[bytes], None]] = None
        channel = request.channel
        mode = self.writeMode
        if (
            isinstance(channel, HTTPChannel)
            and request.startedWriting
            and request.method != b"HEAD"
            and mode != "request"
        ):
            transport = channel.transport
            self.transport = transport
            self._write = immediateWrite(transport) if mode == "direct" else None
            direct = directTransport(transport)
            if direct is not None:
                # The response body is all that is written from now on.
                self.direct = (DirectWriter if mode == "direct" else _TransportWriter)(direct, exclusive=True)

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
        if self.direct is not None:
            self.direct.write(wire)
        elif self._write is not None:
            self._write(wire)  # TLS, written at once
        else:
            transport.write(wire)
