"""
Unchanged npm Bayeux clients (Faye, CometD) run by Node for the system
tests: L{ensureNodeModules} installs them into C{tests/system/node/} when
missing (skipping the tests only when npm itself is absent), and
L{NodeDriver} runs C{driver.mjs}, sending it commands and waiting for
what the client reports.
"""

import json
import os
import shutil
import subprocess
from typing import Any, Callable, List, Optional

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.protocol import ProcessProtocol
from twisted.trial.unittest import SkipTest

NODE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "node")

_installed: Optional[str] = None


def ensureNodeModules() -> str:
    """
    The path of the C{node} binary, after C{npm install} in L{NODE_DIR} if
    its C{node_modules} is missing.  Raise L{SkipTest} when node or npm is
    not installed.
    """
    global _installed
    if _installed is not None:
        return _installed
    node = shutil.which("node")
    npm = shutil.which("npm")
    if node is None or npm is None:
        raise SkipTest("node and npm are needed to run the npm Bayeux clients (.ci/run installs them)")
    packages = ("faye", "cometd", "cometd-nodejs-client")
    if not all(os.path.isdir(os.path.join(NODE_DIR, "node_modules", name)) for name in packages):
        subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=NODE_DIR,
            check=True,
            timeout=600,
        )
    _installed = node
    return node


class NodeDriver(ProcessProtocol):
    """
    One C{driver.mjs} process: L{send} writes a command, L{waitFor} fires
    with the first report (a decoded JSON line) matching a predicate, and
    L{seen} holds every report so far.
    """

    def __init__(self, lib: str, url: str, transport: str, env: Optional[dict] = None) -> None:
        self.lib = lib
        self.seen: List[Any] = []
        self.stderr = b""
        self._buffer = b""
        self._waiters: List[Any] = []
        self.ended = Deferred()
        node = ensureNodeModules()
        environment = dict(os.environ)
        environment.update(env or {})
        reactor.spawnProcess(
            self,
            node,
            [node, os.path.join(NODE_DIR, "driver.mjs"), lib, url, transport],
            env=environment,
            path=NODE_DIR,
        )

    def outReceived(self, data: bytes) -> None:
        self._buffer += data
        while b"\n" in self._buffer:
            line, self._buffer = self._buffer.split(b"\n", 1)
            try:
                report = json.loads(line)
            except ValueError:
                report = {"text": line.decode("utf-8", "replace")}
            self.seen.append(report)
            self._check()

    def errReceived(self, data: bytes) -> None:
        self.stderr += data

    def processEnded(self, reason: Any) -> None:
        self.ended.callback(None)
        for predicate, d, call in self._waiters:
            call.cancel()
            d.errback(AssertionError("%s ended; it reported %r; stderr %r" % (self.lib, self.seen, self.stderr[-2000:])))
        self._waiters = []

    def _check(self) -> None:
        for waiter in list(self._waiters):
            predicate, d, call, start = waiter
            for report in self.seen[start:]:
                if predicate(report):
                    self._waiters.remove(waiter)
                    call.cancel()
                    d.callback(report)
                    break

    def send(self, **command: Any) -> None:
        self.transport.write(json.dumps(command).encode("utf-8") + b"\n")

    def waitFor(self, predicate: Callable[[Any], bool], timeout: float = 20.0, since: int = 0) -> Deferred:
        """
        A L{Deferred} firing with the first report from index C{since}
        on that matches C{predicate}; failing after C{timeout} seconds.
        """
        d: Deferred = Deferred()

        def expired() -> None:
            for waiter in self._waiters:
                if waiter[1] is d:
                    self._waiters.remove(waiter)
                    break
            d.errback(AssertionError("%s: no report matched in %ss; reports %r; stderr %r" % (
                self.lib, timeout, self.seen, self.stderr[-2000:])))

        call = reactor.callLater(timeout, expired)
        self._waiters.append((predicate, d, call, since))
        self._check()
        return d

    def mark(self) -> int:
        """
        The index of the next report (for L{waitFor}'s C{since}).
        """
        return len(self.seen)

    def messages(self, since: int = 0) -> List[Any]:
        """
        The reports of messages received, from index C{since}.
        """
        return [r for r in self.seen[since:] if "message" in r]

    def stop(self) -> Deferred:
        """
        End the process and wait for it.
        """
        if not self.ended.called:
            try:
                self.transport.signalProcess("KILL")
            except Exception:
                pass
        return self.ended
