"""
Tokens and channel rules for Bayeux clients, in memory: the token comes
in the handshake's C{ext.auth} (or C{ext.token}), its C{sub} is the
session's user, and the channel rules answer subscriptions with Bayeux's
403 errors naming the rule; a bad token fails the handshake with 401.
"""

import json

from twisted.trial.unittest import SynchronousTestCase

from tests.support.auth import EXAMPLE, SECRET, mint, tempPath
from tests.transports.test_bayeux import BayeuxClient
from txcomet.testing import MemoryCometClient, makeComet

HANDSHAKE = {"channel": "/meta/handshake", "version": "1.0", "supportedConnectionTypes": ["long-polling"]}


class BayeuxTokenTests(SynchronousTestCase):
    def setUp(self):
        path = tempPath(self)
        with open(path, "w") as f:
            f.write(EXAMPLE)
        self.comet, self.clock = makeComet(tokenSecret=SECRET, rulesPath=path)
        self.client = BayeuxClient(MemoryCometClient(self.comet))

    def handshake(self, ext):
        response = self.client.post([dict(HANDSHAKE, id="1", ext=ext)])
        self.assertEqual(response.code, 200, response.body)
        [reply] = json.loads(response.body)
        return reply

    def test_badToken(self):
        """
        A handshake with a bad or expired token is refused with a 401
        error; no session is made.
        """
        for token in ["garbage", mint({"sub": "a", "exp": self.clock.seconds() - 100})]:
            reply = self.handshake({"auth": token})
            self.assertFalse(reply["successful"])
            self.assertTrue(reply["error"].startswith("401:/meta/handshake:"), reply)
        self.assertEqual(self.comet.hub.sessions, {})

    def test_tokenAndRules(self):
        """
        With a good token (in C{ext.token}) the session is its C{sub}'s:
        the user's own channel is allowed, another user's and C{/**} are
        refused with the rule named.
        """
        reply = self.handshake({"token": mint({"sub": "alice", "exp": self.clock.seconds() + 60})})
        self.assertTrue(reply["successful"], reply)
        self.client.clientId = reply["clientId"]
        self.assertEqual(self.comet.hub.sessions[reply["clientId"]].user, "alice")
        self.assertTrue(self.client.subscribe("/notifications/alice")["successful"])
        for subscription in ["/notifications/bob", "/**"]:
            answer = self.client.subscribe(subscription)
            self.assertFalse(answer["successful"])
            self.assertTrue(answer["error"].startswith("403:%s:" % (subscription,)), answer)
            self.assertIn("rule 1", answer["error"])
