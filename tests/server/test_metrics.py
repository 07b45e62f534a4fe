"""
C{<prefix>/metrics} in memory: who may scrape it, what a scrape holds,
and, for a worker group, one scrape showing every worker.  (Over real
sockets with several transports: tests/system/test_metrics_real.py.)
"""

from prometheus_client.parser import text_string_to_metric_families
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from tests.support.auth import joinAs
from txcomet._bus.memory import InMemoryBus
from txcomet._server.service import Comet
from txcomet._model.config import CometConfig
from txcomet.testing import MemoryCometClient, makeComet


def samples(response):
    found = {}
    for family in text_string_to_metric_families(response.body.decode("utf-8")):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


class AccessTests(SynchronousTestCase):
    def test_keyOrLoopback(self):
        """
        Without a key, local scrapers only; with one, the key as a bearer
        token (as Prometheus sends it) from anywhere, and 401 without it.
        HEAD answers like GET without the body.
        """
        comet, clock = makeComet()
        comet.startService()
        self.addCleanup(comet.stopService)
        client = MemoryCometClient(comet)
        self.assertEqual(client.request("GET", "metrics").code, 200)
        self.assertEqual(client.request("HEAD", "metrics").body, b"")
        self.assertEqual(client.request("GET", "metrics", headers={"X-Forwarded-For": ["1.2.3.4"]}).code, 401)
        keyed, clock = makeComet(apiKey="scrape-key")
        keyed.startService()
        self.addCleanup(keyed.stopService)
        client = MemoryCometClient(keyed)
        response = client.request("GET", "metrics")
        self.assertEqual((response.code, response.json()["error"]), (401, "unauthorized"))
        response = client.request(
            "GET", "metrics", headers={"Authorization": ["Bearer scrape-key"], "X-Forwarded-For": ["1.2.3.4"]}
        )
        self.assertEqual(response.code, 200)
        self.assertIn(("txcomet_sessions", ()), samples(response))

    def test_gauges(self):
        """
        The gauges are this node's: sessions, subscriptions, channels and
        attached data channels by transport.
        """
        comet, clock = makeComet()
        comet.startService()
        self.addCleanup(comet.stopService)
        joinAs(comet, "alice", ["a", "b"])
        joinAs(comet, "bob", ["a"])
        found = samples(MemoryCometClient(comet).request("GET", "metrics"))
        self.assertEqual(found[("txcomet_sessions", ())], 2)
        self.assertEqual(found[("txcomet_subscriptions", ())], 3)
        self.assertEqual(found[("txcomet_channels", ())], 2)
        self.assertEqual(found[("txcomet_connections", (("transport", "recording"),))], 2)
        self.assertEqual(found[("txcomet_bus_up", ())], 1)


class GroupTests(SynchronousTestCase):
    def test_oneScrapeShowsEveryWorker(self):
        """
        In a worker group, the worker scraped asks the others: each sample
        is labelled with its worker.
        """
        clock = Clock()
        bus = InMemoryBus()
        workers = []
        for index in range(2):
            comet = Comet(bus=bus, config=CometConfig(), clock=clock)
            comet.hub.sessionPrefix = "%d." % (index,)
            comet.metricsGroup = True
            comet.startService()
            self.addCleanup(comet.stopService)
            workers.append(comet)
        joinAs(workers[0], "alice", ["a"])
        joinAs(workers[1], "bob", ["a"])
        joinAs(workers[1], "carol", ["b"])
        found = samples(MemoryCometClient(workers[1]).request("GET", "metrics"))
        self.assertEqual(found[("txcomet_sessions", (("worker", "0"),))], 1)
        self.assertEqual(found[("txcomet_sessions", (("worker", "1"),))], 2)
        self.assertEqual(found[("txcomet_channels", (("worker", "1"),))], 2)
