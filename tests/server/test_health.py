"""
C{<mount>/health}: 200 while the node serves and its bus can distribute
events, else 503 C{unavailable} with the reason.
"""

from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from txcomet._bus.memory import InMemoryBus
from txcomet._server.service import Comet
from txcomet.interfaces import IBusHealth
from txcomet.testing import MemoryCometClient, makeComet


@implementer(IBusHealth)
class TroubledBus(InMemoryBus):
    trouble = None

    def problem(self):
        return self.trouble


class HealthTests(SynchronousTestCase):
    def test_servingAndStopped(self):
        """
        Before the service starts and after it stops: 503; while it runs
        on a bus without health reporting: 200.  HEAD answers the same
        status without a body.
        """
        comet, clock = makeComet()
        client = MemoryCometClient(comet)
        response = client.request("GET", "health")
        self.assertEqual((response.code, response.json()["error"]), (503, "unavailable"))
        self.assertEqual(response.json()["reason"], "the node is starting or stopping")
        comet.startService()
        response = client.request("GET", "health")
        self.assertEqual((response.code, response.json()), (200, {"ok": True}))
        head = client.request("HEAD", "health")
        self.assertEqual((head.code, head.body), (200, b""))
        comet.stopService()
        self.assertEqual(client.request("GET", "health").code, 503)

    def test_busProblem(self):
        """
        A bus that says it cannot distribute events makes the node
        unhealthy, with the bus's reason, until it can again.
        """
        bus = TroubledBus()
        comet = Comet(bus=bus)
        comet.startService()
        self.addCleanup(comet.stopService)
        client = MemoryCometClient(comet)
        bus.trouble = "Redis is unreachable"
        response = client.request("GET", "health")
        self.assertEqual(response.code, 503)
        self.assertEqual(response.json()["reason"], "Redis is unreachable")
        self.assertEqual(response.header("Retry-After"), "1")
        bus.trouble = None
        self.assertEqual(client.request("GET", "health").code, 200)

    def test_otherMethods(self):
        """
        Only GET and HEAD: a POST is 405 and changes nothing.
        """
        comet, clock = makeComet()
        comet.startService()
        self.addCleanup(comet.stopService)
        response = MemoryCometClient(comet).request("POST", "health", b"{}")
        self.assertEqual(response.code, 405)
