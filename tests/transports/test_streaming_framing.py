"""
Property tests: any payload (line breaks, quotes, C{</script>}, non-ASCII,
U+2028) frames on every transport and parses back unchanged, with parsers
written from each format's specification (L{tests.support.wire}) and, where one
exists, the standard library's own (the browser client's parsers, run in
node, are in tests/system/test_streaming_framing_js.py).
"""

import base64
import email
import email.policy
import json

from hypothesis import HealthCheck, given, settings, strategies as st
from twisted.trial.unittest import SynchronousTestCase

from txcomet._model.event import Event
from txcomet._model.wire import HEARTBEAT, closeMessage
from txcomet._fastpath.writer import ChunkedFraming
from txcomet._transports.streaming import (
    DATA_BODIES,
    DATA_HEADS,
    EVENT_STREAM,
    LINES,
    SCRIPT_ARRAY,
    SCRIPT_CALLS,
    dataBody,
    decodeDataURL,
    eventStreamField,
)
from txcomet.testing import MemoryCometClient, makeComet

from tests.support.memoryhttp import MemoryHTTP
from tests.support.streamkit import STREAMING, Reader
from tests.support.wire import (
    EventStreamMessages,
    EventStreamParser,
    LineParser,
    MultipartMessages,
    ScriptPageParser,
    parseScriptAnswer,
)

#: Text that has broken framings somewhere.
NASTY = ["\n", "\r\n", "\r", '"', "'", "\\", "</script>", "</SCRIPT >", "<!--", "-->", "]]>", "&amp;",
         "\u2028", "\u2029", "\x00", "\x1b", "é", "日本", "😀", "data: x", "id: 1", ":", "--", "\ufeff"]

text = st.one_of(
    st.text(),
    st.lists(st.one_of(st.sampled_from(NASTY), st.text(max_size=5)), max_size=8).map("".join),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(text, children, max_size=4),
    max_leaves=12,
)
channels = st.sampled_from(["news", "a/b", "x-1.y_z~:@=+"])
kinds = st.sampled_from(["event", "join", "leave"])


def events(draw_payloads):
    return [
        Event(channel, data, "e9", offset, kind)
        for offset, (channel, data, kind) in enumerate(draw_payloads, start=1)
    ]


event_lists = st.lists(st.tuples(channels, json_values, kinds), min_size=1, max_size=5).map(events)

CLOSE = closeMessage("recycle", True)


def envelopes(evs):
    return [e.asDict() for e in evs]


def split(data, cuts):
    """
    C{data} in pieces, cut at the fractions C{cuts} (as a network would).
    """
    points = sorted({int(c * len(data)) for c in cuts})
    pieces, start = [], 0
    for point in points:
        pieces.append(data[start:point])
        start = point
    pieces.append(data[start:])
    return pieces


cuts = st.lists(st.floats(min_value=0, max_value=1), max_size=6)


def feedAll(parser, data, cutAt):
    messages = []
    for piece in split(data, cutAt):
        messages.extend(parser.feed(piece))
    return messages


class FramingPropertyTests(SynchronousTestCase):
    @given(event_lists, cuts)
    def test_lines(self, evs, cutAt):
        """
        XHR streaming: the prelude, events, a heartbeat and the close parse
        back, one message per line, however the bytes are cut.
        """
        data = b" " * 2047 + b"\n" + b"".join(e.framed(LINES) for e in evs)
        data += LINES.frameMessage(HEARTBEAT) + LINES.frameMessage(CLOSE)
        expected = envelopes(evs) + [{"type": "heartbeat"}, json.loads(CLOSE)]
        self.assertEqual(feedAll(LineParser(), data, cutAt), expected)

    @given(event_lists, cuts)
    def test_eventStream(self, evs, cutAt):
        """
        SSE: every event parses back with its id as the last event id and
        its type as the EventSource event type, however the bytes are cut.
        """
        data = b"retry: 2000\nid: e9-0\n\n" + b"".join(e.framed(EVENT_STREAM) for e in evs)
        data += b":hb\n\n" + EVENT_STREAM.frameMessage(CLOSE, b"close")
        parser = EventStreamMessages()
        self.assertEqual(feedAll(parser, data, cutAt), envelopes(evs) + [json.loads(CLOSE)])
        self.assertEqual(parser.heartbeats, 1)
        self.assertEqual(parser.parser.retry, 2000)

    @given(text.map(lambda t: t.encode("utf-8")), st.sampled_from([b"data", b"event", b"id"]))
    def test_eventStreamFieldAnyValue(self, value, name):
        """
        A field value with any line breaks in it is split so that the
        EventSource parser gives back the value with every line break as
        LF (what the standard defines for C{data}).
        """
        if name != b"data" and (b"\n" in value or b"\r" in value):
            return  # only data is multi-line on the receiving side
        parser = EventStreamParser()
        [(kind, data, lastId)] = parser.feed(eventStreamField(name, value) + b"data: x\n\n")
        expected = value.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")
        if name == b"data":
            self.assertEqual(data, expected + "\nx")
        elif name == b"event":
            self.assertEqual(kind, expected or "message")
        elif "\x00" not in expected:
            self.assertEqual(lastId, expected)

    @given(event_lists, cuts)
    def test_scriptCalls(self, evs, cutAt):
        """
        Iframe streaming: parsed as HTML, every script holds exactly one
        call, whose argument is the message; no payload ends a script
        early or opens a comment.
        """
        data = b"<!doctype html><html><head><script>function p(m){parent.cb(m,\"e9-0\")}</script></head><body>"
        data += b"".join(e.framed(SCRIPT_CALLS) for e in evs) + SCRIPT_CALLS.frameMessage(CLOSE)
        parser = ScriptPageParser()
        self.assertEqual(feedAll(parser, data, cutAt), envelopes(evs) + [json.loads(CLOSE)])
        self.assertEqual((parser.callback, parser.position), ("cb", "e9-0"))

    @given(st.binary(), st.sampled_from(["image/png", "image/jpeg", "application/octet-stream"]))
    def test_dataURLParts(self, payload, mediaType):
        """
        A C{data:} URL published as an event's data becomes a part of
        exactly those bytes, with that media type (how an image drives an
        C{<img>}).
        """
        url = "data:%s;base64,%s" % (mediaType, base64.b64encode(payload).decode("ascii"))
        event = Event("cam", url, "e9", 1)
        self.assertEqual(event.framed(DATA_BODIES), payload)
        self.assertEqual(event.framed(DATA_HEADS), b"Content-Type: " + mediaType.encode() + b"\r\n\r\n")

    def test_dataBody(self):
        """
        Other data in a C{parts=data} stream: text as text, percent-encoded
        C{data:} URLs decoded, anything else (or a broken C{data:} URL) as
        JSON or text.
        """
        self.assertEqual(dataBody("hi é"), (b"text/plain; charset=utf-8", "hi é".encode()))
        self.assertEqual(dataBody({"a": 1}), (b"application/json; charset=utf-8", b'{"a":1}'))
        self.assertEqual(decodeDataURL("data:,a%20b"), (b"text/plain;charset=US-ASCII", b"a b"))
        self.assertEqual(decodeDataURL("data:image/gif;base64,R0lG\nODlh"), (b"image/gif", b"GIF89a"))
        self.assertIsNone(decodeDataURL("data:image/png;base64,***"))
        self.assertIsNone(decodeDataURL("data:image/png\r\nX-Evil: 1;base64,AAAA"))
        self.assertEqual(dataBody("data:bad\r\nheader,x")[0], b"text/plain; charset=utf-8")

    @given(event_lists, st.sampled_from(["cb", "a.b_c", "$"[:0] or "X9"]))
    def test_scriptArray(self, evs, callback):
        """
        Script-tag answers: the array of messages and the position parse
        back from C{/**/CALLBACK(ARRAY,POSITION);}.
        """
        body = b"/**/" + callback.encode() + b"([" + b",".join(e.framed(SCRIPT_ARRAY) for e in evs) + b'],"e9-0");\n'
        self.assertEqual(parseScriptAnswer(body), (callback, envelopes(evs), "e9-0"))
        self.assertNotIn(b"</", body)
        self.assertNotIn("\u2028".encode(), body)

    @given(event_lists)
    def test_chunked(self, evs):
        """
        The chunked form of a framing is its bytes as one HTTP/1.1 chunk,
        cached on the event beside them.
        """
        chunked = ChunkedFraming(EVENT_STREAM)
        for e in evs:
            wire = e.framed(chunked)
            size, _, rest = wire.partition(b"\r\n")
            self.assertEqual(int(size, 16), len(e.framed(EVENT_STREAM)))
            self.assertEqual(rest, e.framed(EVENT_STREAM) + b"\r\n")
            self.assertIs(e.framed(chunked), wire)


class ThroughTheResourceTests(SynchronousTestCase):
    """
    The same property end to end: published over HTTP, read from each
    transport's real resource.
    """

    @settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(json_values, min_size=1, max_size=3))
    def test_anyPayload(self, payloads):
        """
        Any JSON payload published on the publish API arrives unchanged on
        every streaming transport.
        """
        comet, clock = makeComet()
        client = MemoryCometClient(comet)
        http = MemoryHTTP(comet.resource)
        readers = [Reader(t, http.open(t.name, channel="news")) for t in STREAMING]
        for data in payloads:
            body = json.dumps(data).encode("utf-8")
            reply = client.request("POST", "publish/news", body, headers={"Content-Type": ["application/json"]}).json()
            self.assertTrue(reply["ok"], reply)
        for reader in readers:
            self.assertEqual([e["data"] for e in reader.events()], payloads, reader.transport.name)


class MultipartPropertyTests(SynchronousTestCase):
    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(json_values, min_size=1, max_size=4), cuts)
    def test_parts(self, payloads, cutAt):
        """
        A multipart stream of messages parses back part by part, with our
        parser as it arrives (however it is cut) and with the standard
        library's MIME parser once complete; every part is JSON.
        """
        comet, clock = makeComet()
        client = MemoryCometClient(comet)
        http = MemoryHTTP(comet.resource)
        session = client.join(channels=["news"])
        stream = http.open("multipart", session=session)
        ids = [client.publish("news", data)["id"] for data in payloads]
        client.control(op="leave", session=session)
        body = stream.read()
        self.assertTrue(stream.done)
        expected = [{"type": "event", "channel": "news", "id": i, "data": d} for i, d in zip(ids, payloads)]
        expected.append({"type": "close", "reason": "left", "reconnect": False})
        contentType = stream.header("Content-Type")
        parser = MultipartMessages(contentType)
        self.assertEqual(feedAll(parser, body, cutAt), expected)
        self.assertTrue(parser.parser.closed)
        message = email.message_from_bytes(
            b"Content-Type: " + contentType.encode() + b"\r\n\r\n" + body, policy=email.policy.HTTP
        )
        parts = list(message.iter_parts())
        self.assertEqual([json.loads(p.get_payload(decode=True)) for p in parts], expected)
        self.assertEqual({p.get_content_type() for p in parts}, {"application/json"})
