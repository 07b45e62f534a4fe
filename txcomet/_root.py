"""
The page at / when no static directory is given: what is running and where.
"""

import html

from twisted.web.resource import Resource
from twisted.web.server import Request


class IndexPage(Resource):
    """
    Says what runs where, with copyable curl commands.
    """

    def __init__(self, prefix: str, comet) -> None:
        super().__init__()
        self.prefix = prefix
        self.comet = comet

    def getChild(self, path: bytes, request: Request) -> Resource:
        if path == b"":
            return self
        return Resource.getChild(self, path, request)

    def render_GET(self, request: Request) -> bytes:
        from . import __version__

        p = html.escape(self.prefix)
        transports = ", ".join(
            '<a href="%s/%s?channel=demo"><code>%s</code></a>' % (p, t, t)
            for t in self.comet.resource.transports
        )
        request.setHeader(b"Content-Type", b"text/html; charset=utf-8")
        page = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>txcomet</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:48em;margin:2em auto;padding:0 1em}}
code,pre{{background:#f3f3f3;padding:0 .2em}} pre{{padding:.6em;overflow:auto}}</style></head>
<body><h1>txcomet {version} is running</h1>
<p>Bus: {bus}. Heartbeat every {hb:g} s; sessions expire {to:g} s after their data channel goes.</p>
<ul>
<li>Control channel: <code>POST {p}/control</code> (JSON <code>{{"op": ...}}</code>), or <code>GET {p}/control?op=...&amp;callback=fn</code></li>
<li>Publish API: <code>POST {p}/publish/&lt;channel&gt;</code></li>
<li>Data channels: {transports}</li>
</ul>
<p>Try it:</p>
<pre>curl -N '{origin}{p}/longpoll?channel=demo'
curl -d '{{"hello": "world"}}' -H 'Content-Type: application/json' {origin}{p}/publish/demo</pre>
</body></html>""".format(
            version=html.escape(__version__),
            bus=html.escape(type(self.comet.bus).__name__),
            hb=self.comet.config.heartbeat,
            to=self.comet.config.sessionTimeout,
            p=p,
            transports=transports,
            origin=html.escape("http://" + (request.getHeader("Host") or "localhost:8080")),
        )
        return page.encode("utf-8")
