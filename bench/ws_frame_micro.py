"""
Fan-out cost per WebSocket delivery, in process, transports discarding
what they are given: how much the server spends to hand one event to one
subscriber's transport, by four routes.

  txcomet    CometWebSocketProtocol.writeEvents: the frame built once per
             event (event.framed), the same bytes to each connection, written
             at the end of the turn (one event per turn here)
  prepared   Autobahn's factory.prepareMessage once per event, then
             sendPreparedMessage per subscriber
  message    Autobahn's sendMessage per subscriber (frames it each time)
  raw        transport.write of a ready frame: the floor
  deflate    the shipped transport on connections that negotiated
             permessage-deflate (--ws-compression): compressed per connection

Usage: python bench/ws_frame_micro.py [--subscribers 1000] [--events 200]
       [--size 100] [--rounds 7]

Reports the median over rounds of microseconds per delivery (process CPU
time) and each route's ratio to txcomet.  Run from the repository root.
"""

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from txcomet._model.event import Event  # noqa: E402
from txcomet._transports.wscommon import FRAMING  # noqa: E402

from tests.support.wssupport import MemoryWebSocket, makeSite  # noqa: E402


class NullTransport:
    """
    Takes writes and drops them (no socket, no buffer): what is measured
    is the Python work before the bytes reach a transport.
    """

    connected = True
    disconnecting = False

    def write(self, data):
        pass

    def writeSequence(self, data):
        pass

    def registerProducer(self, producer, streaming):
        pass

    def unregisterProducer(self):
        pass


def connections(count, compression=False):
    site = makeSite(webSocketCompression=compression)
    headers = {"Sec-WebSocket-Extensions": "permessage-deflate"} if compression else None
    protocols = []
    for _ in range(count):
        ws = MemoryWebSocket(*site).open("/comet/ws?channel=bench", headers)
        protocol = ws.protocol
        assert (protocol._perMessageCompress is not None) == compression
        protocol.transport = NullTransport()
        protocols.append(protocol)
    return site, protocols


def measure(route, protocols, factory, events, size):
    payload = {"text": "x" * max(0, size - 60)}
    made = [Event("bench", payload, "e", i) for i in range(events)]
    start = time.process_time()
    if route in ("txcomet", "deflate"):
        turn = factory.turn
        for event in made:
            batch = [event]
            for protocol in protocols:
                protocol.writeEvents(batch)
            turn.end()  # the end of the reactor turn: each connection writes
    elif route == "prepared":
        for event in made:
            prepared = factory.prepareMessage(event.json)
            for protocol in protocols:
                protocol.sendPreparedMessage(prepared)
    elif route == "message":
        for event in made:
            payload = event.json
            for protocol in protocols:
                protocol.sendMessage(payload)
    elif route == "raw":
        for event in made:
            frame = event.framed(FRAMING)
            for protocol in protocols:
                protocol.transport.write(frame)
    elapsed = time.process_time() - start
    return elapsed / (events * len(protocols)) * 1e6


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--size", type=int, default=100, help="approximate envelope size in bytes")
    parser.add_argument("--rounds", type=int, default=7)
    options = parser.parse_args()
    site, protocols = connections(options.subscribers)
    factory = site[0].resource.children[b"ws"].factory
    compressed, compressedProtocols = connections(options.subscribers, compression=True)
    compressedFactory = compressed[0].resource.children[b"ws"].factory
    routes = ["txcomet", "prepared", "message", "raw", "deflate"]
    results = {route: [] for route in routes}
    for _ in range(options.rounds):
        for route in routes:
            if route == "deflate":
                value = measure(route, compressedProtocols, compressedFactory, options.events, options.size)
            else:
                value = measure(route, protocols, factory, options.events, options.size)
            results[route].append(value)
    envelope = len(Event("bench", {"text": "x" * max(0, options.size - 60)}, "e", 1).json)
    print("%d subscribers, %d events of %d bytes, %d rounds (median us of CPU per delivery)"
          % (options.subscribers, options.events, envelope, options.rounds))
    base = statistics.median(results["txcomet"])
    for route in routes:
        median = statistics.median(results[route])
        print("  %-9s %7.3f us   x%.2f of txcomet" % (route, median, median / base))


if __name__ == "__main__":
    main()
