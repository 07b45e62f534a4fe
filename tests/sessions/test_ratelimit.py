"""
A session's control operations are rate limited: a burst of
C{controlBurst}, then C{controlRate} a second; past it, 429
C{rate_limited}, and over WebSocket, a close (4429) if it goes on.
"""

from twisted.trial.unittest import SynchronousTestCase

from tests.support.wssupport import connectWebSocket
from txcomet._transports.wscontrol import RATE_LIMIT_STRIKES
from txcomet.testing import MemoryCometClient, makeComet


class ControlRateTests(SynchronousTestCase):
    def test_http(self):
        """
        Past the burst, control requests are refused until the allowance
        refills; other sessions are not affected; joining is not counted.
        """
        comet, clock = makeComet(controlRate=2, controlBurst=3)
        client = MemoryCometClient(comet)
        session = client.join()
        for n in range(3):
            self.assertTrue(client.subscribe(session, "a%d" % (n,))["ok"])
        refused = client.subscribe(session, "b")
        self.assertEqual((refused["error"], refused["status"]), ("rate_limited", 429))
        self.assertNotIn("b", comet.hub.sessions[session].subscriptions)
        other = client.join()
        self.assertTrue(client.subscribe(other, "c")["ok"])
        clock.advance(0.5)  # one more at 2 a second
        self.assertTrue(client.subscribe(session, "b")["ok"])
        self.assertEqual(client.subscribe(session, "d")["error"], "rate_limited")

    def test_off(self):
        """
        C{controlRate=0} limits nothing.
        """
        comet, clock = makeComet(controlRate=0, controlBurst=1)
        client = MemoryCometClient(comet)
        session = client.join()
        for n in range(50):
            self.assertTrue(client.publish("p", n, session=session)["ok"])

    def test_webSocket(self):
        """
        Over WebSocket a refusal is an error message; after
        C{RATE_LIMIT_STRIKES} in a row the connection is closed with 4429.
        """
        ws = connectWebSocket("/comet/ws?channel=a", controlRate=1, controlBurst=2)
        client = ws.client
        for n in range(2):
            ws.send(clientText({"op": "subscribe", "channel": "x%d" % (n,), "ref": n}))
        self.assertEqual(len(client.ofType("reply")), 2)
        for n in range(RATE_LIMIT_STRIKES):
            ws.send(clientText({"op": "subscribe", "channel": "y", "ref": 100 + n}))
        errors = client.ofType("error")
        self.assertEqual([e["error"] for e in errors], ["rate_limited"] * RATE_LIMIT_STRIKES)
        self.assertEqual(client.closeFrames(), [])
        ws.send(clientText({"op": "subscribe", "channel": "y", "ref": 999}))
        [close] = client.closeFrames()
        self.assertEqual(close.closeCode, 4429)


def clientText(message):
    import json

    from tests.support.wssupport import TEXT, clientFrame

    return clientFrame(TEXT, json.dumps(message).encode("utf-8"))
