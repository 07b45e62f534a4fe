"""
The control channel, the publish API, polling and long-polling, driven
through the real resources in memory (StubTreq), with timers on a Clock.
"""

import json

from twisted.trial.unittest import SynchronousTestCase

from txcomet.testing import MemoryCometClient, makeComet


class HTTPTestCase(SynchronousTestCase):
    config = {}

    def setUp(self):
        self.comet, self.clock = makeComet(**self.config)
        self.client = MemoryCometClient(self.comet)

    def assertError(self, response, status, code):
        self.assertEqual(response.code, status, response.body)
        self.assertEqual(response.header("Content-Type"), "application/json; charset=utf-8")
        body = response.json()
        self.assertEqual((body["error"], body["status"]), (code, status))
        self.assertIsInstance(body["message"], str)
        self.assertNotIn("Traceback", body["message"])


class ControlTests(HTTPTestCase):
    def test_joinSubscribePublishPoll(self):
        """
        The whole control flow over POST: join, subscribe, publish, poll,
        and the answers' fields.
        """
        reply = self.client.control(op="join", user="ann", ref=7)
        self.assertEqual((reply["ok"], reply["op"], reply["ref"]), (True, "join", 7))
        self.assertEqual(reply["heartbeat"], 25.0)
        session = reply["session"]
        ack = self.client.subscribe(session, "news")
        self.assertEqual((ack["ok"], ack["channel"]), (True, "news"))
        published = self.client.publish("news", {"n": 1}, session=session)
        self.assertTrue(published["ok"])
        messages = self.client.poll(session)
        events = [m for m in messages if m["type"] == "event"]
        self.assertEqual(events, [{"type": "event", "channel": "news", "id": published["id"], "data": {"n": 1}}])

    def test_joinWithChannels(self):
        """
        join may subscribe at once.
        """
        reply = self.client.control(op="join", channels=["a", "b/*"])
        self.assertEqual([s["channel"] for s in reply["subscriptions"]], ["a", "b/*"])
        self.client.publish("b/x", 1)
        self.assertEqual([m["data"] for m in self.client.poll(reply["session"])], [1])

    def test_presenceOp(self):
        """
        presence lists who is on a channel by public client id.
        """
        ann = self.client.control(op="join", user="ann", channels=["room"])
        reply = self.client.control(op="presence", session=ann["session"], channel="room")
        self.assertEqual(reply["members"], [{"client": ann["client"], "user": "ann"}])

    def test_leaveEndsHeldLongPoll(self):
        """
        leave answers a held long-poll at once with a close message, and
        the session is gone.
        """
        session = self.client.join()
        held = self.client.start("GET", "longpoll", session=session)
        self.assertNoResult(held)
        self.assertTrue(self.client.control(op="leave", session=session)["ok"])
        self.client.flush()
        response = self.successResultOf(held)
        self.assertEqual(response.json(), [{"type": "close", "reason": "left", "reconnect": False}])
        self.assertError(self.client.request("GET", "poll", session=session), 404, "unknown_session")

    def test_unsubscribe(self):
        """
        After unsubscribe, the channel's events no longer arrive.
        """
        session = self.client.join(channels=["a"])
        self.assertTrue(self.client.control(op="unsubscribe", session=session, channel="a")["subscribed"])
        self.client.publish("a", 1)
        self.assertEqual(self.client.poll(session), [])

    def test_getWithCallback(self):
        """
        GET with a callback answers a script call, status 200 even for an
        error, for script-tag clients.
        """
        response = self.client.request("GET", "control", op="join", callback="cb.on_join", user="ann")
        self.assertEqual(response.code, 200)
        self.assertEqual(response.header("Content-Type"), "application/javascript; charset=utf-8")
        self.assertEqual(response.header("X-Content-Type-Options"), "nosniff")
        body = response.body.decode("utf-8")
        self.assertTrue(body.startswith("/**/cb.on_join({"), body)
        self.assertTrue(body.endswith(");\n"))
        reply = json.loads(body[len("/**/cb.on_join(") : -3])
        self.assertTrue(reply["ok"])
        error = self.client.request("GET", "control", op="subscribe", session="nope", channel="a", callback="cb")
        self.assertEqual(error.code, 200)
        self.assertIn(b'"error":"unknown_session"', error.body)

    def test_getPublishData(self):
        """
        Over GET, data is JSON text.
        """
        session = self.client.join(channels=["a"])
        reply = self.client.request("GET", "control", op="publish", session=session, channel="a", data='{"x":[1]}').json()
        self.assertTrue(reply["ok"])
        self.assertEqual(self.client.poll(session)[0]["data"], {"x": [1]})


class BadInputTests(HTTPTestCase):
    config = {"maxMessageSize": 100}

    def test_badInputs(self):
        """
        Each malformed request gets its documented status and code, and the
        server goes on serving a session that was there all along.
        """
        session = self.client.join(channels=["ok"])
        post = lambda body: self.client.request("POST", "control", body)
        cases = [
            (post(b"{bad"), 400, "malformed_json"),
            (post(b"\xff\xfe"), 400, "malformed_json"),
            (post(b"[1,2]"), 400, "invalid_request"),
            (post(b'{"no":"op"}'), 400, "invalid_request"),
            (post(b'{"op":"dance"}'), 400, "unknown_op"),
            (post(b'{"op":5}'), 400, "invalid_request"),
            (post(b'{"op":"subscribe","session":["x"],"channel":"a"}'), 400, "invalid_request"),
            (post(b'{"op":"subscribe","session":"nope","channel":"a"}'), 404, "unknown_session"),
            (post(json.dumps({"op": "subscribe", "session": session}).encode()), 400, "invalid_request"),
            (post(json.dumps({"op": "subscribe", "session": session, "channel": "a b"}).encode()), 400, "invalid_channel"),
            (post(json.dumps({"op": "subscribe", "session": session, "channel": "a/**/b"}).encode()), 400, "invalid_channel"),
            (post(json.dumps({"op": "subscribe", "session": session, "channel": "a", "since": "zz"}).encode()), 400, "invalid_position"),
            (post(json.dumps({"op": "publish", "session": session, "channel": "a"}).encode()), 400, "invalid_request"),
            (post(json.dumps({"op": "publish", "session": session, "channel": "a/*", "data": 1}).encode()), 400, "invalid_channel"),
            (post(json.dumps({"op": "publish", "session": session, "channel": "a", "data": "x" * 200}).encode()), 413, "too_large"),
            (post(json.dumps({"op": "join", "user": ""}).encode()), 400, "invalid_request"),
            (post(json.dumps({"op": "join", "ref": {"x": 1}}).encode()), 400, "invalid_request"),
            (post(b"x" * 5000), 413, "too_large"),
            (self.client.request("GET", "control", op="join", callback="alert(1)"), 400, "invalid_callback"),
            (self.client.request("GET", "control", op="join", callback="a" * 65), 400, "invalid_callback"),
            (self.client.request("GET", "control", op="join", callback=""), 400, "invalid_callback"),
            (self.client.request("PUT", "control"), 405, "method_not_allowed"),
            (self.client.request("GET", "publish/a"), 405, "method_not_allowed"),
            (self.client.request("POST", "publish/a b", b"1"), 400, "invalid_channel"),
            (self.client.request("POST", "publish/", b"1"), 400, "invalid_channel"),
            (self.client.request("POST", "publish/a", b"\xff", headers={"Content-Type": ["text/plain"]}), 415, "unsupported_encoding"),
            (self.client.request("POST", "publish/a", b"{", headers={"Content-Type": ["application/json"]}), 400, "malformed_json"),
            (self.client.request("POST", "publish/a", b"x" * 101), 413, "too_large"),
            (self.client.request("GET", "nowhere"), 404, "not_found"),
            (self.client.request("GET", "poll"), 400, "invalid_request"),
            (self.client.request("GET", "poll", session="nope"), 404, "unknown_session"),
            (self.client.request("GET", "poll", session="a", channel="b"), 400, "invalid_request"),
            (self.client.request("GET", "poll", session=["a", "b"]), 400, "invalid_request"),
            (self.client.request("GET", "poll", channel="a b"), 400, "invalid_channel"),
            (self.client.request("GET", "longpoll", channel="a", last="garbage"), 400, "invalid_position"),
            (self.client.request("POST", "poll"), 405, "method_not_allowed"),
        ]
        for response, status, code in cases:
            self.assertError(response, status, code)
        self.client.publish("ok", "still here")
        self.assertEqual([m["data"] for m in self.client.poll(session)], ["still here"])
        self.assertEqual(self.flushLoggedErrors(), [])


class PublishAPITests(HTTPTestCase):
    config = {"publisherSecret": "s3cret"}

    def test_secretRequired(self):
        """
        With a publisher secret, publishing needs it (Bearer or
        X-Comet-Secret); without it or with a wrong one, 403.
        """
        session = self.client.join(channels=["a"])
        denied = self.client.request("POST", "publish/a", b"1")
        self.assertError(denied, 403, "forbidden")
        wrong = self.client.request("POST", "publish/a", b"1", headers={"Authorization": ["Bearer nope"]})
        self.assertError(wrong, 403, "forbidden")
        bearer = self.client.request("POST", "publish/a", b"one", headers={"Authorization": ["Bearer s3cret"]})
        header = self.client.request("POST", "publish/a", b"two", headers={"X-Comet-Secret": ["s3cret"]})
        self.assertEqual((bearer.code, header.code), (200, 200))
        self.assertEqual([m["data"] for m in self.client.poll(session)], ["one", "two"])

    def test_textAndJSON(self):
        """
        A JSON body is published as its value; any other body as text; the
        answer gives the event id.
        """
        session = self.client.join(channels=["deep/er/channel"])
        headers = {"X-Comet-Secret": ["s3cret"]}
        j = self.client.request("POST", "publish/deep/er/channel", b'{"a":"\xc3\xa9"}', headers=dict(headers, **{"Content-Type": ["application/json; charset=utf-8"]}))
        t = self.client.request("POST", "publish/deep/er/channel", "é\n</script>".encode("utf-8"), headers=headers)
        self.assertEqual(j.json()["channel"], "deep/er/channel")
        events = self.client.poll(session)
        self.assertEqual([e["data"] for e in events], [{"a": "é"}, "é\n</script>"])
        self.assertEqual([e["id"] for e in events], [j.json()["id"], t.json()["id"]])


class LongPollTests(HTTPTestCase):
    config = {"heartbeat": 10}

    def test_heldUntilEvent(self):
        """
        A long-poll is held until an event arrives, then answered with it.
        """
        session = self.client.join(channels=["a"])
        held = self.client.start("GET", "longpoll", session=session)
        self.clock.advance(5)
        self.assertNoResult(held)
        event = self.successResultOf(self.comet.publish("a", "x"))
        self.client.flush()
        self.assertEqual(self.successResultOf(held).json(), [json.loads(event.json)])

    def test_heartbeatAnswersEmpty(self):
        """
        With nothing to send, a long-poll is answered [] at the heartbeat
        interval, and the session stays.
        """
        session = self.client.join()
        held = self.client.start("GET", "longpoll", session=session)
        self.clock.advance(9.9)
        self.assertNoResult(held)
        self.clock.advance(0.1)
        self.client.flush()
        self.assertEqual(self.successResultOf(held).json(), [])
        self.assertIn(session, self.comet.hub.sessions)

    def test_heartbeatPerRequest(self):
        """
        Each held long-poll is answered [] a heartbeat interval after it
        came, though they share one timer.
        """
        first, second = self.client.join(), self.client.join()
        early = self.client.start("GET", "longpoll", session=first)
        self.clock.advance(4)
        late = self.client.start("GET", "longpoll", session=second)
        self.clock.advance(6)
        self.client.flush()
        self.assertEqual(self.successResultOf(early).json(), [])
        self.assertNoResult(late)
        self.clock.advance(4)
        self.client.flush()
        self.assertEqual(self.successResultOf(late).json(), [])

    def test_joinListenResume(self):
        """
        Join-listen with channel=NAME needs no session; passing the last id
        seen (or the X-Comet-Position of an empty answer) misses nothing
        published between requests.
        """
        held = self.client.start("GET", "longpoll", channel="a")
        self.clock.advance(10)
        self.client.flush()
        empty = self.successResultOf(held)
        self.assertEqual(empty.json(), [])
        position = empty.header("X-Comet-Position")
        self.comet.publish("a", 1)
        self.comet.publish("a", 2)
        first = self.client.request("GET", "longpoll", channel="a", last=position).json()
        self.assertEqual([e["data"] for e in first], [1, 2])
        self.comet.publish("a", 3)
        second = self.client.request("GET", "longpoll", channel="a", last=first[-1]["id"]).json()
        self.assertEqual([e["data"] for e in second], [3])
        self.assertEqual(self.comet.hub.sessions, {})

    def test_replaced(self):
        """
        A second long-poll on one session answers the first with a close
        message saying it was replaced.
        """
        session = self.client.join()
        first = self.client.start("GET", "longpoll", session=session)
        second = self.client.start("GET", "longpoll", session=session)
        self.client.flush()
        self.assertEqual(self.successResultOf(first).json(), [{"type": "close", "reason": "replaced", "reconnect": False}])
        self.assertNoResult(second)

    def test_lastRewinds(self):
        """
        A long-poll whose answer was lost is repaired by giving the last id
        received: the lost events come again, once.
        """
        session = self.client.join(channels=["a"])
        events = [self.successResultOf(self.comet.publish("a", i)) for i in range(3)]
        lost = self.client.poll(session)
        self.assertEqual(len(lost), 3)
        again = self.client.request("GET", "longpoll", session=session, last=events[0].id).json()
        self.assertEqual([e["id"] for e in again], [e.id for e in events[1:]])



class PollTests(HTTPTestCase):
    def test_joinListenPollReturnsHistory(self):
        """
        A short poll with channel=NAME and no last answers the channel's
        retained history; with last, only what came after.
        """
        first = self.successResultOf(self.comet.publish("news", "a"))
        self.comet.publish("news", "b")
        everything = self.client.request("GET", "poll", channel="news").json()
        self.assertEqual([e["data"] for e in everything], ["a", "b"])
        after = self.client.request("GET", "poll", channel="news", last=first.id).json()
        self.assertEqual([e["data"] for e in after], ["b"])
        self.assertEqual(self.comet.hub.sessions, {})


class CORSTests(HTTPTestCase):
    config = {"allowedOrigins": ["https://app.example"]}

    def test_allowedOriginOnly(self):
        """
        An allowed origin gets CORS headers; another gets none.
        """
        good = self.client.request("POST", "control", b'{"op":"join"}', headers={"Origin": ["https://app.example"]})
        self.assertEqual(good.header("Access-Control-Allow-Origin"), "https://app.example")
        bad = self.client.request("POST", "control", b'{"op":"join"}', headers={"Origin": ["https://evil.example"]})
        self.assertIsNone(bad.header("Access-Control-Allow-Origin"))
        preflight = self.client.request("OPTIONS", "control", headers={"Origin": ["https://app.example"]})
        self.assertEqual(preflight.code, 204)
        self.assertIn("POST", preflight.header("Access-Control-Allow-Methods"))


class InfoTests(HTTPTestCase):
    def test_mountPointDescribesItself(self):
        """
        GET on the mount point lists the transports.
        """
        info = self.client.request("GET", "").json()
        self.assertEqual(info["server"], "txcomet")
        self.assertIn("longpoll", info["transports"])


class JoinListenRecoveryTests(HTTPTestCase):
    config = {"historyLength": 2}

    def test_recoveredHeader(self):
        """
        A join-listen resume says in X-Comet-Recovered whether history still
        covered its last id: true when nothing was lost, false when events
        after it had been dropped (a gap is never silent).
        """
        first = self.successResultOf(self.comet.publish("a", 1))
        second = self.successResultOf(self.comet.publish("a", 2))
        covered = self.client.request("GET", "poll", channel="a", last=first.id)
        self.assertEqual(covered.header("X-Comet-Recovered"), "true")
        self.assertEqual([e["data"] for e in covered.json()], [2])
        for i in range(3, 6):
            self.comet.publish("a", i)
        lost = self.client.request("GET", "poll", channel="a", last=second.id)
        self.assertEqual(lost.header("X-Comet-Recovered"), "false")
        self.assertEqual([e["data"] for e in lost.json()], [4, 5])
        fresh = self.client.request("GET", "poll", channel="a")
        self.assertIsNone(fresh.header("X-Comet-Recovered"))
