"""
Client-side parsers for every data channel framing, written from the
formats' specifications (not from the server's code), for the transport
tests: each turns the bytes of a response, fed as they arrive, back into
the JSON messages they carry.

Every parser has C{feed(data) -> [message, ...]} (whole messages only; a
message cut in the middle is not returned) and C{position}: the resume
point the response stated, if the framing carries one in the body.
"""

import codecs
import json
import re
from html.parser import HTMLParser
from typing import Any, Dict, List, Optional, Tuple


class LineParser:
    """
    Newline-delimited JSON (XHR streaming); blank lines (the prelude) are
    skipped.
    """

    position = None

    def __init__(self) -> None:
        self.buffer = b""
        self.blank = 0

    def feed(self, data: bytes) -> List[Any]:
        self.buffer += data
        *lines, self.buffer = self.buffer.split(b"\n")
        messages = []
        for line in lines:
            if line.strip():
                messages.append(json.loads(line.decode("utf-8")))
            else:
                self.blank += len(line) + 1
        return messages


class EventStreamParser:
    """
    The EventSource parser of the HTML standard ("Interpreting an event
    stream"): lines end in CRLF, LF or CR; C{data} fields accumulate; a
    blank line dispatches, first setting the last event id from the id
    buffer (so an C{id:} with no data sets it without an event); an id
    holding NUL is ignored; comments are kept in C{comments}.

    C{feed} returns the dispatched events as C{(type, data, lastEventId)}.
    """

    def __init__(self) -> None:
        self.buffer = b""
        self.data: List[str] = []
        self.eventType = ""
        self.idBuffer = ""
        self.lastEventId = ""
        self.retry: Optional[int] = None
        self.comments: List[str] = []

    @property
    def position(self) -> Optional[str]:
        return self.lastEventId or None

    def _lines(self) -> List[str]:
        lines = []
        buffer = self.buffer
        while True:
            match = re.search(rb"\r\n|\r|\n", buffer)
            if match is None or match.group() == b"\r" and match.end() == len(buffer):
                break  # no line end yet, or a CR whose LF may be on its way
            lines.append(buffer[: match.start()].decode("utf-8"))
            buffer = buffer[match.end() :]
        self.buffer = buffer
        return lines

    def feed(self, data: bytes) -> List[Tuple[str, str, str]]:
        self.buffer += data
        events = []
        for line in self._lines():
            if line == "":
                self.lastEventId = self.idBuffer
                if self.data:
                    events.append((self.eventType or "message", "\n".join(self.data), self.lastEventId))
                self.data = []
                self.eventType = ""
                continue
            if line.startswith(":"):
                self.comments.append(line[1:])
                continue
            field, colon, value = line.partition(":")
            if value.startswith(" "):
                value = value[1:]
            if field == "data":
                self.data.append(value)
            elif field == "event":
                self.eventType = value
            elif field == "id":
                if "\x00" not in value:
                    self.idBuffer = value
            elif field == "retry":
                if value.isdigit():
                    self.retry = int(value)
        return events


class EventStreamMessages:
    """
    txcomet's messages from an event stream: each event's C{data} is a
    JSON message; the EventSource type must agree with the message type
    (C{message} for events, else the type itself); heartbeat comments are
    counted.
    """

    def __init__(self) -> None:
        self.parser = EventStreamParser()

    @property
    def position(self) -> Optional[str]:
        return self.parser.position

    @property
    def heartbeats(self) -> int:
        return self.parser.comments.count("hb")

    def feed(self, data: bytes) -> List[Any]:
        messages = []
        for kind, text, lastEventId in self.parser.feed(data):
            message = json.loads(text)
            expected = "message" if message["type"] == "event" else message["type"]
            assert kind == expected, (kind, message)
            if "id" in message:
                assert lastEventId == message["id"], (lastEventId, message)
            messages.append(message)
        return messages


class _Scripts(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.scripts: List[str] = []
        self.inScript = False
        self.text: List[str] = []

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag == "script":
            self.inScript = True
            self.text = []

    def handle_data(self, data: str) -> None:
        if self.inScript:
            self.text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self.inScript = False
            self.scripts.append("".join(self.text))


_PRELUDE = re.compile(r"function p\(m\)\{parent\.([A-Za-z0-9_.]+)\(m,(.*)\)\}\Z", re.S)
_CALL = re.compile(r"p\((.*)\);\Z", re.S)
_PARENT_CALL = re.compile(r"parent\.([A-Za-z0-9_.]+)\((.*)\);\Z", re.S)


class ScriptPageParser:
    """
    An iframe-streaming page, parsed as HTML: the first script defines
    C{p} to call the parent's callback with the response's position; each
    later script is C{p(MESSAGE);} (or, for an error page,
    C{parent.CALLBACK(MESSAGE);}).
    """

    def __init__(self) -> None:
        self.html = _Scripts()
        self.decoder = codecs.getincrementaldecoder("utf-8")()
        self.callback: Optional[str] = None
        self.position: Optional[str] = None
        self.seen = 0

    def feed(self, data: bytes) -> List[Any]:
        self.html.feed(self.decoder.decode(data))
        messages = []
        for script in self.html.scripts[self.seen :]:
            self.seen += 1
            prelude = _PRELUDE.match(script)
            if prelude is not None:
                self.callback = prelude.group(1)
                self.position = json.loads(prelude.group(2))
                continue
            call = _CALL.match(script) or _PARENT_CALL.match(script)
            assert call is not None, script
            messages.append(json.loads(call.groups()[-1]))
        return messages


class MultipartParser:
    """
    A C{multipart/x-mixed-replace} body (RFC 2046 delimiters) with
    C{boundary}; C{feed} returns the parts as C{(headers, body)}, each
    once the delimiter after it has arrived.  C{closed} is set by the
    close delimiter.
    """

    def __init__(self, boundary: bytes) -> None:
        self.boundary = boundary
        self.buffer = b""
        self.started = False
        self.closed = False

    def feed(self, data: bytes) -> List[Tuple[Dict[str, str], bytes]]:
        self.buffer += data
        parts: List[Tuple[Dict[str, str], bytes]] = []
        opener = b"--" + self.boundary + b"\r\n"
        if not self.started:
            if len(self.buffer) < len(opener):
                assert opener.startswith(self.buffer), self.buffer
                return parts
            assert self.buffer.startswith(opener), self.buffer[:100]
            self.buffer = self.buffer[len(opener) :]
            self.started = True
        delimiter = b"\r\n--" + self.boundary
        while not self.closed:
            index = self.buffer.find(delimiter)
            end = index + len(delimiter)
            if index < 0 or len(self.buffer) < end + 2:
                break
            head, sep, body = self.buffer[:index].partition(b"\r\n\r\n")
            assert sep, self.buffer[:index]
            headers = {}
            for line in head.decode("ascii").split("\r\n"):
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            if "content-length" in headers:
                assert int(headers["content-length"]) == len(body), (headers, len(body))
            parts.append((headers, body))
            tail = self.buffer[end : end + 2]
            self.buffer = self.buffer[end + 2 :]
            if tail == b"--":
                self.closed = True
            else:
                assert tail == b"\r\n", tail
        return parts


class MultipartMessages:
    """
    txcomet's messages from a multipart stream of JSON parts.
    """

    position = None

    def __init__(self, contentType: str) -> None:
        match = re.match(r"multipart/x-mixed-replace; boundary=(\S+)\Z", contentType)
        assert match is not None, contentType
        self.parser = MultipartParser(match.group(1).encode("ascii"))

    def feed(self, data: bytes) -> List[Any]:
        messages = []
        for headers, body in self.parser.feed(data):
            assert headers["content-type"] == "application/json; charset=utf-8", headers
            messages.append(json.loads(body.decode("utf-8")))
        return messages


_SCRIPT_ANSWER = re.compile(r"/\*\*/([A-Za-z0-9_.]+)\((.*)\);\n\Z", re.S)


def parseScriptAnswer(body: bytes) -> Tuple[str, Any, Any]:
    """
    A script-tag answer C{/**/CALLBACK(VALUE[,POSITION]);} as
    C{(callback, value, position)}.  The arguments are JSON (script-escaped
    JSON is still JSON), so they are split where a JSON decoder stops.
    """
    match = _SCRIPT_ANSWER.match(body.decode("utf-8"))
    assert match is not None, body[:200]
    arguments = match.group(2)
    decoder = json.JSONDecoder()
    value, end = decoder.raw_decode(arguments)
    position = None
    if end < len(arguments):
        assert arguments[end] == ",", arguments[end:]
        position, rest = decoder.raw_decode(arguments, end + 1)
        assert rest == len(arguments), arguments[rest:]
    return match.group(1), value, position


class ArrayAnswer:
    """
    A one-shot JSON array answer (poll, long-poll), parsed once complete.
    """

    position = None

    def __init__(self) -> None:
        self.buffer = b""

    def feed(self, data: bytes) -> List[Any]:
        self.buffer += data
        return []

    def finish(self) -> List[Any]:
        return json.loads(self.buffer.decode("utf-8"))


class ScriptAnswer(ArrayAnswer):
    """
    A one-shot script-tag answer, parsed once complete.
    """

    def finish(self) -> List[Any]:
        callback, value, self.position = parseScriptAnswer(self.buffer)
        assert isinstance(value, list), value
        return value
