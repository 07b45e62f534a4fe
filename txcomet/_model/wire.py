# -*- test-case-name: tests.model.test_wire,tests.transports.test_streaming_framing -*-
"""
The protocol's own messages, written once for every transport and the
Python client: the heartbeat, the close message, and the close reasons
with whether a client should come back after each (docs/protocol.md).
"""

from txcomet._model.event import encodeJSON

#: The heartbeat message every stream sends when it has been quiet.
HEARTBEAT = b'{"type":"heartbeat"}'

#: Close reason -> whether the client should reconnect (join again, or
#: attach a new data channel) after it.
CLOSE_REASONS = {
    "left": False,
    "expired": True,
    "slow_consumer": True,
    "replay_unavailable": True,
    "replaced": False,
    "shutdown": True,
    "kicked": False,
    "recycle": True,
    # the connection token ran out (plus grace): fetch a new one and resume
    "token_expired": True,
    # a refresh brought an invalid token: final
    "invalid_token": False,
}

#: The close reasons that end a data channel but not its session: the
#: client opens a new channel on the same session.
CHANNEL_REASONS = frozenset(["recycle", "replaced"])


def closeMessage(reason: str, reconnect: bool) -> bytes:
    """
    The close message, C{{"type":"close","reason":R,"reconnect":B}}.
    """
    return encodeJSON({"type": "close", "reason": reason, "reconnect": reconnect})
