"""
The admin page in Chromium: its figures arrive over txcomet's own data
channel (forced to each of three transports), connections appear and
disappear as a user's page opens and closes, the deliveries chart moves
while the test publishes, inspecting a channel shows its presence and
history, and the disconnect button ends a user's session for good.
"""

import os

from twisted.internet.defer import inlineCallbacks

from tests.system.test_browser import BrowserTestCase, HTMLPage

USER_PAGE = """<!doctype html>
<script src="/comet/txcomet.js"></script>
<script>
  window.got = [];
  window.closes = [];
  window.c = new TxComet.Client('/comet', {user: 'alice', transports: ['ws'], share: false});
  c.on('error', (e) => window.closes.push(e.code));
  c.subscribe('news', (e) => { if (e.type === 'event') window.got.push(e.data); });
</script>
"""

#: Where a screenshot for the README goes, when the environment asks.
SCREENSHOT = os.environ.get("TXCOMET_ADMIN_SCREENSHOT")


class AdminPageTests(BrowserTestCase):
    @inlineCallbacks
    def watch(self, transport):
        yield self.startDemo()
        self.root.putChild(b"user.html", HTMLPage(USER_PAGE))

        def connections(admin):
            return admin.evaluate("Number(document.getElementById('total-connections').textContent)")

        def scenario(browser):
            admin = browser.newPage()
            admin.goto("%s/comet/admin?transport=%s" % (self.base, transport))
            admin.wait_for_function("admin.updates >= 2")
            self.assertEqual(admin.get_attribute("body", "data-transport"), transport)
            before = connections(admin)  # the admin page's own
            self.assertEqual(before, 1)
            user = browser.newPage()
            user.goto(self.base + "/user.html")
            user.wait_for_function("c.state === 'listening'")
            admin.wait_for_function("Number(document.getElementById('total-connections').textContent) === 2")
            admin.wait_for_function(
                "[...document.querySelectorAll('#channels tr[data-channel]')].some(r => r.dataset.channel === 'news')"
            )
            # The chart moves while events flow.
            for n in range(12):
                self.publish("news", {"n": n})
                user.wait_for_timeout(250)
            admin.wait_for_function("admin.points.some(p => p.deliveries > 0)")
            admin.wait_for_function("Number(document.getElementById('total-publishes').textContent) >= 0")
            self.assertGreater(admin.evaluate("Math.max(...admin.points.map(p => p.publishes))"), 0)
            # Inspecting the channel: alice is listed, the events are there.
            admin.click("#channels tr[data-channel='news'] button")
            admin.wait_for_function("document.getElementById('presence').textContent.includes('alice')")
            admin.wait_for_function("document.getElementById('history').children.length === 12")
            if SCREENSHOT:
                admin.screenshot(path=SCREENSHOT, full_page=True)
            # Publishing from the page reaches the user.
            admin.fill("#publish-form [name=channel]", "news")
            admin.fill("#publish-form [name=data]", '{"from": "admin"}')
            admin.click("#publish-form button")
            user.wait_for_function("got.some(d => d.from === 'admin')")
            # The disconnect button ends alice's session, not to come back.
            admin.fill("#disconnect-form [name=user]", "alice")
            admin.fill("#disconnect-form [name=reason]", "banned")
            admin.click("#disconnect-form button")
            user.wait_for_function("closes.includes('banned') && c.state === 'abort'")
            admin.wait_for_function("Number(document.getElementById('total-connections').textContent) === 1")
            self.assertEqual([s for s in self.sessions() if s.user == "alice"], [])
            user.wait_for_timeout(1500)
            self.assertEqual([s for s in self.sessions() if s.user == "alice"], [])
            # A user's page that closes disappears from the figures.
            other = browser.newPage()
            other.goto(self.base + "/user.html")
            admin.wait_for_function("Number(document.getElementById('total-connections').textContent) === 2")
            other.close()
            admin.wait_for_function("Number(document.getElementById('total-connections').textContent) === 1")

        yield self.inBrowser(scenario)

    def test_eventSource(self):
        return self.watch("sse")

    def test_webSocket(self):
        return self.watch("ws")

    def test_longPolling(self):
        return self.watch("longpoll")


class AdminAccessTests(BrowserTestCase):
    @inlineCallbacks
    def test_keyAsked(self):
        """
        With an API key, the page asks for it (Basic, the key as the
        password) and works once given; a wrong key is refused.
        """
        yield self.startDemo(apiKey="admin-key-1")

        def scenario(browser):
            wrong = browser.newPage(browser.browser.new_context(http_credentials={"username": "x", "password": "no"}))
            response = wrong.goto(self.base + "/comet/admin")
            self.assertEqual(response.status, 401)
            right = browser.newPage(browser.browser.new_context(http_credentials={"username": "ops", "password": "admin-key-1"}))
            response = right.goto(self.base + "/comet/admin")
            self.assertEqual(response.status, 200)
            right.wait_for_function("admin.updates >= 1")
            self.assertNotIn("admin-key-1", right.content())

        yield self.inBrowser(scenario)
