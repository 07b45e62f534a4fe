"""
Resuming a session from the start marker, and the position every data
channel response states (C{X-Comet-Position}).
"""

from twisted.trial.unittest import SynchronousTestCase

from txcomet.testing import MemoryCometClient, RecordingDataChannel, makeComet


class StartMarkerTests(SynchronousTestCase):
    """
    C{last=<epoch>-0} means "I have received nothing from this session".
    """

    def setUp(self):
        self.comet, self.clock = makeComet(replayLength=3)
        self.client = MemoryCometClient(self.comet)
        self.reply = self.client.control(op="join", channels=["news"])
        self.session = self.comet.hub.getSession(self.reply["session"])

    def loseWrites(self, count):
        """
        Publish C{count} events and have them written to a data channel
        whose client never sees them (a connection that died in flight).
        """
        lost = RecordingDataChannel(oneShot=False)
        self.session.attach(lost)
        for i in range(count):
            self.client.publish("news", i)
        self.session.detach(lost)
        self.assertEqual(len(lost.events), count)

    def test_joinReplyHasStartMarker(self):
        """
        The join reply's C{last} is the start marker: the bus epoch and
        offset 0, which no event has.
        """
        self.assertEqual(self.reply["last"], "%s-0" % (self.comet.bus.epoch,))
        self.assertEqual(self.session.resumePoint, self.reply["last"])

    def test_markerReplaysWhatWasWrittenToADeadConnection(self):
        """
        Events written to a connection that died before reaching the client
        are sent again when it polls with the start marker, and only once.
        """
        self.loseWrites(2)
        events = self.client.poll(self.reply["session"], last=self.reply["last"])
        self.assertEqual([e["data"] for e in events], [0, 1])
        self.assertEqual(self.client.poll(self.reply["session"], last=events[-1]["id"]), [])

    def test_withoutLastNothingIsReplayed(self):
        """
        Without C{last}, a data channel carries on after what was written
        before: the client says it has everything.
        """
        self.loseWrites(2)
        self.assertEqual(self.client.poll(self.reply["session"]), [])

    def test_markerAfterTrimmingIsReplayUnavailable(self):
        """
        Once the replay buffer has dropped the session's first events, the
        start marker cannot be honoured: the session closes with
        C{replay_unavailable} instead of leaving a silent gap.
        """
        self.loseWrites(5)  # replayLength is 3
        [close] = self.client.poll(self.reply["session"], last=self.reply["last"])
        self.assertEqual(close, {"type": "close", "reason": "replay_unavailable", "reconnect": True})

    def test_markerOfAnotherEpochIsReplayUnavailable(self):
        """
        A start marker from another life of the bus is not this session's.
        """
        [close] = self.client.poll(self.reply["session"], last="0ther-0")
        self.assertEqual(close["reason"], "replay_unavailable")

    def test_resumePointFollowsWrites(self):
        """
        After events are written, the resume point is the last one's id.
        """
        self.client.publish("news", "a")
        [event] = self.client.poll(self.reply["session"])
        self.assertEqual(self.session.resumePoint, event["id"])


class PositionHeaderTests(SynchronousTestCase):
    """
    Every data channel response says where it starts.
    """

    def test_sessionModeWithoutLast(self):
        """
        With a session and no C{last}, C{X-Comet-Position} is the session's
        resume point.
        """
        comet, clock = makeComet()
        client = MemoryCometClient(comet)
        session = client.join(channels=["news"])
        client.publish("news", 1)
        first = client.request("GET", "poll", session=session)
        self.assertEqual(first.header("X-Comet-Position"), "%s-0" % (comet.bus.epoch,))
        second = client.request("GET", "poll", session=session)
        self.assertEqual(second.header("X-Comet-Position"), first.json()[0]["id"])

    def test_sessionModeWithLast(self):
        """
        With a session and C{last}, C{X-Comet-Position} is that C{last}.
        """
        comet, clock = makeComet()
        client = MemoryCometClient(comet)
        session = client.join(channels=["news"])
        event = client.publish("news", 1)
        response = client.request("GET", "poll", session=session, last=event["id"])
        self.assertEqual(response.header("X-Comet-Position"), event["id"])


class LastEventIdPrecedenceTests(SynchronousTestCase):
    """
    A native EventSource reopens its URL with a newer C{Last-Event-ID}.
    """

    def test_headerWinsOverQuery(self):
        """
        When both the C{Last-Event-ID} header and C{last=} are given, the
        header decides where the replay starts.
        """
        comet, clock = makeComet()
        client = MemoryCometClient(comet)
        ids = [client.publish("news", i)["id"] for i in range(3)]
        response = client.request(
            "GET", "poll", headers={"Last-Event-ID": [ids[1]]}, channel="news", last=ids[0]
        )
        self.assertEqual([e["data"] for e in response.json()], [2])


class UnknownParameterTests(SynchronousTestCase):
    """
    A misspelt parameter is an error, not silently ignored.
    """

    def test_unknownParameter(self):
        """
        A data channel request with a parameter the endpoint does not take
        is answered 400 C{invalid_request} naming it.
        """
        comet, clock = makeComet()
        client = MemoryCometClient(comet)
        response = client.request("GET", "longpoll", channel="news", lastEventID="x-1")
        self.assertEqual(response.code, 400)
        self.assertEqual(response.json()["error"], "invalid_request")
        self.assertIn("'lastEventID'", response.json()["message"])
        self.assertEqual(comet.hub.sessions, {})

    def test_cacheBuster(self):
        """
        C{_=...}, the cache buster script-tag and jQuery clients add, is
        accepted.
        """
        comet, clock = makeComet()
        client = MemoryCometClient(comet)
        response = client.request("GET", "poll", channel="news", _="12345")
        self.assertEqual((response.code, response.json()), (200, []))


class LoneSurrogateTests(SynchronousTestCase):
    def test_publishLoneSurrogate(self):
        """
        JSON text may escape a lone surrogate (C{"\\ud800"}), which no event
        can be encoded with: publishing it is a 400 C{malformed_json}, not
        an internal error.
        """
        comet, clock = makeComet()
        client = MemoryCometClient(comet)
        response = client.request(
            "POST", "publish/news", b'{"a": "\\ud800"}', headers={"Content-Type": ["application/json"]}
        )
        self.assertEqual((response.code, response.json()["error"]), (400, "malformed_json"))
        self.assertEqual(self.flushLoggedErrors(), [])


class HeadTests(SynchronousTestCase):
    def test_headIsAnsweredAtOnce(self):
        """
        C{HEAD} on any data channel answers the headers a C{GET} would, at
        once, without joining or holding anything.
        """
        comet, clock = makeComet()
        client = MemoryCometClient(comet)
        types = {
            "poll": "application/json",
            "longpoll": "application/json",
            "jsonp": "application/javascript",
            "xhr-stream": "application/x-ndjson",
            "iframe": "text/html",
            "sse": "text/event-stream",
            "multipart": "multipart/x-mixed-replace",
        }
        for transport, contentType in types.items():
            response = client.request("HEAD", transport, channel="news")
            self.assertEqual((response.code, response.body), (200, b""), transport)
            self.assertTrue(response.header("Content-Type").startswith(contentType), transport)
        self.assertEqual(comet.hub.sessions, {})
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_headChecksParameters(self):
        """
        C{HEAD} with bad parameters is refused as C{GET} would be.
        """
        comet, clock = makeComet()
        client = MemoryCometClient(comet)
        self.assertEqual(client.request("HEAD", "sse", channel="bad name").code, 400)
        self.assertEqual(client.request("HEAD", "sse", session="nope").code, 404)
        self.assertEqual(client.request("HEAD", "sse").code, 400)
