"""
The twistd plugin and its options.
"""

import os

from twisted.application.service import IService, IServiceMaker
from twisted.plugin import getPlugins
from twisted.python.usage import UsageError
from twisted.trial.unittest import SynchronousTestCase

from txcomet import Comet
from txcomet.tap import Options, makeRoot, makeService
from txcomet.testing import MemoryCometClient

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def parse(*args):
    options = Options()
    options.parseOptions(list(args))
    return options


class PluginTests(SynchronousTestCase):
    def test_pluginFound(self):
        """
        Twisted's plugin system finds a txcomet service maker pointing at
        txcomet.tap.
        """
        makers = [p for p in getPlugins(IServiceMaker) if p.tapname == "txcomet"]
        self.assertEqual(len(makers), 1)
        self.assertEqual(makers[0].module, "txcomet.tap")

    def test_noPackageInitInTwisted(self):
        """
        twisted/ and twisted/plugins/ have no __init__.py, which would
        shadow Twisted itself.
        """
        self.assertFalse(os.path.exists(os.path.join(ROOT, "twisted", "__init__.py")))
        self.assertFalse(os.path.exists(os.path.join(ROOT, "twisted", "plugins", "__init__.py")))

    def test_pluginFileImportsNothingOfOurs(self):
        """
        The plugin file only names the tap module; importing it does not
        import txcomet (so `twist --help` stays cheap and side-effect free).
        """
        with open(os.path.join(ROOT, "twisted", "plugins", "txcomet_plugin.py")) as f:
            source = f.read()
        self.assertNotIn("import txcomet", source)
        self.assertNotIn("reactor", source)


class OptionsTests(SynchronousTestCase):
    def test_defaults(self):
        """
        With no options: listen on tcp:8080, mount at /comet, the documented
        defaults.
        """
        options = parse()
        self.assertEqual(options["listen"], ["tcp:8080"])
        config = options["config"]
        self.assertEqual((config.heartbeat, config.sessionTimeout, config.historyLength), (25.0, 60.0, 100))
        self.assertIsNone(config.publisherSecret)
        self.assertEqual(options["prefixSegments"], [b"comet"])

    def test_everyOption(self):
        """
        Each option reaches the configuration; --listen and --allow-origin
        repeat.
        """
        options = parse(
            "--listen", "tcp:1234", "--listen", "unix:/tmp/x.sock",
            "--heartbeat", "5", "--session-timeout", "30", "--history", "7",
            "--queue-messages", "9", "--queue-bytes", "999", "--max-message-size", "512",
            "--allow-origin", "https://a.example", "--allow-origin", "https://b.example",
            "--publisher-secret", "s", "--no-client-publish", "--prefix", "/api/push/",
        )
        config = options["config"]
        self.assertEqual(options["listen"], ["tcp:1234", "unix:/tmp/x.sock"])
        self.assertEqual(
            (config.heartbeat, config.sessionTimeout, config.historyLength, config.queueMessages,
             config.queueBytes, config.maxMessageSize, config.publisherSecret, config.clientPublish),
            (5.0, 30.0, 7, 9, 999, 512, "s", False),
        )
        self.assertEqual(config.allowedOrigins, ("https://a.example", "https://b.example"))
        self.assertEqual(options["prefixSegments"], [b"api", b"push"])

    def test_secretFromEnvironment(self):
        """
        TXCOMET_PUBLISHER_SECRET is used when --publisher-secret is not given.
        """
        os.environ["TXCOMET_PUBLISHER_SECRET"] = "from-env"
        self.addCleanup(os.environ.pop, "TXCOMET_PUBLISHER_SECRET")
        self.assertEqual(parse()["config"].publisherSecret, "from-env")

    def test_apiKeyFromEnvironment(self):
        """
        TXCOMET_API_KEY is used when --api-key is not given; --api-key wins.
        """
        os.environ["TXCOMET_API_KEY"] = "env-key"
        self.addCleanup(os.environ.pop, "TXCOMET_API_KEY")
        self.assertEqual(parse()["config"].apiKey, "env-key")
        self.assertEqual(parse("--api-key", "flag-key")["config"].apiKey, "flag-key")

    def test_badOptionsAreUsageErrors(self):
        """
        Bad values are usage errors with a message, not tracebacks.
        """
        for args in (
            ["--heartbeat", "0"],
            ["--heartbeat", "soon"],
            ["--session-timeout", "-1"],
            ["--history", "-3"],
            ["--queue-messages", "0"],
            ["--max-message-size", "many"],
            ["--listen", "nonsense:1"],
            ["--metrics-listen", "nonsense:1"],
            ["--listen", "tcp:notaport"],
            ["--prefix", "/"],
            ["--prefix", "a//b"],
            ["--static", "/no/such/dir"],
            ["--no-such-option"],
        ):
            self.assertRaises(UsageError, parse, *args)


class ServiceTests(SynchronousTestCase):
    def test_makeService(self):
        """
        makeService gives the Comet service first, then the demo's event
        counter, then one listener per endpoint.
        """
        from twisted.application.internet import StreamServerEndpointService

        from txcomet._demo.chart import CounterService

        service = makeService(parse("--listen", "tcp:0", "--listen", "tcp:0"))
        children = list(service)
        self.assertIsInstance(children[0], Comet)
        # The demo page's chart counts the bus's events.
        self.assertEqual([type(c) for c in children[1:]], [CounterService, StreamServerEndpointService, StreamServerEndpointService])
        for child in children:
            self.assertTrue(IService.providedBy(child))

    def test_prefixMountsComet(self):
        """
        The comet resource is served under a nested --prefix, and the root
        page says what is running.
        """
        options = parse("--prefix", "/api/push")
        comet = Comet()
        root = makeRoot(options, comet)
        client = MemoryCometClient(comet)
        client.treq = type(client.treq)(root)
        client.base = "http://comet.test/api/push"
        self.assertEqual(client.request("GET", "").json()["server"], "txcomet")
        client.base = "http://comet.test"
        page = client.request("GET", "")
        self.assertIn(b"/api/push/control", page.body)


class AccessLogTests(SynchronousTestCase):
    def _requestLogged(self, *args):
        from twisted.web.test.requesthelper import DummyRequest

        options = parse(*args)
        from txcomet.tap import makeSite

        site = makeSite(options, Comet())
        lines = []
        site._logFile = type("F", (), {"write": lambda self, line: lines.append(line)})()
        request = DummyRequest([b""])
        request.method = b"GET"
        request.uri = b"/comet"
        request.clientproto = b"HTTP/1.1"
        request.code = 200
        request.sentLength = 0
        site.log(request)
        return lines

    def test_accessLogByDefault(self):
        """
        By default every request is written to the access log.
        """
        self.assertEqual(len(self._requestLogged()), 1)

    def test_noAccessLog(self):
        """
        --no-access-log keeps requests out of the log.
        """
        self.assertEqual(self._requestLogged("--no-access-log"), [])
