# -*- test-case-name: tests.client.test_client -*-
"""
The Python client's stream parsers: the bytes of each data channel transport (in any chunking) in, messages out.
"""

import codecs
import json
import re
from typing import Any, List, Optional

from txcomet._model.errors import CometError


def _clientError(code: str, message: str, status: int = 0) -> CometError:
    """
    A L{CometError} for a code the server sent (known or not) or for one of
    the client's own: C{network}, C{timeout}, C{closed}.
    """
    try:
        return CometError(code, message, status or None)
    except KeyError:
        error = CometError("internal_error", message, status)
        error.code = code
        return error


class LineParser:
    """
    XHR streaming: one JSON message per line; whitespace lines (the
    prelude) are skipped.
    """

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> List[dict]:
        self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        return [json.loads(line) for line in lines if line.strip()]


class SSEParser:
    """
    EventSource: C{data:} lines joined with newlines make one message;
    comments (heartbeats) and C{retry:} advice are skipped.
    """

    def __init__(self) -> None:
        self._buffer = b""
        self._data: List[str] = []
        self.lastId: Optional[str] = None

    def feed(self, data: bytes) -> List[dict]:
        self._buffer += data
        *lines, self._buffer = re.split(b"\r\n|\r(?!$)|\n", self._buffer)
        out = []
        for raw in lines:
            line = raw.decode("utf-8")
            if not line:
                if self._data:
                    out.append(json.loads("\n".join(self._data)))
                self._data = []
                continue
            if line.startswith(":"):
                continue
            field, _, value = line.partition(":")
            if value.startswith(" "):
                value = value[1:]
            if field == "data":
                self._data.append(value)
            elif field == "id":
                self.lastId = value
        return out


class ScriptParser:
    """
    Hidden-iframe streaming: C{<script>p(MSG)</script>} chunks after a
    prelude; each call's argument is one JSON message (script-escaped JSON
    is still JSON).
    """

    _CALL = re.compile(r"^\s*[A-Za-z_$][\w$.]*\((.*)\)\s*;?\s*$", re.S)

    def __init__(self) -> None:
        self._buffer = ""
        self._decoder = codecs.getincrementaldecoder("utf-8")()

    def feed(self, data: bytes) -> List[dict]:
        self._buffer += self._decoder.decode(data)
        out = []
        while True:
            start = self._buffer.find("<script")
            if start < 0:
                self._buffer = self._buffer[-7:]
                return out
            open_ = self._buffer.find(">", start)
            end = self._buffer.find("</script>", start)
            if open_ < 0 or end < 0:
                self._buffer = self._buffer[start:]
                return out
            body = self._buffer[open_ + 1 : end]
            self._buffer = self._buffer[end + 9 :]
            match = self._CALL.match(body)
            if match:
                try:
                    message, _ = json.JSONDecoder().raw_decode(match.group(1))
                except ValueError:
                    continue  # the prelude's own code, not a message
                if isinstance(message, dict):
                    out.append(message)


class MultipartParser:
    """
    C{multipart/x-mixed-replace}: one JSON message per part.
    """

    def __init__(self, boundary: bytes) -> None:
        self._delimiter = b"--" + boundary
        self._buffer = b""

    @classmethod
    def fromContentType(cls, contentType: str) -> "MultipartParser":
        match = re.search(r'boundary="?([^";]+)"?', contentType)
        if not match:
            raise _clientError("network", "A multipart answer with no boundary.")
        return cls(match.group(1).encode("ascii"))

    def feed(self, data: bytes) -> List[dict]:
        self._buffer += data
        out = []
        while True:
            first = self._buffer.find(self._delimiter)
            if first < 0:
                return out
            second = self._buffer.find(self._delimiter, first + len(self._delimiter))
            if second < 0:
                self._buffer = self._buffer[first:]
                return out
            part = self._buffer[first + len(self._delimiter) : second]
            self._buffer = self._buffer[second:]
            head, sep, body = part.partition(b"\r\n\r\n")
            if not sep:
                continue
            body = body.strip()
            if body:
                out.append(json.loads(body.decode("utf-8")))


def parseScriptAnswer(body: bytes) -> Any:
    """
    The first argument of a script-tag answer C{/**/NAME(JSON, ...);}: the
    array of messages, or an error object.
    """
    text = body.decode("utf-8").strip()
    match = re.match(r"^(?:/\*\*/)?\s*[A-Za-z0-9_.]+\(", text)
    if not match:
        raise _clientError("network", "Not a script-tag answer: %r" % (text[:80],))
    try:
        value, _ = json.JSONDecoder().raw_decode(text, match.end())
    except ValueError:
        raise _clientError("network", "Not a script-tag answer: %r" % (text[:80],))
    return value


def _errorFrom(body: Any, status: int) -> CometError:
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        error = _clientError(body["error"], str(body.get("message", body["error"])), body.get("status") or status)
        # session_closed says why, and whether to join again
        error.details = {k: body[k] for k in ("reason", "reconnect") if k in body}
        return error
    return _clientError("network", "The server answered %s, not txcomet JSON." % (status,), status)


def _safeJSON(content: bytes) -> Any:
    try:
        return json.loads(content.decode("utf-8"))
    except ValueError:
        return None


def isNewer(eventId: str, than: Optional[str]) -> bool:
    """
    Whether event id C{eventId} comes after C{than}: a later offset in the
    same epoch, or any position in another epoch (a new life of the bus).
    """
    if than is None:
        return True
    epoch, _, offset = eventId.rpartition("-")
    thanEpoch, _, thanOffset = than.rpartition("-")
    if epoch != thanEpoch or not offset.isdigit() or not thanOffset.isdigit():
        return True
    return int(offset) > int(thanOffset)


def matches(pattern: str, channel: str) -> bool:
    """
    Whether C{channel} matches C{pattern} (C{*}: one segment; a final
    C{**}: one or more).
    """
    if pattern == channel:
        return True
    p, c = pattern.split("/"), channel.split("/")
    for i, segment in enumerate(p):
        if segment == "**" and i == len(p) - 1:
            return len(c) > i
        if i >= len(c) or segment != "*" and segment != c[i]:
            return False
    return len(p) == len(c)
