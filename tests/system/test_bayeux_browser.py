"""
Faye's browser client, unchanged from npm, in Chromium, on a page from
another origin than the txcomet server: it talks Bayeux over
callback-polling (script tags, no CORS).
"""

import os

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import TestCase
from twisted.web.resource import Resource
from twisted.web.server import Site
from twisted.web.static import File

from tests.support.browser import BrowserTestMixin, browserMissing, waitUntil
from tests.system.nodeclients import NODE_DIR, ensureNodeModules

PAGE = """<!doctype html>
<meta charset="utf-8">
<title>Faye on txcomet</title>
<script src="/faye-browser.js"></script>
<script>
  window.received = [];
  window.client = new Faye.Client("%(endpoint)s", {retry: 0.5});
  // WebSocket from this origin is refused by the server anyway; leaving it
  // out just spares the attempt.
  client.disable("websocket");
  client.subscribe("/browser/*", (data) => received.push(data))
    .then(() => { window.subscribed = true; });
  window.say = (text) => client.publish("/browser/room", {text: text})
    .then(() => { window.published = text; });
</script>
"""


class Page(Resource):
    isLeaf = True

    def __init__(self, html):
        super().__init__()
        self.html = html.encode("utf-8")

    def render_GET(self, request):
        request.setHeader(b"Content-Type", b"text/html; charset=utf-8")
        return self.html


class FayeBrowserTests(BrowserTestMixin, TestCase):
    skip = browserMissing()

    @inlineCallbacks
    def test_callbackPollingFromAnotherOrigin(self):
        """
        A page served from another origin subscribes with a wildcard,
        receives what the server publishes, publishes and receives its own
        message, all over callback-polling.
        """
        ensureNodeModules()
        base = yield self.startDemo()
        # The page's origin: another host name and port for the same machine.
        pageRoot = Resource()
        pageRoot.putChild(b"", Page(PAGE % {"endpoint": base + "/comet/bayeux"}))
        pageRoot.putChild(b"faye-browser.js", File(os.path.join(NODE_DIR, "node_modules", "faye", "client", "faye-browser.js")))
        pagePort = reactor.listenTCP(0, Site(pageRoot), interface="127.0.0.1")
        self.addCleanup(pagePort.stopListening)
        pageURL = "http://localhost:%d/" % (pagePort.getHost().port,)

        def scenario(browser):
            page = browser.newPage()
            page.goto(pageURL)
            page.wait_for_function("window.subscribed === true")
            self.assertEqual(page.evaluate("client._dispatcher.connectionType"), "callback-polling")
            self.onServer(self.comet.publish, "browser/news", {"text": "from the server"})
            waitUntil(lambda: page.evaluate("received.length") >= 1, "the server's message")
            page.evaluate("say('from the page')")
            page.wait_for_function("window.published === 'from the page'")
            waitUntil(lambda: page.evaluate("received.length") >= 2, "the page's own message")
            return page.evaluate("received.map(d => d.text)")

        texts = yield self.inBrowser(scenario)
        self.assertEqual(texts, ["from the server", "from the page"])
