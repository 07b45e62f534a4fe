"""
Fan-out cost: CPU seconds the server spends delivering each published
event to many SSE subscribers, for each way of writing (see
bench/fanout_server.py).  Run from the repository root:

    /work/venv/bin/python bench/fanout.py --subscribers 5000 --messages 100

The server runs in its own process; this one holds the subscribers (raw
non-blocking sockets) and publishes through the HTTP publish API, one
message at a time, waiting until every subscriber has it, so that the
server's sockets are idle when an event arrives (the common case the fast
path is for).  The figure is the server process's user+system CPU time
(from /proc) over the publishing phase only, divided by the deliveries.
"""

import argparse
import http.client
import json
import os
import selectors
import socket
import subprocess
import sys
import time

from benchutil import freePort, cpuSeconds

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MARKER = b"\ndata: "






class Subscriber:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.count = 0
        self.tail = b""
        self.ready = False

    def received(self, data: bytes) -> None:
        joined = self.tail + data
        if not self.ready and b"\r\n\r\n" in joined:
            self.ready = True
        self.count += joined.count(MARKER)
        self.tail = joined[-(len(MARKER) - 1) :]


def run(mode: str, subscribers: int, messages: int, size: int) -> dict:
    port = freePort()
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    server = subprocess.Popen(
        [sys.executable, os.path.join(HERE, "fanout_server.py"), str(port), mode],
        stdout=subprocess.PIPE,
        env=env,
    )
    try:
        assert server.stdout.readline().strip() == b"ready"
        selector = selectors.DefaultSelector()
        subs = []
        if mode == "auth":
            import jwt

            from benchutil import BENCH_SECRET

            # One token per subscriber, as real clients would have.
            tokens = [
                jwt.encode({"sub": "user%d" % i, "exp": time.time() + 3600}, BENCH_SECRET, algorithm="HS256")
                for i in range(subscribers)
            ]
        request = b"GET /comet/sse?channel=bench HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"

        def pump(until, limit=60.0):
            deadline = time.monotonic() + limit
            while not until():
                if time.monotonic() > deadline:
                    raise RuntimeError("subscribers stalled")
                for key, _ in selector.select(timeout=1):
                    sub = key.data
                    try:
                        data = sub.sock.recv(65536)
                    except BlockingIOError:
                        continue
                    if not data:
                        raise RuntimeError("server closed a subscriber")
                    sub.received(data)

        for start in range(0, subscribers, 500):
            batch = []
            for i in range(start, min(start + 500, subscribers)):
                sock = socket.create_connection(("127.0.0.1", port))
                if mode == "auth":
                    sock.sendall(b"GET /comet/sse?channel=bench&token=%s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % (tokens[i].encode(),))
                else:
                    sock.sendall(request)
                sock.setblocking(False)
                sub = Subscriber(sock)
                selector.register(sock, selectors.EVENT_READ, sub)
                batch.append(sub)
            subs.extend(batch)
            pump(lambda: all(s.ready for s in batch))
        publisher = http.client.HTTPConnection("127.0.0.1", port)
        payload = json.dumps("x" * size).encode()
        before = cpuSeconds(server.pid)
        started = time.monotonic()
        for n in range(1, messages + 1):
            publisher.request("POST", "/comet/publish/bench", payload, {"Content-Type": "application/json"})
            reply = publisher.getresponse()
            reply.read()
            assert reply.status == 200, reply.status
            pump(lambda: all(s.count >= n for s in subs))
        elapsed = time.monotonic() - started
        cpu = cpuSeconds(server.pid) - before
        assert all(s.count == messages for s in subs)
        deliveries = subscribers * messages
        for sub in subs:
            sub.sock.close()
        return {
            "mode": mode,
            "subscribers": subscribers,
            "messages": messages,
            "deliveries": deliveries,
            "server_cpu_s": round(cpu, 2),
            "us_per_delivery": round(cpu / deliveries * 1e6, 2),
            "wall_s": round(elapsed, 1),
        }
    finally:
        server.kill()
        server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=2000)
    parser.add_argument("--messages", type=int, default=100)
    parser.add_argument("--size", type=int, default=100, help="bytes of data per message")
    parser.add_argument("--modes", default="direct,transport,request")
    args = parser.parse_args()
    for mode in args.modes.split(","):
        print(json.dumps(run(mode, args.subscribers, args.messages, args.size)), flush=True)


if __name__ == "__main__":
    main()
