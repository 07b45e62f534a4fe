"""
Small helpers shared by the bench scripts (run as `python bench/NAME.py`,
so this directory is on sys.path).
"""

import os
import socket


def freePort() -> int:
    """
    A loopback TCP port that was free a moment ago.
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpuSeconds(pid: int) -> float:
    """
    User plus system CPU seconds of process C{pid}, from /proc.
    """
    with open("/proc/%d/stat" % (pid,)) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def readUntil(sock: socket.socket, marker: bytes, buffer: bytes = b"") -> bytes:
    """
    Read from C{sock} until C{marker} is in what was read; return it all.
    """
    while marker not in buffer:
        data = sock.recv(65536)
        if not data:
            raise RuntimeError("connection closed after %r" % (buffer[-300:],))
        buffer += data
    return buffer


#: The connection token secret of the fan-out benchmark's auth mode
#: (fanout_server.py checks tokens with it; fanout.py signs them).
BENCH_SECRET = "txcomet-bench-secret-" + "x" * 43
