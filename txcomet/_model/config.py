"""
The settings a txcomet server runs with.
"""

from typing import Optional, Sequence


class CometConfig:
    """
    Settings shared by every part of a txcomet server.

    @ivar heartbeat: seconds of silence after which a data channel gets a
        heartbeat (a long-poll is answered empty).
    @ivar sessionTimeout: seconds a session lives with no data channel
        attached.
    @ivar historyLength: events kept per channel for resuming.
    @ivar queueMessages: undelivered events a session may hold before it is
        closed as a slow consumer.
    @ivar queueBytes: undelivered bytes (of JSON envelopes) a session may
        hold before it is closed as a slow consumer.
    @ivar replayLength: delivered events a session keeps so that a data
        channel reconnecting with its last seen id misses nothing.
    @ivar maxMessageSize: the largest message (publish data, control body)
        accepted, in bytes.
    @ivar maxSubscriptions: subscriptions one session may hold.
    @ivar allowedOrigins: origins granted CORS and WebSocket access; C{"*"}
        allows any.  Same-origin requests need no entry.
    @ivar publisherSecret: the secret C{POST /publish/...} requires, or
        C{None} for an open publish API.
    @ivar clientPublish: whether sessions may publish through the control
        channel (the authorizer still decides per channel).
    @ivar recycleBytes: bytes after which an XHR-streaming or iframe
        response is closed (reason C{recycle}) and reopened by its client,
        so that the browser's buffer of the response does not grow without
        end; 0 never recycles.
    @ivar webSocketPingTimeout: seconds a WebSocket peer has to answer a
        ping (sent every C{heartbeat} seconds) before it is dropped.
    @ivar webSocketCompression: whether WebSocket connections may
        negotiate permessage-deflate.  Off by default: a compressed
        connection cannot share the one frame built per event.
    """

    def __init__(
        self,
        heartbeat: float = 25.0,
        sessionTimeout: float = 60.0,
        historyLength: int = 100,
        queueMessages: int = 1000,
        queueBytes: int = 1024 * 1024,
        replayLength: int = 200,
        maxMessageSize: int = 64 * 1024,
        maxSubscriptions: int = 100,
        allowedOrigins: Sequence[str] = (),
        publisherSecret: Optional[str] = None,
        clientPublish: bool = True,
        recycleBytes: int = 1024 * 1024,
        webSocketPingTimeout: float = 10.0,
        webSocketCompression: bool = False,
    ) -> None:
        for name, value in [
            ("heartbeat", heartbeat),
            ("sessionTimeout", sessionTimeout),
            ("webSocketPingTimeout", webSocketPingTimeout),
        ]:
            if not value > 0:
                raise ValueError("%s must be more than 0, not %r" % (name, value))
        for name, value in [
            ("historyLength", historyLength),
            ("recycleBytes", recycleBytes),
        ]:
            if value < 0:
                raise ValueError("%s must be 0 or more, not %r" % (name, value))
        for name, value in [
            ("queueMessages", queueMessages),
            ("queueBytes", queueBytes),
            ("replayLength", replayLength),
            ("maxMessageSize", maxMessageSize),
            ("maxSubscriptions", maxSubscriptions),
        ]:
            if value < 1:
                raise ValueError("%s must be 1 or more, not %r" % (name, value))
        self.heartbeat = float(heartbeat)
        self.sessionTimeout = float(sessionTimeout)
        self.historyLength = historyLength
        self.queueMessages = queueMessages
        self.queueBytes = queueBytes
        self.replayLength = replayLength
        self.maxMessageSize = maxMessageSize
        self.maxSubscriptions = maxSubscriptions
        self.allowedOrigins = tuple(allowedOrigins)
        self.publisherSecret = publisherSecret
        self.clientPublish = clientPublish
        self.recycleBytes = recycleBytes
        self.webSocketPingTimeout = float(webSocketPingTimeout)
        self.webSocketCompression = webSocketCompression

    def originAllowed(self, origin: Optional[str]) -> bool:
        """
        Whether a cross-origin request from C{origin} is granted access.
        """
        if origin is None:
            return False
        return "*" in self.allowedOrigins or origin in self.allowedOrigins
