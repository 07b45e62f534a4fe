"""
Support for the browser tests: Debian's Chromium driven by Playwright's
sync API, and a real txcomet server with the demo page.

The server runs on the test's reactor (trial's, or pytest-twisted's) in the
main thread; the browser is driven from one dedicated thread, because
Playwright's sync objects belong to the thread that made them and would
block the reactor.  The browser thread reaches the server with
L{BrowserTestMixin.onServer}.
"""

import os
import queue
import shutil
import tempfile
import threading
from typing import Any, Callable, List

from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks, maybeDeferred
from twisted.python.failure import Failure

from txcomet import Comet, CometConfig, CometRequest
from txcomet._demo.page import IndexPage

from tests.support import TrackingSite

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def browserMissing() -> Any:
    """
    Why the browser tests cannot run here, or C{None}.
    """
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright is not installed (pip install '.[test]')"
    if not os.access(CHROMIUM, os.X_OK):
        return "%s is missing (apt-get install chromium)" % (CHROMIUM,)
    return None


class BrowserThread:
    """
    One thread that runs functions handed to it, in order, and reports each
    result to the reactor as a L{Deferred}.
    """

    def __init__(self) -> None:
        self._jobs: "queue.Queue[Any]" = queue.Queue()
        self._thread = threading.Thread(target=self._work, name="browser", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            fn, args, d = job
            try:
                result = fn(*args)
            except BaseException as e:  # reported to the test, not lost
                reactor.callFromThread(d.errback, e)
            else:
                reactor.callFromThread(d.callback, result)

    def run(self, fn: Callable[..., Any], *args: Any) -> Deferred:
        d: Deferred = Deferred()
        self._jobs.put((fn, args, d))
        return d

    def stop(self) -> None:
        self._jobs.put(None)
        self._thread.join(30)


class Browser:
    """
    Chromium, launched headless by executable path with a fresh profile.
    Lives in the browser thread.
    """

    def __init__(self, screenshots: str) -> None:
        from playwright.sync_api import sync_playwright

        self.screenshots = screenshots
        self._playwright = sync_playwright().start()
        # launch() gives every browser a fresh temporary profile of its own.
        self.browser = self._playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        self.pages: List[Any] = []

    def newContext(self) -> Any:
        """
        A new browser context: its own storage, so its tabs share nothing
        with other contexts' (a different person, in effect).
        """
        return self.browser.new_context(viewport={"width": 1280, "height": 800})

    def newPage(self, context: Any = None) -> Any:
        if context is None:
            context = self.newContext()
        page = context.new_page()
        page.set_default_timeout(20000)
        self.pages.append(page)
        return page

    def screenshotAll(self, name: str) -> List[str]:
        """
        Save a screenshot of every open page; return their paths.
        """
        paths = []
        for i, page in enumerate(self.pages):
            if page.is_closed():
                continue
            path = os.path.join(self.screenshots, "%s-%d.png" % (name, i))
            try:
                page.screenshot(path=path, full_page=True)
                paths.append(path)
            except Exception:
                pass
        return paths

    def close(self) -> None:
        try:
            self.browser.close()
        finally:
            self._playwright.stop()


class BrowserTestMixin:
    """
    For a trial L{TestCase}: C{startDemo()} serves the demo page and a
    L{Comet} (with every transport this branch has) on a free loopback
    port; C{inBrowser(fn)} runs C{fn(browser)} in the browser thread and
    saves screenshots of every page (under a temporary directory, named
    in the failure) when it fails.
    """

    timeout = 90

    def startDemo(self, **config: Any) -> Deferred:
        config.setdefault("heartbeat", 5.0)
        self.comet = Comet(config=CometConfig(**config))
        self.root = IndexPage("/comet", self.comet)
        self.root.putChild(b"comet", self.comet.resource)
        self.site = TrackingSite(self.root, requestFactory=CometRequest)
        d = self.comet.startService()

        def listen(_: Any) -> str:
            self.comet.bus.subscribe("**", self.root.counter)
            self.port = reactor.listenTCP(0, self.site, interface="127.0.0.1")
            self.base = "http://127.0.0.1:%d" % (self.port.getHost().port,)
            self.addCleanup(self._stopDemo)
            return self.base

        return d.addCallback(listen)

    @inlineCallbacks
    def _stopDemo(self) -> Any:
        yield self.port.stopListening()
        self.cutConnections()
        yield self.comet.stopService()

    def cutConnections(self) -> int:
        """
        Abort every open connection to the server, as a network failure
        would; return how many.
        """
        cut = 0
        for protocol in self.site.openProtocols:
            # Site wraps each HTTPChannel in a protocol that negotiates
            # HTTP/2; the transport is on the channel inside.
            channel = getattr(protocol, "_channel", protocol)
            transport = getattr(channel, "transport", None)
            if transport is not None and transport.connected:
                transport.abortConnection()
                cut += 1
        self.site.openProtocols = []
        return cut

    def hasTransport(self, name: str) -> bool:
        return name in self.comet.resource.transports

    def onServer(self, fn: Callable[..., Any], *args: Any) -> Any:
        """
        From the browser thread: run C{fn} on the reactor and return its
        result (waiting for a L{Deferred}).  Gives up after a minute
        rather than hang the suite if the reactor has stopped.
        """
        if threading.current_thread() is threading.main_thread():
            raise RuntimeError("onServer is for the browser thread")
        done = threading.Event()
        outcome: List[Any] = []

        def call() -> None:
            d = maybeDeferred(fn, *args)

            def finished(result: Any) -> None:
                outcome.append(result)
                done.set()

            d.addBoth(finished)

        reactor.callFromThread(call)
        if not done.wait(60):
            raise AssertionError("the server did not answer %r" % (fn,))
        result = outcome[0]
        if isinstance(result, Failure):
            result.raiseException()
        return result

    @inlineCallbacks
    def inBrowser(self, fn: Callable[[Browser], Any]) -> Any:
        thread = BrowserThread()
        screenshots = tempfile.mkdtemp(prefix="txcomet-screens-")
        try:
            browser = yield thread.run(Browser, screenshots)
        except BaseException:
            thread.stop()
            raise
        try:
            result = yield thread.run(fn, browser)
        except BaseException as e:
            paths = yield thread.run(browser.screenshotAll, self._testMethodName)
            if paths:
                e.args = tuple(e.args) + ("screenshots: " + ", ".join(paths),)
            raise
        else:
            shutil.rmtree(screenshots, ignore_errors=True)
        finally:
            yield thread.run(browser.close)
            thread.stop()
        return result


def waitUntil(check: Callable[[], Any], what: str, tries: int = 200, pause: float = 0.1) -> Any:
    """
    From the browser thread: call C{check} until it answers something true
    (returned), failing with C{what} after C{tries} calls.  This bounds a
    wait; it does not time anything.
    """
    import time

    for _ in range(tries):
        result = check()
        if result:
            return result
        time.sleep(pause)
    raise AssertionError("gave up waiting for " + what)
