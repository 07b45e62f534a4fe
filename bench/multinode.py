"""
Two txcomet nodes on one Redis: cross-node latency and deliveries per CPU
second, beside one node on the in-memory bus under the same load.  Run
from the repository root (needs redis-server, and the SSE transport):

    /work/venv/bin/python bench/multinode.py --subscribers 2000 --messages 100 --latency 300

Every process is its own: a redis-server on a free port with no
persistence, and `twist txcomet --redis ...` per node.

- Latency: an SSE subscriber on node B, a publisher posting to node A
  (`POST /comet/publish/...` on a kept-alive connection), one message at a
  time; the time from sending the POST to the event's bytes arriving on B.
  The same with both on A, and on the in-memory bus, for comparison.
- Cost: SUBSCRIBERS SSE subscribers, half on each node; MESSAGES messages
  published on A one at a time, each waited for until every subscriber has
  it (so sockets are idle when an event arrives).  CPU is user+system time
  (from /proc) of the node processes, and of redis-server, over the
  publishing phase only.
"""

import argparse
import json
import os
import selectors
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from benchutil import freePort, cpuSeconds, readUntil

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MARKER = b"\ndata: "






def waitForPort(port: int, process: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        if process.poll() is not None:
            raise RuntimeError("%s exited" % (what,))
        try:
            socket.create_connection(("127.0.0.1", port)).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError("%s did not start" % (what,))
            time.sleep(0.05)


class Cluster:
    """
    A redis-server and NODES txcomet nodes on it (or one node on the
    in-memory bus with redis=False).
    """

    def __init__(self, nodes: int, redis: bool = True) -> None:
        self.directory = tempfile.mkdtemp(prefix="txcomet-bench-")
        self.processes = []
        self.redis = None
        env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
        extra = []
        if redis:
            redisPort = freePort()
            self.redis = subprocess.Popen(
                ["redis-server", "--port", str(redisPort), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--dir", self.directory, "--logfile", ""],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            waitForPort(redisPort, self.redis, "redis-server")
            extra = ["--redis", "redis://127.0.0.1:%d/0" % (redisPort,)]
        twist = os.path.join(os.path.dirname(sys.executable), "twist")
        self.ports = []
        for _ in range(nodes):
            port = freePort()
            process = subprocess.Popen(
                [twist, "txcomet", "--listen", "tcp:%d:interface=127.0.0.1:backlog=4096" % (port,),
                 "--heartbeat", "3600", "--queue-bytes", str(64 * 1024 * 1024)] + extra,
                cwd="/tmp", env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            self.processes.append(process)
            waitForPort(port, process, "twist txcomet")
            self.ports.append(port)

    def cpu(self):
        nodes = sum(cpuSeconds(p.pid) for p in self.processes)
        redis = cpuSeconds(self.redis.pid) if self.redis is not None else 0.0
        return nodes, redis

    def stop(self) -> None:
        for process in self.processes + ([self.redis] if self.redis else []):
            process.terminate()
        for process in self.processes + ([self.redis] if self.redis else []):
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.rmtree(self.directory, ignore_errors=True)


def openStream(port: int, channel: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(b"GET /comet/sse?channel=%s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % (channel.encode(),))
    return sock




class Publisher:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def send(self, channel: str, data: object) -> None:
        body = json.dumps(data).encode()
        self.sock.sendall(
            b"POST /comet/publish/%s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (channel.encode(), len(body), body)
        )

    def answer(self) -> None:
        readUntil(self.sock, b"}\n")


def latency(publishPort: int, listenPort: int, messages: int) -> list:
    stream = openStream(listenPort, "lat")
    readUntil(stream, b"\r\n\r\n")
    publisher = Publisher(publishPort)
    # The subscription is in place once a first message arrives.
    publisher.send("lat", "warm")
    readUntil(stream, b"warm")
    publisher.answer()
    samples = []
    for n in range(messages):
        marker = "m%06d" % (n,)
        started = time.perf_counter()
        publisher.send("lat", marker)
        readUntil(stream, marker.encode())
        samples.append(time.perf_counter() - started)
        publisher.answer()
    stream.close()
    publisher.sock.close()
    return samples


def cost(cluster: Cluster, subscribers: int, messages: int, size: int) -> dict:
    selector = selectors.DefaultSelector()
    counts = {}
    for i in range(subscribers):
        sock = openStream(cluster.ports[i % len(cluster.ports)], "bench")
        sock.setblocking(False)
        counts[sock] = 0
        selector.register(sock, selectors.EVENT_READ)
    tails = dict.fromkeys(counts, b"")
    ready = set()

    def pump(until, limit=120.0):
        deadline = time.monotonic() + limit
        while not until():
            if time.monotonic() > deadline:
                raise RuntimeError("subscribers stalled")
            for key, _ in selector.select(timeout=1):
                sock = key.fileobj
                try:
                    data = sock.recv(262144)
                except BlockingIOError:
                    continue
                joined = tails[sock] + data
                if sock not in ready and b"\r\n\r\n" in joined:
                    # The response starts once the subscription is in place.
                    ready.add(sock)
                counts[sock] += joined.count(MARKER)
                tails[sock] = joined[-(len(MARKER) - 1):]

    pump(lambda: len(ready) == len(counts))
    publisher = Publisher(cluster.ports[0])
    # Warm up: one event reaches every subscriber.
    publisher.send("bench", "warm")
    publisher.answer()
    pump(lambda: all(c >= 1 for c in counts.values()))
    base = dict(counts)
    payload = "x" * size
    nodes0, redis0 = cluster.cpu()
    started = time.monotonic()
    for n in range(1, messages + 1):
        publisher.send("bench", payload)
        publisher.answer()
        pump(lambda: all(counts[s] - base[s] >= n for s in counts))
    elapsed = time.monotonic() - started
    nodes1, redis1 = cluster.cpu()
    for sock in counts:
        sock.close()
    deliveries = subscribers * messages
    return {
        "deliveries": deliveries,
        "seconds": elapsed,
        "nodeCPU": nodes1 - nodes0,
        "redisCPU": redis1 - redis0,
    }


def percentile(samples: list, p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(p / 100.0 * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=2000)
    parser.add_argument("--messages", type=int, default=100)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--latency", type=int, default=300, help="messages for the latency runs")
    args = parser.parse_args()

    rows = []
    single = Cluster(1, redis=False)
    try:
        lat = latency(single.ports[0], single.ports[0], args.latency)
        c = cost(single, args.subscribers, args.messages, args.size)
        rows.append(("1 node, in-memory bus", lat, c))
    finally:
        single.stop()
    pair = Cluster(2, redis=True)
    try:
        same = latency(pair.ports[0], pair.ports[0], args.latency)
        cross = latency(pair.ports[0], pair.ports[1], args.latency)
        c = cost(pair, args.subscribers, args.messages, args.size)
        rows.append(("2 nodes + Redis, same node", same, None))
        rows.append(("2 nodes + Redis, cross-node", cross, c))
    finally:
        pair.stop()

    print("%d SSE subscribers, %d messages of %d bytes; latency over %d messages"
          % (args.subscribers, args.messages, args.size, args.latency))
    print("%-30s %9s %9s %12s %14s %14s" % ("", "p50 ms", "p99 ms", "node CPU s", "deliv/node-CPU-s", "deliv/all-CPU-s"))
    for name, lat, c in rows:
        p50 = statistics.median(lat) * 1000
        p99 = percentile(lat, 99) * 1000
        if c is None:
            print("%-30s %9.2f %9.2f" % (name, p50, p99))
        else:
            print("%-30s %9.2f %9.2f %12.2f %14.0f %14.0f" % (
                name, p50, p99, c["nodeCPU"], _per(c["deliveries"], c["nodeCPU"]),
                _per(c["deliveries"], c["nodeCPU"] + c["redisCPU"])))


def _per(count, seconds):
    # A run too short for /proc's clock ticks measures no CPU at all.
    return count / seconds if seconds else float("nan")


if __name__ == "__main__":
    main()
