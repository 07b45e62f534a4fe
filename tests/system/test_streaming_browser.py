"""
The transports in a real browser (Debian's Chromium, headless), when one
is installed: a native C{EventSource} resumes exactly after its connection
is cut (also before its first event), the hidden iframe calls its parent,
a script tag long-polls, and a multipart image stream drives an C{<img>}.

The page reports what it sees by publishing on the C{report} channel,
which the test watches on the bus.
"""

import base64
import os
import shutil
import struct
import tempfile
import zlib

from twisted.internet import reactor
from twisted.internet.protocol import ProcessProtocol
from twisted.trial.unittest import SkipTest, TestCase
from twisted.web.resource import Resource
from twisted.web.server import Site
from twisted.web.static import Data

from txcomet import Comet, CometConfig, CometRequest
from txcomet.testing import RecordingSubscriber

from tests.support.realhttp import until

REPORT = """
function report(x) {
  fetch('/comet/publish/report', {method: 'POST', headers: {'Content-Type': 'application/json'},
                                  body: JSON.stringify(x)});
}
"""

PAGES = {
    "sse": REPORT + """
var es = new EventSource('/comet/sse?channel=demo'), got = [];
es.onopen = function () { report({open: true}); };
es.onmessage = function (e) { got.push([e.lastEventId, JSON.parse(e.data).data]); report({got: got}); };
""",
    "iframe": REPORT + """
var got = [];
function txcometCallback(m, position) {
  if (m.type === 'event') { got.push(m.data); report({got: got}); }
}
var f = document.createElement('iframe');
f.style.display = 'none';
f.onload = function () { };
f.src = '/comet/iframe?channel=demo';
document.body.appendChild(f);
setTimeout(function () { report({open: true}); }, 0);
""",
    "jsonp": REPORT + """
var got = [], last = null;
function cb(messages, position) {
  if (!Array.isArray(messages)) { report({error: messages}); return; }
  if (last === null) { last = position; }
  messages.forEach(function (m) { if (m.type === 'event') { got.push(m.data); last = m.id; } });
  if (got.length) { report({got: got}); }
  poll();
}
function poll() {
  var s = document.createElement('script');
  s.src = '/comet/jsonp?channel=demo&callback=cb' + (last ? '&last=' + encodeURIComponent(last) : '');
  document.body.appendChild(s);
}
poll();
report({open: true});
""",
    "img": REPORT + """
var img = document.createElement('img'), sizes = [], seen = '';
img.src = '/comet/multipart?channel=cam&parts=data';
document.body.appendChild(img);
// Browsers fire load for the first part only; watch the size instead.
setInterval(function () {
  var size = img.naturalWidth + 'x' + img.naturalHeight;
  if (size !== seen && img.naturalWidth) { seen = size; sizes.push([img.naturalWidth, img.naturalHeight]); report({got: sizes}); }
}, 20);
report({open: true});
""",
}


def png(width, height):
    """
    A black PNG of C{width} x C{height}.
    """

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + b"\x00" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


class _Browser(ProcessProtocol):
    def __init__(self):
        from twisted.internet.defer import Deferred

        self.ended = Deferred()

    def processEnded(self, reason):
        self.ended.callback(None)


class BrowserTests(TestCase):
    timeout = 60

    def setUp(self):
        self.chromium = shutil.which("chromium") or shutil.which("chromium-browser")
        if self.chromium is None:
            raise SkipTest("Chromium is not installed")
        self.comet = Comet(config=CometConfig())
        root = Resource()
        root.putChild(b"comet", self.comet.resource)
        for name, script in PAGES.items():
            page = "<!doctype html><html><body><script>%s</script></body></html>" % (script,)
            root.putChild(name.encode() + b".html", Data(page.encode("utf-8"), "text/html; charset=utf-8"))
        self.site = Site(root, requestFactory=CometRequest)
        self.port = reactor.listenTCP(0, self.site, interface="127.0.0.1")
        self.addCleanup(self.port.stopListening)
        self.reports = RecordingSubscriber()
        return self.comet.startService().addCallback(lambda _: self.comet.bus.subscribe("report", self.reports))

    def tearDown(self):
        return self.comet.stopService()

    def open(self, page):
        """
        Run headless Chromium on C{page} until the test ends.
        """
        url = "http://127.0.0.1:%d/%s.html" % (self.port.getHost().port, page)
        profile = tempfile.mkdtemp(prefix="txcomet-chromium-")
        self.addCleanup(shutil.rmtree, profile, True)
        browser = _Browser()
        args = [self.chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--user-data-dir=" + profile, url]
        process = reactor.spawnProcess(browser, self.chromium, args, env=dict(os.environ))

        def stop():
            try:
                process.signalProcess("KILL")
            except Exception:
                pass
            return browser.ended

        self.addCleanup(stop)

    def latest(self, key):
        values = [e.data[key] for e in self.reports.events if key in e.data]
        return values[-1] if values else None

    def opens(self):
        return len([e for e in self.reports.events if e.data.get("open")])

    def cutStreams(self):
        """
        Cut every open data channel's connection from the server side.
        """
        for session in list(self.comet.hub.sessions.values()):
            channel = session.dataChannel
            if channel is not None:
                channel.request.channel.transport.abortConnection()

    async def test_eventSourceResumes(self):
        """
        A native EventSource on a join-listen URL gets events as published;
        when its connection is cut, it reconnects by itself with
        Last-Event-ID and gets exactly what was published meanwhile.
        """
        self.open("sse")
        await until(lambda: self.opens() == 1 and self.comet.hub.sessions)
        first = await self.comet.publish("demo", "one")
        await until(lambda: self.latest("got") == [[first.id, "one"]])
        self.cutStreams()
        missed = [await self.comet.publish("demo", "two"), await self.comet.publish("demo", "three")]
        await until(lambda: self.latest("got") and len(self.latest("got")) == 3)
        self.assertEqual(self.latest("got"), [[first.id, "one"], [missed[0].id, "two"], [missed[1].id, "three"]])
        await until(lambda: self.opens() == 2)

    async def test_eventSourceResumesBeforeFirstEvent(self):
        """
        Cut before any event has arrived, an EventSource still resumes
        exactly: the stream's first bytes set its last event id to the
        position it started at.
        """
        self.open("sse")
        await until(lambda: self.opens() == 1 and self.comet.hub.sessions)
        self.cutStreams()
        missed = await self.comet.publish("demo", "while away")
        await until(lambda: self.latest("got") is not None)
        self.assertEqual(self.latest("got"), [[missed.id, "while away"]])

    async def test_iframe(self):
        """
        The hidden iframe calls the parent's callback with each message,
        whatever it holds.
        """
        self.open("iframe")
        await until(lambda: self.comet.hub.sessions)
        nasty = {"t": "</script><script>report({evil: 1})</script>\u2028\"'é"}
        await self.comet.publish("demo", nasty)
        await self.comet.publish("demo", 2)
        await until(lambda: self.latest("got") and len(self.latest("got")) == 2)
        self.assertEqual(self.latest("got"), [nasty, 2])
        self.assertIsNone(self.latest("evil"))

    async def test_scriptTag(self):
        """
        Script tags long-poll: every event arrives once, in order, across
        the requests.
        """
        self.open("jsonp")
        await until(lambda: self.comet.hub.sessions)
        for i in range(5):
            await self.comet.publish("demo", i)
        await until(lambda: self.latest("got") and len(self.latest("got")) == 5)
        self.assertEqual(self.latest("got"), [0, 1, 2, 3, 4])
        self.assertIsNone(self.latest("error"))

    async def test_multipartImage(self):
        """
        An C{<img>} whose source is a C{parts=data} multipart stream shows
        each image published on the channel as a C{data:} URL.
        """
        self.open("img")
        await until(lambda: self.comet.hub.sessions)
        for size in [(3, 2), (5, 7)]:
            url = "data:image/png;base64," + base64.b64encode(png(*size)).decode("ascii")
            await self.comet.publish("cam", url)
            await until(lambda: self.latest("got") and list(self.latest("got")[-1]) == list(size))
        self.assertEqual(self.latest("got")[-1], [5, 7])
