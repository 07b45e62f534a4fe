"""
Sessions and the hub, on a Clock: queueing, replay, expiry, slow consumers,
presence.
"""

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from txcomet import AllowAll, CometConfig, CometError, InMemoryBus
from txcomet._sessions.hub import Hub
from txcomet.interfaces import IAuthorizer, IDataChannel, ISubscriber
from txcomet.testing import RecordingDataChannel, makeComet
from tests.support import subscriberCount


def makeHub(**config):
    clock = Clock()
    cfg = CometConfig(**config)
    return Hub(bus=InMemoryBus(cfg.historyLength), config=cfg, clock=clock), clock


class SessionTestCase(SynchronousTestCase):
    def setUp(self):
        self.hub, self.clock = makeHub(sessionTimeout=60, heartbeat=25, queueMessages=5, replayLength=10)

    def join(self, **kwargs):
        return self.successResultOf(self.hub.join(**kwargs))

    def publish(self, channel, data):
        return self.successResultOf(self.hub.publish(channel, data))


class InterfaceTests(SessionTestCase):
    def test_verifyObject(self):
        """
        Sessions are subscribers, the default authorizer and the recording
        fake data channel provide their interfaces.
        """
        self.assertTrue(verifyObject(ISubscriber, self.join()))
        self.assertTrue(verifyObject(IAuthorizer, AllowAll()))
        self.assertTrue(verifyObject(IDataChannel, RecordingDataChannel()))


class QueueTests(SessionTestCase):
    def test_idsAreLongAndRandom(self):
        """
        Session ids carry at least 128 random bits (32 url-safe characters)
        and differ from the public client id.
        """
        a, b = self.join(), self.join()
        self.assertGreaterEqual(len(a.id), 32)
        self.assertNotEqual(a.id, b.id)
        self.assertNotEqual(a.id, a.clientId)

    def test_queuedUntilAttached(self):
        """
        Events arriving with no data channel wait, and are written in order
        when one attaches.
        """
        session = self.join()
        self.successResultOf(session.subscribe("news"))
        events = [self.publish("news", i) for i in range(3)]
        self.assertEqual(session.pending, 3)
        channel = RecordingDataChannel()
        session.attach(channel)
        self.assertEqual(channel.events, events)
        self.assertEqual(session.pending, 0)
        later = self.publish("news", 3)
        self.assertEqual(channel.writes[-1], ("events", [later]))

    def test_oneShotChannelDetaches(self):
        """
        A one-shot channel gets one write; what follows waits for the next.
        """
        session = self.join()
        self.successResultOf(session.subscribe("news"))
        channel = RecordingDataChannel(oneShot=True)
        session.attach(channel)
        first = self.publish("news", 1)
        second = self.publish("news", 2)
        self.assertEqual(channel.events, [first])
        self.assertIsNone(session.dataChannel)
        self.assertEqual(session.pending, 1)
        nextChannel = RecordingDataChannel(oneShot=True)
        session.attach(nextChannel)
        self.assertEqual(nextChannel.events, [second])

    def test_replayAfterLastExactlyOnce(self):
        """
        A data channel that reconnects giving the last id it received gets
        every later event once, in order, though the server had already
        written them to the dead channel.
        """
        session = self.join()
        self.successResultOf(session.subscribe("a"))
        self.successResultOf(session.subscribe("b"))
        dead = RecordingDataChannel()
        session.attach(dead)
        events = [self.publish("a" if i % 2 else "b", i) for i in range(6)]
        self.assertEqual(dead.events, events)
        session.detach(dead)
        events.append(self.publish("a", 6))
        fresh = RecordingDataChannel()
        session.attach(fresh, last=events[2].id)
        self.assertEqual(fresh.events, events[3:])

    def test_unknownLastClosesSession(self):
        """
        A last id the session does not hold (trimmed past replayLength, or
        never delivered) closes it with replay_unavailable, so the client
        resumes through history instead of silently missing events.
        """
        session = self.join()
        self.successResultOf(session.subscribe("a"))
        first = RecordingDataChannel()
        session.attach(first)
        events = [self.publish("a", i) for i in range(15)]
        session.detach(first)
        channel = RecordingDataChannel()
        session.attach(channel, last=events[0].id)  # trimmed: replayLength is 10
        self.assertEqual(channel.closed, ("replay_unavailable", True))
        self.assertNotIn(session.id, self.hub.sessions)

    def test_newChannelReplacesOld(self):
        """
        A second data channel replaces the first, which is told why.
        """
        session = self.join()
        old, new = RecordingDataChannel(), RecordingDataChannel()
        session.attach(old)
        session.attach(new)
        self.assertEqual(old.closed, ("replaced", False))
        self.assertIs(session.dataChannel, new)

    def test_slowConsumerClosed(self):
        """
        A session whose undelivered queue passes queueMessages is closed as
        a slow consumer; other sessions on the channel go on receiving.
        """
        slow, fine = self.join(), self.join()
        self.successResultOf(slow.subscribe("x"))
        self.successResultOf(fine.subscribe("x"))
        channel = RecordingDataChannel()
        fine.attach(channel)
        for i in range(6):
            self.publish("x", i)
        self.assertEqual(slow.state, "closed")
        self.assertEqual(slow.closeReason, "slow_consumer")
        self.assertEqual([e.data for e in channel.events], list(range(6)))
        self.assertEqual(subscriberCount(self.hub.bus, "x"), 1)

    def test_slowConsumerByBytes(self):
        """
        The byte limit applies too.
        """
        hub, clock = makeHub(queueBytes=300)
        session = self.successResultOf(hub.join())
        self.successResultOf(session.subscribe("x"))
        self.successResultOf(hub.publish("x", "a" * 200))
        self.assertEqual(session.state, "joined")
        self.successResultOf(hub.publish("x", "b" * 200))
        self.assertEqual(session.closeReason, "slow_consumer")


class ExpiryTests(SessionTestCase):
    def test_expiresWithoutDataChannel(self):
        """
        A session with no data channel for sessionTimeout seconds is closed
        as expired and forgotten.
        """
        session = self.join()
        self.clock.advance(59)
        self.assertIn(session.id, self.hub.sessions)
        self.clock.advance(1)
        self.assertNotIn(session.id, self.hub.sessions)
        self.assertEqual(session.closeReason, "expired")

    def test_attachedSessionDoesNotExpire(self):
        """
        While a data channel is attached the session lives; the timeout
        starts again when it detaches.
        """
        session = self.join()
        channel = RecordingDataChannel()
        session.attach(channel)
        self.clock.advance(600)
        self.assertEqual(session.state, "listening")
        session.detach(channel)
        self.clock.advance(59)
        self.assertEqual(session.state, "joined")
        self.clock.advance(1)
        self.assertEqual(session.state, "closed")

    def test_expiryUnsubscribes(self):
        """
        An expired session is removed from the bus.
        """
        session = self.join()
        self.successResultOf(session.subscribe("x"))
        self.clock.advance(60)
        self.assertEqual(subscriberCount(self.hub.bus, "x"), 0)

    def test_ephemeralClosesWithItsChannel(self):
        """
        An ephemeral (join-listen) session closes as soon as its data
        channel ends, not after a timeout.
        """
        session = self.successResultOf(self.hub.join(ephemeral=True))
        channel = RecordingDataChannel()
        session.attach(channel)
        session.detach(channel)
        self.assertEqual(session.state, "closed")
        self.assertNotIn(session.id, self.hub.sessions)

    def test_shutdownClosesEveryone(self):
        """
        Stopping the hub closes every session with reason shutdown.
        """
        sessions = [self.join() for _ in range(3)]
        channel = RecordingDataChannel()
        sessions[0].attach(channel)
        self.successResultOf(self.hub.stop())
        self.assertEqual(channel.closed, ("shutdown", True))
        self.assertEqual(self.hub.sessions, {})


class ResumeTests(SessionTestCase):
    def test_subscribeSinceReplaysHistory(self):
        """
        Subscribing with since queues the channel's events after that
        position and says the recovery was complete.
        """
        first = self.publish("news", 0)
        later = [self.publish("news", i) for i in range(1, 4)]
        session = self.join()
        ack = self.successResultOf(session.subscribe("news", since=first.id))
        self.assertTrue(ack["recovered"])
        channel = RecordingDataChannel()
        session.attach(channel)
        self.assertEqual(channel.events, later)

    def test_subscribeSinceTooOld(self):
        """
        When history no longer reaches back to since, the answer says the
        recovery was not complete; what is retained is still queued.
        """
        hub, clock = makeHub(historyLength=2)
        first = self.successResultOf(hub.publish("news", 0))
        for i in range(1, 5):
            hub.publish("news", i)
        session = self.successResultOf(hub.join())
        ack = self.successResultOf(session.subscribe("news", since=first.id))
        self.assertFalse(ack["recovered"])
        self.assertEqual(session.pending, 2)

    def test_sinceOnPatternRefused(self):
        """
        since resumes one channel; on a wildcard pattern it is refused.
        """
        session = self.join()
        failure = self.failureResultOf(session.subscribe("news/*", since="x-1"), CometError)
        self.assertEqual(failure.value.code, "invalid_request")

    def test_subscriptionLimit(self):
        """
        A session holds at most maxSubscriptions subscriptions.
        """
        hub, clock = makeHub(maxSubscriptions=2)
        session = self.successResultOf(hub.join())
        self.successResultOf(session.subscribe("a"))
        self.successResultOf(session.subscribe("b"))
        self.successResultOf(session.subscribe("a"))  # already held: fine
        failure = self.failureResultOf(session.subscribe("c"), CometError)
        self.assertEqual(failure.value.code, "too_many_subscriptions")


class PresenceTests(SessionTestCase):
    def test_joinAndLeaveNotices(self):
        """
        A session with a user is listed on the channels it subscribes to;
        subscribers see join and leave notices carrying its public client
        id, never its session id.
        """
        watcher = self.join()
        self.successResultOf(watcher.subscribe("room"))
        channel = RecordingDataChannel()
        watcher.attach(channel)
        ann = self.join(user="ann", info={"colour": "red"})
        self.successResultOf(ann.subscribe("room"))
        members = self.successResultOf(self.hub.bus.members("room"))
        self.assertEqual(members, [{"client": ann.clientId, "user": "ann", "info": {"colour": "red"}}])
        ann.close("left")
        self.assertEqual([e.kind for e in channel.events], ["join", "leave"])
        self.assertEqual(channel.events[0].data["client"], ann.clientId)
        self.assertNotIn(ann.id, channel.events[0].json.decode("utf-8"))
        self.assertEqual(self.successResultOf(self.hub.bus.members("room")), [])

    def test_expiryLeaves(self):
        """
        A session that expires leaves presence, so no ghost stays online.
        """
        ann = self.join(user="ann")
        self.successResultOf(ann.subscribe("room"))
        self.clock.advance(60)
        self.assertEqual(self.successResultOf(self.hub.bus.members("room")), [])

    def test_anonymousNotListed(self):
        """
        A session without a user is not in presence unless it asks to be.
        """
        anonymous = self.join()
        self.successResultOf(anonymous.subscribe("room"))
        counted = self.join(presence=True)
        self.successResultOf(counted.subscribe("room"))
        members = self.successResultOf(self.hub.bus.members("room"))
        self.assertEqual([m["client"] for m in members], [counted.clientId])

    def test_unsubscribeLeaves(self):
        """
        Unsubscribing from a channel leaves its presence.
        """
        ann = self.join(user="ann")
        self.successResultOf(ann.subscribe("room"))
        self.successResultOf(ann.unsubscribe("room"))
        self.assertEqual(self.successResultOf(self.hub.bus.members("room")), [])


class AuthorizerTests(SynchronousTestCase):
    def test_denials(self):
        """
        An authorizer's no is a forbidden error for join, subscribe and
        publish; its yes lets them through.
        """

        class OnlyPublic(AllowAll):
            def authorizeJoin(self, credentials):
                return credentials.get("auth") == "token"

            def authorizeSubscribe(self, session, pattern):
                return pattern.startswith("public/")

            def authorizePublish(self, session, channel):
                return False

        hub = Hub(bus=InMemoryBus(), clock=Clock(), authorizer=OnlyPublic())
        failure = self.failureResultOf(hub.join(credentials={"auth": "nope"}), CometError)
        self.assertEqual(failure.value.code, "forbidden")
        session = self.successResultOf(hub.join(credentials={"auth": "token"}))
        self.successResultOf(session.subscribe("public/news"))
        self.assertEqual(self.failureResultOf(session.subscribe("private"), CometError).value.code, "forbidden")
        self.assertEqual(self.failureResultOf(session.publish("public/news", 1), CometError).value.code, "forbidden")


class SessionPrefixTests(SynchronousTestCase):
    def test_sessionIdsCarryThePrefix(self):
        """
        A hub's sessionPrefix starts every session id it makes; the random
        part is unchanged, so ids stay unique and unguessable.
        """
        hub = Hub(clock=Clock())
        plain = self.successResultOf(hub.join())
        self.assertNotIn(".", plain.id)
        hub.sessionPrefix = "3."
        first = self.successResultOf(hub.join())
        second = self.successResultOf(hub.join())
        self.assertTrue(first.id.startswith("3."))
        self.assertNotEqual(first.id, second.id)
        self.assertEqual(len(first.id), len(plain.id) + 2)
        self.assertIs(hub.getSession(first.id), first)


class JoinListenTests(SynchronousTestCase):
    """
    L{Hub.joinListen}, the join-listen every transport uses.
    """

    def setUp(self):
        self.comet, self.clock = makeComet()
        self.hub = self.comet.hub

    def test_subscribedAndEphemeral(self):
        """
        The session is ephemeral and subscribed to every channel; it keeps
        no replay buffer unless its connection is also a control channel.
        """
        first = self.successResultOf(self.comet.publish("a", 1))
        session, position, recovered = self.successResultOf(
            self.hub.joinListen(["a", "b"], first.id, {"transport": "sse"})
        )
        self.assertTrue(session.ephemeral)
        self.assertEqual(list(session.subscriptions), ["a", "b"])
        self.assertFalse(session.keepsReplay)
        self.assertTrue(recovered)
        self.assertIsNotNone(position)
        withControl = self.successResultOf(self.hub.joinListen(["a"], None, {"transport": "ws"}, control=True))[0]
        self.assertTrue(withControl.keepsReplay)

    def test_refusedClosesTheSession(self):
        """
        A channel that cannot be subscribed to fails the whole join-listen,
        and the session made for it is gone.
        """
        before = set(self.hub.sessions)
        failure = self.failureResultOf(self.hub.joinListen(["a", "bad//name"], None, {}), CometError)
        self.assertEqual(failure.value.code, "invalid_channel")
        self.assertEqual(set(self.hub.sessions), before)
