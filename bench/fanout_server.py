"""
The server side of bench/fanout.py: a txcomet server on 127.0.0.1:PORT
whose streams write in one of three ways, to compare them.

    python bench/fanout_server.py PORT MODE

MODE is
    direct     txcomet as shipped: shared pre-framed bytes, straight to an
               idle socket (StreamWriter's fast path)
    transport  the same shared bytes, always through transport.write
    request    every write through twisted.web's Request.write
"""

import sys

from twisted.internet import reactor
from twisted.web.resource import Resource
from twisted.web.server import Site

from txcomet import Comet, CometConfig, CometRequest
from txcomet import _fastpath, _streaming


def useMode(mode: str) -> None:
    if mode == "direct":
        return
    if mode == "transport":
        original = _fastpath.StreamWriter.__init__

        def noDirect(self, request):
            original(self, request)
            self.direct = False

        _fastpath.StreamWriter.__init__ = noDirect
        return
    if mode == "request":

        def send(self, data, wire=None):
            if self.ended or not data:
                return
            self.request.write(data)
            self.written += len(data)

        _streaming.StreamingDataChannel.send = send
        return
    raise SystemExit("unknown mode %r" % (mode,))


def main() -> None:
    port, mode = int(sys.argv[1]), sys.argv[2]
    useMode(mode)
    comet = Comet(config=CometConfig(heartbeat=3600, queueBytes=64 * 1024 * 1024, maxSubscriptions=10))
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
