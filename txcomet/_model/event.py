# -*- test-case-name: tests.model.test_wire,tests.model.test_channels,tests.fastpath.test_roster,tests.transports.test_streaming_framing -*-
"""
Events and positions.

An event's position is C{(epoch, offset)}: the epoch names one life of the
bus's history (a restarted in-memory bus has a new one), and the offset
increases by one with every publish on the bus, across all channels.  On the
wire a position is the event id C{"<epoch>-<offset>"}.
"""

import json
from typing import Any, Dict, Optional, Tuple

from zope.interface import implementer

from txcomet._model.errors import CometError
from txcomet.interfaces import IEvent, IFraming, IHistory


def _dumps(value: Any) -> bytes:
    # allow_nan=False: NaN and the infinities are not JSON, and no browser
    # parses an event that carries them; encoding one is an error here,
    # never a frame every subscriber chokes on.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")


def encodeJSON(value: Any) -> bytes:
    """
    Encode C{value} as compact UTF-8 JSON, the one encoding every framing
    starts from.  Raw line breaks never appear in the output (JSON escapes
    them), so one encoded value always fits on one line.
    """
    return _dumps(value)


def formatId(epoch: str, offset: int) -> str:
    """
    The wire id of position C{(epoch, offset)}.
    """
    return "%s-%d" % (epoch, offset)


def parsePosition(eventId: object) -> Tuple[str, int]:
    """
    Split a wire id into C{(epoch, offset)}; raise L{CometError}
    C{invalid_position} when it is not one.
    """
    if isinstance(eventId, str) and 0 < len(eventId) <= 80:
        epoch, sep, offset = eventId.rpartition("-")
        if sep and epoch and offset.isdigit() and offset.isascii():
            return epoch, int(offset)
    raise CometError(
        "invalid_position", "%r is not an event id (<epoch>-<offset>)." % (str(eventId)[:80],)
    )


#: The event kinds, as the envelope's bytes.
_KINDS = {"event": b"event", "join": b"join", "leave": b"leave"}


@implementer(IEvent)
class Event:
    """
    One published event; see L{IEvent}.
    """

    __slots__ = ("channel", "data", "kind", "epoch", "offset", "id", "_json", "_frames", "size", "_dataJSON")

    def __init__(
        self, channel: str, data: Any, epoch: str, offset: int, kind: str = "event", dataJSON: Optional[bytes] = None
    ):
        self.channel = channel
        self.data = data
        self.kind = kind
        self.epoch = epoch
        self.offset = offset
        self.id = formatId(epoch, offset)
        self._json: Optional[bytes] = None
        self._frames: Optional[Dict[str, bytes]] = None
        # The data as JSON, when the publisher had it encoded already.
        self._dataJSON = dataJSON
        #: The length of L{json} once it has been made (0 before): what
        #: the delivery counters add without a call.
        self.size = 0

    @property
    def json(self) -> bytes:
        encoded = self._json
        if encoded is None:
            dataJSON = self._dataJSON
            kind = _KINDS.get(self.kind)
            if dataJSON is not None and kind is not None:
                # The same bytes _dumps makes of the envelope, around the
                # data's encoding made once at publishing.  A channel name
                # and an id are ASCII with nothing JSON escapes (see
                # txcomet._model.channels), so they go in as they are.
                encoded = b'{"type":"%s","channel":"%s","id":"%s","data":%s}' % (
                    kind, self.channel.encode("ascii"), self.id.encode("ascii"), dataJSON
                )
                self._dataJSON = None
            else:
                encoded = _dumps({"type": self.kind, "channel": self.channel, "id": self.id, "data": self.data})
            self._json = encoded
            self.size = len(encoded)
        return encoded

    @classmethod
    def fromEnvelope(cls, payload: bytes, envelope: Optional[dict] = None) -> "Event":
        """
        The event whose JSON envelope is C{payload} (as L{json} makes it),
        keeping those bytes as its L{json}; C{envelope} is C{payload}
        decoded, if the caller has it already.
        """
        if envelope is None:
            envelope = json.loads(payload)
        epoch, offset = parsePosition(envelope["id"])
        event = cls(envelope["channel"], envelope["data"], epoch, offset, envelope["type"])
        event._json = payload
        event.size = len(payload)
        return event

    def asDict(self) -> dict:
        """
        The JSON envelope as a dict.
        """
        return {"type": self.kind, "channel": self.channel, "id": self.id, "data": self.data}

    def framed(self, framing: IFraming) -> bytes:
        frames = self._frames
        if frames is None:
            frames = self._frames = {}
        else:
            cached = frames.get(framing.name)
            if cached is not None:
                return cached
        framed = frames[framing.name] = framing.frameEvent(self)
        return framed

    def __repr__(self) -> str:
        return "<Event %s on %r: %r>" % (self.id, self.channel, self.data)


@implementer(IHistory)
class History:
    """
    The answer to L{IEventBus.history}.
    """

    __slots__ = ("events", "covered", "position")

    def __init__(self, events, covered: bool, position: str) -> None:
        self.events = events
        self.covered = covered
        self.position = position

    def __repr__(self) -> str:
        return "<History covered=%r position=%s %d events>" % (
            self.covered,
            self.position,
            len(self.events),
        )
