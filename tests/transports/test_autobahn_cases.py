"""
The protocol cases of the Autobahn|Testsuite categories 1 to 7 (framing,
pings and pongs, reserved bits, opcodes, fragmentation, UTF-8 handling,
close handling) that apply to a server, as table-driven tests against the
txcomet WebSocket endpoint in memory.

The suite drives an echo server; txcomet's echo is the bus: each
connection join-listens on channel C{echo}, and a text message under test
is a control message C{{"op": "publish", "channel": "echo", "data": TEXT}},
so the event that comes back carries the text the server decoded.  Where
the suite expects an echo of text that is not such a message (an empty
message, a control character) the server's answer is an error message
(C{malformed_json}) and the connection stays up; a binary message is
refused with close code 1003, as txcomet speaks text only.

Every case sends raw bytes and checks the frames that come back, in order,
as tokens: C{("echo", text)}, C{("pong", payload)}, C{("error", code)},
C{("close", code)}.  After a close, the client answers it and the server
must drop the TCP connection.
"""

from typing import Any, Callable, List, Optional, Tuple

from twisted.trial.unittest import SynchronousTestCase

from tests.support.wssupport import (
    BINARY,
    CLOSE,
    CONTINUATION,
    PING,
    PONG,
    TEXT,
    clientFrame,
    closePayload,
    connectWebSocket,
)

PREFIX = b'{"op":"publish","channel":"echo","data":"'
SUFFIX = b'"}'


def echo(text: bytes) -> bytes:
    """
    The control message that publishes C{text} (UTF-8 bytes, valid or not,
    put inside a JSON string as they are) on the echo channel.
    """
    return PREFIX + text + SUFFIX


def echoOfLength(length: int) -> Tuple[bytes, str]:
    """
    An echo message of exactly C{length} bytes, and the text it carries.
    """
    fill = length - len(PREFIX) - len(SUFFIX)
    assert fill >= 0
    return echo(b"*" * fill), "*" * fill


# Steps: what the client does.


def send(*frames: bytes, chop: Optional[int] = None) -> Tuple[str, Any]:
    """
    Send C{frames} in one write (or C{chop} bytes at a time).
    """
    return ("send", (b"".join(frames), chop))


def framewise(*frames: bytes) -> Tuple[str, Any]:
    """
    Send each of C{frames} on its own, the server reading each first.
    """
    return ("framewise", frames)


def expectNow(*tokens: Tuple[Any, ...]) -> Tuple[str, Any]:
    """
    Check the tokens received so far, before going on (fail-fast cases).
    """
    return ("expect", list(tokens))


def text(payload: bytes, fin: bool = True, rsv: int = 0) -> bytes:
    return clientFrame(TEXT, payload, fin=fin, rsv=rsv)


def cont(payload: bytes, fin: bool = True) -> bytes:
    return clientFrame(CONTINUATION, payload, fin=fin)


def ping(payload: bytes = b"", fin: bool = True, rsv: int = 0) -> bytes:
    return clientFrame(PING, payload, fin=fin, rsv=rsv)


def pong(payload: bytes = b"", fin: bool = True) -> bytes:
    return clientFrame(PONG, payload, fin=fin)


def close(code: Optional[int] = 1000, reason: bytes = b"", rsv: int = 0) -> bytes:
    return clientFrame(CLOSE, closePayload(code, reason), rsv=rsv)


def ECHO(value: Any) -> Tuple[str, Any]:
    return ("echo", value.decode("utf-8") if isinstance(value, bytes) else value)


def PONGED(payload: bytes = b"") -> Tuple[str, bytes]:
    return ("pong", payload)


def ERROR(code: str = "malformed_json") -> Tuple[str, str]:
    return ("error", code)


def CLOSED(code: Optional[int]) -> Tuple[str, Optional[int]]:
    return ("close", code)


PROTOCOL_ERROR = CLOSED(1002)
INVALID_PAYLOAD = CLOSED(1007)
KOSME = b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"  # κόσμε, with U+1F79
HELLO = "Hello-µ@ßöäüàá-UTF-8!!".encode("utf-8")
SMALL = echo(b"Hello, world!")


def tokens(client: Any) -> List[Tuple[Any, ...]]:
    """
    What the server has sent since the handshake, as tokens (replies to
    the publishes are left out).
    """
    out: List[Tuple[Any, ...]] = []
    for frame in client.frames:
        if frame.opcode == TEXT:
            message = frame.json()
            if message["type"] == "event":
                out.append(("echo", message["data"]))
            elif message["type"] == "error":
                out.append(("error", message["error"]))
            elif message["type"] != "reply":
                out.append((message["type"],))
        elif frame.opcode == PONG:
            out.append(("pong", frame.payload))
        elif frame.opcode == CLOSE:
            out.append(("close", frame.closeCode))
        else:
            out.append(("opcode", frame.opcode))
    return out


# The cases: (case number, what it checks, steps, expected tokens)
Case = Tuple[str, str, List[Tuple[str, Any]], List[Tuple[Any, ...]]]
CASES: List[Case] = []


def case(number: str, doc: str, steps: List[Tuple[str, Any]], expected: List[Tuple[Any, ...]]) -> None:
    CASES.append((number, doc, steps, expected))


# 1. Framing: text messages of every length encoding; binary is refused.

case("1.1.1", "An empty text message is read (and, not being JSON, answered with an error).",
     [send(text(b""))], [ERROR()])
for number, length in [("1.1.2", 125), ("1.1.3", 126), ("1.1.4", 127), ("1.1.5", 128),
                       ("1.1.6", 65535), ("1.1.7", 65536)]:
    message, carried = echoOfLength(length)
    case(number, "A text message of %d bytes (length encoding boundary) arrives whole." % (length,),
         [send(text(message))], [ECHO(carried)])
message, carried = echoOfLength(65536)
case("1.1.8", "A 65536-byte text message sent 997 bytes at a time arrives whole.",
     [send(text(message), chop=997)], [ECHO(carried)])
for number, length in [("1.2.1", 0), ("1.2.2", 125), ("1.2.3", 126), ("1.2.4", 127), ("1.2.5", 128),
                       ("1.2.6", 65535), ("1.2.7", 65536)]:
    case(number, "A binary message of %d bytes is refused with close code 1003 (txcomet speaks text)." % (length,),
         [send(clientFrame(BINARY, b"\xfe" * length))], [CLOSED(1003)])
case("1.2.8", "A 65536-byte binary message sent 997 bytes at a time is refused with 1003.",
     [send(clientFrame(BINARY, b"\xfe" * 65536), chop=997)], [CLOSED(1003)])

# 2. Pings and pongs.

case("2.1", "A ping without payload is answered by a pong without payload.", [send(ping())], [PONGED()])
case("2.2", "A ping with a text payload is answered with the same payload.",
     [send(ping(b"Hello, world!"))], [PONGED(b"Hello, world!")])
case("2.3", "A ping with a binary payload is answered with the same payload.",
     [send(ping(b"\x00\xff\xfe\xfd\xfc\xfb\x00\xff"))], [PONGED(b"\x00\xff\xfe\xfd\xfc\xfb\x00\xff")])
case("2.4", "A ping with the largest payload a control frame may have (125 bytes) is answered.",
     [send(ping(b"\xfe" * 125))], [PONGED(b"\xfe" * 125)])
case("2.5", "A ping with a 126-byte payload is a protocol error, not answered.",
     [send(ping(b"\xfe" * 126))], [PROTOCOL_ERROR])
case("2.6", "A 125-byte ping sent one byte at a time is answered.",
     [send(ping(b"\xfe" * 125), chop=1)], [PONGED(b"\xfe" * 125)])
case("2.7", "An unsolicited pong without payload is ignored.", [send(pong())], [])
case("2.8", "An unsolicited pong with payload is ignored.", [send(pong(b"unsolicited pong payload"))], [])
case("2.9", "An unsolicited pong followed by a ping: only the ping is answered.",
     [send(pong(b"unsolicited pong payload"), ping(b"ping payload"))], [PONGED(b"ping payload")])
case("2.10", "Ten pings in a row are answered by ten pongs, in order.",
     [send(*[ping(b"payload-%d" % i) for i in range(10)])], [PONGED(b"payload-%d" % i) for i in range(10)])
case("2.11", "Ten pings sent one frame at a time are answered by ten pongs, in order.",
     [framewise(*[ping(b"payload-%d" % i) for i in range(10)])], [PONGED(b"payload-%d" % i) for i in range(10)])

# 3. Reserved bits (no extension negotiated): a frame with any set fails.

case("3.1", "A text frame with RSV = 1 is a protocol error.", [send(text(SMALL, rsv=1))], [PROTOCOL_ERROR])
case("3.2", "Text, then text with RSV = 2, then a ping: the first is read, then the connection fails.",
     [send(text(SMALL), text(SMALL, rsv=2), ping())], [ECHO("Hello, world!"), PROTOCOL_ERROR])
case("3.3", "The same with RSV = 3, sent frame by frame.",
     [framewise(text(SMALL), text(SMALL, rsv=3), ping())], [ECHO("Hello, world!"), PROTOCOL_ERROR])
case("3.4", "The same with RSV = 4, sent one byte at a time.",
     [send(text(SMALL), text(SMALL, rsv=4), ping(), chop=1)], [ECHO("Hello, world!"), PROTOCOL_ERROR])
case("3.5", "A binary frame with RSV = 5 is a protocol error.",
     [send(clientFrame(BINARY, b"\x00\xff", rsv=5))], [PROTOCOL_ERROR])
case("3.6", "A ping with RSV = 6 is a protocol error, not answered.",
     [send(ping(b"Hello, world!", rsv=6))], [PROTOCOL_ERROR])
case("3.7", "A close frame with RSV = 7 is a protocol error.", [send(close(1000, rsv=7))], [PROTOCOL_ERROR])

# 4. Opcodes: reserved data (3-7) and control (11-15) opcodes fail.

for i, opcode in enumerate([3, 4, 5, 6, 7], 1):
    if i <= 2:
        steps = [send(clientFrame(opcode, b"reserved" if i == 2 else b""))]
        expected = [PROTOCOL_ERROR]
    else:
        steps = [send(text(SMALL), clientFrame(opcode, b"reserved"), ping())]
        expected = [ECHO("Hello, world!"), PROTOCOL_ERROR]
    case("4.1.%d" % (i,), "The reserved data opcode %d is a protocol error (later frames unread)." % (opcode,),
         steps, expected)
for i, opcode in enumerate([11, 12, 13, 14, 15], 1):
    if i <= 2:
        steps = [send(clientFrame(opcode, b"reserved" if i == 2 else b""))]
        expected = [PROTOCOL_ERROR]
    else:
        steps = [send(text(SMALL), clientFrame(opcode, b"reserved"), ping())]
        expected = [ECHO("Hello, world!"), PROTOCOL_ERROR]
    case("4.2.%d" % (i,), "The reserved control opcode %d is a protocol error (later frames unread)." % (opcode,),
         steps, expected)

# 5. Fragmentation.

FRAG1, FRAG2 = echo(b"fragment1")[:30], echo(b"fragment1")[30:]
case("5.1", "A ping in two fragments is a protocol error.",
     [send(ping(b"fragment1", fin=False), cont(b"fragment2"))], [PROTOCOL_ERROR])
case("5.2", "A pong in two fragments is a protocol error.",
     [send(pong(b"fragment1", fin=False), cont(b"fragment2"))], [PROTOCOL_ERROR])
case("5.3", "A text message in two fragments is read as one.",
     [send(text(FRAG1, fin=False), cont(FRAG2))], [ECHO("fragment1")])
case("5.4", "The same, sent one byte at a time.",
     [send(text(FRAG1, fin=False), cont(FRAG2), chop=1)], [ECHO("fragment1")])
case("5.5", "The same, sent one frame at a time.",
     [framewise(text(FRAG1, fin=False), cont(FRAG2))], [ECHO("fragment1")])
case("5.6", "A ping between the fragments of a text message is answered at once; the message then arrives.",
     [send(text(FRAG1, fin=False), ping(b"pongme!"), cont(FRAG2))], [PONGED(b"pongme!"), ECHO("fragment1")])
case("5.7", "The same, sent one byte at a time.",
     [send(text(FRAG1, fin=False), ping(b"pongme!"), cont(FRAG2), chop=1)], [PONGED(b"pongme!"), ECHO("fragment1")])
case("5.8", "The same, sent one frame at a time.",
     [framewise(text(FRAG1, fin=False), ping(b"pongme!"), cont(FRAG2))], [PONGED(b"pongme!"), ECHO("fragment1")])
for number, how in [("5.9", "at once"), ("5.10", "one byte at a time"), ("5.11", "one frame at a time")]:
    frames = [cont(b"fragment1"), text(SMALL), ping()]
    steps = [framewise(*frames)] if how == "one frame at a time" else [send(*frames, chop=1 if "byte" in how else None)]
    case(number, "A final continuation frame with nothing to continue is a protocol error (sent %s)." % (how,),
         steps, [PROTOCOL_ERROR])
for number, how in [("5.12", "at once"), ("5.13", "one byte at a time"), ("5.14", "one frame at a time")]:
    frames = [cont(b"fragment1", fin=False), text(SMALL), ping()]
    steps = [framewise(*frames)] if how == "one frame at a time" else [send(*frames, chop=1 if "byte" in how else None)]
    case(number, "A non-final continuation frame with nothing to continue is a protocol error (sent %s)." % (how,),
         steps, [PROTOCOL_ERROR])
case("5.15", "A complete fragmented message, then a continuation with nothing to continue: the message is read, then the connection fails.",
     [send(text(FRAG1, fin=False), cont(FRAG2), cont(b"fragment3", fin=False), text(b"fragment4"))],
     [ECHO("fragment1"), PROTOCOL_ERROR])
case("5.16", "Continuation first, then a fragmented message, twice: the first frame already fails.",
     [send(*[cont(b"fragment1", fin=False), text(FRAG1, fin=False), cont(FRAG2)] * 2)], [PROTOCOL_ERROR])
case("5.17", "Final continuation first, then a fragmented message, twice: the first frame already fails.",
     [send(*[cont(b"fragment1"), text(FRAG1, fin=False), cont(FRAG2)] * 2)], [PROTOCOL_ERROR])
case("5.18", "A text frame where a continuation is due is a protocol error.",
     [send(text(FRAG1, fin=False), text(FRAG2))], [PROTOCOL_ERROR])
PARTS = [echo(b"fragment1fragment2fragment3fragment4fragment5")[i * 19 : (i + 1) * 19] for i in range(5)]
FIVE = [text(PARTS[0], fin=False), cont(PARTS[1], fin=False), ping(b"pongme 1!"), cont(PARTS[2], fin=False),
        cont(PARTS[3], fin=False), ping(b"pongme 2!"), cont(PARTS[4])]
case("5.19", "A text message in five fragments with two pings among them: both are answered as they come, then the message arrives.",
     [send(*FIVE)], [PONGED(b"pongme 1!"), PONGED(b"pongme 2!"), ECHO("fragment1fragment2fragment3fragment4fragment5")])
case("5.20", "The same, sent one frame at a time.",
     [framewise(*FIVE)], [PONGED(b"pongme 1!"), PONGED(b"pongme 2!"), ECHO("fragment1fragment2fragment3fragment4fragment5")])

# 6. UTF-8 handling.

case("6.1.1", "An empty text message is valid UTF-8 (answered as not JSON, the connection stays up).",
     [send(text(b""))], [ERROR()])
case("6.1.2", "A text message of three empty fragments is valid UTF-8.",
     [send(text(b"", fin=False), cont(b"", fin=False), cont(b""))], [ERROR()])
case("6.1.3", "Empty fragments around a non-empty one make one message.",
     [send(text(b"", fin=False), cont(echo(b"middle frame payload"), fin=False), cont(b""))],
     [ECHO("middle frame payload")])
case("6.2.1", "Valid multi-byte UTF-8 in one frame arrives.", [send(text(echo(HELLO)))], [ECHO(HELLO)])
MESSAGE = echo(HELLO)
case("6.2.2", "Valid UTF-8 split into two fragments at a code point boundary arrives.",
     [send(text(MESSAGE[:50], fin=False), cont(MESSAGE[50:]))], [ECHO(HELLO)])
case("6.2.3", "Valid UTF-8 in one-byte fragments (splitting code points) arrives.",
     [send(*[clientFrame(TEXT if i == 0 else CONTINUATION, MESSAGE[i : i + 1], fin=i == len(MESSAGE) - 1)
             for i in range(len(MESSAGE))])], [ECHO(HELLO)])
FOUR = "\U0001D11E\U0001F600".encode("utf-8")
case("6.2.4", "Four-byte UTF-8 in one-byte fragments arrives.",
     [send(*[clientFrame(TEXT if i == 0 else CONTINUATION, echo(FOUR)[i : i + 1], fin=i == len(echo(FOUR)) - 1)
             for i in range(len(echo(FOUR)))])], [ECHO(FOUR)])
BAD = KOSME + b"\xed\xa0\x80" + b"edited"
case("6.3.1", "A text message holding a surrogate (invalid UTF-8) fails with 1007.",
     [send(text(echo(BAD)))], [INVALID_PAYLOAD])
case("6.3.2", "The same in one-byte fragments fails with 1007.",
     [send(*[clientFrame(TEXT if i == 0 else CONTINUATION, echo(BAD)[i : i + 1], fin=i == len(echo(BAD)) - 1)
             for i in range(len(echo(BAD)))])], [INVALID_PAYLOAD])
case("6.4.1", "Invalid UTF-8 in the second of three fragments fails at once, before the third is sent.",
     [send(text(PREFIX + KOSME, fin=False)), send(cont(b"\xf4\x90\x80\x80", fin=False)),
      expectNow(INVALID_PAYLOAD), send(cont(b"edited" + SUFFIX))], [INVALID_PAYLOAD])
case("6.4.2", "A code point that becomes invalid with the first byte of the next fragment fails at once.",
     [send(text(PREFIX + KOSME + b"\xf4", fin=False)), send(cont(b"\x90", fin=False)),
      expectNow(INVALID_PAYLOAD), send(cont(b"\x80\x80edited" + SUFFIX))], [INVALID_PAYLOAD])
WHOLE = text(echo(KOSME + b"\xf4\x90\x80\x80" + b"edited"))
CUT = len(WHOLE) - len(b"edited" + SUFFIX)
case("6.4.3", "In one frame sent in pieces, invalid UTF-8 fails the connection before the frame is complete.",
     [send(WHOLE[:CUT]), expectNow(INVALID_PAYLOAD), send(WHOLE[CUT:])], [INVALID_PAYLOAD])
FIRST_BAD = len(WHOLE) - len(b"\x90\x80\x80edited" + SUFFIX) + 1
case("6.4.4", "Sent one byte at a time, it fails on the first byte that cannot be UTF-8, not later.",
     [send(WHOLE[:FIRST_BAD - 1], chop=1), expectNow(), send(WHOLE[FIRST_BAD - 1 : FIRST_BAD]),
      expectNow(INVALID_PAYLOAD), send(WHOLE[FIRST_BAD:], chop=1)], [INVALID_PAYLOAD])


def utf8Case(number: str, what: str, sequence: bytes, valid: bool) -> None:
    """
    A case sending C{sequence} inside a message: echoed if C{valid} (an
    error answer if it is valid but a control character, which JSON does
    not take raw), else closed with 1007.
    """
    if not valid:
        expected = [INVALID_PAYLOAD]
        doc = "%s (%s) is not UTF-8: the connection fails with 1007." % (what, sequence.hex(" "))
    elif any(b < 0x20 for b in sequence):
        expected = [ERROR()]
        doc = "%s (%s) is valid UTF-8: read, and answered as not JSON." % (what, sequence.hex(" "))
    else:
        expected = [ECHO(sequence)]
        doc = "%s (%s) is valid UTF-8 and arrives." % (what, sequence.hex(" "))
    case(number, doc, [send(text(echo(sequence)))], expected)


utf8Case("6.5.1", "κόσμε", KOSME, True)
for i, char in enumerate(KOSME.decode("utf-8"), 2):
    utf8Case("6.5.%d" % (i,), "The character %r" % (char,), char.encode("utf-8"), True)
for i in range(1, len(KOSME) + 1):
    utf8Case("6.6.%d" % (i,), "The first %d bytes of κόσμε" % (i,), KOSME[:i], i in (2, 5, 7, 9, 11))
for i, (seq, what) in enumerate([(b"\x00", "U+0000"), (b"\xc2\x80", "U+0080"), (b"\xe0\xa0\x80", "U+0800"),
                                 (b"\xf0\x90\x80\x80", "U+10000")], 1):
    utf8Case("6.7.%d" % (i,), "The first sequence of its length, " + what, seq, True)
for i, seq in enumerate([b"\xf8\x88\x80\x80\x80", b"\xfc\x84\x80\x80\x80\x80"], 1):
    utf8Case("6.8.%d" % (i,), "A %d-byte sequence" % (len(seq),), seq, False)
for i, (seq, what) in enumerate([(b"\x7f", "U+007F"), (b"\xdf\xbf", "U+07FF"), (b"\xef\xbf\xbf", "U+FFFF"),
                                 (b"\xf4\x8f\xbf\xbf", "U+10FFFF")], 1):
    utf8Case("6.9.%d" % (i,), "The last sequence of its length, " + what, seq, True)
for i, seq in enumerate([b"\xf7\xbf\xbf\xbf", b"\xfb\xbf\xbf\xbf\xbf", b"\xfd\xbf\xbf\xbf\xbf\xbf"], 1):
    utf8Case("6.10.%d" % (i,), "A sequence beyond U+10FFFF", seq, False)
for i, (seq, valid, what) in enumerate([(b"\xed\x9f\xbf", True, "U+D7FF"), (b"\xee\x80\x80", True, "U+E000"),
                                        (b"\xef\xbf\xbd", True, "U+FFFD"), (b"\xf4\x8f\xbf\xbf", True, "U+10FFFF"),
                                        (b"\xf4\x90\x80\x80", False, "U+110000")], 1):
    utf8Case("6.11.%d" % (i,), "The boundary " + what, seq, valid)
CONTINUATIONS = [b"\x80", b"\xbf", b"\x80\xbf", b"\x80\xbf\x80", b"\x80\xbf\x80\xbf", b"\x80\xbf\x80\xbf\x80",
                 b"\x80\xbf\x80\xbf\x80\xbf", bytes(range(0x80, 0xC0))]
for i, seq in enumerate(CONTINUATIONS, 1):
    utf8Case("6.12.%d" % (i,), "An unexpected continuation byte", seq, False)
for i, (low, high) in enumerate([(0xC0, 0xDF), (0xE0, 0xEF), (0xF0, 0xF7), (0xF8, 0xFB), (0xFC, 0xFD)], 1):
    utf8Case("6.13.%d" % (i,), "Lonely start bytes, each followed by a space",
             b"".join(bytes((b, 0x20)) for b in range(low, high + 1)), False)
TRUNCATED = [b"\xc0", b"\xe0\x80", b"\xf0\x80\x80", b"\xf8\x80\x80\x80", b"\xfc\x80\x80\x80\x80",
             b"\xdf", b"\xef\xbf", b"\xf7\xbf\xbf", b"\xfb\xbf\xbf\xbf", b"\xfd\xbf\xbf\xbf\xbf"]
for i, seq in enumerate(TRUNCATED, 1):
    utf8Case("6.14.%d" % (i,), "A sequence missing its last continuation byte", seq, False)
utf8Case("6.15.1", "The truncated sequences one after another", b"".join(TRUNCATED), False)
for i, seq in enumerate([b"\xfe", b"\xff", b"\xfe\xfe\xff\xff"], 1):
    utf8Case("6.16.%d" % (i,), "A byte that never appears in UTF-8", seq, False)
for i, seq in enumerate([b"\xc0\xaf", b"\xe0\x80\xaf", b"\xf0\x80\x80\xaf", b"\xf8\x80\x80\x80\xaf",
                         b"\xfc\x80\x80\x80\x80\xaf"], 1):
    utf8Case("6.17.%d" % (i,), "An overlong '/'", seq, False)
for i, seq in enumerate([b"\xc1\xbf", b"\xe0\x9f\xbf", b"\xf0\x8f\xbf\xbf", b"\xf8\x87\xbf\xbf\xbf",
                         b"\xfc\x83\xbf\xbf\xbf\xbf"], 1):
    utf8Case("6.18.%d" % (i,), "The largest overlong sequence of its length", seq, False)
for i, seq in enumerate([b"\xc0\x80", b"\xe0\x80\x80", b"\xf0\x80\x80\x80", b"\xf8\x80\x80\x80\x80",
                         b"\xfc\x80\x80\x80\x80\x80"], 1):
    utf8Case("6.19.%d" % (i,), "An overlong NUL", seq, False)
SURROGATES = [b"\xed\xa0\x80", b"\xed\xad\xbf", b"\xed\xae\x80", b"\xed\xaf\xbf", b"\xed\xb0\x80",
              b"\xed\xbe\x80", b"\xed\xbf\xbf"]
for i, seq in enumerate(SURROGATES, 1):
    utf8Case("6.20.%d" % (i,), "A single UTF-16 surrogate", seq, False)
for i, (high, low) in enumerate([(h, l) for h in SURROGATES[:4] for l in (SURROGATES[4], SURROGATES[6])], 1):
    utf8Case("6.21.%d" % (i,), "A UTF-16 surrogate pair", high + low, False)
NONCHARACTERS = [plane * 0x10000 + last for plane in range(17) for last in (0xFFFE, 0xFFFF)]
NONCHARACTERS += list(range(0xFDD0, 0xFDF0))
for i, codepoint in enumerate(NONCHARACTERS, 1):
    utf8Case("6.22.%d" % (i,), "The noncharacter U+%04X" % (codepoint,), chr(codepoint).encode("utf-8"), True)
for i, (seq, what) in enumerate([(b"\xef\xbf\xbd", "U+FFFD"), (b"\xef\xbb\xbf", "U+FEFF"),
                                 (b"\xe2\x80\xa8", "U+2028")], 1):
    utf8Case("6.23.%d" % (i,), "The special character " + what, seq, True)

# 7. Close handling.

case("7.1.1", "A message then a close: the message is read, the close answered with 1000.",
     [send(text(SMALL), close(1000))], [ECHO("Hello, world!"), CLOSED(1000)])
case("7.1.2", "Two closes: only one answer.", [send(close(1000), close(1000))], [CLOSED(1000)])
case("7.1.3", "A ping after the close is not answered.", [send(close(1000), ping(b"Hello"))], [CLOSED(1000)])
case("7.1.4", "A message after the close is not read.", [send(close(1000), text(SMALL))], [CLOSED(1000)])
case("7.1.5", "A message whose last fragment comes after the close is not read.",
     [send(text(FRAG1, fin=False), close(1000), cont(FRAG2))], [CLOSED(1000)])
LARGE, LARGE_TEXT = echoOfLength(60000)
case("7.1.6", "Large messages, then a close, then a ping: the messages are read, the close answered, the ping not.",
     [send(*([text(LARGE)] * 4 + [close(1000), ping(b"Hello")]))], [ECHO(LARGE_TEXT)] * 4 + [CLOSED(1000)])
case("7.3.1", "A close without payload is answered by a close without a code.",
     [send(clientFrame(CLOSE, b""))], [CLOSED(None)])
case("7.3.2", "A close whose payload is one byte (half a code) is a protocol error.",
     [send(clientFrame(CLOSE, b"\x03"))], [PROTOCOL_ERROR])
case("7.3.3", "A close with code 1000 and no reason is answered with 1000.", [send(close(1000))], [CLOSED(1000)])
case("7.3.4", "A close with code 1000 and a reason is answered with 1000.",
     [send(close(1000, b"Hello World!"))], [CLOSED(1000)])
case("7.3.5", "A close with the longest reason a control frame allows (123 bytes) is answered.",
     [send(close(1000, b"*" * 123))], [CLOSED(1000)])
case("7.3.6", "A close with a 124-byte reason (a 126-byte control frame) is a protocol error.",
     [send(close(1000, b"*" * 124))], [PROTOCOL_ERROR])
case("7.5.1", "A close whose reason is not UTF-8 fails with 1007.",
     [send(close(1000, KOSME + b"\xed\xa0\x80edited"))], [INVALID_PAYLOAD])
for i, code in enumerate([1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999], 1):
    case("7.7.%d" % (i,), "A close with the valid code %d is answered with the same code." % (code,),
         [send(close(code))], [CLOSED(code)])
for i, code in enumerate([0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999], 1):
    case("7.9.%d" % (i,), "A close with the invalid code %d is a protocol error." % (code,),
         [send(close(code))], [PROTOCOL_ERROR])
for i, code in enumerate([5000, 65535], 1):
    case("7.13.%d" % (i,), "A close with the out-of-range code %d is a protocol error." % (code,),
         [send(close(code))], [PROTOCOL_ERROR])


class AutobahnCaseTests(SynchronousTestCase):
    """
    One test per case, named after its case number (C{test_case_6_20_1}).
    """

    def runCase(self, steps: List[Tuple[str, Any]], expected: List[Tuple[Any, ...]]) -> None:
        ws = connectWebSocket("/comet/ws?channel=echo")
        client = ws.client
        self.assertEqual(client.status, 101)
        for kind, argument in steps:
            if kind == "send":
                data, chop = argument
                ws.send(data, chop)
            elif kind == "framewise":
                for frame in argument:
                    ws.send(frame)
            elif kind == "expect":
                self.assertEqual(tokens(client), argument)
        self.assertEqual(tokens(client), expected)
        for frame in client.frames:
            self.assertEqual((frame.fin, frame.rsv, frame.masked), (True, 0, False), frame)
        if expected and expected[-1][0] == "close":
            # The server closed or answered a close: once the client has
            # answered (or at once), the server drops the connection.
            if not client.disconnected:
                ws.closeClient()
            self.assertTrue(client.disconnected)
            self.assertEqual(ws.comet.hub.sessions, {})
        else:
            self.assertFalse(client.disconnected)
            self.assertEqual(len(ws.comet.hub.sessions), 1)


def _makeTest(steps: List[Tuple[str, Any]], expected: List[Tuple[Any, ...]], doc: str) -> Callable[[Any], None]:
    def test(self: AutobahnCaseTests) -> None:
        self.runCase(steps, expected)

    test.__doc__ = doc
    return test


for _number, _doc, _steps, _expected in CASES:
    _name = "test_case_" + _number.replace(".", "_")
    assert not hasattr(AutobahnCaseTests, _name), _name
    setattr(AutobahnCaseTests, _name, _makeTest(_steps, _expected, "Case %s: %s" % (_number, _doc)))
del _number, _doc, _steps, _expected, _name
