# -*- test-case-name: tests.transports.test_streaming,tests.client.test_client,tests.fastpath.test_turn,tests.fastpath.test_contracts -*-
"""
The streaming comet transports, and script-tag (JSONP) long-polling.

Every transport here is a thin resource over the shared session and
delivery path of L{txcomet._transports.datachannel}: it decides only how a message is
framed and how the connection is held.

    GET /comet/xhr-stream   newline-delimited JSON over one chunked response
    GET /comet/iframe       <script>p(...)</script> chunks in a text/html page
    GET /comet/sse          EventSource: id:/event:/data: lines
    GET /comet/multipart    multipart/x-mixed-replace, one part per message
    GET /comet/jsonp        /**/CALLBACK([...],POSITION); long-polling

L{StreamingDataChannel} holds what every stream shares: the prelude,
per-event bytes framed once per framing (C{event.framed(framing)}, the same
bytes to every connection), heartbeats, the close message, recycling after
C{recycleBytes}, back-pressure (a client whose connection stays backed up
past C{queueBytes} closes its session as C{slow_consumer}) and nothing
written once the client has gone.  Each transport is a small subclass.
"""

import base64
import binascii
import re
import secrets
from typing import Any, List, Optional, Tuple
from urllib.parse import unquote_to_bytes

from twisted.internet.interfaces import IPushProducer
from twisted.python.failure import Failure
from twisted.web.http_headers import Headers
from twisted.web.server import Request
from zope.interface import implementer

from txcomet._transports.datachannel import DataChannelParams, DataChannelResource, HTTPDataChannel, LongPollResource
from txcomet._model.errors import CometError
from txcomet._model.event import encodeJSON
from txcomet._model.stats import tally
from txcomet._fastpath.roster import RosterMember
from txcomet._fastpath.turn import TurnBatch
from txcomet._fastpath.writer import ChunkedFraming, StreamWriter, chunk
from txcomet._transports.http import asCometError, escapeScript, queryArgs, setNoCache, singleArg, validateCallback
from txcomet._fastpath.contracts import IDirectChannel, IRosterMember
from txcomet._model.wire import CLOSE_REASONS, HEARTBEAT, closeMessage
from txcomet._sessions.session import Session
from txcomet.interfaces import IEvent, IFraming

#: The callback script transports call when the request names none, so a
#: bare C{curl -N .../jsonp?channel=demo} works too.
DEFAULT_CALLBACK = "txcometCallback"

#: Bytes of padding at the start of a stream: older browsers (Internet
#: Explorer's XHR and XDomainRequest, EventSource polyfills built on them,
#: WebKit's incremental HTML rendering) hold back the first couple of KiB
#: of a response before they hand any of it to the page.
PADDING = 2048

JSON_TYPE = b"application/json; charset=utf-8"


def positionScript(position: Optional[str]) -> bytes:
    """
    C{position} as a JavaScript string literal, safe in a C{<script>}.
    """
    return escapeScript(encodeJSON(position))


def callbackParam(args: dict) -> str:
    """
    The validated C{callback} query parameter, or L{DEFAULT_CALLBACK}.
    """
    callback = singleArg(args, "callback")
    return validateCallback(DEFAULT_CALLBACK if callback is None else callback)


# framings: what each transport sends for one message, shared by all its
# connections and cached per event


@implementer(IFraming)
class LineFraming:
    """
    One JSON message per line: XHR streaming.  JSON never holds a raw line
    break, so a line is always one whole message.
    """

    name = "xhr-stream"

    def frameMessage(self, message: bytes) -> bytes:
        return message + b"\n"

    def frameEvent(self, event: IEvent) -> bytes:
        return event.json + b"\n"


@implementer(IFraming)
class ScriptCallFraming:
    """
    Each message as C{<script>p(MSG);</script>}: iframe streaming.  C{p}
    is defined by each response's prelude, so these bytes name no callback
    and serve every connection.  The JSON is script-escaped: no payload
    can close the element.
    """

    name = "iframe"

    def frameMessage(self, message: bytes) -> bytes:
        return b"<script>p(" + escapeScript(message) + b");</script>\n"

    def frameEvent(self, event: IEvent) -> bytes:
        return self.frameMessage(event.json)


_LINE_BREAK = re.compile(rb"\r\n|\r|\n")


def eventStreamField(name: bytes, value: bytes) -> bytes:
    """
    C{name: value} as event-stream lines: one line per line of C{value}
    (split on CRLF, CR or LF, as the EventSource parser does), so that any
    value frames correctly.
    """
    return b"".join([name + b": " + line + b"\n" for line in _LINE_BREAK.split(value)])


@implementer(IFraming)
class EventStreamFraming:
    """
    Server-sent events: C{id:} on every event, C{event:} when the type is
    not C{event} (C{join}, C{leave}, C{close}), C{data:} the JSON message.
    """

    name = "sse"

    def frameMessage(
        self, message: bytes, eventType: Optional[bytes] = None, eventId: Optional[bytes] = None
    ) -> bytes:
        lines = []
        if eventId is not None:
            lines.append(eventStreamField(b"id", eventId))
        if eventType is not None:
            lines.append(eventStreamField(b"event", eventType))
        lines.append(eventStreamField(b"data", message))
        lines.append(b"\n")
        return b"".join(lines)

    def frameEvent(self, event: IEvent) -> bytes:
        kind = None if event.kind == "event" else event.kind.encode("utf-8")
        return self.frameMessage(event.json, kind, event.id.encode("utf-8"))


def partHeaders(contentType: bytes) -> bytes:
    """
    The header block of a MIME body part.
    """
    return b"Content-Type: " + contentType + b"\r\n\r\n"


JSON_PART = partHeaders(JSON_TYPE)


@implementer(IFraming)
class PartFraming:
    """
    The body of an event's part in a multipart stream of messages: its
    JSON.  The header block (always L{JSON_PART}) and the boundary lines
    are written per response.
    """

    name = "multipart"

    def frameEvent(self, event: IEvent) -> bytes:
        return event.json


_TOKEN = r"[A-Za-z0-9!#$&^_.+-]+"
_DATA_URL = re.compile(
    r"data:(?P<type>{t}/{t}(?:;{t}={t})*)?(?P<base64>;base64)?,(?P<data>.*)\Z".format(t=_TOKEN),
    re.S,
)


def decodeDataURL(url: str) -> Optional[Tuple[bytes, bytes]]:
    """
    The media type and bytes of an RFC 2397 C{data:} URL, or C{None} when
    C{url} is not one.
    """
    match = _DATA_URL.match(url)
    if match is None:
        return None
    contentType = (match.group("type") or "text/plain;charset=US-ASCII").encode("ascii")
    payload = match.group("data")
    if match.group("base64"):
        try:
            body = base64.b64decode(re.sub(r"\s+", "", payload).encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError):
            return None
    else:
        body = unquote_to_bytes(payload)
    return contentType, body


def dataBody(data: Any) -> Tuple[bytes, bytes]:
    """
    The content type and bytes of a body part that I{is} C{data}: a
    C{data:} URL string as its bytes and media type (how an image is
    published), another string as UTF-8 text, anything else as JSON.
    """
    if isinstance(data, str):
        decoded = decodeDataURL(data) if data.startswith("data:") else None
        if decoded is not None:
            return decoded
        return b"text/plain; charset=utf-8", data.encode("utf-8", "replace")
    return JSON_TYPE, encodeJSON(data)


@implementer(IFraming)
class DataBodyFraming:
    """
    The body of an event's part in a C{parts=data} stream: its data itself
    (see L{dataBody}).
    """

    name = "multipart-data"

    def frameEvent(self, event: IEvent) -> bytes:
        return dataBody(event.data)[1]


@implementer(IFraming)
class DataHeadFraming:
    """
    The header block of an event's part in a C{parts=data} stream.
    """

    name = "multipart-data-head"

    def frameEvent(self, event: IEvent) -> bytes:
        return partHeaders(dataBody(event.data)[0])


@implementer(IFraming)
class ScriptArrayFraming:
    """
    A message as an element of a script-tag answer's array: its JSON,
    script-escaped.
    """

    name = "jsonp"

    def frameEvent(self, event: IEvent) -> bytes:
        return escapeScript(event.json)


LINES = LineFraming()
SCRIPT_CALLS = ScriptCallFraming()
EVENT_STREAM = EventStreamFraming()
PARTS = PartFraming()
DATA_BODIES = DataBodyFraming()
DATA_HEADS = DataHeadFraming()
SCRIPT_ARRAY = ScriptArrayFraming()


# the streaming base class


@implementer(IPushProducer, IDirectChannel, IRosterMember)
class StreamingDataChannel(RosterMember, TurnBatch, HTTPDataChannel):
    """
    A data channel that streams: one response carries every message until
    the channel closes.

    A subclass sets C{framing} (the L{IFraming} its events are framed with)
    and says what its prelude, heartbeat and close look like; with
    C{recycles}, the response is closed with reason C{recycle} (the client
    reopens it with its last id) once C{recycleBytes} have been written.

    The channel is the request's streaming producer: while the connection
    is backed up (Twisted paused it), what is still written is counted, and
    past C{queueBytes} the session is closed as C{slow_consumer}, so one
    slow client never costs the server unbounded memory.

    Fan-out takes a shorter way where it can: see L{sink}.

    @ivar written: the body bytes written so far (less those written by
        L{sink}, counted in C{directBytes}).
    @ivar paused: whether the connection is backed up.
    @ivar backlog: bytes written since it was.
    @ivar sink: what the session may hand events to directly
        (L{deliverEvent}): this channel, on a plain TCP or UNIX connection
        once the prelude is out; else C{None}.
    """

    oneShot = False
    framing: Any = None
    #: C{framing}'s bytes as one HTTP/1.1 chunk, for chunked responses.
    wireFraming: Any = None
    recycles = False
    #: Whether an event's bytes are always C{event.framed(framing)}, so that
    #: L{deliverEvent} may send them (not so for multipart streams).
    directEvents = True
    sink: Any = None

    def __init__(self, resource: DataChannelResource, request: Request, params: DataChannelParams) -> None:
        super().__init__(resource, request, params)
        self.written = 0
        self.directBytes = 0
        self.paused = False
        self.backlog = 0
        self.producing = False
        self.writer: Optional[StreamWriter] = None
        self._direct: Any = None
        self._wire: Any = None
        self._wireName = ""
        # The turn rule (TurnBatch); what a turn holds back is an empty
        # tuple (the class's) until then, to keep a quiet stream small.
        self.turn = self.hub.turn
        self._rosterReady = False
        #: Bytes after which this stream is recycled (0: never).
        self.recycleLimit = self.hub.config.recycleBytes if self.recycles else 0

    # what a subclass says

    def prelude(self) -> bytes:
        """
        What the response starts with (padding, set-up); may be empty.
        """
        return b""

    def heartbeatBytes(self) -> bytes:
        """
        The heartbeat, framed.
        """
        raise NotImplementedError()

    def closeBytes(self, message: bytes) -> bytes:
        """
        The close message C{message} (JSON) framed, and whatever ends the
        response.
        """
        raise NotImplementedError()

    # lifecycle

    def setHeaders(self) -> None:
        super().setHeaders()
        request = self.request
        # nginx buffers proxied responses unless told not to; sniffing
        # browsers hold back the start of a response to guess its type.
        request.setHeader(b"X-Accel-Buffering", b"no")
        request.setHeader(b"X-Content-Type-Options", b"nosniff")

    def begin(self, session: Session) -> None:
        """
        Start the heartbeat, send the headers and prelude, and watch for
        back-pressure: on a plain TCP or UNIX connection by looking at what
        the transport holds after each write that did not go straight out
        (see L{_checkHeld}); on any other, as the request's producer.
        """
        super().begin(session)
        request = self.request
        prelude = self.prelude()
        request.write(prelude)
        self.written += len(prelude)
        if request.startedWriting:
            # The headers are on the wire, and Twisted reads them no more:
            # a held stream need not keep them (about a kilobyte).
            request.responseHeaders = Headers()
        # Nor does anything read the query arguments once the stream has
        # started (the transports read their own in __init__ and prelude):
        # Twisted's and their decoded copy go too.
        request.args = {}
        self.params.args = {}
        self.writer = writer = StreamWriter(request)
        if writer.direct is None:
            request.registerProducer(self, True)
            self.producing = True
            # A connection already backed up by an earlier response on it.
            self.paused = bool(getattr(request.channel, "_waitingForTransport", False))
            return
        # No producer registration on a plain connection: it would also
        # grow Twisted's per-connection state by over a kilobyte.
        self._direct = writer.direct
        if self.directEvents:
            self._wire = self.wireFraming if writer.chunked else self.framing
            self._wireName = self._wire.name
            self.sink = self
            self._rosterReady = True

    def _checkHeld(self) -> None:
        """
        A write was left (partly) in the transport's buffer: once it holds
        more than the transport's own buffer size (where Twisted would
        pause a producer) plus C{queueBytes}, the session is a slow
        consumer.
        """
        transport = self._direct.transport
        held = transport._tempDataLen + len(transport.dataBuffer) - transport.offset
        if held > transport.bufferSize + self.hub.config.queueBytes:
            session = self.session
            if session is not None and session.dataChannel is self:
                session.close("slow_consumer")

    def deliverEvent(self, event: Any) -> None:
        """
        Write one event, as the session's direct path (L{sink}): its shared
        wire bytes (chunk included) through the connection's
        L{txcomet._fastpath.writer.DirectWriter}, with none of L{writeEvents}'
        per-call work.  The first event of a reactor turn goes at once;
        more in the same turn wait for the turn's end and go in one write
        (see L{txcomet._fastpath.turn.Turn}), unless the connection is backed up.
        Slow consumers and recycling work as on the slow path.
        """
        if self.ended:
            return
        frames = event._frames
        wire = frames.get(self._wireName) if frames is not None else None
        if wire is None:
            wire = event.framed(self._wire)
        self.wrote = True
        self.directBytes += len(wire)
        turn = self.turn
        if not turn.open:
            turn.begin()
        if self.turnCount == turn.count:
            # TurnBatch.writeInTurn, its first test made here.
            self.hold(wire, 1)
        else:
            self.turnCount = turn.count
            if self._direct.write(wire):
                self._checkHeld()
            elif self._rosterReady:
                self._joinRoster()
        if self.recycleLimit:
            self._maybeRecycle()

    # the roster (see txcomet._fastpath.roster.Roster)

    def _joinRoster(self) -> None:
        session = self.session
        self._rosterReady = self.joinedRoster(session.joinRoster(self) if session is not None else None)

    @property
    def rosterSocket(self) -> Any:
        return self._direct.socket

    @property
    def rosterFraming(self) -> Any:
        return self._wire

    @property
    def rosterTurn(self) -> Any:
        return self.turn

    @property
    def rosterTally(self) -> Any:
        return tally(self.transportName)

    @property
    def rosterBudget(self) -> Optional[int]:
        """
        The bytes this stream may still take before it is recycled.
        """
        if not self.recycleLimit:
            return None
        return self.recycleLimit - self.written - self.directBytes

    def rosterSpent(self) -> None:
        self._maybeRecycle()

    def rosterLeft(self, seat: Any, pending: Optional[bytes]) -> None:
        """
        This stream has left its roster (C{seat}): count what it wrote, and write
        C{pending} (what the roster held back in this turn) first.
        """
        roster = seat.roster
        self.directBytes += roster.bytes - seat.bytes
        if roster.events != seat.events:
            self.wrote = True
        if pending is not None and not self.ended:
            self.directBytes += len(pending)
            if self._direct.write(pending):
                self._checkHeld()

    def rosterSpill(self, data: bytes) -> None:
        """
        What the socket did not take of the roster's write: the transport
        sends it.
        """
        direct = self._direct
        direct.spilled = True
        direct.transport.write(data)
        self._checkHeld()

    def send(self, data: bytes, wire: Optional[bytes] = None) -> None:
        """
        Write C{data} to the response by the turn rule (L{TurnBatch}),
        unless the client has gone.

        @param wire: the same bytes as they go on the connection, when
            shared pre-framed bytes are at hand (see L{StreamWriter}).
        """
        if self.ended or not data:
            return
        writer = self.writer
        assert writer is not None
        if self.seat is not None:
            self.leaveRoster()
        self.written += len(data)
        if self._direct is not None:
            # What is held is what goes on the wire: the direct path's
            # shared chunks and these, in order.
            if wire is None:
                wire = chunk(data) if writer.chunked else data
            self.request.sentLength += len(data)
            self.writeInTurn(wire)
        else:
            self.writeInTurn(data)

    def writeNow(self, data: bytes, events: int) -> None:
        """
        Write C{data} now: to the socket on a plain connection, else
        through the L{StreamWriter}, watching for back-pressure either way.
        """
        if self.ended:
            return
        direct = self._direct
        if direct is not None:
            if direct.write(data):
                self._checkHeld()
            return
        assert self.writer is not None
        self.writer.write(data)
        if self.paused:
            self._backedUp(len(data))

    def _backedUp(self, size: int) -> None:
        """
        C{size} more bytes were written while the connection is backed up;
        past C{queueBytes} of them the session is a slow consumer.
        """
        self.backlog += size
        session = self.session
        if self.backlog > self.hub.config.queueBytes and session is not None and session.dataChannel is self:
            session.close("slow_consumer")

    def end(self, body: bytes = b"") -> None:
        if self.ended:
            return
        self.leaveRoster()
        self.flushPending()
        # What the direct path wrote counts in the access log's byte count
        # (with its chunk framing).
        self.request.sentLength += self.directBytes
        if self.producing:
            self.producing = False
            if not self.gone:
                self.request.unregisterProducer()
        super().end(body)

    def _maybeRecycle(self) -> None:
        limit = self.recycleLimit
        if limit and self.written + self.directBytes >= limit and not self.ended:
            if self.session is not None:
                self.session.detach(self)
            self.closeChannel("recycle", CLOSE_REASONS["recycle"])

    # IDataChannel

    def writeEvents(self, events: List[Any]) -> None:
        if self.ended:
            return
        self.wrote = True
        if len(events) == 1:
            event = events[0]
            data = event.framed(self.framing)
            assert self.writer is not None
            self.send(data, event.framed(self.wireFraming) if self.writer.chunked else data)
        else:
            self.send(b"".join([event.framed(self.framing) for event in events]))
        self._maybeRecycle()

    def writeHeartbeat(self) -> None:
        if self.ended:
            return
        self.send(self.heartbeatBytes())
        self._maybeRecycle()

    def closeChannel(self, reason: str, reconnect: bool) -> None:
        if self.ended:
            return
        self.send(self.closeBytes(closeMessage(reason, reconnect)))
        self.end()

    # IPushProducer: Twisted pauses a producer whose connection's send
    # buffer is full, and resumes it once the buffer has drained.

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False
        self.backlog = 0

    def stopProducing(self) -> None:
        """
        The connection is going; the request's finish notice cleans up.
        """


class XHRStreamChannel(StreamingDataChannel):
    """
    XHR streaming: a line of whitespace (L{PADDING} bytes), then one JSON
    message per line.  Recycled after C{recycleBytes}.
    """

    contentType = b"application/x-ndjson; charset=utf-8"
    framing = LINES
    wireFraming = ChunkedFraming(LINES)
    recycles = True

    _prelude = b" " * (PADDING - 1) + b"\n"
    _heartbeatFrame = LINES.frameMessage(HEARTBEAT)

    def prelude(self) -> bytes:
        return self._prelude

    def heartbeatBytes(self) -> bytes:
        return self._heartbeatFrame

    def closeBytes(self, message: bytes) -> bytes:
        return LINES.frameMessage(message)


class IframeChannel(StreamingDataChannel):
    """
    Hidden-iframe ("htmlfile") streaming: an HTML page whose prelude
    defines C{p(message)} to call the parent page's C{callback(message,
    position)}, then padding, then one C{<script>p(...);</script>} per
    message.  Recycled after C{recycleBytes}.
    """

    contentType = b"text/html; charset=utf-8"
    framing = SCRIPT_CALLS
    wireFraming = ChunkedFraming(SCRIPT_CALLS)
    recycles = True

    _heartbeatFrame = SCRIPT_CALLS.frameMessage(HEARTBEAT)

    def prelude(self) -> bytes:
        callback = callbackParam(self.params.args).encode("ascii")
        return (
            b'<!doctype html>\n<html><head><meta charset="utf-8"><title>txcomet</title>\n'
            b"<script>function p(m){parent." + callback + b"(m," + positionScript(self.position) + b")}</script>\n"
            b"</head><body>\n<!--" + b" " * PADDING + b"-->\n"
        )

    def heartbeatBytes(self) -> bytes:
        return self._heartbeatFrame

    def closeBytes(self, message: bytes) -> bytes:
        return SCRIPT_CALLS.frameMessage(message) + b"</body></html>\n"


class EventSourceChannel(StreamingDataChannel):
    """
    Server-sent events for C{EventSource}.  The prelude is a padding
    comment, C{retry:} advice, and the response's position as an C{id:}
    with no data (it sets the browser's last event id without firing an
    event), so a reconnect that comes before any event still resumes
    exactly.  Heartbeats are comments.  Not recycled: EventSource keeps no
    response text.
    """

    contentType = b"text/event-stream; charset=utf-8"
    framing = EVENT_STREAM
    wireFraming = ChunkedFraming(EVENT_STREAM)

    #: Milliseconds the browser should wait before reconnecting.
    retry = 2000

    def prelude(self) -> bytes:
        lines = [b":" + b" " * (PADDING - 2) + b"\n", b"retry: %d\n" % (self.retry,)]
        position = self.position
        if position and not re.search("[\r\n\x00]", position):
            lines.append(b"id: " + position.encode("utf-8") + b"\n")
        lines.append(b"\n")
        return b"".join(lines)

    def heartbeatBytes(self) -> bytes:
        return b":hb\n\n"

    def closeBytes(self, message: bytes) -> bytes:
        return EVENT_STREAM.frameMessage(message, b"close")


class MultipartChannel(StreamingDataChannel):
    """
    C{multipart/x-mixed-replace} with a random boundary per response, one
    body part per message.

    Each part's body is followed at once by the boundary line I{and the
    next part's header block}: browsers (Chromium at least) show a part
    only once the next part's headers have arrived, so announcing them
    early shows each part as soon as it is complete instead of one part
    late.  With C{parts=message} (the default) every part is a JSON
    message, so the next header block is known.  With C{parts=data} every
    part is an event's data itself (see L{dataBody}; presence notices have
    none), and the next part is announced with the type of the last; a
    part of another type is preceded by an empty part of the announced
    one (so an image stream should keep one media type).  Heartbeats
    repeat the last part and the stream ends with it, with no close
    message: what an C{<img>} needs.
    """

    # Parts are framed per response (the announced header block), not
    # only per event.
    directEvents = False

    def __init__(self, resource: DataChannelResource, request: Request, params: DataChannelParams) -> None:
        self.dataParts = singleArg(params.args, "parts") == "data"
        self.framing = DATA_BODIES if self.dataParts else PARTS
        super().__init__(resource, request, params)
        self.boundary = ("txcomet-" + secrets.token_hex(12)).encode("ascii")
        self.contentType = b"multipart/x-mixed-replace; boundary=" + self.boundary
        self.delimiter = b"\r\n--" + self.boundary + b"\r\n"
        #: The header block written for the part to come, if any.
        self.announced: Optional[bytes] = None
        self.lastBody: Optional[bytes] = None

    def prelude(self) -> bytes:
        if self.dataParts:
            return b"--" + self.boundary + b"\r\n"
        self.announced = JSON_PART
        return b"--" + self.boundary + b"\r\n" + JSON_PART

    def writeEvents(self, events: List[Any]) -> None:
        if self.ended:
            return
        pieces = []
        for event in events:
            if self.dataParts:
                if event.kind != "event":
                    continue
                body = event.framed(DATA_BODIES)
                head = event.framed(DATA_HEADS)
                if self.announced is None:
                    pieces.append(head)
                elif self.announced != head:
                    pieces.append(self.delimiter)
                    pieces.append(head)
                self.announced = head
            else:
                body = event.framed(PARTS)
                head = JSON_PART
            pieces.append(body)
            pieces.append(self.delimiter)
            pieces.append(head)
            self.lastBody = body
        if not pieces:
            return
        self.wrote = True
        self.send(b"".join(pieces))
        self._maybeRecycle()

    def heartbeatBytes(self) -> bytes:
        if not self.dataParts:
            return HEARTBEAT + self.delimiter + JSON_PART
        if self.lastBody is None or self.announced is None:
            return b""
        return self.lastBody + self.delimiter + self.announced

    def closeBytes(self, message: bytes) -> bytes:
        if self.dataParts:
            if self.lastBody is None:
                return b""
            message = self.lastBody
        return message + b"\r\n--" + self.boundary + b"--\r\n"


class ScriptChannel(HTTPDataChannel):
    """
    Script-tag long-polling: one answer C{/**/CALLBACK([message, ...],
    POSITION);} as JavaScript, held like a long-poll.  C{POSITION} is where
    the answer starts (what C{X-Comet-Position} says, which a script cannot
    read): the C{last} to send next when the array has no event.
    """

    contentType = b"application/javascript; charset=utf-8"

    def __init__(self, resource: DataChannelResource, request: Request, params: DataChannelParams) -> None:
        super().__init__(resource, request, params)
        self.callback = callbackParam(params.args).encode("ascii")

    def setHeaders(self) -> None:
        super().setHeaders()
        self.request.setHeader(b"X-Content-Type-Options", b"nosniff")

    def _call(self, array: bytes) -> bytes:
        return b"/**/" + self.callback + b"(" + array + b"," + positionScript(self.position) + b");\n"

    def writeEvents(self, events: List[Any]) -> None:
        self.end(self._call(b"[" + b",".join([event.framed(SCRIPT_ARRAY) for event in events]) + b"]"))

    def writeHeartbeat(self) -> None:
        if self.session is not None:
            self.session.detach(self)
        self.end(self._call(b"[]"))

    def closeChannel(self, reason: str, reconnect: bool) -> None:
        self.end(self._call(b"[" + escapeScript(closeMessage(reason, reconnect)) + b"]"))


# the resources


class XHRStreamResource(DataChannelResource):
    """
    C{GET /comet/xhr-stream}: XHR streaming (L{XHRStreamChannel}).
    """

    channelClass = XHRStreamChannel


class EventSourceResource(DataChannelResource):
    """
    C{GET /comet/sse}: server-sent events (L{EventSourceChannel}).
    Resumes from the C{Last-Event-ID} header or C{lastEventId=}.
    """

    channelClass = EventSourceChannel


class MultipartResource(DataChannelResource):
    """
    C{GET /comet/multipart}: C{multipart/x-mixed-replace}
    (L{MultipartChannel}); C{parts=message} or C{parts=data}.
    """

    channelClass = MultipartChannel
    parameters = DataChannelResource.parameters | {"parts"}

    def checkRequest(self, request: Request, params: DataChannelParams) -> None:
        if singleArg(params.args, "parts") not in (None, "message", "data"):
            raise CometError("invalid_request", "parts is message (the default) or data.")


class JSONPResource(LongPollResource):
    """
    C{GET /comet/jsonp}: script-tag long-polling (L{ScriptChannel}).
    C{callback=NAME} (validated; default L{DEFAULT_CALLBACK}) is called
    with the answer; errors are calls too, with the error object instead
    of an array (a script element cannot see a status), except an invalid
    callback, answered 400 as JSON.  Works from any origin, without CORS.
    """

    channelClass = ScriptChannel
    parameters = DataChannelResource.parameters | {"callback"}

    def render_GET(self, request: Request) -> Any:
        request.cometCallback = callbackParam(queryArgs(request))
        return super().render_GET(request)


def errorPage(request: Request, callback: str, error: CometError) -> bytes:
    """
    An HTML page that hands C{error} to the parent page's C{callback}, as
    the message C{{"type":"error","error":CODE,"message":..,"status":..}},
    with the error's status.
    """
    request.setResponseCode(error.status)
    request.setHeader(b"Content-Type", b"text/html; charset=utf-8")
    request.setHeader(b"X-Content-Type-Options", b"nosniff")
    setNoCache(request)
    message = dict(error.asDict(), type="error")
    return (
        b'<!doctype html>\n<html><head><meta charset="utf-8"><title>txcomet</title>\n'
        b"<script>parent." + callback.encode("ascii") + b"(" + escapeScript(encodeJSON(message)) + b");</script>\n"
        b"</head><body></body></html>\n"
    )


class IframeResource(DataChannelResource):
    """
    C{GET /comet/iframe}: hidden-iframe streaming (L{IframeChannel}).
    C{callback=NAME} (validated; default L{DEFAULT_CALLBACK}) names the
    parent page's function.  Errors are HTML pages calling it with an
    C{error} message, except an invalid callback, answered 400 as JSON.
    """

    channelClass = IframeChannel
    parameters = DataChannelResource.parameters | {"callback"}

    def render_GET(self, request: Request) -> Any:
        callback = callbackParam(queryArgs(request))
        try:
            return super().render_GET(request)
        except CometError as error:
            return errorPage(request, callback, error)

    def _joinFailed(self, failure: Failure, request: Request) -> None:
        if request._disconnected or request.finished:
            return
        error = asCometError(failure, "join-listen")
        request.write(errorPage(request, callbackParam(queryArgs(request)), error))
        request.finish()
