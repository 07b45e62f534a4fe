# -*- test-case-name: tests.transports.test_bayeux -*-
"""
The wire rules of Bayeux 1.0 as txcomet speaks them: channel names and how
they map onto txcomet's, the C{code:args:message} errors, the advice, and
the framing of a delivery.

A Bayeux channel is an absolute path, C{/chat/room}; its txcomet channel
is the same without the leading C{/}, C{chat/room}.  Bayeux's wildcards,
C{*} (one segment) and C{**} (one or more), are txcomet's, and as in
Bayeux they may only be the last segment.  C{/meta/**} is the protocol's
own and C{/service/**} is for messages to the server only; neither is a
txcomet channel.
"""

from typing import Any, Dict, List, Optional, Sequence

from zope.interface import implementer

from txcomet._model.channels import validatePattern
from txcomet._model.config import CometConfig
from txcomet._model.errors import CometError
from txcomet._model.event import Event, encodeJSON
from txcomet.interfaces import IFraming

VERSION = "1.0"
MINIMUM_VERSION = "1.0"

HANDSHAKE = "/meta/handshake"
CONNECT = "/meta/connect"
SUBSCRIBE = "/meta/subscribe"
UNSUBSCRIBE = "/meta/unsubscribe"
DISCONNECT = "/meta/disconnect"

LONG_POLLING = "long-polling"
CALLBACK_POLLING = "callback-polling"
WEBSOCKET = "websocket"

#: Reconnect advice values.
RETRY = "retry"
REHANDSHAKE = "handshake"
NONE = "none"

#: The most messages one request (or WebSocket frame) may carry.
MAX_BATCH = 100


class BayeuxError(Exception):
    """
    A message that fails: answered with C{successful: false} and C{error}
    in Bayeux's C{code:args:message} form, and C{advice} when the client
    should act (handshake again, or give up).

    @ivar code: the numeric code (Bayeux borrows HTTP's meanings).
    @ivar arguments: the error's arguments (channel names, field names).
    @ivar message: a sentence for the developer.
    @ivar reconnect: the reconnect advice to send with it, or C{None}.
    """

    def __init__(self, code: int, args: str, message: str, reconnect: Optional[str] = None) -> None:
        self.code = code
        self.arguments = args
        self.message = message
        self.reconnect = reconnect
        super().__init__(self.errorText)

    @property
    def errorText(self) -> str:
        """
        The C{error} field: C{code:args:message}.  Colons in the message are
        fine (clients split on the first two).
        """
        return "%d:%s:%s" % (self.code, self.arguments, self.message)


def sessionUnknown() -> BayeuxError:
    """
    The error of an unknown or expired client id: handshake again.
    """
    return BayeuxError(402, "", "session_unknown", reconnect=REHANDSHAKE)


def missingField(name: str) -> BayeuxError:
    """
    The error of a message without a field it must have.
    """
    return BayeuxError(402, name, "Missing field")


def isMeta(channel: str) -> bool:
    return channel == "/meta" or channel.startswith("/meta/")


def isService(channel: str) -> bool:
    return channel == "/service" or channel.startswith("/service/")


def toTopic(channel: object, wildcards: bool = True) -> str:
    """
    The txcomet channel (or pattern) of Bayeux channel C{channel}: its name
    without the leading C{/}.  Raise L{BayeuxError} 405 when C{channel} is
    not a name txcomet can carry, or has a wildcard anywhere but the last
    segment (or at all, without C{wildcards}).
    """
    if not isinstance(channel, str) or not channel.startswith("/"):
        raise BayeuxError(405, _clip(channel), "A channel is an absolute path such as /chat/room")
    topic = channel[1:]
    segments = topic.split("/")
    if any("*" in s for s in segments[:-1]) or not wildcards and "*" in segments[-1]:
        raise BayeuxError(405, _clip(channel), "Wildcards may only be the last segment of a subscription")
    try:
        validatePattern(topic)
    except CometError as e:
        raise BayeuxError(405, _clip(channel), e.message)
    return topic


def toChannel(topic: str) -> str:
    """
    The Bayeux name of txcomet channel C{topic}.
    """
    return "/" + topic


def _clip(value: object) -> str:
    """
    A value for an error's args: text, at most 80 characters, without the
    C{:} that separates the fields.
    """
    return str(value)[:80].replace(":", "%3A")


def fromCometError(error: CometError, channel: str = "") -> BayeuxError:
    """
    The Bayeux error for a L{CometError} the session model raised while
    handling a message about C{channel}.
    """
    args = _clip(channel)
    if error.code == "unknown_session":
        return sessionUnknown()
    if error.code == "session_closed":
        # Bayeux has no "closed because": the client handshakes again, or
        # (cut off) is advised not to.
        unknown = sessionUnknown()
        if not error.details.get("reconnect", True):
            unknown.reconnect = NONE
        return unknown
    if error.code == "forbidden":
        return BayeuxError(403, args, error.message)
    if error.code == "invalid_channel":
        return BayeuxError(405, args, error.message)
    if error.code == "internal_error":
        return BayeuxError(500, args, error.message)
    return BayeuxError(error.status, args, error.message)


def advice(config: CometConfig, reconnect: str = RETRY) -> Dict[str, Any]:
    """
    The advice txcomet gives: how long a connect is held (C{timeout}, the
    heartbeat interval), how soon to connect again (C{interval}: at once),
    and how long the server waits for that (C{maxInterval}, the session
    timeout), all in milliseconds.
    """
    return {
        "reconnect": reconnect,
        "interval": 0,
        "timeout": int(config.heartbeat * 1000),
        "maxInterval": int(config.sessionTimeout * 1000),
    }


@implementer(IFraming)
class BayeuxFraming:
    """
    A delivery: C{{"channel": "/chat/room", "data": ..., "id": "<event id>"}}.
    Presence notices (events that are not C{event}s) have no Bayeux form
    and frame as nothing.
    """

    name = "bayeux"

    def frameEvent(self, event: Event) -> bytes:
        if event.kind != "event":
            return b""
        return encodeJSON({"channel": toChannel(event.channel), "data": event.data, "id": event.id})


BAYEUX = BayeuxFraming()


def deliveries(events: Any) -> list:
    """
    The framed deliveries of C{events}, in order, without presence notices.
    """
    framed = [e.framed(BAYEUX) for e in events]
    return [f for f in framed if f]


def parseMessages(value: Any) -> List[dict]:
    """
    The messages of a decoded request body: an array of objects (or one
    object); anything else, or more than L{MAX_BATCH} messages, is an
    C{invalid_request}.
    """
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list) and value and all(isinstance(m, dict) for m in value):
        if len(value) > MAX_BATCH:
            raise CometError("invalid_request", "A Bayeux request holds at most %d messages." % (MAX_BATCH,))
        return value
    raise CometError("invalid_request", "A Bayeux request is a JSON array of message objects.")


def encodeArray(items: Sequence[bytes]) -> bytes:
    """
    A JSON array of already encoded values.
    """
    return b"[" + b",".join(items) + b"]"
