"""
The server API answering for the whole cluster, over real HTTP: two
C{twist txcomet --redis} nodes on a redis-server of the test's own, and a
C{twist txcomet --workers 2}.  Each method is called on one node about
sessions held by the other.  (One node in memory: tests/server/test_api.py.)
"""

import json
import time

import treq
from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import TestCase

from tests.system.test_multinode import TwoNodesMixin
from tests.system import test_workers

KEY = "test-api-key-7d1f"


class APIClient:
    def __init__(self, http):
        self.http = http

    @inlineCallbacks
    def call(self, node, method, key=KEY, **params):
        headers = {"Content-Type": ["application/json"]}
        if key is not None:
            headers["X-API-Key"] = [key]
        response = yield treq.post(
            node.url + "/api", json.dumps({"method": method, "params": params}).encode(),
            headers=headers, pool=self.http.pool,
        )
        body = yield response.json()
        return response.code, body


class RedisNodesAPITests(TwoNodesMixin, TestCase):
    nodeArgs = TwoNodesMixin.nodeArgs + ("--api-key", KEY)

    @inlineCallbacks
    def result(self, node, method, **params):
        code, body = yield APIClient(self.http).call(node, method, **params)
        self.assertEqual(code, 200, body)
        return body["result"]

    @inlineCallbacks
    def test_everyMethodAcrossNodes(self):
        """
        Sessions on B, the API of A: publish reaches them, history and
        presence are shared, channels and info count both nodes,
        unsubscribe and disconnect end B's sessions, batch answers in
        order.
        """
        a, b = self.a, self.b
        alice = yield self.http.control(b, op="join", user="alice", channels=["room", "news"])
        bob = yield self.http.control(b, op="join", user="bob", channels=["room"])
        carol = yield self.http.control(a, op="join", user="carol", channels=["room"])
        for joined in (alice, bob, carol):
            self.assertTrue(joined["ok"], joined)
        published = yield self.result(a, "publish", channel="room", data={"n": 1})
        polled = yield self.http.pollUntil(b, bob["session"], 1)
        self.assertEqual([m["id"] for m in polled if m.get("type") == "event"][-1:], [published["id"]])
        history = yield self.result(b, "history", channel="room", order="newest", limit=1)
        self.assertEqual(history["events"][0]["id"], published["id"])
        stats = yield self.result(a, "presenceStats", channel="room")
        self.assertEqual((stats["clients"], stats["users"]), (3, 3))
        members = yield self.result(a, "presence", channel="news")
        self.assertEqual([m["user"] for m in members["members"]], ["alice"])
        channels = yield self.result(a, "channels")
        self.assertEqual(channels["channels"], {"news": {"subscribers": 1}, "room": {"subscribers": 3}})
        self.assertEqual((channels["nodes"], channels["missing"]), (2, []))
        info = yield self.result(a, "info")
        self.assertEqual(sorted(n["sessions"] for n in info["nodes"]), [1, 2])
        self.assertEqual(len({n["node"] for n in info["nodes"]}), 2)
        yield self.result(a, "unsubscribe", user="alice", channel="room")
        yield self.result(a, "disconnect", user="bob", reason="banned")
        after = yield self.result(a, "channels")
        self.assertEqual(after["channels"], {"news": {"subscribers": 1}, "room": {"subscribers": 1}})
        # (B remembers why it closed bob's session, rather than asking A.)
        answer = yield self.http.control(b, op="presence", session=bob["session"], channel="room")
        self.assertEqual((answer.get("error"), answer.get("reason")), ("session_closed", "banned"), answer)
        yield self.result(a, "disconnect", session=alice["session"])
        batch = yield self.result(b, "batch", calls=[
            {"method": "broadcast", "params": {"channels": ["x", "y"], "data": 1}},
            {"method": "channels", "params": {"pattern": "room"}},
            {"method": "history", "params": {"channel": "nobody"}},
        ])
        replies = batch["replies"]
        self.assertEqual([p["channel"] for p in replies[0]["result"]["published"]], ["x", "y"])
        self.assertEqual(replies[1]["result"]["channels"], {"room": {"subscribers": 1}})
        self.assertEqual(replies[2]["result"]["events"], [])
        self.assertNoTracebacks(a, b)

    @inlineCallbacks
    def test_errors(self):
        """
        No key and a wrong key are 401, an unknown method and bad params
        400, each with a JSON body.
        """
        client = APIClient(self.http)
        for key, status, code in ((None, 401, "unauthorized"), ("wrong", 401, "unauthorized")):
            answer = yield client.call(self.a, "info", key=key)
            self.assertEqual((answer[0], answer[1]["error"]), (status, code))
        answer = yield client.call(self.a, "frobnicate")
        self.assertEqual((answer[0], answer[1]["error"]), (400, "unknown_method"))
        answer = yield client.call(self.a, "history", channel=5)
        self.assertEqual((answer[0], answer[1]["error"]), (400, "invalid_request"))
        self.assertNotIn(KEY, self.a.output + self.b.output)


class WorkersAPITests(test_workers.TwoWorkersProcessTests):
    """
    C{--workers 2}: the API of whichever worker a request lands on answers
    for both.
    """

    serverArgs = ("--api-key", KEY)

    # only the tests below, not the inherited ones
    test_sessionsAcrossWorkers = None
    test_sharedPort = None

    def api(self, port, method, key=KEY, **params):
        status, body = self.request(
            port, "POST", "/comet/api", {"method": method, "params": params},
            headers={"X-API-Key": key} if key is not None else None,
        )
        return status, json.loads(body)

    def test_methodsAnswerForBothWorkers(self):
        """
        Sessions on both workers: C{info} and C{channels} from any worker
        count both; C{disconnect} ends a user's sessions on both; a wrong
        key is 401 on either.
        """
        process, port = self.startServer()
        sessions = []
        for i in range(12):
            status, body = self.request(port, "POST", "/comet/control", {"op": "join", "user": "u%d" % (i % 2), "channels": ["room"]})
            self.assertEqual(status, 200, body)
            sessions.append(json.loads(body)["session"])
        self.assertEqual({s.split(".")[0] for s in sessions}, {"0", "1"})
        for attempt in range(4):  # lands on either worker
            status, info = self.api(port, "info")
            self.assertEqual(status, 200, info)
            self.assertEqual(sorted(n["sessions"] for n in info["result"]["nodes"]).__len__(), 2)
            self.assertEqual(sum(n["sessions"] for n in info["result"]["nodes"]), 12)
            status, channels = self.api(port, "channels")
            self.assertEqual(channels["result"]["channels"], {"room": {"subscribers": 12}})
        status, presence = self.api(port, "presenceStats", channel="room")
        self.assertEqual((presence["result"]["clients"], presence["result"]["users"]), (12, 2))
        status, members = self.api(port, "presence", channel="room")
        self.assertEqual(sorted({m["user"] for m in members["result"]["members"]}), ["u0", "u1"])
        status, published = self.api(port, "publish", channel="room", data={"n": 1})
        self.assertEqual(status, 200, published)
        status, history = self.api(port, "history", channel="room", order="newest", limit=1)
        self.assertEqual(history["result"]["events"][0]["id"], published["result"]["id"])
        # the event reached sessions on both workers
        for session in (sessions[0], sessions[1]):
            status, body = self.request(port, "GET", "/comet/poll?session=" + session)
            self.assertEqual([m["data"] for m in json.loads(body) if m.get("type") == "event"], [{"n": 1}])
        status, batch = self.api(port, "batch", calls=[
            {"method": "broadcast", "params": {"channels": ["x", "room"], "data": 2}},
            {"method": "unsubscribe", "params": {"user": "u1", "channel": "room"}},
        ])
        self.assertEqual([p["channel"] for p in batch["result"]["replies"][0]["result"]["published"]], ["x", "room"])
        self.assertEqual(batch["result"]["replies"][1], {"result": {}})
        for attempt in range(50):
            status, channels = self.api(port, "channels")
            if channels["result"]["channels"] == {"room": {"subscribers": 6}}:
                break
            time.sleep(0.1)
        self.assertEqual(channels["result"]["channels"], {"room": {"subscribers": 6}})
        self.assertEqual(self.api(port, "disconnect", user="u0")[0], 200)
        for attempt in range(50):
            status, info = self.api(port, "info")
            if sum(n["sessions"] for n in info["result"]["nodes"]) == 6:
                break
            time.sleep(0.1)
        self.assertEqual(sum(n["sessions"] for n in info["result"]["nodes"]), 6)
        status, body = self.request(port, "POST", "/comet/control", {"op": "presence", "session": sessions[0], "channel": "room"})
        self.assertEqual((status, json.loads(body)["reason"]), (410, "kicked"))
        self.assertEqual(self.api(port, "info", key="nope")[0], 401)
        self.assertEqual(self.api(port, "info", key=None)[0], 401)

    def test_oneScrapeShowsBothWorkers(self):
        """
        C{/metrics} on whichever worker a scrape lands shows both, each
        sample labelled with its worker.
        """
        from prometheus_client.parser import text_string_to_metric_families

        process, port = self.startServer()
        for i in range(8):
            status, body = self.request(port, "POST", "/comet/control", {"op": "join", "channels": ["room"]})
            self.assertEqual(status, 200, body)
        for attempt in range(4):
            status, body = self.request(port, "GET", "/comet/metrics", headers={"Authorization": "Bearer " + KEY})
            self.assertEqual(status, 200, body)
            sessions = {}
            for family in text_string_to_metric_families(body.decode()):
                for sample in family.samples:
                    if sample.name == "txcomet_sessions":
                        sessions[sample.labels["worker"]] = sample.value
            self.assertEqual(set(sessions), {"0", "1"})
            self.assertEqual(sum(sessions.values()), 8)


class WorkersAdminWithoutKeyTests(WorkersAPITests):
    """
    C{--workers 2} with no API key: the admin page's ticket, issued by
    whichever worker served the page, opens the server API on both, for a
    client that is not local (the workers sign with one secret of the
    group's).
    """

    serverArgs = ()
    test_methodsAnswerForBothWorkers = None
    test_oneScrapeShowsBothWorkers = None

    def test_ticketOnEitherWorker(self):
        process, port = self.startServer()
        status, page = self.request(port, "GET", "/comet/admin")
        self.assertEqual(status, 200)
        ticket = page.decode().split('data-ticket="', 1)[1].split('"', 1)[0]
        elsewhere = {"X-Forwarded-For": "198.51.100.4"}
        status, body = self.request(port, "POST", "/comet/api", {"method": "info"}, headers=elsewhere)
        self.assertEqual(status, 401, body)
        answered = set()
        for attempt in range(16):
            status, body = self.request(port, "POST", "/comet/api", {"method": "info"},
                                        headers=dict(elsewhere, **{"X-Admin-Ticket": ticket}))
            self.assertEqual(status, 200, body)
            answered.add(json.loads(body)["result"]["nodes"][0]["node"])
        self.assertEqual(len(answered), 2, "both workers answered")
