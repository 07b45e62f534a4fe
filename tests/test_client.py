"""
The Python client: its parsers against the server's own framings in any
chunking, and the client against a real server over every transport.
"""


from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.trial.unittest import SynchronousTestCase, TestCase

from txcomet import CometClient, CometError
from txcomet._client.client import TRANSPORTS, isNewer, matches
from txcomet._client.parsers import LineParser, MultipartParser, ScriptParser, SSEParser, parseScriptAnswer
from txcomet._model.event import encodeJSON

from .support import RealServerMixin

messages = st.lists(
    st.fixed_dictionaries(
        {
            "type": st.sampled_from(["event", "join", "leave", "heartbeat"]),
            "channel": st.just("a/b"),
            "data": st.recursive(
                st.none() | st.booleans() | st.integers() | st.text(),
                lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
                max_leaves=6,
            ),
        }
    ),
    min_size=1,
    max_size=6,
)


def chunked(data, cuts):
    """
    C{data} cut at the positions C{cuts} (fractions of its length).
    """
    points = sorted({int(c * len(data)) for c in cuts})
    pieces, start = [], 0
    for point in points:
        pieces.append(data[start:point])
        start = point
    pieces.append(data[start:])
    return pieces


cuts = st.lists(st.floats(min_value=0, max_value=1), max_size=8)


class ParserTests(SynchronousTestCase):
    """
    Each parser gets back exactly the messages the server's framing wrote,
    however the bytes are cut into chunks.
    """

    def roundTrip(self, parser, wire, expected, pieces):
        out = []
        for piece in chunked(wire, pieces):
            out.extend(parser.feed(piece))
        self.assertEqual(out, expected)

    @settings(max_examples=60, deadline=None)
    @given(messages, cuts)
    def test_lines(self, msgs, pieces):
        """
        XHR streaming: the padding prelude is skipped, each line is one
        message.
        """
        from txcomet._transports.streaming import LINES, PADDING

        wire = b" " * (PADDING - 1) + b"\n" + b"".join(LINES.frameMessage(encodeJSON(m)) for m in msgs)
        self.roundTrip(LineParser(), wire, msgs, pieces)

    @settings(max_examples=60, deadline=None)
    @given(messages, cuts)
    def test_eventStream(self, msgs, pieces):
        """
        EventSource: comments, retry advice and an id with no data are
        skipped; each data field is one message.
        """
        from txcomet._transports.streaming import EVENT_STREAM

        wire = b":" + b" " * 100 + b"\nretry: 2000\nid: e-1\n\n" + b":hb\n\n"
        wire += b"".join(EVENT_STREAM.frameMessage(encodeJSON(m), b"join", b"e-2") for m in msgs)
        self.roundTrip(SSEParser(), wire, msgs, pieces)

    @settings(max_examples=60, deadline=None)
    @given(messages, cuts)
    def test_iframe(self, msgs, pieces):
        """
        Hidden iframe: the prelude's function definition is not a message;
        each script call is one, script escaping and all.
        """
        from txcomet._transports.streaming import SCRIPT_CALLS

        prelude = b'<!doctype html><html><head><script>function p(m){parent.cb(m,"e-1")}</script></head><body><!--   -->\n'
        wire = prelude + b"".join(SCRIPT_CALLS.frameMessage(encodeJSON(m)) for m in msgs)
        self.roundTrip(ScriptParser(), wire, msgs, pieces)

    @settings(max_examples=60, deadline=None)
    @given(messages, cuts)
    def test_multipart(self, msgs, pieces):
        """
        multipart/x-mixed-replace: each part's body is one message,
        whether the next part's headers come early or not at all.
        """
        boundary = b"txcomet-0123"
        head = b"Content-Type: application/json; charset=utf-8\r\n\r\n"
        wire = b"--" + boundary + b"\r\n" + head
        for m in msgs:
            wire += encodeJSON(m) + b"\r\n--" + boundary + b"\r\n" + head
        wire += encodeJSON({"type": "close", "reason": "left", "reconnect": False}) + b"\r\n--" + boundary + b"--\r\n"
        parser = MultipartParser.fromContentType("multipart/x-mixed-replace; boundary=" + boundary.decode())
        self.roundTrip(parser, wire, msgs + [{"type": "close", "reason": "left", "reconnect": False}], pieces)

    def test_scriptAnswer(self):
        """
        A script-tag answer's first argument is the array (the position
        after it is not part of it); an error is an object; anything else
        is refused.
        """
        self.assertEqual(parseScriptAnswer(b'/**/cb([{"a":"\\u003c/script\\u003e"}],"e-3");\n'), [{"a": "</script>"}])
        self.assertEqual(parseScriptAnswer(b'/**/cb({"error":"unknown_session"});'), {"error": "unknown_session"})
        with self.assertRaises(CometError):
            parseScriptAnswer(b"<html>not a script</html>")

    def test_positions(self):
        """
        An id is newer than another in the same epoch when its offset is
        larger; any id of another epoch is newer (a new life of the bus).
        """
        self.assertTrue(isNewer("e-10", "e-9"))
        self.assertFalse(isNewer("e-9", "e-9"))
        self.assertFalse(isNewer("e-8", "e-9"))
        self.assertTrue(isNewer("f-1", "e-9"))
        self.assertTrue(isNewer("e-1", None))

    def test_patterns(self):
        """
        The client's pattern matching follows the server's rules.
        """
        self.assertTrue(matches("chat/*", "chat/a"))
        self.assertFalse(matches("chat/*", "chat/a/b"))
        self.assertTrue(matches("chat/**", "chat/a/b"))
        self.assertFalse(matches("chat/**", "chat"))
        self.assertTrue(matches("**", "x"))

    def test_unknownTransport(self):
        """
        An unknown transport is refused when the client is made.
        """
        self.assertRaises(ValueError, CometClient, "http://127.0.0.1:1/comet", transport="carrier-pigeon")


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
