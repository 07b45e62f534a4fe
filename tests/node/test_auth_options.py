"""
The command line's authorization options, the access log that never shows
a token, and the root page and start-up log that say when a server is
open.
"""

import os

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.test.requesthelper import DummyRequest

from txcomet._auth.authorizer import CometAuthorizer
from txcomet._transports.http import redactURI, redactedLogFormatter
from txcomet._node.site import makeComet
from txcomet.tap import Options
from txcomet._node.workers import workerCommand

from tests.support.auth import EXAMPLE, RSA_KEY, SECRET, publicPEM, tempPath


def parse(*argv):
    options = Options()
    options.parseOptions(list(argv))
    return options


class OptionTests(SynchronousTestCase):
    def setUp(self):
        self.rules = tempPath(self)
        with open(self.rules, "w") as f:
            f.write(EXAMPLE)

    def test_tokenOptions(self):
        """
        The token and rules options reach the configuration, and the server
        built from them has the built-in authorizer.
        """
        key = tempPath(self)
        with open(key, "wb") as f:
            f.write(publicPEM(RSA_KEY))
        options = parse(
            "--config", self.rules, "--token-public-key", key, "--token-audience", "comet",
            "--token-issuer", "app", "--token-grace", "7", "--token-previous-secret", SECRET,
            "--token-previous-until", "2030-01-01T00:00:00+00:00",
        )
        config = options["config"]
        self.assertEqual((config.tokenAudience, config.tokenIssuer, config.tokenGrace), ("comet", "app", 7.0))
        self.assertEqual(config.tokenPreviousUntil, 1893456000.0)
        self.assertFalse(config.isOpen)
        comet = makeComet(options)
        self.assertIsInstance(comet.hub.authorizer, CometAuthorizer)
        self.assertEqual(len(comet.hub.authorizer.rules.rules), 5)

    def test_secretFromEnvironment(self):
        """
        C{$TXCOMET_TOKEN_SECRET} is the secret when C{--token-secret} is
        not given; a worker's command line never carries it.
        """
        os.environ["TXCOMET_TOKEN_SECRET"] = SECRET
        self.addCleanup(os.environ.pop, "TXCOMET_TOKEN_SECRET")
        options = parse("--workers", "2", "--listen", "tcp:0", "--config", self.rules)
        self.assertEqual(options["config"].tokenSecret, SECRET)
        argv = workerCommand(options, 1, ["tcp:1234"], "/run/hub.sock")
        self.assertNotIn(SECRET, " ".join(argv))
        self.assertIn("--config", argv)
        self.assertEqual(parse(*argv[4:])["config"].rulesPath, os.path.abspath(self.rules))

    def test_badSettingsAreUsageErrors(self):
        """
        A rules file with a mistake, a missing key file or a bad rotation
        time stops the server at start with a clear message.
        """
        bad = tempPath(self)
        with open(bad, "w") as f:
            f.write('[[channel]]\npattern = "a"\nsubscribe = "everyone"\n')
        for argv, words in [
            (["--config", bad], "subscribe = 'everyone'"),
            (["--token-public-key", "/nonexistent.pem"], "cannot read"),
            (["--token-secret", SECRET, "--token-previous-until", "tomorrow"], "ISO 8601"),
            (["--token-secret", SECRET, "--token-previous-until", "2030-01-01T00:00:00"], "UTC offset"),
        ]:
            with self.assertRaises(usage.UsageError) as caught:
                parse(*argv)
            self.assertIn(words, str(caught.exception))


class RedactionTests(SynchronousTestCase):
    def test_siteUsesIt(self):
        """
        The server's site formats its access log with the redacting
        formatter, with or without the lean path.
        """
        from txcomet._node.site import makeSite

        for argv in [(), ("--no-access-log",)]:
            options = parse(*argv)
            site = makeSite(options, makeComet(options))
            self.assertIs(site._logFormatter, redactedLogFormatter)

    def test_redactURI(self):
        """
        The values of C{token=} and C{auth=} are replaced wherever they are
        in the query; other parameters stay.
        """
        self.assertEqual(
            redactURI(b"/comet/sse?channel=a&token=eyJ.x.y&last=1"),
            b"/comet/sse?channel=a&token=REDACTED&last=1",
        )
        self.assertEqual(redactURI(b"/comet/control?auth=abc"), b"/comet/control?auth=REDACTED")
        self.assertEqual(redactURI(b"/comet/sse?mytoken=x"), b"/comet/sse?mytoken=x")
        self.assertEqual(
            redactURI(b"/comet/api?API_KEY=k1&key=k2&ticket=t&secret=s&password=p&access_token=a&channel=c"),
            b"/comet/api?API_KEY=REDACTED&key=REDACTED&ticket=REDACTED&secret=REDACTED&password=REDACTED"
            b"&access_token=REDACTED&channel=c",
        )

    @settings(max_examples=300, deadline=None)
    @given(
        before=st.lists(st.sampled_from(["channel=a", "last=1-2", "_=9", "session=x"]), max_size=3),
        after=st.lists(st.sampled_from(["channel=b", "callback=cb", "lastEventId=3"]), max_size=3),
        name=st.sampled_from(["token", "auth"]),
        secret=st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126, blacklist_characters="&;#"), min_size=4).map(
            lambda text: "S3KR1T" + text
        ),
    )
    def test_redactAnywhere(self, before, after, name, secret):
        """
        Wherever C{token=} or C{auth=} is in a query, its value is gone
        from the redacted URI and the other parameters are kept.
        """
        query = "&".join(before + [name + "=" + secret] + after)
        redacted = redactURI(("/comet/sse?" + query).encode("latin-1")).decode("latin-1")
        self.assertNotIn(secret, redacted.replace(name + "=REDACTED", ""))
        for parameter in before + after:
            self.assertIn(parameter, redacted)

    def test_accessLog(self):
        """
        The access log line of a request with a token in its URL (and its
        Referer) shows neither token.
        """
        request = DummyRequest([b"comet", b"sse"])
        request.uri = b"/comet/sse?channel=a&token=SECRETTOKEN"
        request.method = b"GET"
        request.clientproto = b"HTTP/1.1"
        request.code = 200
        request.sentLength = 10
        request.requestHeaders.setRawHeaders(b"referer", [b"http://x/page?token=OTHERSECRET"])
        line = redactedLogFormatter("[01/Jan/2026:00:00:00 +0000]", request)
        self.assertNotIn("SECRETTOKEN", line)
        self.assertNotIn("OTHERSECRET", line)
        self.assertIn("token=REDACTED", line)


class OpenNoticeTests(SynchronousTestCase):
    def test_rootPage(self):
        """
        The root page says plainly that an open server is open, and does
        not say so once rules are configured.
        """
        from txcomet._demo.page import IndexPage
        from txcomet._server.service import Comet
        from txcomet._model.config import CometConfig

        def page(config):
            comet = Comet(config=config, clock=Clock())
            request = DummyRequest([b""])
            return IndexPage("/comet", comet, clock=Clock()).render_GET(request).decode("utf-8")

        self.assertIn("This server is open", page(CometConfig()))
        path = tempPath(self)
        with open(path, "w") as f:
            f.write(EXAMPLE)
        self.assertNotIn("This server is open", page(CometConfig(rulesPath=path)))

    def test_startupLog(self):
        """
        Starting an open server logs a warning that says it is open; one
        with rules does not.
        """
        from twisted.logger import globalLogPublisher

        from txcomet._node.site import warnOpenPublish

        seen = []
        globalLogPublisher.addObserver(seen.append)
        self.addCleanup(globalLogPublisher.removeObserver, seen.append)
        warnOpenPublish(parse())
        self.assertTrue(any("server is OPEN" in e.get("log_format", "") for e in seen))
        del seen[:]
        rules = tempPath(self)
        with open(rules, "w") as f:
            f.write(EXAMPLE)
        warnOpenPublish(parse("--config", rules))
        self.assertFalse(any("server is OPEN" in e.get("log_format", "") for e in seen))

    def test_startupLogSaysWhatIsLocalOnly(self):
        """
        With no API key, the start-up log says the server API answers only
        local clients, and with no publisher secret either, that the
        publish API does too; with a key, neither is said, and the key
        itself is in no log event.
        """
        from twisted.logger import formatEvent, globalLogPublisher

        from txcomet._node.site import warnOpenPublish

        seen = []
        globalLogPublisher.addObserver(seen.append)
        self.addCleanup(globalLogPublisher.removeObserver, seen.append)
        warnOpenPublish(parse())
        texts = [formatEvent(e) for e in seen]
        self.assertTrue(any("No API key" in t and "/comet/api" in t for t in texts), texts)
        self.assertTrue(any("publish API (/comet/publish) answers only clients on this machine" in t for t in texts))
        del seen[:]
        warnOpenPublish(parse("--api-key", "k-123-secret"))
        texts = [formatEvent(e) for e in seen]
        self.assertFalse(any("No API key" in t or "publish API" in t for t in texts), texts)
        self.assertFalse(any("k-123-secret" in repr(e) for e in seen))
