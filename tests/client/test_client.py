"""
The Python client: its parsers against the server's own framings in any
chunking (the client against a real server is in
tests/system/test_client_real.py).
"""


from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from txcomet import CometClient, CometError
from txcomet._client.parsers import isNewer, matches
from txcomet._client.parsers import LineParser, MultipartParser, ScriptParser, SSEParser, parseScriptAnswer
from txcomet._model.event import encodeJSON


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
