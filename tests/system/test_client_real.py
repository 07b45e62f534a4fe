"""
The Python client against a real server on loopback TCP.
"""

from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.trial.unittest import TestCase

from txcomet import CometClient, CometError
from txcomet._client.client import TRANSPORTS

from tests.support import RealServerMixin


def _turn():
    from twisted.internet.task import deferLater

    return deferLater(reactor, 0.01, lambda: None)


class Collector:
    """
    Records events and fires a L{Deferred} once it holds C{n}.
    """

    def __init__(self):
        self.events = []
        self._waiting = []

    def __call__(self, event):
        self.events.append(event)
        for n, d in list(self._waiting):
            if len(self.events) >= n:
                self._waiting.remove((n, d))
                d.callback(self.events)

    def atLeast(self, n):
        d = Deferred()
        if len(self.events) >= n:
            d.callback(self.events)
        else:
            self._waiting.append((n, d))
        return d

    @property
    def data(self):
        return [e["data"] for e in self.events if e["type"] == "event"]


class RealServerClientTests(RealServerMixin, TestCase):
    """
    The client against a real server, per transport: subscribe, receive,
    publish, lose the connection and resume, leave.
    """

    timeout = 30

    def cutConnections(self):
        cut = 0
        for protocol in self.site.openProtocols:
            transport = getattr(getattr(protocol, "_channel", protocol), "transport", None)
            if transport is not None and transport.connected:
                transport.abortConnection()
                cut += 1
        return cut

    @inlineCallbacks
    def exercise(self, transport):
        yield self.startServer(heartbeat=2.0)
        if transport not in self.comet.resource.transports:
            self.skipTest("the %s transport is not on this branch yet" % (transport,))
        client = CometClient(self.url, transport=transport, user="py", backoff=(0.05, 0.5), pollInterval=0.1)
        self.addCleanup(client.leave)
        states = []
        client.onState(states.append)
        got = Collector()
        ack = yield client.subscribe("news", got)
        self.assertEqual(ack["channel"], "news")
        [session] = list(self.comet.hub.sessions.values())
        self.assertEqual(session.user, "py")
        # From a backend, and from the client itself.
        yield self.comet.publish("news", {"n": 1})
        reply = yield client.publish("news", {"n": 2})
        self.assertTrue(reply["ok"])
        yield got.atLeast(3)  # our own join notice, then the two events
        self.assertEqual(got.data, [{"n": 1}, {"n": 2}])
        self.assertEqual(client.transport, transport)
        self.assertIn("listening", states)
        # The connection is cut while events are published: none is lost
        # or repeated, and the session is the same.
        self.assertGreater(self.cutConnections(), 0)
        yield self.comet.publish("news", {"n": 3})
        yield self.comet.publish("news", {"n": 4})
        yield got.atLeast(5)
        yield self.comet.publish("news", {"n": 5})
        yield got.atLeast(6)
        self.assertEqual(got.data, [{"n": i} for i in range(1, 6)])
        self.assertEqual(client.session, session.id)
        members = yield client.presence("news")
        self.assertEqual([m.get("user") for m in members], ["py"])
        # Leaving frees the session at once.
        yield client.leave()
        self.assertEqual(session.closeReason, "left")
        self.assertEqual(self.comet.hub.sessions, {})
        self.assertIsNone(client.state)

    def test_poll(self):
        """
        Over short polling.
        """
        return self.exercise("poll")

    def test_longpoll(self):
        """
        Over long-polling.
        """
        return self.exercise("longpoll")

    def test_jsonp(self):
        """
        Over script-tag long-polling.
        """
        return self.exercise("jsonp")

    def test_xhrStream(self):
        """
        Over XHR streaming.
        """
        return self.exercise("xhr-stream")

    def test_iframe(self):
        """
        Over hidden-iframe streaming.
        """
        return self.exercise("iframe")

    def test_sse(self):
        """
        Over EventSource.
        """
        return self.exercise("sse")

    def test_multipart(self):
        """
        Over multipart/x-mixed-replace.
        """
        return self.exercise("multipart")

    def test_ws(self):
        """
        Over WebSocket.
        """
        return self.exercise("ws")

    def test_everyTransportTested(self):
        """
        Every transport the client speaks has a test here.
        """
        names = {n.replace("-", "") for n in TRANSPORTS}
        tested = {n[len("test_") :].lower() for n in dir(self) if n.startswith("test_")}
        self.assertEqual(names - tested, set())

    @inlineCallbacks
    def test_recycled(self):
        """
        Streams the server recycles every few hundred bytes (XHR and
        iframe streaming) are reopened from the last event: nothing lost
        or repeated.
        """
        yield self.startServer(heartbeat=2.0, recycleBytes=300)
        opened = []
        for name in (b"xhr-stream", b"iframe"):
            resource = self.comet.resource.children[name]
            render = resource.render_GET
            resource.render_GET = lambda request, render=render, name=name: (opened.append(name), render(request))[1]
        for transport in ("xhr-stream", "iframe"):
            client = CometClient(self.url, transport=transport)
            self.addCleanup(client.leave)
            got = Collector()
            yield client.subscribe("recycled-" + transport, got)
            for i in range(20):
                # One at a time, each to an open stream (every other one
                # comes just after a recycle, while the client reconnects).
                yield self.comet.publish("recycled-" + transport, i)
                yield got.atLeast(i + 1)
            self.assertEqual(got.data, list(range(20)))
            # It was recycled, again and again.
            self.assertGreater(opened.count(transport.encode()), 5)

    @inlineCallbacks
    def test_startMarker(self):
        """
        Before it has any event, the client opens its data channel with
        the join's start marker as C{last}, so that whatever a connection
        that dies early carried is sent again.
        """
        yield self.startServer(heartbeat=2.0)
        client = CometClient(self.url, transport="xhr-stream")
        self.addCleanup(client.leave)
        yield client.subscribe("news", lambda event: None)
        [session] = self.comet.hub.sessions.values()
        while session.dataChannel is None:
            yield _turn()
        self.assertEqual(session.dataChannel.params.last, "%s-0" % (self.comet.bus.epoch,))

    @inlineCallbacks
    def test_sessionLostRejoins(self):
        """
        When the server forgets the session (here: expired), the client
        joins again and resumes its channel from history: events published
        in between arrive, once.
        """
        yield self.startServer(heartbeat=2.0)
        client = CometClient(self.url, transport="longpoll", backoff=(0.05, 0.5))
        self.addCleanup(client.leave)
        got = Collector()
        yield client.subscribe("news", got)
        yield self.comet.publish("news", 1)
        yield got.atLeast(1)
        old = client.session
        self.comet.hub.sessions[old].close("expired")
        yield self.comet.publish("news", 2)
        yield got.atLeast(2)
        yield self.comet.publish("news", 3)
        yield got.atLeast(3)
        self.assertEqual(got.data, [1, 2, 3])
        self.assertNotEqual(client.session, old)

    @inlineCallbacks
    def test_closedBetweenPollsSaysWhy(self):
        """
        A session cut off while no data channel was open (between polls)
        is named by the next poll's C{410 session_closed}: the client stops
        as the close message would have told it to, and joins no new
        session.
        """
        yield self.startServer()
        client = CometClient(self.url, transport="poll", backoff=(0.05, 0.5))
        self.addCleanup(client.leave)
        yield client.subscribe("news", lambda event: None)
        session = self.comet.hub.sessions[client.session]
        while session.dataChannel is not None:
            yield _turn()
        session.close("kicked", reconnect=False)
        for _ in range(400):
            if client.state == "abort":
                break
            yield _turn()
        self.assertEqual(client.state, "abort")
        self.assertIsNone(client.session)
        self.assertEqual(self.comet.hub.sessions, {})

    @inlineCallbacks
    def test_errors(self):
        """
        The server's errors reach the caller as CometError with its code:
        a bad channel, a publish refused without the secret; an unreachable
        server is a network error.
        """
        yield self.startServer(publisherSecret="s3cret")

        def client(**kwargs):
            made = CometClient(self.url, **kwargs)
            self.addCleanup(made.leave)
            return made

        error = yield self.assertFailure(client().subscribe("bad channel", lambda e: None), CometError)
        self.assertEqual(error.code, "invalid_channel")
        error = yield self.assertFailure(client().publish("news", 1), CometError)
        self.assertEqual((error.code, error.status), ("forbidden", 403))
        reply = yield client(secret="s3cret").publish("news", {"ok": 1})
        self.assertTrue(reply["ok"])
        yield self.port.stopListening()
        error = yield self.assertFailure(client().publish("news", 1), CometError)
        self.assertEqual(error.code, "network")
