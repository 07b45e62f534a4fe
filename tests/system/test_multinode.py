"""
Two txcomet nodes as separate processes (`twist txcomet --redis ...`) on
one redis-server of the test's own: fan-out both ways, a client moving
between nodes, a node killed, Redis stopped and started again.  Clients
here use long-polling; test_multinode_streams.py has the SSE and WebSocket
legs.
"""

from twisted.internet.defer import DeferredList, inlineCallbacks
from twisted.trial.unittest import TestCase

import json

import treq

from tests.support.multinode import AlternatingPublisher, HTTPClient, NodeProcess, closeWebSocket, openWebSocket, take
from tests.support.redisserver import RedisServer
from .test_redisbus import sleep


def offset(eventId):
    return int(eventId.rsplit("-", 1)[1])


class TwoNodesMixin:
    """
    setUp: a redis-server and two nodes, A and B, with short heartbeats
    (so idle long-polls come back quickly); all stopped in cleanup.
    """

    timeout = 120
    nodeArgs = ("--heartbeat", "2", "--session-timeout", "30")
    #: the Redis URL's query (the bus's options)
    redisQuery = ""

    @inlineCallbacks
    def setUp(self):
        self.redis = RedisServer.forTest(self)
        self.http = HTTPClient()
        self.addCleanup(self.http.close)
        self.a = NodeProcess(self.redis.url + self.redisQuery, *self.nodeArgs)
        self.b = NodeProcess(self.redis.url + self.redisQuery, *self.nodeArgs)
        for node in (self.a, self.b):
            self.addCleanup(node.kill)
        yield DeferredList([self.a.start(), self.b.start()], fireOnOneErrback=True, consumeErrors=True)

    @inlineCallbacks
    def waitUntilBothPublishThroughRedis(self):
        """
        After an outage a node may still be reconnecting: until it is, its
        publishes reach only its own subscribers (and the other node is
        told of that gap later).  Probe, on a channel of its own, until
        both nodes publish through Redis, in its current epoch.
        """
        for node in (self.a, self.b):
            while True:
                reply = self.redis.command("GET", "txcomet:epoch").split(b"\r\n")
                epoch = reply[1].decode() if len(reply) > 1 else None
                code, body, _ = yield self.http.tryPublish(node, "probe", "?")
                if code == 200 and body["id"].rsplit("-", 1)[0] == epoch:
                    break
                yield sleep(0.1)  # refused (503) or local while the node reconnects

    def nodeContext(self, d):
        """
        C{d}, whose assertion failure (a timeout, say) carries the end of
        both nodes' logs, to tell what they were doing.
        """

        def addLogs(failure):
            failure.trap(AssertionError)
            raise AssertionError("%s\n--- node A:\n%s\n--- node B:\n%s" % (
                failure.value, self.a.output[-4000:], self.b.output[-4000:]))

        return d.addErrback(addLogs)

    def assertNoTracebacks(self, *nodes):
        for node in nodes:
            self.assertNotIn("Traceback", node.output, node.output[-3000:])


class MultiNodeLongPollTests(TwoNodesMixin, TestCase):
    @inlineCallbacks
    def test_fanOutBothWays(self):
        """
        A subscriber on A and one on B both receive what is published on
        either node, with the same ids, in publish order.
        """
        onA = (yield self.http.control(self.a, op="join", channels=["room"]))["session"]
        onB = (yield self.http.control(self.b, op="join", channels=["room"]))["session"]
        published = []
        for i in range(12):
            reply = yield self.http.publish((self.a, self.b)[i % 2], "room", {"n": i})
            published.append(reply["id"])
        gotA = yield self.http.pollUntil(self.a, onA, 12)
        gotB = yield self.http.pollUntil(self.b, onB, 12)
        for got in (gotA, gotB):
            self.assertEqual([m["id"] for m in got], published)
            self.assertEqual([m["data"]["n"] for m in got], list(range(12)))
        self.assertEqual(published, sorted(published, key=offset))
        self.assertNoTracebacks(self.a, self.b)

    @inlineCallbacks
    def test_sessionJoinedOnAUsedFromB(self):
        """
        A session joined on A is subscribed through B's control channel
        and read through B's data channel (no sticky sessions): it gets
        everything, including what A had queued for it.
        """
        joined = yield self.http.control(self.a, op="join")
        session = joined["session"]
        reply = yield self.http.control(self.b, op="subscribe", session=session, channel="news", ref="r1")
        self.assertEqual((reply.get("ok"), reply.get("ref")), (True, "r1"), reply)
        first = yield self.http.publish(self.a, "news", "first")
        second = yield self.http.publish(self.b, "news", "second")
        got = yield self.http.pollUntil(self.b, session, 2)
        self.assertEqual([m["id"] for m in got], [first["id"], second["id"]])
        reply = yield self.http.control(self.a, op="publish", session=session, channel="news", data="from A")
        self.assertTrue(reply["ok"], reply)
        got = yield self.http.pollUntil(self.b, session, 1, last=second["id"])
        self.assertEqual([m["data"] for m in got], ["from A"])
        reply = yield self.http.control(self.a, op="leave", session=session)
        self.assertTrue(reply["ok"])
        code, body = yield self.http.get(self.b, "poll", session=session)
        self.assertEqual((code, body["error"]), (404, "unknown_session"))
        self.assertNoTracebacks(self.a, self.b)

    @inlineCallbacks
    def test_clientMovesMidStream(self):
        """
        A client reading on A moves to B halfway through a stream that is
        published on both nodes the whole time; it misses nothing and sees
        nothing twice, with its session and, after the session is gone,
        with join-listen from its last id.
        """
        session = (yield self.http.control(self.a, op="join", channels=["ticks"]))["session"]
        publisher = AlternatingPublisher(self.http, (self.a, self.b), "ticks")
        published = publisher.published
        got = yield self.http.pollUntil(self.a, session, 5)
        got += yield self.http.pollUntil(self.b, session, 5, last=got[-1]["id"])
        got += yield self.http.pollUntil(self.a, session, 5, last=got[-1]["id"])
        yield self.http.control(self.b, op="leave", session=session)
        # Session gone: resume by join-listen from the last id seen.
        last = got[-1]["id"]
        while len(published) < len(got) + 10:
            yield sleep(0.05)
        yield publisher.stop()
        while offset(last) < offset(published[-1]):
            code, body = yield self.http.get(self.b, "poll", channel="ticks", last=last)
            self.assertEqual(code, 200, body)
            got += body
            if body:
                last = body[-1]["id"]
        ids = [m["id"] for m in got]
        self.assertEqual(ids, published[: len(ids)])
        self.assertEqual(ids[-1], published[-1])
        self.assertNoTracebacks(self.a, self.b)

    @inlineCallbacks
    def test_nodeKilled(self):
        """
        Node A is killed (SIGKILL) while its client is connected; events
        go on being published on B.  The client, reconnecting to B, finds
        its session gone, joins again and resumes from its last id: history
        gives it everything it missed, recovered.  A's presence expires.
        """
        joined = yield self.http.control(self.a, op="join", user="ann", channels=["news"])
        session = joined["session"]
        first = yield self.http.publish(self.b, "news", 1)
        got = yield self.http.pollUntil(self.a, session, 1)
        self.assertEqual(got[-1]["id"], first["id"])
        yield self.a.kill()
        missed = []
        for i in range(2, 6):
            missed.append((yield self.http.publish(self.b, "news", i))["id"])
        code, body = yield self.http.get(self.b, "poll", session=session)
        self.assertEqual((code, body["error"]), (404, "unknown_session"))
        again = yield self.http.control(self.b, op="join")
        self.assertTrue(again.get("ok"), (again, self.b.output))
        reply = yield self.http.control(self.b, op="subscribe", session=again["session"], channel="news", since=first["id"])
        self.assertEqual(reply["recovered"], True)
        try:
            got = yield self.http.pollUntil(self.b, again["session"], 4)
        except AssertionError:
            raise AssertionError(self.b.output)
        self.assertEqual([m["id"] for m in got], missed)
        self.assertNoTracebacks(self.b)

    @inlineCallbacks
    def test_publishRefusedWhileRedisDown(self):
        """
        While Redis is down nothing is acknowledged that the other node will
        never deliver: the publish API, a session's control publish and
        the Python client's publish are refused with 503 C{unavailable}
        (JSON, C{Retry-After}); the client retries with its backoff, and
        once Redis is back its publish goes through and reaches the other
        node's subscriber.
        """
        from txcomet import CometClient, CometError

        onB = (yield self.http.control(self.b, op="join"))["session"]
        before = yield self.http.publish(self.b, "news", "before")
        self.redis.stop()
        yield sleep(1.0)
        code, body, retryAfter = yield self.http.tryPublish(self.b, "news", "during")
        self.assertEqual((code, body["error"], retryAfter), (503, "unavailable", "1"))
        # a load balancer's health check says why
        code, body = yield self.http.get(self.b, "health")
        self.assertEqual((code, body["reason"]), (503, "Redis is unreachable"))
        reply = yield self.http.control(self.b, op="publish", session=onB, channel="news", data="during")
        self.assertEqual((reply["error"], reply["status"]), ("unavailable", 503))
        # the server API, and a WebSocket client's publish, the same
        response = yield treq.post(self.b.url + "/api", json.dumps(
            {"method": "publish", "params": {"channel": "news", "data": "during"}}).encode(), pool=self.http.pool)
        body = yield response.json()
        self.assertEqual((response.code, body["error"], response.headers.getRawHeaders("retry-after")),
                         (503, "unavailable", ["1"]))
        response = yield treq.post(self.b.url + "/api", json.dumps(
            {"method": "broadcast", "params": {"channels": ["news", "other"], "data": "during"}}).encode(),
            pool=self.http.pool)
        body = yield response.json()
        self.assertEqual([p.get("error") for p in body["result"]["published"]], ["unavailable", "unavailable"])
        ws = yield openWebSocket(self.b, "")
        ws.protocol_.sendMessage(json.dumps({"op": "join", "ref": 1}).encode())
        ws.protocol_.sendMessage(json.dumps({"op": "publish", "channel": "news", "data": "during", "ref": 2}).encode())
        refused = yield take(ws.messages, 1, "the WebSocket publish's answer", kinds=("error",))
        self.assertEqual((refused[0]["error"], refused[0].get("ref")), ("unavailable", 2))
        yield closeWebSocket(ws)
        impatient = CometClient(self.b.url, publishRetries=0, backoff=(0.05, 0.2))
        self.addCleanup(impatient.close)
        error = yield self.assertFailure(impatient.publish("news", "during"), CometError)
        self.assertEqual(error.code, "unavailable")
        patient = CometClient(self.b.url, publishRetries=8, backoff=(0.25, 1.0))
        self.addCleanup(patient.close)
        retried = patient.publish("news", "retried")
        yield sleep(0.5)
        self.redis.start()
        yield self.waitUntilBothPublishThroughRedis()
        # healthy again once pub/sub is back too (on both nodes: A's
        # subscriber must hear what B publishes next)
        for node in (self.b, self.a):
            while True:
                code, body = yield self.http.get(node, "health")
                if code == 200:
                    break
                self.assertIn(body["reason"], ("Redis is unreachable", "the Redis pub/sub connection is reconnecting"))
                yield sleep(0.1)
            self.assertEqual(body, {"ok": True})
        reply = yield retried
        self.assertRegex(reply["id"], r"^[0-9a-f]{8}-[0-9]+$")
        self.assertNotEqual(before["id"].rsplit("-", 1)[0], reply["id"].rsplit("-", 1)[0])
        # On A, the channel's history since Redis came back holds the
        # retried event and nothing that was refused; and what B
        # publishes now reaches A's subscriber.
        listener = (yield self.http.control(self.a, op="join"))["session"]
        yield self.http.control(self.a, op="subscribe", session=listener, channel="news", since="oldest")
        after = yield self.http.publish(self.b, "news", "after")
        got = yield self.http.pollUntil(self.a, listener, 2)
        data = [m["data"] for m in got if m.get("type") == "event"]
        self.assertIn("retried", data)
        self.assertNotIn("during", data)
        self.assertEqual(data[-1], "after")
        self.assertEqual([m["id"] for m in got if m.get("type") == "event"][-1], after["id"])
        self.assertNoTracebacks(self.a, self.b)


class LocalOutageTests(TwoNodesMixin, TestCase):
    """
    The bus's C{outage=local} mode: while Redis is down, publishes reach
    the publishing node's subscribers only, and the others are told of the
    gap afterwards.
    """

    redisQuery = "?outage=local"

    @inlineCallbacks
    def test_redisStoppedAndStarted(self):
        """
        With C{outage=local}: Redis stops for a few seconds and comes back
        empty.  Meanwhile a publish on A is acknowledged and reaches A's
        subscriber only; B's does not get it.
        When Redis is back, every subscriber is told of the gap (close
        replay_unavailable), and on joining again and resuming from its
        last id hears recovered: false: the gap is reported, not hidden.
        Publishing across nodes works again.
        """
        onA = (yield self.http.control(self.a, op="join", channels=["news"]))["session"]
        onB = (yield self.http.control(self.b, op="join", channels=["news"]))["session"]
        before = yield self.http.publish(self.a, "news", "before")
        gotA = yield self.http.pollUntil(self.a, onA, 1)
        gotB = yield self.http.pollUntil(self.b, onB, 1)
        self.redis.stop()
        yield sleep(1.0)
        during = yield self.http.publish(self.a, "news", "during")
        self.assertNotEqual(during["id"].rsplit("-", 1)[0], before["id"].rsplit("-", 1)[0])
        gotA += yield self.http.pollUntil(self.a, onA, 1, last=gotA[-1]["id"])
        self.assertEqual(gotA[-1]["data"], "during")
        yield sleep(1.0)
        self.redis.start()
        # The gap is reported to each client: as a close on its data
        # channel if one is open when the node learns of it, else as
        # session_closed (410, with the reason) on its next request.
        for node, session, got in ((self.a, onA, gotA), (self.b, onB, gotB)):
            while True:
                code, body = yield self.http.get(node, "longpoll", session=session, last=got[-1]["id"])
                if code == 503:
                    yield sleep(0.1)  # the node is reconnecting to Redis
                    continue
                if code == 410:
                    self.assertEqual((body["error"], body["reason"]), ("session_closed", "replay_unavailable"))
                    break
                self.assertEqual(code, 200, body)
                got += [m for m in body if m.get("type") == "event"]
                if body and body[-1].get("type") == "close":
                    self.assertEqual(body[-1], {"type": "close", "reason": "replay_unavailable", "reconnect": True})
                    break
        self.assertEqual([m["data"] for m in gotB], ["before"])
        self.assertEqual([m["data"] for m in gotA], ["before", "during"])
        for node, got in ((self.a, gotA), (self.b, gotB)):
            again = yield self.http.control(node, op="join")
            reply = yield self.http.control(node, op="subscribe", session=again["session"], channel="news", since=got[-1]["id"])
            self.assertEqual(reply["recovered"], False)
        # Fan-out across nodes works again.
        yield self.waitUntilBothPublishThroughRedis()
        fresh = (yield self.http.control(self.b, op="join", channels=["news"]))["session"]
        after = yield self.http.publish(self.a, "news", "after")
        got = yield self.http.pollUntil(self.b, fresh, 1)
        self.assertEqual([m["id"] for m in got], [after["id"]])
        self.assertNoTracebacks(self.a, self.b)
