"""
Write-through: give bytes to the socket at once when the transport has
nothing waiting, instead of through the transport's buffer.

C{transport.write} on a TCP transport buffers the bytes, asks the reactor
to watch the socket for writability, sends when told, and stops watching:
three system calls around the one send, per write.  On fan-out that is per
subscriber per event.  When the transport's buffer is empty, sending
straight away keeps the order of the stream and skips the watching; what
the socket does not take (a full send buffer) goes to C{transport.write}
as usual, so flow control and error handling stay Twisted's.
"""

from errno import EAGAIN, EINTR, ENOBUFS, EWOULDBLOCK
from typing import Any

from twisted.internet.tcp import Connection

_AGAIN = frozenset([EAGAIN, EWOULDBLOCK, ENOBUFS, EINTR])


def writeThrough(transport: Any, data: bytes) -> None:
    """
    Write C{data} to C{transport}: straight to its socket when it is a
    plain (not TLS) TCP or UNIX connection with nothing buffered, the rest
    (or everything, for any other transport) with C{transport.write}.
    """
    if (
        isinstance(transport, Connection)
        and not transport.dataBuffer
        and not transport._tempDataBuffer
        and transport.connected
        and not transport.disconnecting
        and not transport.TLS
    ):
        try:
            sent = transport.socket.send(data)
        except OSError as e:
            # Not now (EAGAIN): Twisted sends it when it can.  Anything else
            # (a reset): Twisted meets the same error on its own write and
            # reports the connection lost.
            sent = 0
            if e.errno not in _AGAIN:
                transport.write(data)
                return
        if sent == len(data):
            return
        data = data[sent:]
    transport.write(data)
