# -*- test-case-name: tests.node.test_tap,tests.demo.test_demo -*-
"""
What the demo at C{/} (L{txcomet._demo.page.IndexPage}) needs from the server:
the browser client's files, and a live chart of events per second that the
server draws as PNG images and pushes into an C{<img>} over
C{multipart/x-mixed-replace}, Netscape's original server push.

Drawing needs no imaging library: L{encodePNG} writes a palette PNG with
C{zlib} and C{struct}.
"""

import secrets
import struct
import zlib
from collections import deque
from typing import Any, Deque, List, Sequence, Tuple

from twisted.application.service import Service
from twisted.logger import Logger
from twisted.web.server import NOT_DONE_YET, Request
from zope.interface import implementer

from txcomet._model.config import CometConfig
from txcomet._transports.http import JSONResource
from txcomet.interfaces import IEvent, ISubscriber

log = Logger()

# PNG, by hand


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data))
        + kind
        + data
        + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def encodePNG(width: int, height: int, palette: Sequence[Tuple[int, int, int]], pixels: Sequence[bytes]) -> bytes:
    """
    An 8-bit palette PNG.

    @param palette: up to 256 C{(r, g, b)} colours.
    @param pixels: C{height} rows of C{width} palette indexes each.
    """
    if len(pixels) != height or any(len(row) != width for row in pixels):
        raise ValueError("pixels must be %d rows of %d bytes" % (height, width))
    if not 0 < len(palette) <= 256:
        raise ValueError("a palette has 1 to 256 colours")
    header = struct.pack(">IIBBBBB", width, height, 8, 3, 0, 0, 0)
    raw = b"".join(b"\x00" + bytes(row) for row in pixels)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"PLTE", b"".join(bytes(colour) for colour in palette))
        + _chunk(b"IDAT", zlib.compress(raw, 6))
        + _chunk(b"IEND", b"")
    )


# A 3x5 pixel font for the numbers on the chart.
_GLYPHS = {
    "0": "111101101101111",
    "1": "010110010010111",
    "2": "111001111100111",
    "3": "111001111001111",
    "4": "101101111001001",
    "5": "111100111001111",
    "6": "111100111101111",
    "7": "111001001001001",
    "8": "111101111101111",
    "9": "111101111001111",
    "/": "001001010100100",
    "s": "011100010001110",
    " ": "000000000000000",
}

_BACKGROUND, _GRID, _BAR, _TEXT, _NOW = range(5)
_PALETTE = [(250, 250, 252), (226, 230, 236), (72, 118, 196), (40, 44, 52), (214, 92, 64)]


def drawChart(rates: Sequence[int], width: int = 240, height: int = 80) -> bytes:
    """
    A bar chart of C{rates} (events per second, oldest first, one bar per
    second; the newest in another colour) with the newest rate written in
    the corner, as PNG bytes.
    """
    rows = [bytearray([_BACKGROUND]) * width for _ in range(height)]
    top = 14
    for y in range(top, height, 16):
        rows[y][:] = bytearray([_GRID]) * width
    peak = max(max(rates, default=0), 1)
    bars = list(rates)[-(width // 4):]
    x0 = width - 4 * len(bars)
    for i, rate in enumerate(bars):
        size = (rate * (height - top - 1) + peak - 1) // peak
        colour = _NOW if i == len(bars) - 1 else _BAR
        for y in range(height - size, height):
            rows[y][x0 + 4 * i : x0 + 4 * i + 3] = bytearray([colour]) * 3
    label = "%d/s" % (rates[-1] if rates else 0,)
    x = 2
    for char in label:
        glyph = _GLYPHS.get(char, _GLYPHS[" "])
        for gy in range(5):
            for gx in range(3):
                if glyph[gy * 3 + gx] == "1":
                    for dy in range(2):
                        for dx in range(2):
                            rows[2 + gy * 2 + dy][x + gx * 2 + dx] = _TEXT
        x += 8
    return encodePNG(width, height, _PALETTE, [bytes(row) for row in rows])


@implementer(ISubscriber)
class RateCounter:
    """
    Counts the events published on the bus, per second, for the last
    C{seconds} seconds.  Subscribe it to the pattern C{**}.
    """

    def __init__(self, clock: Any, seconds: int = 60) -> None:
        self.clock = clock
        self.seconds = seconds
        self.total = 0
        self._counts: Deque[int] = deque([0] * seconds, maxlen=seconds)
        self._now = int(clock.seconds())

    def _advance(self) -> None:
        now = int(self.clock.seconds())
        if now - self._now >= self.seconds:
            self._counts.extend([0] * self.seconds)
        else:
            for _ in range(now - self._now):
                self._counts.append(0)
        self._now = now

    def deliver(self, event: IEvent) -> None:
        if event.kind != "event":
            return
        self._advance()
        self._counts[-1] += 1
        self.total += 1

    def rates(self) -> List[int]:
        """
        Events per second, oldest first; the last is the current second.
        """
        self._advance()
        return list(self._counts)


class CounterService(Service):
    """
    Subscribes a L{RateCounter} to every channel of a bus while running.
    """

    def __init__(self, bus: Any, counter: RateCounter) -> None:
        self.bus = bus
        self.counter = counter

    def startService(self) -> None:
        Service.startService(self)
        d = self.bus.subscribe("**", self.counter)
        d.addErrback(lambda f: log.failure("Counting events failed", f))

    def stopService(self) -> Any:
        Service.stopService(self)
        return self.bus.unsubscribe("**", self.counter)


_PNG_PART = b"Content-Type: image/png\r\n\r\n"


class ChartStream(JSONResource):
    """
    C{GET /demo/chart}: a C{multipart/x-mixed-replace} stream of PNG charts
    of the events per second, one part a second.  Every viewer gets the
    same bytes: a part is drawn once per tick, not once per viewer.  Each
    part is followed at once by the boundary and the next part's headers,
    so a browser shows it without waiting for the next one (the
    conventions of the C{multipart} transport, which streams channels'
    messages; this stream has a picture from its first byte and costs the
    bus nothing while the server is idle).

    C{GET /demo/chart?once=1} answers one PNG.
    """

    isLeaf = True

    def __init__(self, counter: RateCounter, clock: Any, interval: float = 1.0) -> None:
        super().__init__()
        self.config = CometConfig()
        self.counter = counter
        self.clock = clock
        self.interval = interval
        self.viewers: List[Tuple[Request, bytes]] = []
        self._tick: Any = None

    def render_GET(self, request: Request) -> Any:
        request.setHeader(b"Cache-Control", b"no-store")
        png = drawChart(self.counter.rates())
        if request.args.get(b"once"):
            request.setHeader(b"Content-Type", b"image/png")
            return png
        boundary = secrets.token_hex(12).encode("ascii")
        request.setHeader(
            b"Content-Type", b"multipart/x-mixed-replace; boundary=" + boundary
        )
        request.setHeader(b"X-Accel-Buffering", b"no")
        request.write(b"--" + boundary + b"\r\n" + _PNG_PART + self._part(png, boundary))
        self.viewers.append((request, boundary))
        request.notifyFinish().addBoth(lambda _: self._gone(request))
        if self._tick is None:
            self._tick = self.clock.callLater(self.interval, self._frame)
        return NOT_DONE_YET

    @staticmethod
    def _part(png: bytes, boundary: bytes) -> bytes:
        # The body, then the boundary and the next part's headers at once:
        # a browser shows a part only when the next part's headers arrive.
        return png + b"\r\n--" + boundary + b"\r\n" + _PNG_PART

    def _gone(self, request: Request) -> None:
        self.viewers = [(r, b) for r, b in self.viewers if r is not request]
        if not self.viewers and self._tick is not None:
            if self._tick.active():
                self._tick.cancel()
            self._tick = None

    def _frame(self) -> None:
        self._tick = None
        if not self.viewers:
            return
        png = drawChart(self.counter.rates())
        for request, boundary in list(self.viewers):
            request.write(self._part(png, boundary))
        self._tick = self.clock.callLater(self.interval, self._frame)
