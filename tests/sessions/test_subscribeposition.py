"""
The position a subscribe answers is where the subscription starts, also on
a bus where events can land between the subscription taking effect and a
position read after it (a networked bus: Redis).
"""

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from txcomet import Comet, CometConfig, InMemoryBus
from txcomet.testing import RecordingDataChannel


class LaggingBus(InMemoryBus):
    """
    An in-memory bus on which an event is published on a channel just
    after each subscription to it takes effect, as another node may do
    while a networked bus's position read is on its way.
    """

    def subscribe(self, pattern, subscriber):
        d = InMemoryBus.subscribe(self, pattern, subscriber)
        if "*" not in pattern:
            InMemoryBus.publish(self, pattern, "in between")
        return d


class SubscribePositionTests(SynchronousTestCase):
    def test_positionIsWhereTheSubscriptionStarts(self):
        """
        The event that lands right after the subscription is delivered
        once, and the answered position is before it: a client that lost
        it in flight and resumes from that position gets it back from
        history.
        """
        bus = LaggingBus()
        comet = Comet(bus=bus, config=CometConfig(), clock=Clock())
        session = self.successResultOf(comet.hub.join())
        ack = self.successResultOf(session.subscribe("news"))
        self.assertNotIn("recovered", ack)
        channel = RecordingDataChannel()
        session.attach(channel)
        [event] = channel.events
        self.assertEqual(event.data, "in between")
        history = self.successResultOf(bus.history("news", ack["position"]))
        self.assertTrue(history.covered)
        self.assertEqual([e.id for e in history.events], [event.id])

    def test_patternsAndRepeatsAreUnchanged(self):
        """
        A pattern (no history to catch up from) and a channel subscribed
        again answer the position after subscribing, as before.
        """
        bus = LaggingBus()
        comet = Comet(bus=bus, config=CometConfig(), clock=Clock())
        session = self.successResultOf(comet.hub.join())
        ack = self.successResultOf(session.subscribe("news/*"))
        self.assertEqual(ack["position"], self.successResultOf(bus.position()))
        self.successResultOf(session.subscribe("news"))
        again = self.successResultOf(session.subscribe("news"))
        self.assertEqual(again["position"], self.successResultOf(bus.position()))
