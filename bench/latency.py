"""
Publish-to-receive latency on each data channel transport: the time from
sending C{POST /comet/publish/<channel>} to the event's bytes arriving on
an open join-listen response.  Run from the repository root:

    /work/venv/bin/python bench/latency.py --messages 200

The server is C{twist txcomet} in its own process, as a user runs it.
"""

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import time

from benchutil import freePort, readUntil

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
STREAMS = ["sse", "xhr-stream", "iframe", "multipart"]
ONE_SHOT = ["jsonp", "longpoll"]




def request(port: int, path: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(b"GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % (path.encode(),))
    return sock




def position(port: int) -> str:
    """
    The bus position now, from a short poll's C{X-Comet-Position}.
    """
    sock = request(port, "/comet/poll?channel=lat")
    head = readUntil(sock, b"\r\n\r\n").split(b"\r\n\r\n")[0]
    sock.close()
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.lower() == b"x-comet-position":
            return value.strip().decode()
    raise RuntimeError("no position")


def measure(port: int, transport: str, messages: int) -> list:
    publisher = socket.create_connection(("127.0.0.1", port))
    publisher.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    samples = []
    stream = None
    # One-shot clients ask again with the id of the last event they got,
    # so an event published before a request is subscribed still comes.
    last = position(port)
    for n in range(messages):
        if stream is None or transport in ONE_SHOT:
            if stream is not None:
                stream.close()
            path = "/comet/%s?channel=lat" % (transport,)
            if transport in ONE_SHOT:
                path += "&last=" + last
            stream = request(port, path)
            if transport in STREAMS:
                readUntil(stream, b"\r\n\r\n")
        marker = ("m%06d" % (n,)).encode()
        body = json.dumps(marker.decode()).encode()
        started = time.perf_counter()
        publisher.sendall(
            b"POST /comet/publish/lat HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        readUntil(stream, marker)
        samples.append(time.perf_counter() - started)
        answer = readUntil(publisher, b"}\n")
        last = re.search(rb'"id":"([^"]+)"', answer).group(1).decode()
    stream.close()
    publisher.close()
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=200)
    args = parser.parse_args()
    port = freePort()
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    twist = os.path.join(os.path.dirname(sys.executable), "twist")
    server = subprocess.Popen(
        [twist, "txcomet", "--listen", "tcp:%d:interface=127.0.0.1" % (port,)],
        cwd="/tmp",
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for attempt in range(100):
            try:
                socket.create_connection(("127.0.0.1", port)).close()
                break
            except OSError:
                time.sleep(0.1)
        for transport in STREAMS + ONE_SHOT:
            samples = sorted(measure(port, transport, args.messages))
            print(
                json.dumps(
                    {
                        "transport": transport,
                        "messages": len(samples),
                        "median_ms": round(statistics.median(samples) * 1000, 2),
                        "p99_ms": round(samples[int(len(samples) * 0.99) - 1] * 1000, 2),
                        "max_ms": round(samples[-1] * 1000, 2),
                    }
                ),
                flush=True,
            )
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
