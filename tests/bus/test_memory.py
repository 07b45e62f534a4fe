"""
The in-memory bus: the conformance suite, and what is particular to it.
"""

from twisted.internet.defer import succeed
from twisted.trial.unittest import SynchronousTestCase, TestCase

from txcomet import InMemoryBus
from txcomet.testing import RecordingSubscriber

from tests.support.busconformance import BusConformanceMixin
from tests.support import subscriberCount


class InMemoryBusConformanceTests(BusConformanceMixin, TestCase):
    """
    The in-memory bus passes the bus conformance suite.
    """

    def makeBus(self, historyLength):
        return succeed(InMemoryBus(historyLength=historyLength))


class InMemoryBusTests(SynchronousTestCase):
    def test_deliveryIsSynchronous(self):
        """
        Fan-out has happened by the time publish's Deferred has fired.
        """
        bus = InMemoryBus()
        subscriber = RecordingSubscriber()
        bus.subscribe("a", subscriber)
        event = self.successResultOf(bus.publish("a", 1))
        self.assertEqual(subscriber.events, [event])

    def test_forgottenChannelsAreNotCovered(self):
        """
        Past maxChannels, the least recently published channel's history is
        forgotten, and a position before its last event is then reported
        as not covered; the channels still remembered are unaffected.
        """
        bus = InMemoryBus(historyLength=10, maxChannels=2)
        a1 = self.successResultOf(bus.publish("a", 1))
        self.successResultOf(bus.publish("b", 1))
        self.successResultOf(bus.publish("a", 2))
        self.successResultOf(bus.publish("c", 1))  # forgets b, the least recent
        b = self.successResultOf(bus.history("b", a1.id))
        self.assertFalse(b.covered)
        a = self.successResultOf(bus.history("a", a1.id))
        self.assertTrue(a.covered)
        self.assertEqual([e.data for e in a.events], [2])

    def test_epochsDiffer(self):
        """
        Two buses (two lives of a server) have different epochs.
        """
        self.assertNotEqual(InMemoryBus().epoch, InMemoryBus().epoch)

    def test_subscriberCount(self):
        """
        subscriberCount counts each subscriber an event would reach once.
        """
        bus = InMemoryBus()
        one, two = RecordingSubscriber(), RecordingSubscriber()
        bus.subscribe("a/b", one)
        bus.subscribe("a/*", one)
        bus.subscribe("a/**", two)
        self.assertEqual(subscriberCount(bus, "a/b"), 2)
        self.assertEqual(subscriberCount(bus, "a/b/c"), 1)
        self.assertEqual(subscriberCount(bus, "z"), 0)
