"""
A private C{redis-server} for a test: its own process on a free loopback
port, in a temporary directory, with no persistence, stopped in cleanup.
It never touches a Redis the machine may already run.

    server = RedisServer.forTest(self)      # started; stopped after the test
    bus = RedisBus(server.url)
    server.stop(); server.start()           # an outage, on the same port

C{redis-server} is the system's (C{/usr/bin/redis-server}, or the one on
C{PATH}); C{.ci/run} installs it when it is missing, so these tests run
rather than skip.
"""

import os
import shutil
import socket
import subprocess
import tempfile
import time
from typing import Any, List, Optional


def findRedisServer() -> str:
    """
    The path of the C{redis-server} binary, or raise L{RuntimeError}.
    """
    for candidate in (shutil.which("redis-server"), "/usr/bin/redis-server", "/usr/sbin/redis-server"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise RuntimeError("redis-server is not installed (apt-get install redis-server)")


def freePort() -> int:
    """
    A TCP port on 127.0.0.1 that nothing listens on right now.
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def waitForPort(port: int, process: Any = None, seconds: float = 30.0) -> None:
    """
    Wait (blocking) until something listens on 127.0.0.1:C{port}; fail if
    C{process} (a L{subprocess.Popen}) ends first or C{seconds} pass.
    """
    deadline = time.time() + seconds
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            if time.time() > deadline or process is not None and process.poll() is not None:
                raise AssertionError("nothing listens on %d" % (port,))
            time.sleep(0.1)


class RedisServer:
    """
    One C{redis-server} process on 127.0.0.1.

    @ivar port: its port, kept across L{stop} and L{start}.
    @ivar url: C{redis://127.0.0.1:<port>/0}.
    """

    #: Seconds to wait for the server to answer PING after starting.
    startTimeout = 10.0

    def __init__(self, port: Optional[int] = None, extraArgs: List[str] = ()) -> None:
        self.binary = findRedisServer()
        self.port = port if port is not None else freePort()
        self.directory = tempfile.mkdtemp(prefix="txcomet-redis-")
        self.extraArgs = list(extraArgs)
        self.process: Optional[subprocess.Popen] = None

    @classmethod
    def forTest(cls, testCase: Any, **kwargs: Any) -> "RedisServer":
        """
        Start a server for C{testCase} and stop it (and remove its
        directory) in the test's cleanup.
        """
        server = cls(**kwargs)
        testCase.addCleanup(server.destroy)
        server.start()
        return server

    @property
    def url(self) -> str:
        return "redis://127.0.0.1:%d/0" % (self.port,)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        """
        Start the server and wait until it answers PING.
        """
        if self.running:
            return
        logPath = os.path.join(self.directory, "redis.log")
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", self.directory,
                "--logfile", logPath,
                "--daemonize", "no",
            ]
            + self.extraArgs,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + self.startTimeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError("redis-server exited at start: %s" % (self._log(),))
            if self.ping():
                return
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("redis-server did not answer in time: %s" % (self._log(),))
            time.sleep(0.005)

    def _log(self) -> str:
        try:
            with open(os.path.join(self.directory, "redis.log")) as f:
                return f.read()[-2000:]
        except OSError:
            return "(no log)"

    def ping(self) -> bool:
        """
        Whether the server answers PING now.
        """
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                reply = s.recv(64)
                return reply.startswith(b"+PONG") or reply.startswith(b"-NOAUTH")
        except OSError:
            return False

    def command(self, *args: str) -> bytes:
        """
        Send one command and return the raw first reply (for tests that
        inspect Redis directly).
        """
        payload = b"*%d\r\n" % (len(args),) + b"".join(
            b"$%d\r\n%s\r\n" % (len(a.encode()), a.encode()) for a in args
        )
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            s.sendall(payload)
            return s.recv(65536)

    def stop(self) -> None:
        """
        Stop the server (SIGTERM, then SIGKILL if it lingers) and wait for it.
        """
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def destroy(self) -> None:
        """
        Stop the server and remove its directory.
        """
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)
