# -*- test-case-name: tests.node.test_auth_options,tests.demo.test_demo,tests.system.test_browser -*-
"""
The page at C{/} of C{twist txcomet}: the chat demo, and below it what runs
where, with copyable commands.
"""

import html
import os
from typing import Any, Optional

from twisted.web.resource import Resource
from twisted.web.server import Request

from txcomet._demo.chart import ChartStream, RateCounter
from txcomet._server.static import STATIC, staticFile
from txcomet._transports.http import NotFound

_TEMPLATE_CACHE: dict = {}

_ACCESS_OPEN = (
    "<strong>This server is open:</strong> with no channel rules, tokens or hooks configured,"
    " anyone who reaches it may subscribe to any channel (<code>**</code> reads them all) and"
    " publish. See <code>--config</code> and <code>--token-secret</code> in docs/auth.md."
)
_ACCESS_CLOSED = (
    "Access is controlled: tokens, channel rules or hooks decide who may subscribe and publish;"
    " what no rule allows is refused."
)


def _template() -> str:
    path = os.path.join(STATIC, "index.html")
    stamp = os.stat(path).st_mtime
    cached = _TEMPLATE_CACHE.get(path)
    if cached is None or cached[0] != stamp:
        with open(path, encoding="utf-8") as f:
            cached = _TEMPLATE_CACHE[path] = (stamp, f.read())
    return cached[1]


class _Folder(Resource):
    """
    A folder of resources whose unknown children are JSON 404s.
    """

    def __init__(self, config: Any) -> None:
        super().__init__()
        self.config = config

    def getChild(self, path: bytes, request: Request) -> Resource:
        return NotFound(self.config)


class IndexPage(Resource):
    """
    The page at C{/}: the chat demo, and below it what runs where.  Its
    files are under C{/demo/}, the chart stream at C{/demo/chart}.
    """

    def __init__(self, prefix: str, comet: Any, counter: Optional[RateCounter] = None, clock: Any = None) -> None:
        super().__init__()
        self.prefix = prefix
        self.comet = comet
        if clock is None:
            clock = comet.hub.clock
        if counter is None:
            counter = RateCounter(clock)
        self.counter = counter
        demo = _Folder(comet.config)
        for name in ("demo.js", "demo.css", "txcomet.js", "txcomet.mjs"):
            demo.putChild(name.encode("ascii"), staticFile(name, comet.config))
        self.chart = ChartStream(counter, clock)
        demo.putChild(b"chart", self.chart)
        self.putChild(b"demo", demo)

    def getChild(self, path: bytes, request: Request) -> Resource:
        if path == b"":
            return self
        return Resource.getChild(self, path, request)

    def render_GET(self, request: Request) -> bytes:
        from txcomet._version import __version__

        p = html.escape(self.prefix)
        config = self.comet.config
        transports = ", ".join(
            '<a href="%s/%s?channel=demo"><code>%s</code></a>' % (p, t, t)
            for t in self.comet.resource.transports
        )
        origin = html.escape("http://" + (request.getHeader("Host") or "localhost:8080"))
        page = _template()
        for key, value in [
            ("@PREFIX@", p),
            ("@VERSION@", html.escape(__version__)),
            ("@BUS@", html.escape(type(self.comet.bus).__name__)),
            ("@HEARTBEAT@", "%g" % (config.heartbeat,)),
            ("@TIMEOUT@", "%g" % (config.sessionTimeout,)),
            ("@TRANSPORTS@", transports),
            ("@ORIGIN@", origin),
            ("@ACCESS@", _ACCESS_OPEN if config.isOpen else _ACCESS_CLOSED),
        ]:
            page = page.replace(key, value)
        request.setHeader(b"Content-Type", b"text/html; charset=utf-8")
        request.setHeader(b"Cache-Control", b"no-cache")
        return page.encode("utf-8")
