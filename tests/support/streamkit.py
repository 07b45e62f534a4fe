"""
What the transport tests share: the streaming transports and how to read
each, and a test case base with a comet on a clock and in-memory HTTP.
"""

from typing import Any, Callable, List

from twisted.trial.unittest import SynchronousTestCase

from txcomet.testing import MemoryCometClient, makeComet

from .memoryhttp import MemoryHTTP, Stream
from .wire import EventStreamMessages, LineParser, MultipartMessages, ScriptPageParser


class Transport:
    """
    A streaming transport as the tests see it.

    @ivar name: its path under C{/comet}.
    @ivar contentType: the response's C{Content-Type}.
    @ivar recycles: whether it closes after C{recycleBytes}.
    @ivar parser: makes a parser for a L{Stream} (after its headers).
    """

    def __init__(self, name: str, contentType: str, recycles: bool, parser: Callable[[Stream], Any]) -> None:
        self.name = name
        self.contentType = contentType
        self.recycles = recycles
        self.parser = parser

    def __repr__(self) -> str:
        return "<Transport %s>" % (self.name,)


STREAMING = [
    Transport("xhr-stream", "application/x-ndjson; charset=utf-8", True, lambda s: LineParser()),
    Transport("iframe", "text/html; charset=utf-8", True, lambda s: ScriptPageParser()),
    Transport("sse", "text/event-stream; charset=utf-8", False, lambda s: EventStreamMessages()),
    Transport(
        "multipart",
        "multipart/x-mixed-replace; boundary=",
        False,
        lambda s: MultipartMessages(s.header("Content-Type") or ""),
    ),
]


class Reader:
    """
    A L{Stream} and the parser for its transport: C{messages()} is what
    has arrived since the last call.
    """

    def __init__(self, transport: Transport, stream: Stream) -> None:
        self.transport = transport
        self.stream = stream
        self.parser = transport.parser(stream)
        self.received: List[Any] = []

    def messages(self) -> List[Any]:
        new = self.parser.feed(self.stream.read())
        self.received.extend(new)
        return new

    def events(self) -> List[Any]:
        return [m for m in self.messages() if m["type"] != "heartbeat"]


class CometTestCase(SynchronousTestCase):
    """
    A comet with an in-memory bus on a L{Clock} (C{self.clock}), reached
    through C{self.client} (a L{MemoryCometClient}, StubTreq) and
    C{self.http} (L{MemoryHTTP}, for streams).
    """

    config: dict = {}

    def setUp(self) -> None:
        self.comet, self.clock = makeComet(**self.config)
        self.client = MemoryCometClient(self.comet)
        self.http = MemoryHTTP(self.comet.resource)

    def publish(self, channel: str, data: Any) -> str:
        """
        Publish through the HTTP publish API; return the event id.
        """
        reply = self.client.publish(channel, data)
        assert reply.get("ok"), reply
        self.http.flush()
        return reply["id"]

    def openStream(self, transport: Transport, headers: Any = None, **params: Any) -> Reader:
        return Reader(transport, self.http.open(transport.name, headers=headers, **params))
