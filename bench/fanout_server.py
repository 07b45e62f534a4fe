"""
The server side of bench/fanout.py: a txcomet server on 127.0.0.1:PORT
whose streams write in one of three ways, to compare them.

    python bench/fanout_server.py PORT MODE

MODE is
    direct     txcomet as shipped: shared pre-framed bytes straight to idle
               sockets (the direct path)
    transport  the same shared bytes, but every write of a stream goes
               through transport.write (and so no stream ever finds its
               socket idle)
    request    no direct path: streams write through twisted.web's
               Request.write, as on a connection that is not plain HTTP/1.x
               over TCP (the session's buffered path, Request framing every
               chunk)
    auth       as direct, with connection tokens and a channel rules file
               in use (subscribers join with ?token=; see docs/auth.md):
               authorization is decided at join, so fan-out should cost
               the same as direct

(setStreamWriteMode in txcomet/_fastpath/writer.py is the seam.)
"""

import os
import sys
import tempfile

from twisted.internet import reactor
from twisted.web.resource import Resource
from twisted.web.server import Site

from txcomet import Comet, CometConfig, CometRequest
from txcomet._fastpath.writer import setStreamWriteMode

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchutil import BENCH_SECRET  # noqa: E402

BENCH_RULES = """
[[channel]]
pattern = "bench"
subscribe = "authenticated"
"""


def main() -> None:
    port, mode = int(sys.argv[1]), sys.argv[2]
    settings = {}
    if mode == "auth":
        rules = os.path.join(tempfile.mkdtemp(prefix="txcomet-bench-"), "rules.toml")
        with open(rules, "w") as f:
            f.write(BENCH_RULES)
        settings = dict(tokenSecret=BENCH_SECRET, rulesPath=rules)
        mode = "direct"
    try:
        setStreamWriteMode(mode)
    except ValueError as e:
        raise SystemExit(str(e))
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
