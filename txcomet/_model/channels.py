# -*- test-case-name: tests.model.test_channels,tests.server.test_revocation,tests.auth.test_rules -*-
"""
Channel names and subscription patterns.

A channel name is one to sixteen segments joined by C{/}, each segment one
to 64 characters from C{A-Z a-z 0-9 _ - . ~ : @ = +}, at most 255 characters
in all: C{news}, C{chat/room1}, C{user/42/notifications}.  A pattern is a
channel name in which a segment may be C{*} (exactly one segment) and the
last segment may be C{**} (one or more segments): C{chat/*} matches
C{chat/room1} but not C{chat/a/b}; C{chat/**} matches both, and neither
matches C{chat} itself.
"""

import re
from typing import List, Optional, Sequence

from txcomet._model.errors import CometError

MAX_NAME_LENGTH = 255

#: The first segment of the channels txcomet keeps for itself: no client
#: subscribes to or publishes on them, and no wildcard pattern receives
#: their events.
RESERVED = "~txcomet"

#: Where revocation orders travel between nodes.
REVOCATION_CHANNEL = RESERVED + "/revoke"
MAX_SEGMENTS = 16

_SEGMENT = re.compile(r"[A-Za-z0-9_\-.~:@=+]{1,64}\Z")


def _segments(name: object, allowWildcards: bool) -> List[str]:
    if not isinstance(name, str):
        raise CometError("invalid_channel", "The channel must be a string.")
    if not name or len(name) > MAX_NAME_LENGTH:
        raise CometError(
            "invalid_channel",
            "A channel name has 1 to %d characters." % (MAX_NAME_LENGTH,),
        )
    segments = name.split("/")
    if len(segments) > MAX_SEGMENTS:
        raise CometError(
            "invalid_channel", "A channel name has at most %d segments." % (MAX_SEGMENTS,)
        )
    last = len(segments) - 1
    for i, segment in enumerate(segments):
        if allowWildcards and (segment == "*" or (segment == "**" and i == last)):
            continue
        if not _SEGMENT.match(segment):
            raise CometError(
                "invalid_channel",
                "Channel %r: each segment is 1-64 of A-Z a-z 0-9 _ - . ~ : @ = +%s."
                % (name[:80], "; * and a final ** are wildcards" if allowWildcards else ""),
            )
    return segments


def validateChannel(name: object) -> str:
    """
    Return C{name} if it is a valid channel name (no wildcards), else raise
    L{CometError} C{invalid_channel}.
    """
    _segments(name, False)
    return name  # type: ignore[return-value]


def validatePattern(pattern: object) -> str:
    """
    Return C{pattern} if it is a valid channel name or wildcard pattern,
    else raise L{CometError} C{invalid_channel}.
    """
    _segments(pattern, True)
    return pattern  # type: ignore[return-value]


def isReserved(name: str) -> bool:
    """
    Whether C{name} (a channel or pattern) is one of txcomet's own
    channels (see L{RESERVED}).
    """
    return name == RESERVED or name.startswith(RESERVED + "/")


def isPattern(pattern: str) -> bool:
    """
    Whether C{pattern} (already valid) has a wildcard segment.
    """
    return "*" in pattern


class Pattern:
    """
    A compiled wildcard pattern.
    """

    __slots__ = ("pattern", "_prefix", "_deep")

    def __init__(self, pattern: str) -> None:
        segments = _segments(pattern, True)
        self.pattern = pattern
        self._deep = segments[-1] == "**"
        self._prefix: Sequence[Optional[str]] = [
            None if s == "*" else s for s in (segments[:-1] if self._deep else segments)
        ]

    def matches(self, channel: str) -> bool:
        """
        Whether the channel name C{channel} matches this pattern.
        """
        parts = channel.split("/")
        prefix = self._prefix
        if self._deep:
            if len(parts) <= len(prefix):
                return False
        elif len(parts) != len(prefix):
            return False
        for want, got in zip(prefix, parts):
            if want is not None and want != got:
                return False
        return True
