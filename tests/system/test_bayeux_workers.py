"""
Bayeux with several workers: a long-polling or callback-polling request
for another worker's client is forwarded to that worker, as txcomet's own
requests are (L{WorkerRouter}), over real sockets.  (Reading the client id
from a request: tests/bus/test_workers_bayeux.py.)
"""

import json
import shutil
import tempfile

import treq
from twisted.internet import reactor, task
from twisted.internet.defer import inlineCallbacks
from twisted.internet.endpoints import UNIXServerEndpoint
from twisted.trial.unittest import TestCase
from twisted.web.resource import Resource
from twisted.web.server import Site

from txcomet import Comet, CometConfig, CometRequest, InMemoryBus
from txcomet._node.workers import WorkerRouter, workerSocket


class ForwardTests(TestCase):
    @inlineCallbacks
    def setUp(self):
        self.directory = tempfile.mkdtemp(prefix="txcomet-test-")
        self.addCleanup(shutil.rmtree, self.directory, True)
        bus = InMemoryBus()
        self.workers = []
        for index in range(2):
            comet = Comet(bus=bus, config=CometConfig(heartbeat=30))
            comet.hub.sessionPrefix = "%d." % (index,)
            yield comet.startService()
            self.addCleanup(comet.stopService)
            root = Resource()
            root.putChild(b"comet", comet.resource)
            self.workers.append((comet, root))
        comet1, root1 = self.workers[1]
        private = yield UNIXServerEndpoint(reactor, workerSocket(self.directory, 1)).listen(
            Site(root1, requestFactory=CometRequest)
        )
        self.addCleanup(private.stopListening)
        router = WorkerRouter(self.workers[0][1], 0, 2, self.directory, b"/comet/control", reactor)
        port = reactor.listenTCP(0, Site(router, requestFactory=CometRequest), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        self.url = "http://127.0.0.1:%d/comet/bayeux" % (port.getHost().port,)
        from twisted.web.client import HTTPConnectionPool

        self.pool = HTTPConnectionPool(reactor, persistent=False)
        self.addCleanup(self.pool.closeCachedConnections)

    @inlineCallbacks
    def test_forwarded(self):
        """
        A subscribe and a held connect for worker 1's client, arriving at
        worker 0, run on worker 1; the connect is answered through worker
        0 when an event arrives there.
        """
        comet0, comet1 = self.workers[0][0], self.workers[1][0]
        session = yield comet1.hub.join()
        subscribe = [{"channel": "/meta/subscribe", "clientId": session.id, "subscription": "/a"}]
        response = yield treq.post(self.url, json.dumps(subscribe).encode(), pool=self.pool)
        [reply] = yield treq.json_content(response)
        self.assertTrue(reply["successful"], reply)
        self.assertEqual(list(session.subscriptions), ["a"])
        connect = [{"channel": "/meta/connect", "clientId": session.id, "connectionType": "long-polling"}]
        d = treq.post(self.url + "/connect", json.dumps(connect).encode(), pool=self.pool)
        while session.dataChannel is None:
            yield task.deferLater(reactor, 0.01, lambda: None)
        yield comet0.publish("a", "through worker 0")
        response = yield d
        delivery, reply = yield treq.json_content(response)
        self.assertEqual((delivery["data"], reply["successful"]), ("through worker 0", True))

