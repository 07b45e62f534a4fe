"""
The hub's side of L{ISessionRouter}, with a fake router: control requests
and data channels for sessions this node does not hold, and moving a
session's state between hubs.
"""

from twisted.internet.defer import succeed
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from txcomet import CometError, InMemoryBus
from txcomet.interfaces import ISessionRouter
from txcomet.testing import MemoryCometClient, RecordingDataChannel, makeComet
from txcomet._server.service import Comet
from txcomet._sessions import handover
from txcomet._model.config import CometConfig
from twisted.internet.task import Clock
from tests.support import subscriberCount


@implementer(ISessionRouter)
class FakeRouterBus(InMemoryBus):
    """
    An in-memory bus that says another node holds the sessions in
    C{elsewhere} (session id -> answer or state).
    """

    def __init__(self) -> None:
        InMemoryBus.__init__(self)
        self.hub = None
        self.forwarded = []
        self.claims = []
        self.closed = []
        self.elsewhere = {}

    def bindHub(self, hub):
        self.hub = hub

    def sessionClosed(self, session):
        self.closed.append(session.id)

    def claimSession(self, sessionId):
        self.claims.append(sessionId)
        state = self.elsewhere.get(sessionId)
        if state is None:
            return succeed(None)
        session = self.hub.adoptSession(state)
        for pattern in state["subscriptions"]:
            self.subscribe(pattern, session)
        return succeed(session)

    def forwardControl(self, sessionId, message, context):
        self.forwarded.append((sessionId, message))
        if sessionId not in self.elsewhere:
            raise CometError("unknown_session")
        return succeed({"ok": True, "op": message["op"], "from": "elsewhere"})


def makeRouted():
    bus = FakeRouterBus()
    comet = Comet(bus=bus, config=CometConfig(), clock=Clock())
    return comet, bus, MemoryCometClient(comet)


class HubRoutingTests(SynchronousTestCase):
    def test_hubBindsItself(self):
        """
        A hub on a bus that provides ISessionRouter binds itself to it; on
        the in-memory bus it has no router.
        """
        comet, bus, client = makeRouted()
        self.assertIs(bus.hub, comet.hub)
        self.assertIs(comet.hub.router, bus)
        self.assertIsNone(makeComet()[0].hub.router)

    def test_controlForUnknownSessionIsForwarded(self):
        """
        A control operation naming a session this hub does not hold goes to
        the router and its answer is the reply; the router's error is the
        error.  Local sessions and join never go through it.
        """
        comet, bus, client = makeRouted()
        bus.elsewhere["remote"] = {}
        reply = client.control(op="subscribe", session="remote", channel="x")
        self.assertEqual(reply, {"ok": True, "op": "subscribe", "from": "elsewhere"})
        reply = client.control(op="leave", session="gone")
        self.assertEqual(reply["error"], "unknown_session")
        local = client.join()
        self.assertTrue(client.subscribe(local, "x")["ok"])
        self.assertEqual([s for s, m in bus.forwarded], ["remote", "gone"])

    def test_dataChannelClaimsTheSession(self):
        """
        A data channel for a session held elsewhere claims it; the adopted
        session keeps its id, client id, subscriptions and unsent events,
        and gets what is published next.
        """
        comet, bus, client = makeRouted()
        source, _ = makeComet()
        session = self.successResultOf(source.hub.join(user="ann"))
        self.successResultOf(session.subscribe("news"))
        self.successResultOf(source.publish("news", "queued"))
        state = handover.exportState(session)
        bus.elsewhere[session.id] = state
        events = client.poll(session.id)
        self.assertEqual([(e["type"], e["data"]) for e in events],
                         [("join", {"client": session.clientId, "user": "ann"}), ("event", "queued")])
        adopted = comet.hub.sessions[session.id]
        self.assertEqual((adopted.clientId, adopted.user, list(adopted.subscriptions)),
                         (session.clientId, "ann", ["news"]))
        self.successResultOf(comet.publish("news", "next"))
        self.assertEqual([e["data"] for e in client.poll(session.id)], ["next"])
        self.assertEqual(client.poll("nobody")["error"], "unknown_session")
        self.assertEqual(bus.claims, [session.id, "nobody"])

    def test_exportReplayAndEventsSince(self):
        """
        exportState carries the replay buffer (a data channel on the new
        node can resume from an id already sent); eventsSince gives what
        was queued after the export.
        """
        comet, clock = makeComet()
        session = self.successResultOf(comet.hub.join())
        self.successResultOf(session.subscribe("n"))
        first = self.successResultOf(comet.publish("n", 1))
        channel = RecordingDataChannel()
        session.attach(channel)
        self.successResultOf(comet.publish("n", 2))
        state = handover.exportState(session)
        self.assertEqual(state["sent"], 2)
        handover.hold(session)
        self.assertEqual(channel.closed, ("replaced", False))
        self.successResultOf(comet.publish("n", 3))
        tail = handover.eventsSince(session, state["end"])
        self.assertEqual(len(tail), 1)
        comet.hub.release(session)
        self.assertNotIn(session.id, comet.hub.sessions)
        self.assertEqual(subscriberCount(comet.bus, "n"), 0)
        other, _ = makeComet()
        state["events"] += tail
        adopted = other.hub.adoptSession(state)
        replay = RecordingDataChannel()
        adopted.attach(replay, last=first.id)
        self.assertEqual([e.data for e in replay.events], [2, 3])
