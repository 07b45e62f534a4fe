"""
The demo's server side, in memory: the PNG encoder, the chart, the event
counter, the multipart chart stream, the page and the client's files.
"""

import struct
import zlib

from treq.testing import StubTreq
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from txcomet._demo.chart import (
    _BAR,
    _NOW,
    ChartStream,
    RateCounter,
    drawChart,
    encodePNG,
)
from txcomet._model.event import Event
from txcomet._demo.page import IndexPage
from txcomet.testing import makeComet


def readPNG(data):
    """
    Check a PNG's signature and chunk CRCs; return (width, height, rows of
    palette indexes).
    """
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, {}
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF, kind
        chunks[kind] = body
        pos += 12 + length
    width, height = struct.unpack(">II", chunks[b"IHDR"][:8])
    raw = zlib.decompress(chunks[b"IDAT"])
    stride = width + 1
    rows = [raw[i * stride + 1 : (i + 1) * stride] for i in range(height)]
    assert all(raw[i * stride] == 0 for i in range(height))
    return width, height, rows


class PNGTests(SynchronousTestCase):
    def test_encode(self):
        """
        encodePNG writes a PNG whose chunks check out and whose pixels are
        the ones given.
        """
        pixels = [bytes([0, 1, 2]), bytes([2, 1, 0])]
        width, height, rows = readPNG(encodePNG(3, 2, [(0, 0, 0), (255, 0, 0), (0, 0, 255)], pixels))
        self.assertEqual((width, height, rows), (3, 2, pixels))

    def test_badSizes(self):
        """
        Rows of the wrong size, or an empty palette, are refused.
        """
        self.assertRaises(ValueError, encodePNG, 3, 1, [(0, 0, 0)], [b"\x00\x00"])
        self.assertRaises(ValueError, encodePNG, 1, 1, [], [b"\x00"])

    def test_chart(self):
        """
        The chart draws one bar per second, the peak full height and the
        newest in its own colour; different rates draw different pictures.
        """
        rates = [0] * 58 + [10, 5]
        width, height, rows = readPNG(drawChart(rates))
        self.assertEqual((width, height), (240, 80))
        column = lambda x: [row[x] for row in rows]
        self.assertEqual(column(width - 8).count(_BAR), 80 - 14 - 1)  # the peak: 10/s
        self.assertEqual(column(width - 4).count(_NOW), (5 * 65 + 9) // 10)
        self.assertNotEqual(drawChart(rates), drawChart([0] * 60))


class RateCounterTests(SynchronousTestCase):
    def test_perSecond(self):
        """
        Events are counted in the second they arrive; presence notices are
        not events; the window moves with the clock.
        """
        clock = Clock()
        counter = RateCounter(clock, seconds=5)
        event = Event("a", 1, "e", 1)
        counter.deliver(event)
        counter.deliver(event)
        counter.deliver(Event("a", {}, "e", 2, kind="join"))
        clock.advance(1)
        counter.deliver(event)
        self.assertEqual(counter.rates(), [0, 0, 0, 2, 1])
        clock.advance(3)
        self.assertEqual(counter.rates(), [2, 1, 0, 0, 0])
        clock.advance(100)
        self.assertEqual(counter.rates(), [0] * 5)
        self.assertEqual(counter.total, 3)


class ChartStreamTests(SynchronousTestCase):
    def test_sameBytesToEveryViewer(self):
        """
        The chart stream is multipart/x-mixed-replace with a picture at
        once; each tick sends every viewer the same picture, drawn once;
        when the viewers go the ticking stops.
        """
        clock = Clock()
        counter = RateCounter(clock)
        stream = ChartStream(counter, clock)
        treq = StubTreq(stream)
        bodies = [[], []]
        responses = []
        for body in bodies:
            treq.get("http://demo.test/chart", unbuffered=True).addCallback(
                lambda r, body=body: (responses.append(r), r.deliverBody(_Collect(body)))
            )
        treq.flush()
        self.assertEqual(len(responses), 2)
        contentType = responses[0].headers.getRawHeaders("Content-Type")[0]
        self.assertTrue(contentType.startswith("multipart/x-mixed-replace; boundary="))
        self.assertEqual(len(clock.getDelayedCalls()), 1)
        counter.deliver(Event("a", 1, "e", 1))
        clock.advance(1)
        treq.flush()
        parts = [
            [part.rsplit(b"\r\n--", 1)[0] for part in b"".join(body).split(b"Content-Type: image/png\r\n\r\n")[1:] if part]
            for body in bodies
        ]
        self.assertEqual([len(p) for p in parts], [2, 2])
        first, second = parts
        self.assertEqual(first[1], second[1])  # one drawing for both
        self.assertNotEqual(first[0], first[1])  # the event shows
        self.assertEqual(readPNG(first[1])[:2], (240, 80))
        for request, boundary in list(stream.viewers):
            stream._gone(request)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_once(self):
        """
        ?once=1 answers a single PNG.
        """
        clock = Clock()
        response = _get(StubTreq(ChartStream(RateCounter(clock), clock)), "http://demo.test/chart?once=1")
        self.assertEqual(response[1], ["image/png"])
        self.assertEqual(readPNG(response[2])[:2], (240, 80))


class _Collect:
    def __init__(self, into):
        self.into = into

    def makeConnection(self, transport):
        pass

    def dataReceived(self, data):
        self.into.append(data)

    def connectionLost(self, reason):
        pass


def _get(treq, url, headers=None):
    results = []
    d = treq.get(url, headers=headers)
    d.addCallback(lambda r: treq.content(r).addCallback(lambda body: results.append((r.code, r.headers.getRawHeaders("Content-Type"), body, r))))
    treq.flush()
    return results[0]


class PageTests(SynchronousTestCase):
    def setUp(self):
        self.comet, self.clock = makeComet()
        root = IndexPage("/comet", self.comet, clock=self.clock)
        root.putChild(b"comet", self.comet.resource)
        self.treq = StubTreq(root)

    def test_demoPage(self):
        """
        / is the chat demo, loading the client from the mount point, and
        still says what runs where.
        """
        code, contentType, body, _ = _get(self.treq, "http://demo.test/")
        self.assertEqual(code, 200)
        self.assertIn(b'<script src="/comet/txcomet.js"></script>', body)
        self.assertIn(b'id="chart" src="/demo/chart"', body)
        self.assertIn(b"What runs where", body)
        self.assertIn(b"POST /comet/control", body)
        for transport in self.comet.resource.transports:
            self.assertIn(('<code>%s</code>' % (transport,)).encode(), body)
        self.assertNotIn(b"@PREFIX@", body)

    def test_clientFiles(self):
        """
        The client is served at /comet/txcomet.js and .mjs as JavaScript
        with an ETag; asking again with it answers 304 with no body.  The
        demo's own files are under /demo/.
        """
        code, contentType, body, response = _get(self.treq, "http://demo.test/comet/txcomet.js")
        self.assertEqual((code, contentType), (200, ["application/javascript; charset=utf-8"]))
        self.assertIn(b"TxComet", body)
        etag = response.headers.getRawHeaders("ETag")[0]
        code, _, body, _ = _get(self.treq, "http://demo.test/comet/txcomet.js", {"If-None-Match": [etag]})
        self.assertEqual((code, body), (304, b""))
        code, contentType, body, _ = _get(self.treq, "http://demo.test/comet/txcomet.mjs")
        self.assertEqual(code, 200)
        self.assertIn(b"export", body)
        for name, kind in [("demo.js", "application/javascript"), ("demo.css", "text/css")]:
            code, contentType, body, _ = _get(self.treq, "http://demo.test/demo/" + name)
            self.assertEqual(code, 200)
            self.assertTrue(contentType[0].startswith(kind))


class BadRequestTests(SynchronousTestCase):
    def setUp(self):
        self.comet, self.clock = makeComet()
        root = IndexPage("/comet", self.comet, clock=self.clock)
        root.putChild(b"comet", self.comet.resource)
        self.treq = StubTreq(root)

    def request(self, method, url):
        results = []
        d = self.treq.request(method, url)
        d.addCallback(lambda r: self.treq.content(r).addCallback(lambda body: results.append((r.code, body))))
        self.treq.flush()
        return results[0]

    def test_jsonErrors(self):
        """
        The client's files and the demo's answer other methods and unknown
        paths with the JSON errors every txcomet resource uses.
        """
        for method, url, code, error in [
            ("POST", "/comet/txcomet.js", 405, "method_not_allowed"),
            ("DELETE", "/demo/chart", 405, "method_not_allowed"),
            ("GET", "/demo/nothing", 404, "not_found"),
            ("GET", "/comet/txcomet.js/extra", 404, "not_found"),
        ]:
            status, body = self.request(method, "http://demo.test" + url)
            self.assertEqual((status, __import__("json").loads(body)["error"]), (code, error), url)
