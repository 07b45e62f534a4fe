"""
The server API over HTTP against one node in memory (L{MemoryCometClient}):
each method's answer, its errors, who may call it (the API key, or
loopback only when there is none), and a fuzz of the body that never gets
a 500.  (Two Redis nodes and C{--workers 2}: tests/system/test_api_cluster.py.)
"""

import json

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from tests.support.auth import joinAs
from txcomet.testing import MemoryCometClient, makeComet

FROM_ELSEWHERE = {"X-Forwarded-For": ["203.0.113.9"]}


def started(**config):
    comet, clock = makeComet(**config)
    comet.startService()
    return comet, clock, MemoryCometClient(comet)


class MethodTests(SynchronousTestCase):
    def setUp(self):
        self.comet, self.clock, self.client = started(historyLength=10)
        self.addCleanup(self.comet.stopService)

    def call(self, method, **params):
        return self.client.api(method, **params)

    def test_publishAndHistory(self):
        """
        C{publish} answers the event's id; C{history} lists the channel's
        events oldest first or newest first, at most C{limit}, and says
        whether the list is complete.
        """
        ids = [self.call("publish", channel="news", data={"n": n})["result"]["id"] for n in range(5)]
        oldest = self.call("history", channel="news", limit=3)["result"]
        self.assertEqual([e["id"] for e in oldest["events"]], ids[:3])
        self.assertFalse(oldest["complete"])
        newest = self.call("history", channel="news", order="newest")["result"]
        self.assertEqual([e["data"]["n"] for e in newest["events"]], [4, 3, 2, 1, 0])
        self.assertTrue(newest["complete"])
        since = self.call("history", channel="news", since=ids[2])["result"]
        self.assertEqual([e["id"] for e in since["events"]], ids[3:])
        self.assertEqual(since["position"], ids[-1])

    def test_historyForgotten(self):
        """
        Past the history length, the oldest events are gone and the answer
        says it is not complete.
        """
        for n in range(12):
            self.call("publish", channel="news", data=n)
        answer = self.call("history", channel="news", limit=100)["result"]
        self.assertEqual([e["data"] for e in answer["events"]], list(range(2, 12)))
        self.assertFalse(answer["complete"])

    def test_unknownChannelIsEmpty(self):
        """
        A channel nobody used answers empty, not 404.
        """
        self.assertEqual(self.call("history", channel="nobody")["result"]["events"], [])
        self.assertEqual(self.call("presence", channel="nobody")["result"]["members"], [])
        self.assertEqual(self.call("channels", pattern="nobody/**")["result"]["channels"], {})

    def test_broadcast(self):
        """
        C{broadcast} publishes one event on each channel, each with its id.
        """
        seen = []
        self.comet.bus.subscribe("a", type("S", (), {"deliver": lambda s, e: seen.append(e)})())
        answer = self.call("broadcast", channels=["a", "b"], data="hi")["result"]
        self.assertEqual([p["channel"] for p in answer["published"]], ["a", "b"])
        self.assertEqual([e.id for e in seen], [answer["published"][0]["id"]])

    def test_presenceChannelsAndInfo(self):
        """
        C{presence}, C{presenceStats}, C{channels} and C{info} count the
        sessions of this node.
        """
        alice, aliceChannel = joinAs(self.comet, "alice", ["room", "news"])
        joinAs(self.comet, "alice", ["room"])
        joinAs(self.comet, "bob", ["room"])
        members = self.call("presence", channel="room")["result"]["members"]
        self.assertEqual(sorted(m["user"] for m in members), ["alice", "alice", "bob"])
        stats = self.call("presenceStats", channel="room")["result"]
        self.assertEqual((stats["clients"], stats["users"]), (3, 2))
        channels = self.call("channels")["result"]
        self.assertEqual(channels["channels"], {"news": {"subscribers": 1}, "room": {"subscribers": 3}})
        self.assertEqual(self.call("channels", pattern="news")["result"]["channels"], {"news": {"subscribers": 1}})
        info = self.call("info")["result"]
        self.assertEqual(len(info["nodes"]), 1)
        node = info["nodes"][0]
        self.assertEqual((node["sessions"], node["subscriptions"], node["channels"]), (3, 4, 2))
        self.assertEqual(node["connections"], {"recording": 3})
        self.assertEqual(node["node"], self.comet.cluster.nodeId)
        self.assertIsInstance(node["memory"]["rss"], int)

    def test_disconnectAndUnsubscribe(self):
        """
        C{disconnect} ends a user's sessions, or one session, with the
        reason given; C{unsubscribe} ends a user's subscription.
        """
        alice, aliceChannel = joinAs(self.comet, "alice", ["room", "news"])
        bob, bobChannel = joinAs(self.comet, "bob", ["room"])
        carol, carolChannel = joinAs(self.comet, "carol", ["room"])
        self.assertEqual(self.call("unsubscribe", user="alice", channel="room"), {"result": {}})
        self.assertEqual(list(alice.subscriptions), ["news"])
        self.assertEqual(self.call("disconnect", user="alice", reason="banned"), {"result": {}})
        self.assertEqual(aliceChannel.closed, ("banned", False))
        self.call("disconnect", session=bob.id)
        self.assertEqual(bobChannel.closed, ("kicked", False))
        self.assertIsNone(carolChannel.closed)

    def test_batch(self):
        """
        C{batch} answers each call in order, errors in their place.
        """
        answer = self.call(
            "batch",
            calls=[
                {"method": "publish", "params": {"channel": "a", "data": 1}},
                {"method": "nope"},
                {"method": "history", "params": {"channel": "a"}},
                {"method": "batch", "params": {"calls": []}},
            ],
        )["result"]["replies"]
        self.assertIn("id", answer[0]["result"])
        self.assertEqual(answer[1]["error"], "unknown_method")
        self.assertEqual(answer[2]["result"]["events"][0]["data"], 1)
        self.assertEqual(answer[3]["error"], "invalid_request")

    def test_methodInPath(self):
        """
        C{POST /api/<method>} takes the params as the whole body.
        """
        response = self.client.request("POST", "api/publish", json.dumps({"channel": "a", "data": 2}).encode())
        self.assertEqual(response.code, 200)
        self.assertIn("id", response.json()["result"])
        self.assertEqual(self.client.request("POST", "api/publish/x", b"{}").code, 404)

    def test_errors(self):
        """
        An unknown method and bad params are 400 with a JSON body; a
        reserved channel is 403; a body that is not JSON is 400.
        """
        cases = [
            ({"method": "nope"}, 400, "unknown_method"),
            ({"params": {}}, 400, "unknown_method"),
            ({"method": "publish", "params": []}, 400, "invalid_request"),
            ({"method": "publish", "params": {"channel": "a"}}, 400, "invalid_request"),
            ({"method": "publish", "params": {"channel": "bad channel", "data": 1}}, 400, "invalid_channel"),
            ({"method": "publish", "params": {"channel": "~txcomet/revoke", "data": 1}}, 403, "forbidden"),
            ({"method": "history", "params": {"channel": "a", "limit": 0}}, 400, "invalid_request"),
            ({"method": "history", "params": {"channel": "a", "since": "x"}}, 400, "invalid_position"),
            ({"method": "history", "params": {"channel": "a", "order": "up"}}, 400, "invalid_request"),
            ({"method": "disconnect", "params": {}}, 400, "invalid_request"),
            ({"method": "disconnect", "params": {"user": "a", "session": "b"}}, 400, "invalid_request"),
            ({"method": "unsubscribe", "params": {"user": "a", "channel": "a b"}}, 400, "invalid_channel"),
            ({"method": "broadcast", "params": {"channels": [], "data": 1}}, 400, "invalid_request"),
            ({"method": "channels", "params": {"pattern": "***"}}, 400, "invalid_channel"),
            ([1, 2], 400, "invalid_request"),
        ]
        for body, status, code in cases:
            response = self.client.request("POST", "api", json.dumps(body).encode())
            self.assertEqual((response.code, response.json()["error"]), (status, code), body)
        response = self.client.request("POST", "api", b"{nope")
        self.assertEqual((response.code, response.json()["error"]), (400, "malformed_json"))
        self.assertEqual(self.client.request("GET", "api").json(), {"methods": sorted(self.comet.api.methods)})
        self.assertEqual(self.client.request("DELETE", "api").code, 405)

    @settings(max_examples=300, deadline=None)
    @given(
        st.one_of(
            st.binary(max_size=200),
            st.recursive(
                st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
                max_leaves=12,
            ).map(lambda v: json.dumps(v).encode()),
            st.fixed_dictionaries(
                {
                    "method": st.sampled_from(["publish", "broadcast", "history", "presence", "presenceStats",
                                               "channels", "info", "disconnect", "unsubscribe", "batch"]),
                    "params": st.dictionaries(
                        st.sampled_from(["channel", "channels", "data", "since", "limit", "order", "pattern",
                                         "user", "session", "reason", "calls"]),
                        st.none() | st.integers() | st.text(max_size=12) | st.lists(st.text(max_size=8), max_size=3),
                        max_size=5,
                    ),
                }
            ).map(lambda v: json.dumps(v).encode()),
        )
    )
    def test_fuzzNever500(self, body):
        """
        No body, however wrong, gets a 500: every answer is 200 or a 4xx
        with a JSON error.
        """
        response = self.client.request("POST", "api", body)
        self.assertTrue(response.code == 200 or 400 <= response.code < 500, (body, response.code, response.body))
        answer = response.json()
        self.assertTrue("result" in answer or "error" in answer)


class AccessTests(SynchronousTestCase):
    def test_loopbackOnlyWithoutKey(self):
        """
        Without an API key, a local client may call; one that came through
        a proxy (X-Forwarded-For, Forwarded, X-Real-IP) gets 401 with a body
        saying how to configure a key.  The publish API does the same
        without a publisher secret.
        """
        comet, clock, client = started()
        self.addCleanup(comet.stopService)
        body = json.dumps({"method": "info"}).encode()
        self.assertEqual(client.request("POST", "api", body).code, 200)
        for header in ("X-Forwarded-For", "Forwarded", "X-Real-IP"):
            response = client.request("POST", "api", body, headers={header: ["1.2.3.4"]})
            self.assertEqual(response.code, 401)
            self.assertEqual(response.json()["error"], "unauthorized")
            self.assertIn("--api-key", response.json()["message"])
        response = client.request("POST", "publish/news", b"hi", headers=FROM_ELSEWHERE)
        self.assertEqual((response.code, response.json()["error"]), (401, "unauthorized"))
        self.assertEqual(client.request("POST", "publish/news", b"hi").code, 200)

    def test_key(self):
        """
        With a key: no key or a wrong one is 401 (from anywhere, loopback
        too); the key as X-API-Key or Bearer is let in from anywhere.  The
        publish API takes the key as well as the publisher secret.
        """
        comet, clock, client = started(apiKey="s3cret-key", publisherSecret="pub")
        self.addCleanup(comet.stopService)
        body = json.dumps({"method": "info"}).encode()
        for headers in ({}, {"X-API-Key": ["wrong"]}, {"Authorization": ["Bearer wrong"]}):
            response = client.request("POST", "api", body, headers=headers)
            self.assertEqual((response.code, response.json()["error"]), (401, "unauthorized"), headers)
            self.assertNotIn("s3cret", response.body.decode())
        for headers in ({"X-API-Key": ["s3cret-key"]}, {"Authorization": ["Bearer s3cret-key"]}):
            headers.update(FROM_ELSEWHERE)
            self.assertEqual(client.request("POST", "api", body, headers=headers).code, 200)
        for headers in ({"X-API-Key": ["s3cret-key"]}, {"X-Comet-Secret": ["pub"]}, {"Authorization": ["Bearer pub"]}):
            self.assertEqual(client.request("POST", "publish/news", b"x", headers=headers).code, 200, headers)
        self.assertEqual(client.request("POST", "publish/news", b"x").code, 403)
        self.assertEqual(client.request("POST", "publish/news", b"x", headers={"X-API-Key": ["no"]}).code, 403)


class PythonTests(SynchronousTestCase):
    def test_cometMethods(self):
        """
        The same operations on L{Comet} for Python applications.
        """
        comet, clock, client = started()
        self.addCleanup(comet.stopService)
        joinAs(comet, "alice", ["room"])
        event = self.successResultOf(comet.publish("room", 1))
        history = self.successResultOf(comet.history("room", order="newest"))
        self.assertEqual(history["events"][0]["id"], event.id)
        self.assertEqual(self.successResultOf(comet.channels())["channels"], {"room": {"subscribers": 1}})
        self.assertEqual(self.successResultOf(comet.info())["nodes"][0]["sessions"], 1)
        failure = self.failureResultOf(comet.api.call("presence", {"channel": 3}))
        self.assertEqual(failure.value.code, "invalid_request")
