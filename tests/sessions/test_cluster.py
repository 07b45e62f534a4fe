"""
L{Cluster}: nodes sharing a bus learn of each other and answer each
other's questions; a question waits for the nodes known, or says which did
not answer.  Two L{Comet} services on one in-memory bus stand for two
nodes; the clock is a L{Clock}.
"""

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from tests.support.auth import joinAs
from txcomet._bus.memory import InMemoryBus
from txcomet._server.service import Comet
from txcomet._sessions.cluster import Cluster, channelCounts
from txcomet.interfaces import ISubscriber


class ClusterTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.bus = InMemoryBus()
        self.nodes = [self.node() for _ in range(2)]

    def node(self):
        comet = Comet(bus=self.bus, clock=self.clock)
        comet.startService()
        self.addCleanup(lambda: comet.running and comet.stopService())
        return comet

    def test_interface(self):
        self.assertTrue(verifyObject(ISubscriber, self.nodes[0].cluster))

    def test_nodesKnowEachOther(self):
        """
        A node that starts says hello; those there answer, so both know
        the other at once.
        """
        a, b = self.nodes
        self.assertEqual(a.cluster.liveNodes(), [a.cluster.nodeId, b.cluster.nodeId])
        self.assertEqual(b.cluster.liveNodes(), [b.cluster.nodeId, a.cluster.nodeId])

    def test_askGathersEveryNode(self):
        """
        C{channels} and C{info} through the server API add up both nodes.
        """
        a, b = self.nodes
        joinAs(a, "alice", ["room"])
        joinAs(b, "bob", ["room", "news"])
        channels = self.successResultOf(a.api.call("channels"))
        self.assertEqual(channels["channels"], {"news": {"subscribers": 1}, "room": {"subscribers": 2}})
        self.assertEqual((channels["nodes"], channels["missing"]), (2, []))
        info = self.successResultOf(b.api.call("info"))
        self.assertEqual([n["node"] for n in info["nodes"]][0], b.cluster.nodeId)
        self.assertEqual(sorted(n["sessions"] for n in info["nodes"]), [1, 1])

    def test_silentNodeIsMissing(self):
        """
        A node that does not answer holds a question back only
        C{Cluster.wait} seconds; the answer names it as missing.
        """
        a, b = self.nodes
        del b.cluster.answerers["info"]
        d = a.api.call("info")
        self.assertNoResult(d)
        self.clock.advance(Cluster.wait)
        info = self.successResultOf(d)
        self.assertEqual([n["node"] for n in info["nodes"]], [a.cluster.nodeId])
        self.assertEqual(info["missing"], [b.cluster.nodeId])

    def test_byeAndForgetting(self):
        """
        A node that stops says bye and is no longer waited for; one that
        goes quiet is forgotten after three beats missed, while one that
        beats stays known.
        """
        a, b = self.nodes
        b.stopService()
        self.assertEqual(a.cluster.liveNodes(), [a.cluster.nodeId])
        c = self.node()
        self.assertEqual(a.cluster.liveNodes(), [a.cluster.nodeId, c.cluster.nodeId])
        self.clock.advance(Cluster.interval * 4)
        self.assertEqual(a.cluster.liveNodes(), [a.cluster.nodeId, c.cluster.nodeId])
        c.cluster._beat.stop()
        c.cluster.nodes.clear()
        self.clock.advance(Cluster.interval * 3 + 1)
        self.assertEqual(a.cluster.liveNodes(), [a.cluster.nodeId])

    def test_clientsCannotReachIt(self):
        """
        The cluster's channels are reserved: no session may subscribe to
        them, and no wildcard subscription or channel list shows them.
        """
        a, b = self.nodes
        session, channel = joinAs(a, "alice", ["**"])
        failure = self.failureResultOf(session.subscribe("~txcomet/query"))
        self.assertEqual(failure.value.code, "forbidden")
        self.successResultOf(a.api.call("info"))
        self.assertEqual(channel.writes, [])
        self.assertEqual(channelCounts(a.hub), {"**": 1})
