"""
The Python client with C{getToken} against a real server with tokens: it
refreshes before each expiry and keeps its session across two of them;
when its session is closed for C{token_expired} anyway, it joins again
with a fresh token and resumes with nothing lost or repeated (over
WebSocket, SSE and long-polling).
"""

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from txcomet._client.client import CometClient

from tests.support.auth import SECRET, mint
from tests.support import RealServerMixin
from tests.system.test_client_real import Collector


def sleep(seconds):
    return deferLater(reactor, seconds, lambda: None)


class TokenClientMixin(RealServerMixin):
    timeout = 30
    transport: str
    lifetime = 2.0

    def getToken(self):
        self.tokensIssued += 1
        return mint({"sub": "py", "exp": reactor.seconds() + self.lifetime})

    @inlineCallbacks
    def startClient(self):
        self.tokensIssued = 0
        yield self.startServer(tokenSecret=SECRET, tokenGrace=3.0, heartbeat=2.0)
        client = CometClient(
            self.url, transport=self.transport, getToken=self.getToken, backoff=(0.05, 0.3), pollInterval=0.1
        )
        self.addCleanup(client.leave)
        got = Collector()
        yield client.subscribe("news", got)
        return client, got

    @inlineCallbacks
    def test_refreshAcrossTwoExpiries(self):
        """
        The client refreshes its token before each expiry: across two
        expiries its session stays the same and every event arrives once.
        """
        client, got = yield self.startClient()
        [session] = list(self.comet.hub.sessions.values())
        self.assertEqual(session.user, "py")
        self.assertIsNotNone(client.expires)
        # Four lifetimes: past the first token's expiry plus grace (a
        # session without refreshes would have been closed by then).
        for n in range(1, 5):
            yield self.comet.publish("news", n)
            yield sleep(self.lifetime)
        yield got.atLeast(5)
        self.assertEqual(got.data, [1, 2, 3, 4])
        self.assertEqual(client.session, session.id)
        self.assertGreaterEqual(self.tokensIssued, 3)

    @inlineCallbacks
    def test_expiredResumes(self):
        """
        A client whose refresh never comes is closed for C{token_expired};
        it joins again with a new token and resumes the channel with
        nothing lost or repeated.
        """
        client, got = yield self.startClient()
        # The refresh is lost.
        client._refreshCall.cancel()
        client._tokenExpires = lambda expires: None
        first = client.session
        yield self.comet.publish("news", 1)
        yield got.atLeast(2)
        while client.session in (first, None) or client.state != "listening":
            yield sleep(0.05)
        yield self.comet.publish("news", 2)
        while len(got.data) < 2:
            yield sleep(0.05)
        yield sleep(0.2)  # anything repeated would have come by now
        self.assertNotEqual(client.session, first)
        self.assertEqual(got.data, [1, 2])


def _case(name):
    return type(
        "TokenClientTests_" + name.replace("-", "_"),
        (TokenClientMixin, TestCase),
        {"transport": name, "__doc__": "The Python client with getToken over %s." % (name,)},
    )


for _name in ("ws", "sse", "longpoll"):
    globals()["TokenClientTests_" + _name] = _case(_name)
del _name


class ChannelTokenClientTests(RealServerMixin, TestCase):
    """
    The Python client subscribes to a private channel with a channel
    token, given or asked of a callable, and asks again after a rejoin.
    """

    timeout = 30

    @inlineCallbacks
    def test_channelToken(self):
        from tests.support.auth import EXAMPLE, tempPath
        from txcomet._model.errors import CometError

        path = tempPath(self)
        with open(path, "w") as f:
            f.write(EXAMPLE)
        yield self.startServer(tokenSecret=SECRET, rulesPath=path, heartbeat=2.0)
        auth = mint({"sub": "py", "exp": reactor.seconds() + 60})

        def channelToken(channel):
            asked.append(channel)
            return mint({"sub": "py", "channel": channel, "exp": reactor.seconds() + 60})

        asked = []
        refused = CometClient(self.url, transport="longpoll", auth=auth, backoff=(0.05, 0.3))
        self.addCleanup(refused.leave)
        error = yield self.assertFailure(refused.subscribe("private/room", lambda e: None), CometError)
        self.assertEqual(error.code, "forbidden")

        client = CometClient(self.url, transport="longpoll", auth=auth, backoff=(0.05, 0.3))
        self.addCleanup(client.leave)
        got = Collector()
        yield client.subscribe("private/room", got, token=channelToken)
        self.assertEqual(asked, ["private/room"])
        yield self.comet.publish("private/room", 1)
        while got.data != [1]:
            yield sleep(0.02)
        # The server forgets the session: the client joins again, asks for
        # a fresh channel token, and resumes the channel.
        first = client.session
        self.comet.hub.sessions[first].close("expired")
        yield self.comet.publish("private/room", 2)
        while len(got.data) < 2:
            yield sleep(0.02)
        self.assertEqual(got.data, [1, 2])
        self.assertNotEqual(client.session, first)
        self.assertEqual(asked, ["private/room", "private/room"])
