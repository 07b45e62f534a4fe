"""
The --redis option of the twistd plugin.
"""

import os

from twisted.python.usage import UsageError
from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import SynchronousTestCase, TestCase

import txcomet
from txcomet import InMemoryBus, RedisBus
from txcomet.tap import Options, makeService

from tests.support.redisserver import RedisServer, freePort


def parse(*args):
    options = Options()
    options.parseOptions(list(args))
    return options


class RedisOptionTests(SynchronousTestCase):
    def test_exported(self):
        """
        RedisBus is public.
        """
        self.assertIn("RedisBus", txcomet.__all__)

    def test_withoutRedisNothingChanges(self):
        """
        Without --redis (and no TXCOMET_REDIS) the server runs on an
        in-memory bus and needs no Redis.
        """
        self.patch(os, "environ", {})
        service = makeService(parse("--listen", "tcp:0"))
        comet = list(service)[0]
        self.assertIsInstance(comet.bus, InMemoryBus)

    def test_redisURL(self):
        """
        --redis makes a RedisBus from the URL, its options and --history.
        """
        options = parse("--history", "7", "--redis", "redis://127.0.0.1:1/2?prefix=app&history_age=60")
        bus = options["bus"]
        self.assertIsInstance(bus, RedisBus)
        self.assertEqual((bus.address.port, bus.address.db, bus.prefix, bus.historyAge, bus.historyLength),
                         (1, 2, "app", 60.0, 7))

    def test_environment(self):
        """
        TXCOMET_REDIS stands for --redis.
        """
        self.patch(os, "environ", {"TXCOMET_REDIS": "redis://127.0.0.1:1/0"})
        self.assertIsInstance(parse()["bus"], RedisBus)

    def test_badURLs(self):
        """
        A URL that is not Redis's, or has unknown options, is a usage error
        that says what is wrong.
        """
        for url, words in [
            ("http://127.0.0.1/0", "redis://"),
            ("redis://127.0.0.1/zero", "database"),
            ("redis://127.0.0.1/0?colour=red", "colour"),
        ]:
            error = self.assertRaises(UsageError, parse, "--redis", url)
            self.assertIn(words, str(error))

    def test_unreachableRedisStopsTheStart(self):
        """
        makeService checks that Redis answers; when it does not, the
        server exits with a message saying where and why.
        """
        port = freePort()
        error = self.assertRaises(
            SystemExit, makeService, parse("--listen", "tcp:0", "--redis", "redis://127.0.0.1:%d/0" % (port,))
        )
        self.assertIn("Cannot reach Redis at redis://127.0.0.1:%d/0" % (port,), str(error))
        self.assertIn("refused", str(error).lower())

    def test_refusedLogin(self):
        """
        A wrong password or database is reported as such.
        """
        server = RedisServer.forTest(self, extraArgs=["--requirepass", "pw"])
        error = self.assertRaises(SystemExit, makeService, parse("--redis", server.url))
        self.assertIn("NOAUTH", str(error))
        error = self.assertRaises(
            SystemExit, makeService, parse("--redis", "redis://:pw@127.0.0.1:%d/99" % (server.port,))
        )
        self.assertIn("out of range", str(error))
        service = makeService(parse("--listen", "tcp:0", "--redis", "redis://:pw@127.0.0.1:%d/1" % (server.port,)))
        self.assertIsInstance(list(service)[0].bus, RedisBus)


class ListenWhenReadyTests(TestCase):
    timeout = 30

    @inlineCallbacks
    def test_listensOnceTheBusIsReady(self):
        """
        With --redis, the ports open only once the bus is connected (so a
        node never answers before it can reach the other nodes), and the
        service stops cleanly.
        """
        server = RedisServer.forTest(self)
        portNumber = freePort()
        service = makeService(parse("--listen", "tcp:%d:interface=127.0.0.1" % (portNumber,), "--redis", server.url))
        comet = list(service)[0]
        service.startService()
        # The reactor has not run, so the bus cannot be connected yet.
        self.assertFalse(_accepts(portNumber))
        yield comet.whenReady()
        self.assertTrue(_accepts(portNumber))
        yield service.stopService()
        self.assertFalse(_accepts(portNumber))


def _accepts(port):
    """
    Whether something listens on 127.0.0.1:C{port} (a blocking connect,
    which the kernel answers without the reactor).
    """
    import socket

    s = socket.socket()
    try:
        s.connect(("127.0.0.1", port))
    except ConnectionRefusedError:
        return False
    finally:
        s.close()
    return True
