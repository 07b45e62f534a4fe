"""
The one-process server without an access log answers plain control and
long-poll requests on its lean path: tokens and rules hold there too.
"""

from twisted.trial.unittest import TestCase

from tests.support.auth import EXAMPLE, SECRET, tempPath
from txcomet._node.site import makeComet
from txcomet.tap import Options


def parse(*argv):
    options = Options()
    options.parseOptions(list(argv))
    return options


class LeanPathTests(TestCase):
    """
    The one-process server without an access log answers plain control
    and long-poll requests on its lean path: tokens work there too.
    """

    timeout = 30

    async def test_tokensOnTheLeanPath(self):
        """
        A control join with a Bearer token and a long-poll join-listen
        with C{?token=} are served with the token's identity and rules; a
        bad token is refused.
        """
        import json

        from twisted.internet import reactor

        from txcomet._node.site import leanRoutes, makeRoot, makeSite

        from tests.support.auth import mint
        from tests.support.realhttp import rawRequest

        rules = tempPath(self)
        with open(rules, "w") as f:
            f.write(EXAMPLE)
        options = parse("--no-access-log", "--config", rules, "--token-secret", SECRET)
        comet = makeComet(options)
        await comet.startService()
        self.addCleanup(comet.stopService)
        site = makeSite(options, comet, makeRoot(options, comet))
        site.leanRoutes = leanRoutes(options, comet)
        port = reactor.listenTCP(0, site, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        number = port.getHost().port
        token = mint({"sub": "alice", "exp": reactor.seconds() + 60})
        body = json.dumps({"op": "join", "user": "mallory"}).encode()
        client = await rawRequest(
            number, "/comet/control", {"Authorization": "Bearer " + token, "Connection": "close"}, method=b"POST", body=body
        )
        await client.lost
        reply = json.loads(client.body)
        self.assertEqual(comet.hub.sessions[reply["session"]].user, "alice")
        for who, status in [(token, 200), (mint({"sub": "bob", "exp": reactor.seconds() + 60}), 403), ("bad", 401)]:
            client = await rawRequest(number, "/comet/poll?channel=notifications/alice&token=" + who, {"Connection": "close"})
            await client.lost
            self.assertEqual(client.status, status, client.body)
        for protocol in list(getattr(site, "openProtocols", [])):
            protocol.transport.abortConnection()
