"""
Tests for L{txcomet._sessions.handover}: the holding node's claims and
takes, and adopting a session with what was caught meanwhile.
"""

import ast
import inspect

from twisted.trial.unittest import SynchronousTestCase

from txcomet._model.event import Event
from txcomet._sessions import handover, redisrouter
from txcomet._sessions.handover import Handover
from txcomet.testing import RecordingDataChannel, makeComet


class HandoverTests(SynchronousTestCase):
    def setUp(self):
        self.comet, self.clock = makeComet()
        self.hub = self.comet.hub
        self.handover = Handover(self.hub, self.clock, 10)
        self.session = self.successResultOf(self.hub.join())
        self.successResultOf(self.session.subscribe("news"))
        self.channel = RecordingDataChannel()
        self.session.attach(self.channel)

    def test_claimThenTake(self):
        """
        A claim exports the session and holds it (its data channel ends as
        C{replaced}); a second claim meanwhile is told it is busy; the take
        lets it go with what was published since the claim, and is
        answered once.
        """
        answer = self.handover.claim(self.session.id)
        self.assertTrue(answer["found"])
        self.assertEqual(answer["state"]["id"], self.session.id)
        self.assertEqual(self.channel.closed, ("replaced", False))
        self.assertEqual(self.handover.claim(self.session.id), {"found": False, "busy": True})
        self.successResultOf(self.comet.publish("news", "meanwhile"))
        left = []
        taken = self.handover.take(self.session.id, leaving=lambda s: left.append(list(s.subscriptions)))
        self.assertTrue(taken["found"])
        self.assertEqual([Event.fromEnvelope(t.encode()).data for t in taken["tail"]], ["meanwhile"])
        self.assertEqual(left, [["news"]], "told before the session let go of its subscriptions")
        self.assertNotIn(self.session.id, self.hub.sessions)
        self.assertEqual(self.session.closeReason, "moved")
        self.assertEqual(self.handover.take(self.session.id), {"found": False})
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_unknown(self):
        """
        A claim or take for a session this node does not hold (or for no
        string at all) finds nothing.
        """
        self.assertEqual(self.handover.claim("nobody"), {"found": False})
        self.assertEqual(self.handover.claim(["not", "an", "id"]), {"found": False})
        self.assertEqual(self.handover.take("nobody"), {"found": False})
        self.assertEqual(self.handover.take(None), {"found": False})

    def test_abandoned(self):
        """
        A claim whose take never comes: the session carries on here, and
        expires like any session without a data channel unless one comes.
        """
        self.handover.claim(self.session.id)
        self.clock.advance(10)
        self.assertIn(self.session.id, self.hub.sessions)
        self.assertEqual(self.handover.take(self.session.id), {"found": False})
        channel = RecordingDataChannel()
        self.session.attach(channel)
        self.successResultOf(self.comet.publish("news", "after"))
        self.assertEqual([e.data for e in channel.events], ["after"])
        self.session.detach(channel)
        self.clock.advance(self.hub.config.sessionTimeout)
        self.assertEqual(self.session.closeReason, "expired")

    def test_closedAndStopped(self):
        """
        A claimed session that closes, or a handover that stops, leaves no
        timer behind.
        """
        other = self.successResultOf(self.hub.join())
        self.handover.claim(self.session.id)
        self.handover.claim(other.id)
        def claimTimers():
            return [c for c in self.clock.getDelayedCalls() if c.func == self.handover._abandoned]

        self.assertEqual(len(claimTimers()), 2)
        self.session.close("kicked")
        self.handover.closed(self.session)
        self.assertEqual([c.args for c in claimTimers()], [(other.id,)])
        self.handover.stop()
        self.assertEqual(claimTimers(), [])

    def test_adoptWithCaught(self):
        """
        The adopted session has the exported buffer, then what the claiming
        node caught for it that the buffer does not have, each once.
        """
        first = self.successResultOf(self.comet.publish("news", 1))
        answer = self.handover.claim(self.session.id)
        second = self.successResultOf(self.comet.publish("news", 2))
        taken = self.handover.take(self.session.id)
        state = dict(answer["state"], events=answer["state"]["events"] + taken["tail"])
        other, _ = makeComet()
        third = Event("news", 3, second.id.rsplit("-", 1)[0] + "-99", 99)
        adopted = handover.adopt(other.hub, state, [second, third])
        channel = RecordingDataChannel()
        adopted.attach(channel, last=first.id)
        self.assertEqual([e.data for e in channel.events], [2, 3])


class RouterTests(SynchronousTestCase):
    def test_noPrivates(self):
        """
        The Redis session router reaches into no session's or bus's
        private state: what it does with a session is the handover
        module's, and it asks other nodes through the bus's public C{ask}.
        """
        tree = ast.parse(inspect.getsource(redisrouter))
        reaching = [
            (node.lineno, ast.unparse(node))
            for node in ast.walk(tree)
            if isinstance(node, ast.Attribute)
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
            and not (isinstance(node.value, ast.Name) and node.value.id == "self")
        ]
        self.assertEqual(reaching, [])
