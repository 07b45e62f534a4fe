"""
The server side of bench/fanout.py: a txcomet server on 127.0.0.1:PORT
whose streams write in one of three ways, to compare them.

    python bench/fanout_server.py PORT MODE

MODE is
    direct     txcomet as shipped: shared pre-framed bytes straight to idle
               sockets (the direct path)
    transport  the same shared bytes, but every write of a stream's
               DirectWriter goes through transport.write (and so no stream
               ever finds its socket idle)
    request    no direct path: streams write through twisted.web's
               Request.write, as on a connection that is not plain HTTP/1.x
               over TCP (the session's buffered path, Request framing every
               chunk)
    auth       as direct, with connection tokens and a channel rules file
               in use (subscribers join with ?token=; see docs/auth.md):
               authorization is decided at join, so fan-out should cost
               the same as direct
"""

import os
import tempfile

import sys

from twisted.internet import reactor
from twisted.web.resource import Resource
from twisted.web.server import Site

from txcomet import Comet, CometConfig, CometRequest
from txcomet._fastpath import writer as _fastpath

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchutil import BENCH_SECRET  # noqa: E402


BENCH_RULES = """
[[channel]]
pattern = "bench"
subscribe = "authenticated"
"""


def useMode(mode: str) -> None:
    if mode in ("direct", "auth"):
        return
    if mode == "transport":

        def throughTransport(self, data):
            self.transport.write(data)
            self.spilled = True
            return True

        _fastpath.DirectWriter.write = throughTransport
        return
    if mode == "request":
        original = _fastpath.StreamWriter.__init__

        def throughRequest(self, request):
            original(self, request)
            self.transport = None
            self.direct = None

        _fastpath.StreamWriter.__init__ = throughRequest
        return
    raise SystemExit("unknown mode %r" % (mode,))


def main() -> None:
    port, mode = int(sys.argv[1]), sys.argv[2]
    useMode(mode)
    settings = {}
    if mode == "auth":
        rules = os.path.join(tempfile.mkdtemp(prefix="txcomet-bench-"), "rules.toml")
        with open(rules, "w") as f:
            f.write(BENCH_RULES)
        settings = dict(tokenSecret=BENCH_SECRET, rulesPath=rules)
    comet = Comet(config=CometConfig(heartbeat=3600, queueBytes=64 * 1024 * 1024, maxSubscriptions=10, **settings))
    root = Resource()
    root.putChild(b"comet", comet.resource)
    site = Site(root, requestFactory=CometRequest)
    site.noisy = False
    comet.startService()
    reactor.listenTCP(port, site, interface="127.0.0.1", backlog=4096)
    print("ready", flush=True)
    reactor.run()


if __name__ == "__main__":
    main()
