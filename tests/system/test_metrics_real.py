"""
C{<prefix>/metrics} scraped over real sockets and read with Prometheus's own
text parser (C{prometheus_client.parser}) while SSE, WebSocket and
long-poll clients connect, receive, fail and disconnect.  The counters are
per process, so each check is of the change between two scrapes; the
gauges are the node's own.
"""

import json

from prometheus_client.parser import text_string_to_metric_families
from twisted.internet import reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from tests.support.realhttp import exchange, rawRequest, serveNode
from tests.support.wssupport import RawClient


async def scrape(port, headers=None):
    """
    Every sample of one scrape: C{{(name, frozenset(labels)): value}}.
    """
    client = await exchange(port, b"GET", "/comet/metrics", headers)
    assert client.status == 200, (client.status, client.body)
    assert client.headers["content-type"].startswith("text/plain; version=")
    samples = {}
    for family in text_string_to_metric_families(client.body.decode("utf-8")):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0.0)


class MetricsTests(TestCase):
    timeout = 30

    async def until(self, condition, what):
        for _ in range(300):
            if condition():
                return
            await deferLater(reactor, 0.02, lambda: None)
        self.fail("timed out waiting for " + what)

    async def test_countsAcrossTransports(self):
        comet, port = await serveNode(self)
        before = await scrape(port)
        self.assertEqual(value(before, "txcomet_sessions"), 0)
        # An SSE stream, a WebSocket and a long-poll, all on "news".
        sse = await rawRequest(port, "/comet/sse?channel=news")
        await sse.waitFor(lambda: b"retry:" in sse.body or b":" in sse.body)
        ws = await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), RawClient())
        ws.sendHandshake("/comet/ws")
        await self.until(lambda: ws.status == 101, "the WebSocket handshake")
        ws.sendText({"op": "join", "channels": ["news"]})
        await self.until(lambda: ws.ofType("reply"), "the WebSocket join")
        joined = await exchange(port, b"POST", "/comet/control", body=json.dumps({"op": "join", "channels": ["news"]}).encode())
        session = json.loads(joined.body)["session"]
        poll = await rawRequest(port, "/comet/longpoll?session=" + session)
        await self.until(lambda: len(comet.hub.sessions) == 3 and all(
            s.dataChannel is not None for s in comet.hub.sessions.values()), "three attached data channels")
        during = await scrape(port)
        for transport in ("sse", "ws", "longpoll"):
            self.assertEqual(value(during, "txcomet_connections", transport=transport), 1, transport)
        self.assertEqual(value(during, "txcomet_sessions"), 3)
        self.assertEqual(value(during, "txcomet_subscriptions"), 3)
        self.assertEqual(value(during, "txcomet_channels"), 1)
        self.assertEqual(value(during, "txcomet_bus_up"), 1)

        # Two events reach all three.
        for n in range(2):
            published = await exchange(port, b"POST", "/comet/publish/news", {"Content-Type": "application/json"}, b'{"n": %d}' % n)
            self.assertEqual(published.status, 200)
        await sse.waitFor(lambda: sse.body.count(b"event: message") + sse.body.count(b"data: {") >= 2)
        await self.until(lambda: len(ws.ofType("event")) == 2, "two WebSocket events")
        await poll.waitFor(lambda: poll.ended)  # answered with what had arrived
        poll.transport.loseConnection()
        after = await scrape(port)

        def delta(name, **labels):
            return value(after, name, **labels) - value(before, name, **labels)

        self.assertEqual(delta("txcomet_events_published_total"), 2)
        self.assertEqual(delta("txcomet_deliveries_total", transport="sse"), 2)
        self.assertEqual(delta("txcomet_deliveries_total", transport="ws"), 2)
        polled = [m for m in json.loads(poll.body) if m.get("type") == "event"]
        self.assertEqual(delta("txcomet_deliveries_total", transport="longpoll"), len(polled))
        self.assertGreater(delta("txcomet_delivered_bytes_total", transport="sse"), 2 * len('{"n":0}'))
        # the WebSocket's join and the long-poll client's
        self.assertEqual(delta("txcomet_control_requests_total", op="join", result="ok"), 2)
        self.assertEqual(delta("txcomet_control_request_seconds_count", op="join"), 2)

        # Failures: an unknown session, a refused scrape, a resume that
        # cannot be served.
        gone = await exchange(port, b"POST", "/comet/control", body=b'{"op": "presence", "session": "nope", "channel": "news"}')
        self.assertEqual(gone.status, 404)
        refused = await exchange(port, b"GET", "/comet/metrics", {"X-Forwarded-For": "198.51.100.7"})
        self.assertEqual(refused.status, 401)
        resumed = await exchange(port, b"GET", "/comet/poll?session=%s&last=%s" % (session, "zz-9"))
        self.assertEqual(resumed.status, 200)
        failed = await scrape(port)

        def change(name, **labels):
            return value(failed, name, **labels) - value(after, name, **labels)

        self.assertEqual(change("txcomet_errors_total", code="unknown_session"), 1)
        self.assertEqual(change("txcomet_control_requests_total", op="presence", result="unknown_session"), 1)
        self.assertEqual(change("txcomet_authorization_failures_total", reason="unauthorized"), 1)
        self.assertEqual(change("txcomet_errors_total", code="unauthorized"), 1)
        self.assertEqual(change("txcomet_resumes_total", recovered="false"), 1)
        self.assertEqual(change("txcomet_session_closes_total", reason="replay_unavailable"), 1)

        # Disconnecting: the SSE stream and the WebSocket go.
        sse.transport.loseConnection()
        ws.sendText({"op": "leave"})
        await self.until(lambda: not comet.hub.sessions, "every session to end")
        final = await scrape(port)
        self.assertEqual(value(final, "txcomet_sessions"), 0)
        for transport in ("sse", "ws", "longpoll"):
            self.assertEqual(value(final, "txcomet_connections", transport=transport), 0)
        self.assertEqual(value(final, "txcomet_session_closes_total", reason="left")
                         - value(failed, "txcomet_session_closes_total", reason="left"), 1)
        ws.transport.abortConnection()


class MetricsListenTests(TestCase):
    timeout = 30

    async def test_separateEndpointNeedsNoKey(self):
        """
        C{--metrics-listen} serves C{/metrics} with no key, to anyone who
        reaches it, even with an API key set; nothing else is there.
        """
        from txcomet._node.site import makeComet, metricsService
        from txcomet.tap import Options

        options = Options()
        options.parseOptions(["--api-key", "k", "--metrics-listen", "tcp:0:interface=127.0.0.1"])
        comet = makeComet(options)
        await comet.startService()
        self.addCleanup(comet.stopService)
        service = metricsService(options, comet)
        service.startService()
        self.addCleanup(service.stopService)
        port = (await service._waitingForPort).getHost().port
        client = await exchange(port, b"GET", "/metrics", {"X-Forwarded-For": "203.0.113.1"})
        self.assertEqual(client.status, 200)
        self.assertIn(b"txcomet_sessions 0.0", client.body)
        other = await exchange(port, b"GET", "/comet/api")
        self.assertEqual(other.status, 404)
