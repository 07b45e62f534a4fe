"""
The bus conformance suite: what every L{IEventBus} must do, written only
against the interfaces.

A bus implementation gets a test class by mixing L{BusConformanceMixin}
into a trial L{TestCase} and defining C{makeBus}:

    class InMemoryBusConformance(BusConformanceMixin, TestCase):
        def makeBus(self, historyLength):
            return succeed(InMemoryBus(historyLength))

C{makeBus} returns a L{Deferred} firing with a started, empty bus, whose
cleanup the test class arranges itself.  Deliveries may be asynchronous
(a networked bus): the suite waits for them with L{waitFor}, which polls
the real reactor only when what it waits for has not happened yet.
"""

from typing import Any, Callable

from twisted.internet import reactor, task
from twisted.internet.defer import inlineCallbacks, maybeDeferred
from zope.interface import implementer
from zope.interface.verify import verifyObject

from txcomet import CometError
from txcomet.interfaces import IEvent, IEventBus, IHistory, IPresence, ISubscriber
from txcomet.testing import RecordingSubscriber


@implementer(ISubscriber)
class RaisingSubscriber:
    """
    A subscriber whose every delivery raises.
    """

    def __init__(self) -> None:
        self.calls = 0

    def deliver(self, event: Any) -> None:
        self.calls += 1
        raise RuntimeError("this subscriber is broken")


class BusConformanceMixin:
    """
    Tests any L{IEventBus} (and L{IPresence}) must pass unchanged.
    """

    #: How long L{waitFor} waits before failing the test, in seconds.
    waitTimeout = 5.0

    def makeBus(self, historyLength: int):
        """
        A L{Deferred} firing with a started bus keeping C{historyLength}
        events per channel.
        """
        raise NotImplementedError()

    @inlineCallbacks
    def waitFor(self, predicate: Callable[[], bool], what: str = "a condition"):
        """
        Wait until C{predicate()} is true; fail after L{waitTimeout}.
        """
        waited = 0.0
        while not predicate():
            if waited >= self.waitTimeout:
                self.fail("Timed out waiting for %s" % (what,))
            yield task.deferLater(reactor, 0.01, lambda: None)
            waited += 0.01

    def failureOf(self, call: Callable[[], Any]):
        """
        A L{Deferred} firing with a list holding the L{Failure} C{call}
        fails with (raised or as a failed Deferred), or an empty list if it
        succeeds.  (A bare L{Failure} as a result would fail the Deferred.)
        """
        return maybeDeferred(call).addCallbacks(lambda _: [], lambda f: [f])

    @inlineCallbacks
    def settle(self):
        """
        Give an asynchronous bus a moment to deliver anything in flight, so
        a test can check that something was I{not} delivered.  Publishes a
        marker on a private channel and waits for it to arrive.
        """
        marker = RecordingSubscriber()
        yield self.bus.subscribe("conformance-marker", marker)
        yield self.bus.publish("conformance-marker", "marker")
        yield self.waitFor(lambda: marker.events, "the marker event")
        yield self.bus.unsubscribe("conformance-marker", marker)

    @inlineCallbacks
    def setUpBus(self, historyLength: int = 5):
        self.bus = yield self.makeBus(historyLength)
        return self.bus

    # the interface

    @inlineCallbacks
    def test_interfaces(self):
        """
        The bus provides IEventBus and IPresence; its events provide IEvent
        and its histories IHistory.
        """
        bus = yield self.setUpBus()
        self.assertTrue(verifyObject(IEventBus, bus))
        self.assertTrue(verifyObject(IPresence, bus))
        event = yield bus.publish("a", 1)
        self.assertTrue(verifyObject(IEvent, event))
        history = yield bus.history("a", None)
        self.assertTrue(verifyObject(IHistory, history))

    @inlineCallbacks
    def test_publishEncoded(self):
        """
        The bus takes data already encoded (L{IEncodedPublisher}), and its
        subscribers see the same event as from a plain publish.
        """
        from txcomet._model.event import encodeJSON
        from txcomet.interfaces import IEncodedPublisher

        bus = yield self.setUpBus()
        self.assertTrue(verifyObject(IEncodedPublisher, bus))
        subscriber = RecordingSubscriber()
        yield bus.subscribe("a", subscriber)
        data = {"text": "h\u00e9llo", "n": [1, 2.5, None]}
        plain = yield bus.publish("a", data)
        encoded = yield bus.publishEncoded("a", data, encodeJSON(data))
        yield self.waitFor(lambda: len(subscriber.events) == 2)
        first, second = subscriber.events
        self.assertEqual((second.data, second.id), (data, encoded.id))
        self.assertEqual(second.json.replace(encoded.id.encode(), b"ID"), first.json.replace(plain.id.encode(), b"ID"))

    # publishing and delivery

    @inlineCallbacks
    def test_publishGivesPositions(self):
        """
        Publishing fires with the event: its channel, data and kind, an id
        of the form <epoch>-<offset>, and offsets that grow across channels.
        """
        bus = yield self.setUpBus()
        first = yield bus.publish("a", {"x": [1, "é"]})
        second = yield bus.publish("b", None)
        self.assertEqual((first.channel, first.data, first.kind), ("a", {"x": [1, "é"]}, "event"))
        self.assertEqual(first.id, "%s-%d" % (first.epoch, first.offset))
        self.assertEqual(first.epoch, bus.epoch)
        self.assertGreater(second.offset, first.offset)
        position = yield bus.position()
        self.assertEqual(position, second.id)

    @inlineCallbacks
    def test_deliveryInOrderToExactSubscribers(self):
        """
        A subscriber receives the events of its channel, in publish order,
        and nothing from other channels.
        """
        bus = yield self.setUpBus()
        subscriber = RecordingSubscriber()
        yield bus.subscribe("chat/room1", subscriber)
        for i in range(20):
            yield bus.publish("chat/room1", i)
            yield bus.publish("chat/room2", -i)
        yield self.waitFor(lambda: len(subscriber.events) >= 20, "20 events")
        yield self.settle()
        self.assertEqual(subscriber.data, list(range(20)))
        self.assertEqual({e.channel for e in subscriber.events}, {"chat/room1"})

    @inlineCallbacks
    def test_jsonRoundTrip(self):
        """
        Any JSON value comes out as it went in, non-ASCII and nesting too.
        """
        bus = yield self.setUpBus()
        subscriber = RecordingSubscriber()
        yield bus.subscribe("t", subscriber)
        values = ["line\nbreak", "</script>", "\u2028é漢字😀", 1.5, -3, True, None, [], {"a": {"b": [1, 2]}}]
        for value in values:
            yield bus.publish("t", value)
        yield self.waitFor(lambda: len(subscriber.events) >= len(values), "all values")
        self.assertEqual(subscriber.data, values)

    @inlineCallbacks
    def test_singleLevelWildcard(self):
        """
        C{chat/*} matches C{chat/x} but neither C{chat} nor C{chat/x/y}.
        """
        bus = yield self.setUpBus()
        subscriber = RecordingSubscriber()
        yield bus.subscribe("chat/*", subscriber)
        yield bus.publish("chat", "parent")
        yield bus.publish("chat/x/y", "deep")
        yield bus.publish("chat/x", "child")
        yield bus.publish("other/x", "other")
        yield self.waitFor(lambda: subscriber.events, "the child event")
        yield self.settle()
        self.assertEqual(subscriber.data, ["child"])

    @inlineCallbacks
    def test_innerWildcard(self):
        """
        C{a/*/c} matches any one middle segment.
        """
        bus = yield self.setUpBus()
        subscriber = RecordingSubscriber()
        yield bus.subscribe("a/*/c", subscriber)
        yield bus.publish("a/b/c", 1)
        yield bus.publish("a/b/d", 2)
        yield bus.publish("a/zz/c", 3)
        yield self.waitFor(lambda: len(subscriber.events) >= 2, "two events")
        yield self.settle()
        self.assertEqual(subscriber.data, [1, 3])

    @inlineCallbacks
    def test_deepWildcard(self):
        """
        C{chat/**} matches C{chat/x} and C{chat/x/y/z} but not C{chat}.
        """
        bus = yield self.setUpBus()
        subscriber = RecordingSubscriber()
        yield bus.subscribe("chat/**", subscriber)
        yield bus.publish("chat", "parent")
        yield bus.publish("chat/x", "child")
        yield bus.publish("chat/x/y/z", "deep")
        yield bus.publish("chatter/x", "other")
        yield self.waitFor(lambda: len(subscriber.events) >= 2, "two events")
        yield self.settle()
        self.assertEqual(subscriber.data, ["child", "deep"])

    @inlineCallbacks
    def test_overlappingSubscriptionsDeliverOnce(self):
        """
        A subscriber whose channel and patterns all match an event gets it
        once.
        """
        bus = yield self.setUpBus()
        subscriber = RecordingSubscriber()
        for pattern in ("news/sport", "news/*", "news/**"):
            yield bus.subscribe(pattern, subscriber)
        yield bus.publish("news/sport", "goal")
        yield self.waitFor(lambda: subscriber.events, "the event")
        yield self.settle()
        self.assertEqual(subscriber.data, ["goal"])

    @inlineCallbacks
    def test_unsubscribe(self):
        """
        After unsubscribing from a pattern, its events stop; other
        subscriptions of the same subscriber go on.
        """
        bus = yield self.setUpBus()
        subscriber = RecordingSubscriber()
        yield bus.subscribe("a", subscriber)
        yield bus.subscribe("b/*", subscriber)
        yield bus.unsubscribe("a", subscriber)
        yield bus.unsubscribe("never-subscribed", subscriber)
        yield bus.publish("a", 1)
        yield bus.publish("b/x", 2)
        yield self.waitFor(lambda: subscriber.events, "the b/x event")
        yield self.settle()
        self.assertEqual(subscriber.data, [2])

    @inlineCallbacks
    def test_unsubscribeAll(self):
        """
        unsubscribeAll removes every subscription of one subscriber and no
        other subscriber's.
        """
        bus = yield self.setUpBus()
        gone, staying = RecordingSubscriber(), RecordingSubscriber()
        for pattern in ("a", "b/**"):
            yield bus.subscribe(pattern, gone)
            yield bus.subscribe(pattern, staying)
        yield bus.unsubscribeAll(gone)
        yield bus.publish("a", 1)
        yield bus.publish("b/c", 2)
        yield self.waitFor(lambda: len(staying.events) >= 2, "two events")
        yield self.settle()
        self.assertEqual(gone.events, [])
        self.assertEqual(staying.data, [1, 2])

    @inlineCallbacks
    def test_raisingSubscriberIsDropped(self):
        """
        A subscriber that raises is logged and unsubscribed; the others
        still receive that event and the next ones.
        """
        bus = yield self.setUpBus()
        before, broken, after = RecordingSubscriber(), RaisingSubscriber(), RecordingSubscriber()
        yield bus.subscribe("x", before)
        yield bus.subscribe("x", broken)
        yield bus.subscribe("x/**", broken)
        yield bus.subscribe("x", after)
        yield bus.publish("x", 1)
        yield self.waitFor(lambda: after.events, "the first event")
        yield bus.publish("x", 2)
        yield bus.publish("x/y", 3)
        yield self.waitFor(lambda: len(before.events) >= 2, "the second event")
        yield self.settle()
        self.assertEqual(before.data, [1, 2])
        self.assertEqual(after.data, [1, 2])
        self.assertEqual(broken.calls, 1)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    @inlineCallbacks
    def test_invalidChannel(self):
        """
        Publishing on, subscribing to or asking the history of an invalid
        name fails with CometError invalid_channel.
        """
        bus = yield self.setUpBus()
        for call in (
            lambda: bus.publish("bad name", 1),
            lambda: bus.publish("a/*", 1),
            lambda: bus.subscribe("a//b", RecordingSubscriber()),
            lambda: bus.history("a/**", None),
        ):
            [failure] = yield self.failureOf(call)
            failure.trap(CometError)
            self.assertEqual(failure.value.code, "invalid_channel")

    @inlineCallbacks
    def test_presenceNoticesAreDeliveredNotStored(self):
        """
        An event published with store=False (a presence notice) reaches
        subscribers with its kind but stays out of the history.
        """
        bus = yield self.setUpBus()
        subscriber = RecordingSubscriber()
        yield bus.subscribe("room", subscriber)
        yield bus.publish("room", {"client": "c1"}, kind="join", store=False)
        yield bus.publish("room", "hello")
        yield self.waitFor(lambda: len(subscriber.events) >= 2, "two events")
        self.assertEqual([e.kind for e in subscriber.events], ["join", "event"])
        history = yield bus.history("room", None)
        self.assertEqual([e.data for e in history.events], ["hello"])

    # history

    @inlineCallbacks
    def test_historyAfterPosition(self):
        """
        History after a position is every later event on the channel, in
        order, and it is covered.
        """
        bus = yield self.setUpBus(historyLength=10)
        events = []
        for i in range(4):
            event = yield bus.publish("h", i)
            events.append(event)
            yield bus.publish("other", i)
        history = yield bus.history("h", events[1].id)
        self.assertTrue(history.covered)
        self.assertEqual([e.data for e in history.events], [2, 3])
        self.assertEqual([e.id for e in history.events], [events[2].id, events[3].id])
        position = yield bus.position()
        self.assertEqual(history.position, position)

    @inlineCallbacks
    def test_historyIsBounded(self):
        """
        A channel keeps its last historyLength events; a position older than
        what was dropped is not covered, a newer one is.
        """
        bus = yield self.setUpBus(historyLength=3)
        events = []
        for i in range(6):
            event = yield bus.publish("h", i)
            events.append(event)
        everything = yield bus.history("h", None)
        self.assertEqual([e.data for e in everything.events], [3, 4, 5])
        self.assertFalse(everything.covered)
        old = yield bus.history("h", events[0].id)
        self.assertFalse(old.covered)
        self.assertEqual([e.data for e in old.events], [3, 4, 5])
        edge = yield bus.history("h", events[2].id)
        self.assertTrue(edge.covered)
        self.assertEqual([e.data for e in edge.events], [3, 4, 5])
        recent = yield bus.history("h", events[4].id)
        self.assertTrue(recent.covered)
        self.assertEqual([e.data for e in recent.events], [5])

    @inlineCallbacks
    def test_historyOfQuietChannel(self):
        """
        A channel nothing was published on has an empty, covered history
        after the current position; other channels' traffic does not
        change that.
        """
        bus = yield self.setUpBus()
        position = yield bus.position()
        yield bus.publish("busy", 1)
        history = yield bus.history("quiet", position)
        self.assertTrue(history.covered)
        self.assertEqual(list(history.events), [])

    @inlineCallbacks
    def test_historyFromAnotherEpoch(self):
        """
        A position from another epoch (a bus life that is gone) is never
        covered.
        """
        bus = yield self.setUpBus()
        yield bus.publish("h", 1)
        history = yield bus.history("h", "not%s-1" % (bus.epoch,))
        self.assertFalse(history.covered)

    @inlineCallbacks
    def test_historyInvalidPosition(self):
        """
        A position that is not an event id fails with invalid_position.
        """
        bus = yield self.setUpBus()
        [failure] = yield self.failureOf(lambda: bus.history("h", "garbage"))
        failure.trap(CometError)
        self.assertEqual(failure.value.code, "invalid_position")

    @inlineCallbacks
    def test_historyLengthZero(self):
        """
        With no history, nothing is retained and only the current position
        is covered.
        """
        bus = yield self.setUpBus(historyLength=0)
        first = yield bus.publish("h", 1)
        second = yield bus.publish("h", 2)
        history = yield bus.history("h", first.id)
        self.assertFalse(history.covered)
        self.assertEqual(list(history.events), [])
        current = yield bus.history("h", second.id)
        self.assertTrue(current.covered)

    # presence

    @inlineCallbacks
    def test_presence(self):
        """
        Members are added once, listed with their info, and removed once.
        """
        bus = yield self.setUpBus()
        added = yield bus.addMember("room", "c1", {"user": "ann"})
        again = yield bus.addMember("room", "c1", {"user": "ann"})
        yield bus.addMember("room", "c2", {})
        yield bus.addMember("elsewhere", "c3", {})
        self.assertEqual((added, again), (True, False))
        members = yield bus.members("room")
        self.assertEqual(
            sorted(members, key=lambda m: m["client"]),
            [{"client": "c1", "user": "ann"}, {"client": "c2"}],
        )
        removed = yield bus.removeMember("room", "c1")
        removedAgain = yield bus.removeMember("room", "c1")
        self.assertEqual((removed, removedAgain), (True, False))
        members = yield bus.members("room")
        self.assertEqual([m["client"] for m in members], ["c2"])
        empty = yield bus.members("nobody-here")
        self.assertEqual(list(empty), [])
