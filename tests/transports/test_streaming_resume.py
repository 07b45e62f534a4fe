"""
A reconnect within the session timeout loses nothing and repeats nothing,
on every data channel transport: a client whose connection is cut at
random points (at a random byte of what is in flight) while events flow,
and which reconnects the way its transport's client does, has received in
the end exactly the published sequence.
"""

import random
from typing import Any, Dict, List, Optional

from twisted.web.client import ResponseDone

from tests.support.streamkit import STREAMING, CometTestCase
from tests.support.wire import ArrayAnswer, ScriptAnswer

ONE_SHOT = {"poll": ArrayAnswer, "longpoll": ArrayAnswer, "jsonp": ScriptAnswer}
STREAMS = {t.name: t for t in STREAMING}
TRANSPORTS = ["poll", "longpoll", "jsonp"] + [t.name for t in STREAMING]


class ResumingClient:
    """
    A client of one transport that keeps its last event id and reconnects
    with it, as txcomet's clients (or, for SSE, a browser's EventSource,
    which sends the last id it saw, the prelude's included, as
    C{Last-Event-ID}) do.

    @ivar received: the ids of the events received, in order.
    """

    def __init__(self, case: CometTestCase, transport: str, params: Dict[str, Any], last: Optional[str]) -> None:
        self.case = case
        self.transport = transport
        self.params = params
        self.last = last
        self.received: List[str] = []
        self.stream: Any = None
        self.parser: Any = None
        self.fed = 0
        self.connections = 0
        self.recycled = 0

    def ensureOpen(self) -> None:
        if self.stream is None:
            params = dict(self.params)
            headers = {}
            if self.last is not None:
                if self.transport == "sse":
                    headers["Last-Event-ID"] = [self.last]
                else:
                    params["last"] = self.last
            self.stream = self.case.http.open(self.transport, headers=headers, **params)
            self.parser = None
            self.fed = 0
            self.connections += 1
        self.pump()

    def kill(self, rng: random.Random) -> None:
        if self.stream is not None:
            self.stream.kill(keep=rng.randint(0, self.stream.pending))
            self.pump()

    def pump(self) -> None:
        """
        Take in what has arrived; let go of an ended response.
        """
        stream = self.stream
        if stream is None:
            return
        self.case.http.flush()
        if stream.code is not None:
            if self.parser is None:
                assert stream.code == 200, (stream.code, stream.body)
                if self.transport in ONE_SHOT:
                    self.parser = ONE_SHOT[self.transport]()
                else:
                    self.parser = STREAMS[self.transport].parser(stream)
                if self.last is None:
                    self.last = stream.header("X-Comet-Position")
            new, self.fed = stream.body[self.fed :], len(stream.body)
            self.handle(self.parser.feed(new))
            if self.transport == "sse" and self.parser.position:
                self.last = self.parser.position
        if stream.done:
            if self.transport in ONE_SHOT and stream.reason is not None and stream.reason.check(ResponseDone):
                self.handle(self.parser.finish())
            self.stream = None

    def handle(self, messages: List[Any]) -> None:
        for message in messages:
            if message["type"] == "event":
                assert message["id"] not in self.received, ("repeated", message["id"])
                self.received.append(message["id"])
                self.last = message["id"]
            elif message["type"] == "close":
                assert message["reason"] == "recycle", message
                self.recycled += 1
            else:
                assert message["type"] == "heartbeat", message


class KillAtRandomTests(CometTestCase):
    config = {"sessionTimeout": 100000, "recycleBytes": 3000, "heartbeat": 25}

    steps = 150
    seeds = (1, 2, 3)

    def run_client(self, transport: str, sessionMode: bool, seed: int) -> ResumingClient:
        self.setUp()
        rng = random.Random(seed)
        channels = ["news", "sport"] if sessionMode else ["news"]
        if sessionMode:
            reply = self.client.control(op="join", channels=channels)
            client = ResumingClient(self, transport, {"session": reply["session"]}, reply["last"])
        else:
            client = ResumingClient(self, transport, {"channel": "news"}, None)
            # Join-listen starts "from now": the client first learns where
            # now is (headers, or a held request's empty answer).
            client.ensureOpen()
            for attempt in range(3):
                if client.last is not None:
                    break
                self.clock.advance(self.comet.config.heartbeat)
                client.ensureOpen()
            self.assertIsNotNone(client.last)
        published: List[str] = []
        for step in range(self.steps):
            action = rng.random()
            if action < 0.45:
                for i in range(rng.randint(1, 3)):
                    channel = rng.choice(channels)
                    published.append(self.client.publish(channel, {"step": step, "i": i, "pad": "x" * rng.randint(0, 300)})["id"])
            elif action < 0.55:
                self.clock.advance(self.comet.config.heartbeat)
            elif action < 0.8:
                client.kill(rng)
            client.pump()
            if rng.random() < 0.75:
                client.ensureOpen()
        for attempt in range(50):
            if len(client.received) == len(published):
                break
            client.ensureOpen()
            if len(client.received) < len(published):
                self.clock.advance(self.comet.config.heartbeat)
                client.pump()
        self.assertEqual(client.received, published, "%s seed %d" % (transport, seed))
        self.assertGreater(client.connections, 20)
        self.assertEqual(self.flushLoggedErrors(), [])
        return client

    def check(self, transport: str) -> None:
        for sessionMode in (True, False):
            for seed in self.seeds:
                client = self.run_client(transport, sessionMode, seed)
                if transport in ("xhr-stream", "iframe"):
                    self.assertGreater(client.recycled, 0)

    def test_poll(self):
        """
        Short polling, cut at random, resumes exactly.
        """
        self.check("poll")

    def test_longpoll(self):
        """
        Long-polling, cut at random, resumes exactly.
        """
        self.check("longpoll")

    def test_jsonp(self):
        """
        Script-tag long-polling, cut at random, resumes exactly.
        """
        self.check("jsonp")

    def test_xhrStream(self):
        """
        XHR streaming, cut at random and recycled, resumes exactly.
        """
        self.check("xhr-stream")

    def test_iframe(self):
        """
        Iframe streaming, cut at random and recycled, resumes exactly.
        """
        self.check("iframe")

    def test_sse(self):
        """
        SSE, cut at random, resumes exactly from C{Last-Event-ID} as a
        browser sends it.
        """
        self.check("sse")

    def test_multipart(self):
        """
        Multipart streaming, cut at random, resumes exactly.
        """
        self.check("multipart")
