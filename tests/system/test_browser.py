"""
The browser client and the demo in a real browser: Debian's Chromium,
headless, driven by Playwright, against a real server on a free port.
"""

import re
import os

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import TestCase
from twisted.web.resource import Resource

from txcomet import Comet, CometConfig
from txcomet._demo.page import IndexPage
from txcomet._sessions.session import Session

from tests.support.browser import BrowserTestMixin, browserMissing, waitUntil
from tests.support import TrackingSite

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

#: The seven browser transports, in the client's fallback order.
BROWSER_TRANSPORTS = ["ws", "sse", "xhr-stream", "iframe", "longpoll", "jsonp", "poll"]

LISTENING = "document.body.dataset.state === 'listening'"


class HTMLPage(Resource):
    isLeaf = True

    def __init__(self, html):
        super().__init__()
        self.html = html.encode("utf-8")

    def render_GET(self, request):
        request.setHeader(b"Content-Type", b"text/html; charset=utf-8")
        return self.html


def texts(page):
    return page.evaluate("demo.messages.map(m => m.text)")


class BrowserTestCase(BrowserTestMixin, TestCase):
    skip = browserMissing()

    def requireTransport(self, name):
        if not self.hasTransport(name):
            self.skipTest("the %s transport is not on this branch yet" % (name,))

    def sessions(self):
        """
        From the browser thread: the server's joined (not join-listen)
        sessions.
        """
        return self.onServer(lambda: [s for s in self.comet.hub.sessions.values() if not s.ephemeral])

    def publish(self, channel, data):
        return self.onServer(self.comet.publish, channel, data)


class ChatTests(BrowserTestCase):
    """
    Two people chat through the demo over each transport, forced in turn.
    """

    def chat(self, transport):
        room = "room-" + transport

        def scenario(browser):
            alice = browser.newPage()
            bob = browser.newPage()
            alice.goto("%s/?user=alice&room=%s&transport=%s" % (self.base, room, transport))
            bob.goto("%s/?user=bob&room=%s&transport=%s" % (self.base, room, transport))
            for page in (alice, bob):
                page.wait_for_function(LISTENING)
                self.assertEqual(page.evaluate("demo.client.transport"), transport)
                self.assertEqual(page.inner_text("#transport"), transport)
            # Presence: each sees the other online.
            bob.wait_for_function("[...document.querySelectorAll('#online li')].some(li => li.textContent === 'alice')")
            alice.wait_for_function("[...document.querySelectorAll('#online li')].some(li => li.textContent === 'bob')")
            # Typing notices, then the message.
            alice.fill("#text", "hello from alice")
            bob.wait_for_function("document.getElementById('typing').textContent.includes('alice is typing')")
            alice.press("#text", "Enter")
            bob.wait_for_function("demo.messages.some(m => m.text === 'hello from alice' && m.user === 'alice')")
            bob.fill("#text", "hi alice")
            bob.press("#text", "Enter")
            alice.wait_for_function("demo.messages.some(m => m.text === 'hi alice')")
            # A message from a backend reaches both.
            self.publish("chat/" + room, {"user": "server", "text": "from the server"})
            for page in (alice, bob):
                page.wait_for_function("demo.messages.length >= 3")
                # Each message once, in the same order on both pages.
                self.assertEqual(texts(page), ["hello from alice", "hi alice", "from the server"])
            # One session each, both listening on this transport.
            self.assertEqual(len(self.sessions()), 2)

        return self.inBrowser(scenario)

    @inlineCallbacks
    def _test(self, transport):
        yield self.startDemo()
        self.requireTransport(transport)
        yield self.chat(transport)

    def test_ws(self):
        """
        Two pages chat over WebSocket.
        """
        return self._test("ws")

    def test_sse(self):
        """
        Two pages chat over EventSource.
        """
        return self._test("sse")

    def test_xhrStream(self):
        """
        Two pages chat over XHR streaming.
        """
        return self._test("xhr-stream")

    def test_iframe(self):
        """
        Two pages chat over hidden-iframe streaming.
        """
        return self._test("iframe")

    def test_longpoll(self):
        """
        Two pages chat over XHR long-polling.
        """
        return self._test("longpoll")

    def test_jsonp(self):
        """
        Two pages chat over script-tag long-polling.
        """
        return self._test("jsonp")

    def test_poll(self):
        """
        Two pages chat over short polling.
        """
        return self._test("poll")


class ReconnectTests(BrowserTestCase):
    """
    A page that loses its connection reconnects and misses nothing.
    """

    def cutMidStream(self, transport):
        room = "cut-" + transport

        def scenario(browser):
            page = browser.newPage()
            page.goto("%s/?user=carol&room=%s&transport=%s" % (self.base, room, transport))
            page.wait_for_function(LISTENING)
            self.publish("chat/" + room, {"user": "server", "text": "1"})
            page.wait_for_function("demo.messages.length >= 1")
            session = page.evaluate("demo.client.session")

            def cutAndPublish():
                cut = self.cutConnections()
                self.comet.publish("chat/" + room, {"user": "server", "text": "2"})
                self.comet.publish("chat/" + room, {"user": "server", "text": "3"})
                return cut

            self.assertGreater(self.onServer(cutAndPublish), 0)
            page.wait_for_function("demo.messages.length >= 3")
            self.publish("chat/" + room, {"user": "server", "text": "4"})
            page.wait_for_function("demo.messages.length >= 4")
            self.assertEqual(texts(page), ["1", "2", "3", "4"])
            # It resumed its session from the last event, not a new one.
            self.assertEqual(page.evaluate("demo.client.session"), session)
            page.wait_for_function(LISTENING)

        return self.inBrowser(scenario)

    @inlineCallbacks
    def test_cutLongPoll(self):
        """
        A long-polling page whose connection is cut while events are
        published gets every one of them once, in order, in the same
        session.
        """
        yield self.startDemo()
        yield self.cutMidStream("longpoll")

    @inlineCallbacks
    def test_cutEventSource(self):
        """
        The same over EventSource.
        """
        yield self.startDemo()
        self.requireTransport("sse")
        yield self.cutMidStream("sse")

    @inlineCallbacks
    def test_cutWebSocket(self):
        """
        The same over WebSocket.
        """
        yield self.startDemo()
        self.requireTransport("ws")
        yield self.cutMidStream("ws")

    @inlineCallbacks
    def test_cutXHRStream(self):
        """
        The same over XHR streaming.
        """
        yield self.startDemo()
        self.requireTransport("xhr-stream")
        yield self.cutMidStream("xhr-stream")

    @inlineCallbacks
    def test_cutIframe(self):
        """
        The same over hidden-iframe streaming.
        """
        yield self.startDemo()
        self.requireTransport("iframe")
        yield self.cutMidStream("iframe")

    @inlineCallbacks
    def test_recycledStream(self):
        """
        An XHR stream the server recycles every few hundred bytes is
        reopened each time from the last event: a burst arrives whole and
        in order.
        """
        yield self.startDemo(recycleBytes=300)

        def scenario(browser):
            page = browser.newPage()
            streams = []
            page.on("request", lambda request: "/comet/xhr-stream" in request.url and streams.append(request.url))
            page.goto("%s/?user=lee&room=recycle&transport=xhr-stream" % (self.base,))
            page.wait_for_function(LISTENING)
            for i in range(20):
                self.publish("chat/recycle", {"user": "server", "text": str(i)})
            page.wait_for_function("demo.messages.length >= 20")
            self.assertEqual(texts(page), [str(i) for i in range(20)])
            self.assertGreater(len(streams), 2)  # it was recycled, more than once

        yield self.inBrowser(scenario)

    def silentStream(self, transport):
        """
        With the page's clock faked (the server's is real, and its 60 s
        heartbeat does not come during the test): a watched stream that
        hears nothing is kept for two heartbeat intervals plus 3 s, the
        longest the server is ever silent plus slack, then reopened.
        """
        room = "silent-" + transport

        def scenario(browser):
            page = browser.newPage()
            streams = []
            page.on("request", lambda request: "/comet/" + transport in request.url and streams.append(request.url))
            page.clock.install()
            page.goto("%s/?user=sam&room=%s&transport=%s" % (self.base, room, transport))
            page.wait_for_function(LISTENING)
            self.assertEqual(len(streams), 1)
            self.assertEqual(page.evaluate("demo.client._heartbeat"), 60000)
            # Silent for 2 minutes: past 1.5 intervals + 2 s (the old
            # watchdog), short of 2 intervals + 3 s.
            page.clock.fast_forward(120000)
            self.assertEqual(page.evaluate("document.body.dataset.state"), "listening")
            self.assertEqual(len(streams), 1)
            # Silent for 124 s: given up (the client says so at once)...
            session = page.evaluate("demo.client.session")
            page.clock.fast_forward(4000)
            self.assertEqual(page.evaluate("document.body.dataset.state"), "error")
            # ...and reopened after the reconnection delay (at most 0.25 s
            # the first time), in the same session, still getting what is
            # published.
            page.clock.run_for(1000)
            waitUntil(lambda: len(streams) >= 2, "the stream to be reopened")
            page.wait_for_function(LISTENING)
            self.assertEqual(page.evaluate("demo.client.session"), session)
            self.publish("chat/" + room, {"user": "server", "text": "still here"})
            page.wait_for_function("demo.messages.some(m => m.text === 'still here')")

        return self.inBrowser(scenario)

    @inlineCallbacks
    def test_silentXHRStreamReopened(self):
        """
        An XHR stream is reopened after two heartbeat intervals plus 3 s
        of silence, not before.
        """
        yield self.startDemo(heartbeat=60.0)
        self.requireTransport("xhr-stream")
        yield self.silentStream("xhr-stream")

    @inlineCallbacks
    def test_silentIframeReopened(self):
        """
        The same for a hidden-iframe stream.
        """
        yield self.startDemo(heartbeat=60.0)
        self.requireTransport("iframe")
        yield self.silentStream("iframe")

    @inlineCallbacks
    def test_serverRestarted(self):
        """
        When the server restarts (a new bus, the session forgotten), the
        page joins again, resumes its channel, and receives what was
        published on the new server, once.
        """
        yield self.startDemo()
        portNumber = self.port.getHost().port

        def restart():
            yield self.port.stopListening()
            self.cutConnections()
            yield self.comet.stopService()
            self.comet = Comet(config=CometConfig(heartbeat=5.0))
            root = IndexPage("/comet", self.comet)
            root.putChild(b"comet", self.comet.resource)
            self.site = TrackingSite(root)
            yield self.comet.startService()
            # Published before the page is back: it must still get it.
            yield self.comet.publish("chat/restart", {"user": "server", "text": "after"})
            self.port = reactor.listenTCP(portNumber, self.site, interface="127.0.0.1")

        def scenario(browser):
            page = browser.newPage()
            page.goto("%s/?user=erin&room=restart&transport=longpoll" % (self.base,))
            page.wait_for_function(LISTENING)
            self.publish("chat/restart", {"user": "server", "text": "before"})
            page.wait_for_function("demo.messages.length >= 1")
            self.onServer(inlineCallbacks(restart))
            page.wait_for_function("demo.messages.length >= 2")
            page.wait_for_function(LISTENING)
            self.publish("chat/restart", {"user": "server", "text": "later"})
            page.wait_for_function("demo.messages.length >= 3")
            self.assertEqual(texts(page), ["before", "after", "later"])
            # The new server could not vouch for what came before it: said.
            self.assertIn({"channel": "chat/restart", "recovered": False}, page.evaluate("demo.recoveries"))

        yield self.inBrowser(scenario)


class FallbackTests(BrowserTestCase):
    @inlineCallbacks
    def test_fallsBack(self):
        """
        A transport that fails (here EventSource, refused on the way) is
        given up for the next one in the list, which then delivers.
        """
        yield self.startDemo()

        def scenario(browser):
            page = browser.newPage()
            page.route("**/comet/sse**", lambda route: route.abort())
            page.goto(self.base + "/?user=frank")
            page.wait_for_function(LISTENING)
            seen = page.evaluate(
                """() => new Promise((resolve) => {
                  const c = new TxComet.Client('/comet', {
                    transports: ['sse', 'longpoll'], share: false, backoff: {min: 50, max: 200}});
                  const used = [];
                  let published = false;
                  c.on('transport', (t) => used.push(t));
                  c.on('state', (s) => {
                    if (s === 'listening' && c.transport === 'longpoll' && !published) {
                      published = true;
                      fetch('/comet/publish/fallback', {method: 'POST', body: 'through'});
                    }
                  });
                  c.subscribe('fallback', (e) => resolve({used, data: e.data, transport: c.transport}));
                })"""
            )
            self.assertEqual(seen, {"used": ["sse", "longpoll"], "data": "through", "transport": "longpoll"})

        yield self.inBrowser(scenario)


class SharingTests(BrowserTestCase):
    @inlineCallbacks
    def test_twoTabsShareOneDataChannel(self):
        """
        Two tabs of the same page and user share one session and one data
        channel: one leads, the other hears through it, and both send.
        When the leading tab goes, the other takes over and misses nothing.
        """
        yield self.startDemo()

        def scenario(browser):
            context = browser.newContext()
            first = browser.newPage(context)
            second = browser.newPage(context)
            first.goto(self.base + "/?user=gina&room=tabs&transport=longpoll")
            first.wait_for_function("demo.client.role === 'leader' && " + LISTENING)
            second.goto(self.base + "/?user=gina&room=tabs&transport=longpoll")
            second.wait_for_function("demo.client.role === 'follower' && " + LISTENING)
            [session] = self.sessions()
            self.assertEqual(second.evaluate("demo.client.session"), session.id)
            second.fill("#text", "from the second tab")
            second.press("#text", "Enter")
            for page in (first, second):
                page.wait_for_function("demo.messages.length >= 1")
                self.assertEqual(texts(page), ["from the second tab"])
            self.assertEqual([s.id for s in self.sessions()], [session.id])
            # The leader goes; the second tab leads, in a new session.
            first.goto("about:blank")
            second.wait_for_function("demo.client.role === 'leader' && " + LISTENING)
            waitUntil(lambda: [s.id for s in self.sessions()] not in ([], [session.id]), "the new session")
            [newSession] = self.sessions()
            self.assertEqual(session.closeReason, "left")
            self.publish("chat/tabs", {"user": "server", "text": "after the handover"})
            second.wait_for_function("demo.messages.length >= 2")
            self.assertEqual(texts(second), ["from the second tab", "after the handover"])
            self.assertEqual(second.evaluate("demo.client.session"), newSession.id)

        yield self.inBrowser(scenario)


class LeaveTests(BrowserTestCase):
    @inlineCallbacks
    def test_leavingFreesTheSession(self):
        """
        Leaving the page frees its session on the server at once (closed
        as "left" through the control channel, not expired later), and
        its presence goes with it.
        """
        yield self.startDemo(sessionTimeout=600)

        def scenario(browser):
            watcher = browser.newPage()
            watcher.goto(self.base + "/?user=hal&room=leave&transport=longpoll")
            page = browser.newPage()
            page.goto(self.base + "/?user=ivy&room=leave&transport=longpoll")
            page.wait_for_function(LISTENING)
            watcher.wait_for_function("[...document.querySelectorAll('#online li')].some(li => li.textContent === 'ivy')")
            [session] = [s for s in self.sessions() if s.user == "ivy"]
            page.goto("about:blank")
            waitUntil(lambda: self.onServer(lambda: session.state) == "closed", "the session to close")
            self.assertEqual(session.closeReason, "left")
            watcher.wait_for_function("![...document.querySelectorAll('#online li')].some(li => li.textContent === 'ivy')")

        yield self.inBrowser(scenario)


class ChartTests(BrowserTestCase):
    @inlineCallbacks
    def test_chartUpdates(self):
        """
        The <img> fed by multipart/x-mixed-replace shows a new picture when
        events are published.
        """
        yield self.startDemo()
        digest = """() => {
            const img = document.getElementById('chart');
            if (!img.complete || !img.naturalWidth) return null;
            const canvas = document.createElement('canvas');
            canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
            const ctx = canvas.getContext('2d');
            ctx.drawImage(img, 0, 0);
            return Array.from(ctx.getImageData(0, 0, canvas.width, canvas.height).data).join(',');
        }"""

        def scenario(browser):
            page = browser.newPage()
            page.goto(self.base + "/?user=jo&room=chart&transport=longpoll")
            page.wait_for_function("document.getElementById('chart').naturalWidth === 240")
            before = waitUntil(lambda: page.evaluate(digest), "the first picture")

            def changed():
                for i in range(5):
                    self.publish("rate", i)
                return page.evaluate(digest) != before

            waitUntil(changed, "the picture to change", tries=100)

        yield self.inBrowser(scenario)


class MinimalPageTests(BrowserTestCase):
    @inlineCallbacks
    def test_readmeMinimalPage(self):
        """
        The minimal subscribe page in the README works as written: served
        beside the server, it shows what is published.
        """
        with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
            readme = f.read()
        section = readme[readme.index("## The minimal page") :]
        html = re.search(r"```html\n(.*?)```", section, re.S).group(1)
        yield self.startDemo()
        self.root.putChild(b"minimal.html", HTMLPage(html))
        # What each data channel attached with: its client's last event.
        attached = []
        attach = Session.attach

        def recordingAttach(session, channel, last=None):
            attached.append(last)
            return attach(session, channel, last)

        self.patch(Session, "attach", recordingAttach)

        def scenario(browser):
            page = browser.newPage()
            page.goto(self.base + "/minimal.html")
            page.wait_for_function("window.TxComet !== undefined")
            waitUntil(lambda: self.sessions(), "the page to join")
            waitUntil(lambda: [s for s in self.sessions() if s.subscriptions], "the page to subscribe")
            waitUntil(lambda: [s for s in self.sessions() if s.dataChannel is not None], "a data channel")
            # With no event yet, it listens from the join's start marker.
            self.assertEqual(self.onServer(lambda: list(attached)), ["%s-0" % (self.comet.bus.epoch,)])
            self.publish("news", {"headline": "txcomet ships"})
            page.wait_for_function("document.body.textContent.includes('txcomet ships')")
            # The same client as an ES module: the running one, not a copy.
            self.assertTrue(
                page.evaluate(
                    "(() => { const running = window.TxComet; return import('/comet/txcomet.mjs').then("
                    "m => typeof m.Client === 'function' && m.default === running && window.TxComet === running); })()"
                )
            )

        yield self.inBrowser(scenario)


class CrossOriginTests(BrowserTestCase):
    @inlineCallbacks
    def test_scriptTagsAcrossOrigins(self):
        """
        A page on another origin, with no CORS granted to it, still joins,
        subscribes, publishes and listens through script tags (control:
        'script' and the jsonp transport), and leaving it frees its
        session (a beacon needs no CORS).
        """
        yield self.startDemo()
        self.root.putChild(b"blank.html", HTMLPage("<!doctype html><title>elsewhere</title>"))
        port = self.port.getHost().port

        def scenario(browser):
            page = browser.newPage()
            # localhost and 127.0.0.1 are different origins.
            page.goto("http://localhost:%d/blank.html" % (port,))
            page.add_script_tag(url="http://127.0.0.1:%d/comet/txcomet.js" % (port,))
            result = page.evaluate(
                """(url) => new Promise((resolve, reject) => {
                  const c = new TxComet.Client(url, {transports: ['jsonp'], control: 'script', share: false, user: 'kim'});
                  window.c = c;
                  c.subscribe('far', (e) => e.type === 'event' && resolve({data: e.data, transport: c.transport}))
                    .then(() => c.publish('far', {from: 'elsewhere'}))
                    .catch((e) => reject(e.code + ': ' + e.message));
                })""",
                "http://127.0.0.1:%d/comet" % (port,),
            )
            self.assertEqual(result, {"data": {"from": "elsewhere"}, "transport": "jsonp"})
            [session] = self.sessions()
            self.assertEqual(session.user, "kim")
            # The same page cannot use the control channel by POST: it may
            # send, but not read the answer.
            error = page.evaluate(
                """(url) => new TxComet.Client(url, {share: false}).publish('far', 1).then(() => 'ok', (e) => e.code)""",
                "http://127.0.0.1:%d/comet" % (port,),
            )
            self.assertEqual(error, "network")
            page.goto("about:blank")
            waitUntil(lambda: self.onServer(lambda: session.state) == "closed", "the session to close")
            self.assertEqual(session.closeReason, "left")

        yield self.inBrowser(scenario)
