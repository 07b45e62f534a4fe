"""
WebSocket fan-out over real loopback sockets: the server's CPU time to
deliver events to many WebSocket subscribers, by three routes.

  txcomet    the transport as shipped: one frame per event, the same bytes
             to every connection, written through to the socket when the
             transport has nothing buffered
  buffered   the same frame, through transport.write
  prepared   Autobahn's prepareMessage once per event, sendPreparedMessage
             per connection
  message    Autobahn's sendMessage per connection

The subscribers live in a child process (raw sockets, one selector loop)
that only reads; the server is this process, on the real reactor.  For
each route the server publishes the events a few per reactor turn, then a
marker; the child says when every socket has seen the marker.  Reported:
server CPU seconds (user + system) per route, and per delivery.

Usage: python bench/ws_fanout.py [--subscribers 2000] [--events 200]
       [--size 100] [--rounds 3] [--per-turn 1]
Run from the repository root.
"""

import argparse
import base64
import os
import resource
import selectors
import socket
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

MARKER = b'"fanout-marker"'


def client(port, count):
    """
    The child: open C{count} WebSockets, then read; print C{done N} each
    time every socket has seen the marker (N: bytes read since the last).
    """
    selector = selectors.DefaultSelector()
    sockets = []
    for i in range(count):
        s = socket.create_connection(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16))
        s.sendall(b"GET /comet/ws?channel=bench HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                  b"Connection: Upgrade\r\nSec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:
            head += s.recv(4096)
        assert head.startswith(b"HTTP/1.1 101"), head
        s.setblocking(False)
        sockets.append(s)
        selector.register(s, selectors.EVENT_READ, i)
    print("ready", flush=True)
    tails = [b""] * count
    seen = [False] * count
    waiting = count
    total = 0
    while True:
        for key, _ in selector.select():
            i = key.data
            data = key.fileobj.recv(262144)
            if not data:
                return
            total += len(data)
            if not seen[i]:
                window = tails[i] + data
                if MARKER in window:
                    seen[i] = True
                    waiting -= 1
                tails[i] = window[-len(MARKER):]
            if waiting == 0:
                print("done %d" % (total,), flush=True)
                seen = [False] * count
                tails = [b""] * count
                waiting = count
                total = 0


def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def server(options):
    from autobahn.websocket.protocol import PreparedMessage
    from twisted.internet import reactor, threads
    from twisted.internet.defer import inlineCallbacks
    from twisted.internet.task import deferLater
    from twisted.web.resource import Resource
    from twisted.web.server import Site

    from txcomet import Comet, CometConfig, CometRequest
    from txcomet._transports.websocket import FRAMING, CometWebSocketProtocol

    shipped = CometWebSocketProtocol.writeEvents

    class PreparedFraming:
        name = "bench-prepared"

        def frameEvent(self, event):
            return PreparedMessage(event.json, False, False, False)

    prepared = PreparedFraming()

    def writePrepared(self, events):
        for event in events:
            self.sendPreparedMessage(event.framed(prepared))

    def writeMessage(self, events):
        for event in events:
            self.sendMessage(event.json)

    def writeBuffered(self, events):
        if len(events) == 1:
            self.transport.write(events[0].framed(FRAMING))
        else:
            self.transport.write(b"".join([e.framed(FRAMING) for e in events]))

    routes = {"txcomet": shipped, "buffered": writeBuffered, "prepared": writePrepared, "message": writeMessage}
    comet = Comet(config=CometConfig(queueMessages=10 ** 6, queueBytes=2 ** 31, heartbeat=3600))
    root = Resource()
    root.putChild(b"comet", comet.resource)
    port = reactor.listenTCP(0, Site(root, requestFactory=CometRequest), interface="127.0.0.1", backlog=4096)
    child = subprocess.Popen(
        [sys.executable, __file__, "--client", str(port.getHost().port), str(options.subscribers)],
        stdout=subprocess.PIPE,
    )
    payload = {"text": "x" * max(0, options.size - 60)}
    results = {route: [] for route in routes}

    @inlineCallbacks
    def run():
        line = yield threads.deferToThread(child.stdout.readline)
        assert line.strip() == b"ready", line
        while len(comet.hub.sessions) < options.subscribers:
            yield deferLater(reactor, 0.05, lambda: None)
        for _ in range(options.rounds):
            for route, write in routes.items():
                CometWebSocketProtocol.writeEvents = write
                done = threads.deferToThread(child.stdout.readline)
                start = cpu()
                for n in range(options.events):
                    comet.publish("bench", payload)
                    if n % options.per_turn == options.per_turn - 1:
                        yield deferLater(reactor, 0, lambda: None)
                comet.publish("bench", "fanout-marker")
                line = yield done
                results[route].append(cpu() - start)
                assert line.startswith(b"done"), line
        CometWebSocketProtocol.writeEvents = shipped
        child.kill()
        reactor.stop()

    d = run()
    d.addErrback(lambda f: (f.printTraceback(), child.kill(), reactor.stop()))
    reactor.run()
    deliveries = (options.events + 1) * options.subscribers
    print("%d subscribers, %d events of ~%d bytes, %d per reactor turn, %d rounds: server CPU seconds (median)"
          % (options.subscribers, options.events, options.size, options.per_turn, options.rounds))
    base = statistics.median(results["txcomet"])
    for route, values in results.items():
        median = statistics.median(values)
        print("  %-9s %6.3f s  %5.2f us/delivery  x%.2f of txcomet"
              % (route, median, median / deliveries * 1e6, median / base))


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--client":
        client(int(sys.argv[2]), int(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--subscribers", type=int, default=2000)
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--per-turn", type=int, default=1, help="events published per reactor turn")
    server(parser.parse_args())


if __name__ == "__main__":
    main()
