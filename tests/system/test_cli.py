"""
The command line, C{python -m txcomet publish|subscribe}, run as a real
process against a real server, as the README shows it.
"""

import json
import os
import sys

from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.protocol import ProcessProtocol
from twisted.trial.unittest import TestCase


from tests.support import RealServerMixin

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Process(ProcessProtocol):
    """
    Collects a process's output; C{ended} fires with C{(status, out,
    err)}; C{lines} fires once stdout holds C{n} lines.
    """

    def __init__(self):
        self.out = b""
        self.err = b""
        self.ended = Deferred()
        self._lines = []

    def outReceived(self, data):
        self.out += data
        for n, d in list(self._lines):
            if self.out.count(b"\n") >= n:
                self._lines.remove((n, d))
                d.callback(self.out)

    def errReceived(self, data):
        self.err += data

    def lines(self, n):
        d = Deferred()
        self._lines.append((n, d))
        return d

    def processEnded(self, reason):
        self.ended.callback((reason.value.exitCode, self.out.decode("utf-8"), self.err.decode("utf-8")))


def run(*args, env=None):
    process = Process()
    environ = dict(os.environ, PYTHONPATH=ROOT)
    environ.pop("TXCOMET_PUBLISHER_SECRET", None)
    environ.pop("TXCOMET_API_KEY", None)
    environ.update(env or {})
    reactor.spawnProcess(process, sys.executable, [sys.executable, "-m", "txcomet"] + list(args), env=environ, path=ROOT)
    return process


class CommandLineTests(RealServerMixin, TestCase):
    timeout = 60

    @inlineCallbacks
    def test_subscribeAndPublish(self):
        """
        C{subscribe --count 2} prints the two events published with
        C{publish} (JSON data and plain text) as JSON lines, then leaves
        and exits 0; C{publish} prints the server's answer.
        """
        yield self.startServer(publisherSecret="s3cret")
        subscriber = run("subscribe", "news", "--url", self.url, "--count", "2", "--transport", "sse")
        # Wait for the subscription to be in place on the server.
        while not any(s.subscriptions for s in self.comet.hub.sessions.values()):
            yield Deferred.fromCoroutine(_sleep(0.05))
        first = yield run("publish", "news", '{"headline": "hello"}', "--url", self.url, "--secret", "s3cret").ended
        status, out, err = first
        self.assertEqual(status, 0, err)
        self.assertTrue(json.loads(out)["ok"])
        second = yield run("publish", "news", "plain words", "--url", self.url, env={"TXCOMET_PUBLISHER_SECRET": "s3cret"}).ended
        self.assertEqual(second[0], 0, second[2])
        status, out, err = yield subscriber.ended
        self.assertEqual(status, 0, err)
        events = [json.loads(line) for line in out.splitlines()]
        self.assertEqual([e["data"] for e in events], [{"headline": "hello"}, "plain words"])
        self.assertEqual(events[0]["id"], json.loads(first[1])["id"])
        # It left: no session remains.
        self.assertEqual(self.comet.hub.sessions, {})

    @inlineCallbacks
    def test_errors(self):
        """
        A refused publish prints the server's JSON error on stderr and
        exits 1; so does an unreachable server; a bad option exits 2.
        """
        yield self.startServer(publisherSecret="s3cret")
        status, out, err = yield run("publish", "news", "x", "--url", self.url).ended
        self.assertEqual(status, 1)
        self.assertEqual(json.loads(err)["error"], "forbidden")
        status, out, err = yield run("publish", "bad channel", "x", "--url", self.url, "--secret", "s3cret").ended
        self.assertEqual((status, json.loads(err)["error"]), (1, "invalid_channel"))
        status, out, err = yield run("subscribe", "news", "--transport", "pigeon", "--url", self.url).ended
        self.assertEqual(status, 2)
        self.assertIn("--transport", err)
        port = self.port.getHost().port
        yield self.port.stopListening()
        status, out, err = yield run("publish", "news", "x", "--url", "http://127.0.0.1:%d/comet" % (port,)).ended
        self.assertEqual((status, json.loads(err)["error"]), (1, "network"))

    @inlineCallbacks
    def test_api(self):
        """
        C{api METHOD --param NAME=VALUE} calls the server API with the key
        (from C{--key} or C{$TXCOMET_API_KEY}) and prints the result; a
        missing key and an unknown method print the JSON error and exit 1.
        """
        yield self.startServer(apiKey="k-42")
        status, out, err = yield run(
            "api", "publish", "--param", "channel=news", "--param", 'data={"n": 1}', "--url", self.url, "--key", "k-42"
        ).ended
        self.assertEqual(status, 0, err)
        eventId = json.loads(out)["id"]
        status, out, err = yield run(
            "api", "history", "-p", "channel=news", "-p", "order=newest", "--url", self.url, env={"TXCOMET_API_KEY": "k-42"}
        ).ended
        self.assertEqual(status, 0, err)
        self.assertEqual([(e["id"], e["data"]) for e in json.loads(out)["events"]], [(eventId, {"n": 1})])
        status, out, err = yield run("api", "info", "--url", self.url, "--key", "wrong").ended
        self.assertEqual((status, json.loads(err)["error"]), (1, "unauthorized"))
        status, out, err = yield run("api", "nope", "--url", self.url, "--key", "k-42").ended
        self.assertEqual((status, json.loads(err)["error"]), (1, "unknown_method"))
        status, out, err = yield run("api", "info", "--param", "novalue", "--url", self.url).ended
        self.assertEqual(status, 2)


async def _sleep(seconds):
    from twisted.internet.task import deferLater

    await deferLater(reactor, seconds, lambda: None)
