"""
Support for the WebSocket tests: a byte-level WebSocket client, and a
txcomet site connected to it in memory with L{twisted.test.iosim}.

The client builds frames itself (any opcode, flag, mask and length
encoding, valid or not) and parses what the server sends, so tests state
the exact bytes in and the frames and close codes out.
"""

import base64
import hashlib
import json
import os
import struct
from typing import Any, Dict, List, Optional, Tuple

from twisted.internet.address import IPv4Address
from twisted.internet.protocol import Protocol
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.test import iosim
from twisted.web.resource import Resource
from twisted.web.server import Site

from txcomet import CometRequest
from txcomet.testing import makeComet

TEXT, BINARY, CLOSE, PING, PONG, CONTINUATION = 1, 2, 8, 9, 10, 0

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def clientFrame(
    opcode: int,
    payload: bytes = b"",
    fin: bool = True,
    rsv: int = 0,
    mask: Optional[bytes] = b"\x37\xfa\x21\x3d",
) -> bytes:
    """
    A frame as a client sends it: masked with C{mask} (C{None}: unmasked,
    which a server must refuse), minimal length encoding.
    """
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    length = len(payload)
    maskBit = 0x80 if mask is not None else 0
    if length < 126:
        header = bytes((first, maskBit | length))
    elif length < 0x10000:
        header = bytes((first, maskBit | 126)) + struct.pack("!H", length)
    else:
        header = bytes((first, maskBit | 127)) + struct.pack("!Q", length)
    if mask is None:
        return header + payload
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return header + mask + masked


def closePayload(code: Optional[int], reason: bytes = b"") -> bytes:
    """
    The payload of a close frame.
    """
    if code is None:
        return b""
    return struct.pack("!H", code) + reason


class ServerFrame:
    """
    One frame the server sent.
    """

    def __init__(self, fin: bool, rsv: int, opcode: int, masked: bool, payload: bytes) -> None:
        self.fin = fin
        self.rsv = rsv
        self.opcode = opcode
        self.masked = masked
        self.payload = payload

    @property
    def closeCode(self) -> Optional[int]:
        if len(self.payload) >= 2:
            return struct.unpack("!H", self.payload[:2])[0]
        return None

    @property
    def closeReason(self) -> bytes:
        return self.payload[2:]

    def json(self) -> Any:
        return json.loads(self.payload.decode("utf-8"))

    def __repr__(self) -> str:
        return "<ServerFrame op=%d fin=%r %r>" % (self.opcode, self.fin, self.payload[:80])


def parseFrames(data: bytes) -> Tuple[List[ServerFrame], bytes]:
    """
    Split C{data} into complete frames and the incomplete rest.
    """
    frames = []
    while len(data) >= 2:
        first, second = data[0], data[1]
        length = second & 0x7F
        offset = 2
        if length == 126:
            if len(data) < 4:
                break
            length = struct.unpack("!H", data[2:4])[0]
            offset = 4
        elif length == 127:
            if len(data) < 10:
                break
            length = struct.unpack("!Q", data[2:10])[0]
            offset = 10
        masked = bool(second & 0x80)
        if masked:
            offset += 4
        if len(data) < offset + length:
            break
        payload = data[offset : offset + length]
        if masked:
            mask = data[offset - 4 : offset]
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        frames.append(ServerFrame(bool(first & 0x80), (first >> 4) & 7, first & 0x0F, masked, payload))
        data = data[offset + length :]
    return frames, data


class RawClient(Protocol):
    """
    A WebSocket client that sends what it is told and records everything.

    @ivar response: the handshake response head (status line and headers)
        once it has arrived.
    @ivar frames: the server's frames since the handshake.
    @ivar lost: the reason the connection ended, once it has.
    """

    def __init__(self) -> None:
        self.received = b""
        self.response: Optional[bytes] = None
        self.frames: List[ServerFrame] = []
        self._rest = b""
        self.lost: Optional[Failure] = None
        self.key = base64.b64encode(os.urandom(16))

    def dataReceived(self, data: bytes) -> None:
        self.received += data
        if self.response is None:
            head, sep, rest = self.received.partition(b"\r\n\r\n")
            if not sep:
                return
            self.response = head
            data = rest
        frames, self._rest = parseFrames(self._rest + data)
        self.frames.extend(frames)

    def connectionLost(self, reason: Failure) -> None:
        self.lost = reason

    def sendHandshake(self, path: str, headers: Optional[Dict[str, str]] = None) -> None:
        lines = [
            "GET %s HTTP/1.1" % (path,),
            "Host: comet.test:8080",
            "Upgrade: websocket",
            "Connection: Upgrade",
            "Sec-WebSocket-Key: %s" % (self.key.decode("ascii"),),
            "Sec-WebSocket-Version: 13",
        ]
        for name, value in (headers or {}).items():
            lines.append("%s: %s" % (name, value))
        self.transport.write(("\r\n".join(lines) + "\r\n\r\n").encode("utf-8"))

    @property
    def status(self) -> Optional[int]:
        if self.response is None:
            return None
        return int(self.response.split(b" ", 2)[1])

    def header(self, name: str) -> Optional[str]:
        assert self.response is not None
        for line in self.response.split(b"\r\n")[1:]:
            key, _, value = line.partition(b":")
            if key.strip().lower() == name.lower().encode("ascii"):
                return value.strip().decode("latin-1")
        return None

    def acceptMatches(self) -> bool:
        expected = base64.b64encode(hashlib.sha1(self.key + _GUID).digest()).decode("ascii")
        return self.header("Sec-WebSocket-Accept") == expected

    def send(self, data: bytes) -> None:
        self.transport.write(data)

    def sendText(self, text: Any) -> None:
        """
        Send a text frame: C{text} as is if it is L{bytes}, else encoded as
        JSON.
        """
        if not isinstance(text, bytes):
            text = json.dumps(text).encode("utf-8")
        self.send(clientFrame(TEXT, text))

    def messages(self) -> List[Any]:
        """
        The JSON messages of every text frame so far.
        """
        return [f.json() for f in self.frames if f.opcode == TEXT]

    def ofType(self, kind: str) -> List[dict]:
        return [m for m in self.messages() if m.get("type") == kind]

    def closeFrames(self) -> List[ServerFrame]:
        return [f for f in self.frames if f.opcode == CLOSE]

    @property
    def disconnected(self) -> bool:
        return self.lost is not None


class MemoryWebSocket:
    """
    A txcomet site and a L{RawClient} connected in memory.

    @ivar comet: the L{txcomet.Comet}.
    @ivar clock: the L{Clock} its timers (and the site's) run on.
    @ivar client: the L{RawClient}.
    @ivar pump: the L{iosim.IOPump}; L{flush} moves bytes both ways.
    """

    def __init__(self, comet: Any, clock: Clock, site: Site) -> None:
        self.comet = comet
        self.clock = clock
        self.site = site
        self.client = RawClient()
        server = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
        self.serverTransport = iosim.makeFakeServer(server)
        self.clientTransport = iosim.makeFakeClient(self.client)
        self.pump = iosim.connect(server, self.serverTransport, self.client, self.clientTransport, greet=False, clock=clock)

    @property
    def protocol(self) -> Any:
        """
        The server's protocol for the connection (the WebSocket protocol
        once the handshake has been handed to Autobahn).
        """
        return self.serverTransport.protocol

    def flush(self) -> None:
        self.pump.flush()

    def open(self, path: str = "/comet/ws", headers: Optional[Dict[str, str]] = None) -> "MemoryWebSocket":
        self.client.sendHandshake(path, headers)
        self.flush()
        return self

    def send(self, data: bytes, chop: Optional[int] = None) -> None:
        """
        Send C{data}, all at once or C{chop} bytes at a time (the server
        reading each piece before the next is sent).
        """
        if chop is None:
            self.client.send(data)
            self.flush()
            return
        for i in range(0, len(data), chop):
            self.client.send(data[i : i + chop])
            self.flush()

    def closeClient(self, code: int = 1000) -> None:
        """
        Answer (or start) the closing handshake as a client does.
        """
        self.send(clientFrame(CLOSE, closePayload(code)))


def makeSite(**config: Any) -> Tuple[Any, Clock, Site]:
    """
    A L{Comet} (in-memory bus, L{Clock}) mounted at C{/comet} in a L{Site}
    on the same clock.
    """
    comet, clock = makeComet(**config)
    root = Resource()
    root.putChild(b"comet", comet.resource)
    site = Site(root, requestFactory=CometRequest, reactor=clock)
    return comet, clock, site


def connectWebSocket(path: str = "/comet/ws", headers: Optional[Dict[str, str]] = None, site: Any = None, **config: Any) -> MemoryWebSocket:
    """
    Open a WebSocket at C{path} on a new site (or on C{site}, a
    C{(comet, clock, site)} from L{makeSite}).
    """
    if site is None:
        site = makeSite(**config)
    comet, clock, theSite = site
    return MemoryWebSocket(comet, clock, theSite).open(path, headers)
