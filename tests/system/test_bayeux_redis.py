"""
Bayeux on the Redis bus: two nodes (two L{Comet} servers on real sockets,
one process) share a Redis; Bayeux clients on either see what is
published on the other, and a client's requests may land on either node.
"""

import json

import treq
from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import TestCase
from twisted.web.client import HTTPConnectionPool

from tests.support.redisserver import RedisServer
from tests.system.test_redisbus import waitUntil
from tests.system.test_redisroute import Node

HANDSHAKE = {"channel": "/meta/handshake", "version": "1.0", "supportedConnectionTypes": ["long-polling"]}


class BayeuxRedisTests(TestCase):
    timeout = 60

    @inlineCallbacks
    def setUp(self):
        self.redis = RedisServer.forTest(self)
        self.pool = HTTPConnectionPool(reactor, persistent=False)
        self.addCleanup(self.pool.closeCachedConnections)
        self.a = Node(self.redis.url)
        self.b = Node(self.redis.url)
        for node in (self.a, self.b):
            yield node.start()
            self.addCleanup(node.stop)

    @inlineCallbacks
    def send(self, node, *messages):
        response = yield treq.post(node.url + "/bayeux", json.dumps(list(messages)).encode(), pool=self.pool)
        self.assertEqual(response.code, 200)
        answer = yield response.json()
        return answer

    @inlineCallbacks
    def test_acrossNodes(self):
        """
        A Bayeux client of node A receives what a backend publishes on node
        B; any of its requests landing on the other node moves its session
        there, with what was queued for it, once each and in order.
        """
        [hello] = yield self.send(self.a, HANDSHAKE)
        clientId = hello["clientId"]
        [sub] = yield self.send(self.a, {"channel": "/meta/subscribe", "clientId": clientId, "subscription": "/news/*"})
        self.assertTrue(sub["successful"], sub)
        yield self.b.comet.publish("news/one", 1)
        yield waitUntil(lambda: self.a.sessions[clientId].pending >= 1, "event 1 on A")
        connect = {"channel": "/meta/connect", "clientId": clientId, "connectionType": "long-polling", "advice": {"timeout": 0}}
        answer = yield self.send(self.a, connect)
        self.assertEqual([m["data"] for m in answer if "data" in m], [1])
        yield self.b.comet.publish("news/two", 2)
        yield waitUntil(lambda: self.a.sessions[clientId].pending >= 1, "event 2 on A")
        answer = yield self.send(self.b, connect)
        self.assertEqual([m["data"] for m in answer if "data" in m], [2])
        self.assertEqual(answer[-1]["successful"], True)
        self.assertIn(clientId, self.b.sessions)
        self.assertNotIn(clientId, self.a.sessions)
        [published] = yield self.send(self.a, {"channel": "/news/three", "clientId": clientId, "data": 3})
        self.assertTrue(published["successful"], published)
        # The publish moved the session back to A, where it was sent.
        self.assertIn(clientId, self.a.sessions)
        yield waitUntil(lambda: self.a.sessions[clientId].pending >= 1, "event 3 on A")
        answer = yield self.send(self.b, connect)
        self.assertEqual([m["data"] for m in answer if "data" in m], [3])
