# -*- test-case-name: tests.test_exports,tests.test_interfaces,tests.node.test_tap,tests.bus.test_memory -*-
"""
Fakes for testing applications that use txcomet, in trial or pytest,
without sockets or a running reactor.

    from twisted.trial.unittest import SynchronousTestCase
    from txcomet.testing import MemoryCometClient, makeComet

    class NewsTests(SynchronousTestCase):
        def test_headline(self):
            comet, clock = makeComet()
            client = MemoryCometClient(comet)
            session = client.join(channels=["news"])
            myApp.announce(comet, "hello")           # publishes on "news"
            [event] = client.poll(session)
            self.assertEqual(event["data"], "hello")

L{makeComet} builds a L{Comet} with an in-memory bus on a
L{twisted.internet.task.Clock}; L{MemoryCometClient} speaks the HTTP
protocol to its resource through L{treq.testing.StubTreq}; 
L{RecordingSubscriber} and L{RecordingDataChannel} record what the bus or a
session hands them.
"""

import json
from typing import Any, List, Optional, Sequence, Tuple
from urllib.parse import urlencode

from twisted.internet.task import Clock
from zope.interface import implementer

from txcomet._model.config import CometConfig
from txcomet._bus.memory import InMemoryBus
from txcomet._server.service import Comet
from txcomet.interfaces import IAuthorizer, IDataChannel, IEvent, ISubscriber

__all__ = [
    "makeComet",
    "MemoryCometClient",
    "RecordingSubscriber",
    "RecordingDataChannel",
    "StubResponse",
]


def makeComet(
    clock: Optional[Clock] = None, authorizer: Optional[IAuthorizer] = None, **config: Any
) -> Tuple[Comet, Clock]:
    """
    A L{Comet} with an L{InMemoryBus}, its timers on C{clock} (a new
    L{Clock} unless given).  Keyword arguments are L{CometConfig} settings.

    @return: C{(comet, clock)}.
    """
    if clock is None:
        clock = Clock()
    settings = CometConfig(**config)
    bus = InMemoryBus(historyLength=settings.historyLength)
    return Comet(bus=bus, config=settings, clock=clock, authorizer=authorizer), clock


@implementer(ISubscriber)
class RecordingSubscriber:
    """
    An L{ISubscriber} that keeps every event delivered to it.

    @ivar events: the delivered L{IEvent}s, in order.
    """

    def __init__(self) -> None:
        self.events: List[IEvent] = []

    def deliver(self, event: IEvent) -> None:
        self.events.append(event)

    @property
    def data(self) -> List[Any]:
        """
        The payloads of the delivered events.
        """
        return [e.data for e in self.events]


@implementer(IDataChannel)
class RecordingDataChannel:
    """
    An L{IDataChannel} that records what a session writes to it.

    @ivar writes: one entry per write: C{("events", [event, ...])},
        C{("heartbeat", None)} or C{("close", (reason, reconnect))}.
    """

    transportName = "recording"

    def __init__(self, oneShot: bool = False) -> None:
        self.oneShot = oneShot
        self.writes: List[Tuple[str, Any]] = []
        self.closed: Optional[Tuple[str, bool]] = None

    def writeEvents(self, events: Sequence[IEvent]) -> None:
        self.writes.append(("events", list(events)))

    def writeHeartbeat(self) -> None:
        self.writes.append(("heartbeat", None))

    def closeChannel(self, reason: str, reconnect: bool) -> None:
        self.closed = (reason, reconnect)
        self.writes.append(("close", (reason, reconnect)))

    @property
    def events(self) -> List[IEvent]:
        """
        Every event written, in order.
        """
        return [e for kind, payload in self.writes if kind == "events" for e in payload]


class StubResponse:
    """
    An HTTP answer from L{MemoryCometClient.request}.

    @ivar code: the status.
    @ivar headers: the response headers (L{twisted.web.http_headers.Headers}).
    @ivar body: the body as L{bytes}.
    """

    def __init__(self, code: int, headers: Any, body: bytes) -> None:
        self.code = code
        self.headers = headers
        self.body = body

    def header(self, name: str) -> Optional[str]:
        values = self.headers.getRawHeaders(name)
        return values[0] if values else None

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))

    def __repr__(self) -> str:
        return "<StubResponse %d %r>" % (self.code, self.body[:200])


class MemoryCometClient:
    """
    A client speaking txcomet's HTTP protocol to a L{Comet} in memory,
    through L{treq.testing.StubTreq}: no sockets, no reactor.  Every method
    returns once the answer is complete; a request the server holds open
    (a long-poll) is returned by L{start} as a L{Deferred} to check with
    C{successResultOf} after advancing the clock or publishing.
    """

    base = "http://comet.test"

    def __init__(self, comet: Comet) -> None:
        from treq.testing import StubTreq

        self.comet = comet
        self.treq = StubTreq(comet.resource)

    def start(self, method: str, path: str, body: Optional[bytes] = None, headers: Optional[dict] = None, **params: Any):
        """
        Begin a request; a L{Deferred} firing with a L{StubResponse} once
        the whole answer has arrived (call L{flush} after server-side
        changes).
        """
        url = self.base + "/" + path.lstrip("/")
        if params:
            url += "?" + urlencode(params, doseq=True)
        d = self.treq.request(method, url, data=body, headers=headers)

        def collect(response):
            return self.treq.content(response).addCallback(
                lambda content: StubResponse(response.code, response.headers, content)
            )

        d.addCallback(collect)
        self.treq.flush()
        return d

    def flush(self) -> None:
        """
        Move pending bytes between client and server.
        """
        self.treq.flush()

    def request(self, method: str, path: str, body: Optional[bytes] = None, headers: Optional[dict] = None, **params: Any) -> StubResponse:
        """
        Make a request that the server answers at once and return the
        L{StubResponse}.
        """
        results: List[Any] = []
        self.start(method, path, body, headers, **params).addBoth(results.append)
        self.flush()
        if not results:
            raise AssertionError("%s %s got no complete answer (held open?)" % (method, path))
        result = results[0]
        if hasattr(result, "raiseException"):
            result.raiseException()
        return result

    def control(self, **message: Any) -> Any:
        """
        POST one control message; return the decoded answer (an error
        answer too).
        """
        return self.request("POST", "control", json.dumps(message).encode("utf-8")).json()

    def join(self, **fields: Any) -> str:
        """
        Join; return the session id.
        """
        reply = self.control(op="join", **fields)
        if not reply.get("ok"):
            raise AssertionError("join failed: %r" % (reply,))
        return reply["session"]

    def subscribe(self, session: str, channel: str, **fields: Any) -> Any:
        return self.control(op="subscribe", session=session, channel=channel, **fields)

    def publish(self, channel: str, data: Any, session: Optional[str] = None) -> Any:
        """
        Publish through the control channel with C{session}, or through the
        publish API without one.
        """
        if session is not None:
            return self.control(op="publish", session=session, channel=channel, data=data)
        return self.request(
            "POST",
            "publish/" + channel,
            json.dumps(data).encode("utf-8"),
            headers={"Content-Type": ["application/json"]},
        ).json()

    def api(self, method: str, key: Optional[str] = None, **params: Any) -> Any:
        """
        Call the server API's C{method} with C{params} (with the API key
        C{key}, if given); return the decoded answer (an error answer too).
        """
        headers = {"X-API-Key": [key]} if key is not None else None
        body = json.dumps({"method": method, "params": params}).encode("utf-8")
        return self.request("POST", "api", body, headers=headers).json()

    def poll(self, session: str, **params: Any) -> Any:
        """
        Short-poll with C{session}; return the decoded JSON array.
        """
        return self.request("GET", "poll", session=session, **params).json()
