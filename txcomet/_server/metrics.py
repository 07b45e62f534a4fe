# -*- test-case-name: tests.server.test_metrics -*-
"""
C{GET <prefix>/metrics}: txcomet's Prometheus metrics, in the text
exposition format, made by C{prometheus_client}.

The counters are kept as txcomet works (L{txcomet._model.stats}); the
gauges (sessions, connections by transport, subscriptions, channels, the
bus) are read from the hub when scraped.  Metric names and labels are
listed in docs/operations.md.

With C{--workers}, one scrape shows the whole process group: the worker a
scrape lands on asks the others (through L{txcomet._sessions.cluster}) and
each sample carries a C{worker} label.  Nodes on Redis are separate
servers, each scraped for itself.
"""

from typing import Any, Iterable, List

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from twisted.internet.defer import Deferred, succeed
from twisted.web.server import Request

from txcomet._model.stats import PUBLISHED, REGISTRY, tallies
from txcomet._server.api import checkAccess
from txcomet._sessions.cluster import nodeCounts
from txcomet._transports.http import JSONResource, respondLater, setNoCache
from txcomet.interfaces import IBusHealth


class NodeCollector:
    """
    The figures of one node read when scraped: a C{prometheus_client}
    custom collector over the hub's state and the delivery tallies.
    """

    def __init__(self, comet: Any, version: str) -> None:
        self.comet = comet
        self.version = version

    def collect(self) -> Iterable[Metric]:
        hub = self.comet.hub
        counts = nodeCounts(hub)
        connections = counts["connections"]
        counted = tallies()
        yield CounterMetricFamily(
            "txcomet_events_published",
            "Events handed to the bus for publishing (publish API, server API, control channel, Bayeux, Python);"
            " one the bus refused is also counted in txcomet_errors_total{code=\"unavailable\"}.",
            value=PUBLISHED.n,
        )
        yield GaugeMetricFamily("txcomet_sessions", "Open sessions.", value=counts["sessions"])
        gauge = GaugeMetricFamily(
            "txcomet_connections", "Data channels attached to sessions, by transport.", labels=["transport"]
        )
        for name in sorted(set(connections) | set(counted)):
            gauge.add_metric([name], connections.get(name, 0))
        yield gauge
        yield GaugeMetricFamily("txcomet_subscriptions", "Subscriptions held by sessions.", value=counts["subscriptions"])
        yield GaugeMetricFamily("txcomet_channels", "Channels (and patterns) with a subscriber here.", value=counts["channels"])
        deliveries = CounterMetricFamily(
            "txcomet_deliveries", "Events written to clients, by transport.", labels=["transport"]
        )
        sizes = CounterMetricFamily(
            "txcomet_delivered_bytes",
            "Bytes of the event envelopes (JSON) written to clients, before each transport's framing, by transport.",
            labels=["transport"],
        )
        for name in sorted(counted):
            deliveries.add_metric([name], counted[name].deliveries)
            sizes.add_metric([name], counted[name].bytes)
        yield deliveries
        yield sizes
        health = IBusHealth(hub.bus, None)
        problem = health.problem() if health is not None else None
        yield GaugeMetricFamily("txcomet_bus_up", "1 while the bus can distribute events, else 0.", value=0 if problem else 1)
        latency = getattr(hub.bus, "latency", None)
        if latency is not None:
            yield GaugeMetricFamily(
                "txcomet_redis_latency_seconds", "The last round trip of a command to Redis.", value=latency
            )
        info = GaugeMetricFamily("txcomet_node_info", "This node: its version and id.", labels=["version", "node"])
        info.add_metric([self.version, self.comet.cluster.nodeId], 1)
        yield info


def nodeFamilies(comet: Any, version: str) -> List[Metric]:
    """
    Every metric family of this node, with its samples.
    """
    return list(REGISTRY.collect()) + list(NodeCollector(comet, version).collect())


def exportFamilies(families: List[Metric]) -> list:
    """
    C{families} as JSON, to send to another worker.
    """
    return [
        {
            "name": f.name,
            "help": f.documentation,
            "type": f.type,
            "unit": f.unit,
            "samples": [[s.name, s.labels, s.value] for s in f.samples],
        }
        for f in families
    ]


def mergeFamilies(answers: dict) -> List[Metric]:
    """
    The families each worker exported (C{worker} -> exported families),
    as one list, each sample labelled with its C{worker}.
    """
    merged: dict = {}
    for worker in sorted(answers):
        for exported in answers[worker] or ():
            family = merged.get(exported["name"])
            if family is None:
                family = merged[exported["name"]] = Metric(
                    exported["name"], exported["help"], exported["type"], exported["unit"]
                )
            for name, labels, value in exported["samples"]:
                family.add_sample(name, dict(labels, worker=worker), value)
    return list(merged.values())


def render(families: List[Metric]) -> bytes:
    """
    C{families} in Prometheus's text format.
    """

    class Families:
        def collect(self) -> Iterable[Metric]:
            return families

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Families())
    return generate_latest(registry)


class MetricsResource(JSONResource):
    """
    C{GET <prefix>/metrics}: the text exposition, for the API key (as
    C{Authorization: Bearer}, which Prometheus sends with C{authorization:
    credentials}) or, with no key, for local scrapers only (see
    L{checkAccess}); or for anyone reaching a C{--metrics-listen} endpoint
    (C{guarded=False}).
    """

    isLeaf = True
    headIsGet = True

    def __init__(self, comet: Any, version: str, guarded: bool = True) -> None:
        super().__init__()
        self.comet = comet
        self.config = comet.hub.config
        self.version = version
        self.guarded = guarded

    def familiesOfGroup(self) -> Deferred:
        """
        This node's families, or, in a worker group, every worker's.
        """
        if not self.comet.metricsGroup:
            return succeed(nodeFamilies(self.comet, self.version))

        def merge(answered: Any) -> List[Metric]:
            answers, missing = answered
            return mergeFamilies({answer["worker"]: answer["families"] for answer in answers.values() if answer})

        return self.comet.cluster.ask("metrics").addCallback(merge)

    def render_GET(self, request: Request) -> Any:
        if self.guarded:
            checkAccess(request, [self.config.apiKey], "The metrics endpoint")

        def write(families: List[Metric]) -> bytes:
            request.setResponseCode(200)
            request.setHeader(b"Content-Type", CONTENT_TYPE_LATEST.encode("ascii"))
            setNoCache(request)
            return render(families)

        return respondLater(request, self.familiesOfGroup(), write, what="a metrics scrape")


def installMetrics(comet: Any, version: str) -> None:
    """
    Serve C{comet}'s metrics at C{<prefix>/metrics} and teach its cluster
    to answer a worker's C{metrics} question.
    """
    comet.resource.putChild(b"metrics", MetricsResource(comet, version))
    comet.cluster.answerers["metrics"] = lambda params: {
        "worker": comet.hub.sessionPrefix.rstrip(".") or "0",
        "families": exportFamilies(nodeFamilies(comet, version)),
    }
