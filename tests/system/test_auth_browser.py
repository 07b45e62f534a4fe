"""
The browser client with C{getToken} in Chromium: a page whose tokens last
two seconds keeps receiving, on one session, across two token expiries,
over WebSocket, EventSource and long-polling, with every event once and
in order.
"""

import time

from twisted.internet.defer import inlineCallbacks
from twisted.web.resource import Resource

from tests.support.auth import SECRET, mint
from tests.system.test_browser import BrowserTestCase, HTMLPage

LIFETIME = 2.0

PAGE = """<!doctype html>
<script src="/comet/txcomet.js"></script>
<script>
  window.got = [];
  window.tokens = 0;
  window.c = new TxComet.Client('/comet', {
    transports: [new URLSearchParams(location.search).get('transport')],
    share: false,
    getToken: () => fetch('/token').then((r) => { window.tokens++; return r.text(); })
  });
  c.subscribe('news', (e) => { if (e.type === 'event') window.got.push(e.data); });
</script>
"""


class TokenEndpoint(Resource):
    """
    What an application's backend does: mint a short-lived token for the
    signed-in user.
    """

    isLeaf = True

    def render_GET(self, request):
        request.setHeader(b"Content-Type", b"text/plain")
        return mint({"sub": "ann", "exp": time.time() + LIFETIME}).encode("ascii")


class GetTokenTests(BrowserTestCase):
    @inlineCallbacks
    def keepsReceiving(self, transport):
        yield self.startDemo(tokenSecret=SECRET, tokenGrace=2.0)
        self.requireTransport(transport)
        self.root.putChild(b"token", TokenEndpoint())
        self.root.putChild(b"page.html", HTMLPage(PAGE))

        def scenario(browser):
            page = browser.newPage()
            page.goto("%s/page.html?transport=%s" % (self.base, transport))
            page.wait_for_function("c.state === 'listening'")
            [session] = self.sessions()
            self.assertEqual(session.user, "ann")
            sent = []
            for n in range(6):
                self.publish("news", n)
                sent.append(n)
                # Six half-lifetimes: past the first token's expiry plus
                # grace, which would have closed a session never refreshed.
                time.sleep(LIFETIME / 2)
            page.wait_for_function("window.got.length >= 6")
            self.assertEqual(page.evaluate("window.got"), sent)
            self.assertGreaterEqual(page.evaluate("window.tokens"), 3)
            self.assertEqual([s.id for s in self.sessions()], [session.id])
            self.assertEqual(page.evaluate("c.transport"), transport)

        yield self.inBrowser(scenario)

    def test_ws(self):
        """
        Over WebSocket (the refresh goes on the socket).
        """
        return self.keepsReceiving("ws")

    def test_sse(self):
        """
        Over EventSource.
        """
        return self.keepsReceiving("sse")

    def test_longpoll(self):
        """
        Over long-polling.
        """
        return self.keepsReceiving("longpoll")


CHANNEL_PAGE = """<!doctype html>
<script src="/comet/txcomet.js"></script>
<script>
  window.got = [];
  window.errors = [];
  window.asked = 0;
  window.c = new TxComet.Client('/comet', {
    transports: ['longpoll'], share: false,
    getToken: () => fetch('/token').then((r) => r.text())
  });
  c.on('error', (e) => window.errors.push(e.code));
  c.subscribe('private/room', (e) => { if (e.type === 'event') window.got.push(e.data); }, {
    getToken: (channel) => fetch('/channel-token?channel=' + channel).then((r) => { window.asked++; return r.text(); })
  });
</script>
"""


class ChannelTokenEndpoint(Resource):
    """
    What the backend does for a private room: a channel token for the user.
    """

    isLeaf = True

    def render_GET(self, request):
        channel = request.args[b"channel"][0].decode("utf-8")
        request.setHeader(b"Content-Type", b"text/plain")
        return mint({"sub": "ann", "channel": channel, "exp": time.time() + 60}).encode("ascii")


class ChannelTokenBrowserTests(BrowserTestCase):
    @inlineCallbacks
    def test_privateChannel(self):
        """
        C{subscribe(channel, handler, {getToken})} subscribes to a private
        channel with the channel token it fetches, and fetches a fresh one
        when the server lost the session and the client joins again.
        """
        from tests.support.auth import EXAMPLE, tempPath

        path = tempPath(self)
        with open(path, "w") as f:
            f.write(EXAMPLE)
        yield self.startDemo(tokenSecret=SECRET, rulesPath=path)
        self.root.putChild(b"token", TokenEndpoint())
        self.root.putChild(b"channel-token", ChannelTokenEndpoint())
        self.root.putChild(b"page.html", HTMLPage(CHANNEL_PAGE))

        def scenario(browser):
            page = browser.newPage()
            page.goto("%s/page.html" % (self.base,))
            page.wait_for_function("c.state === 'listening'")
            self.publish("private/room", 1)
            page.wait_for_function("window.got.length >= 1")
            [session] = self.sessions()
            self.onServer(lambda: session.close("expired"))
            page.wait_for_function("window.asked >= 2 && c.state === 'listening'")
            self.publish("private/room", 2)
            page.wait_for_function("window.got.length >= 2")
            self.assertEqual(page.evaluate("window.got"), [1, 2])
            self.assertNotIn("forbidden", page.evaluate("window.errors"))

        yield self.inBrowser(scenario)
