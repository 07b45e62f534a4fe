# -*- test-case-name: tests.node.test_auth_options,tests.server.test_admin,tests.server.test_metrics,tests.auth.test_authorizer -*-
"""
The settings a txcomet server runs with.
"""

from typing import Optional, Sequence, Union


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
    @ivar controlRate: control operations (subscribe, publish, presence...)
        per second one session may make on average; past C{controlBurst}
        in a row they are refused with 429 C{rate_limited}.  0: no limit.
    @ivar controlBurst: control operations a session may make at once.
    @ivar closedSessionMemory: seconds for which a session the server
        closed (slow consumer, expiry, kicked...) is remembered, so that a
        request naming it is told why (410 C{session_closed}) rather than
        C{unknown_session}; 0 forgets at once.  At most
        C{CLOSED_SESSIONS_KEPT} are remembered at a time.
    @ivar allowedOrigins: origins granted CORS and WebSocket access; C{"*"}
        allows any.  Same-origin requests need no entry.
    @ivar publisherSecret: the secret C{POST /publish/...} requires (the
        API key is accepted there too), or C{None}: then, without an API
        key either, the publish API answers only clients on loopback.
    @ivar apiKey: the key the server API and the metrics require
        (C{X-API-Key: <key>} or C{Authorization: Bearer <key>}), or
        C{None}: then they answer only clients on loopback.
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

    Who may do what (C{docs/auth.md}); with none of these set, the server
    is open:

    @ivar tokenSecret: the shared secret of HS256/384/512 tokens, or C{None}.
    @ivar tokenPublicKey: the public key of RS*/PS*/ES*/EdDSA tokens: the
        path of a PEM file, or the PEM text as L{bytes}; or C{None}.
    @ivar tokenJWKS: the URL of a JWKS key set, or C{None}.
    @ivar tokenPreviousKey: during a key rotation, the previous secret (or
        PEM public key as L{bytes}), accepted until C{tokenPreviousUntil}
        (seconds since the epoch).
    @ivar tokenAudience: the C{aud} tokens must carry, or C{None}.
    @ivar tokenIssuer: the C{iss} tokens must carry, or C{None}.
    @ivar tokenLeeway: seconds of clock skew allowed on C{exp}/C{nbf}/C{iat}.
    @ivar tokenGrace: seconds a session outlives its token without a refresh.
    @ivar tokenRequired: whether joining needs a token (else anonymous
        sessions join and the rules decide what they may do).
    @ivar tokenRequireSub: whether a token must name a user (C{sub}).
    @ivar rulesPath: the channel rules file (TOML), or C{None}.
    @ivar connectHook: the URL asked whether a client may connect.
    @ivar subscribeHook: the URL asked whether a session may subscribe.
    @ivar publishHook: the URL asked whether a session may publish.
    @ivar hookTimeout: seconds a hook has to answer before the request is
        refused (C{unavailable}).
    @ivar hookHeaders: the request headers forwarded to hooks.
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
        closedSessionMemory: float = 300.0,
        controlRate: float = 50.0,
        controlBurst: int = 200,
        allowedOrigins: Sequence[str] = (),
        publisherSecret: Optional[str] = None,
        apiKey: Optional[str] = None,
        clientPublish: bool = True,
        recycleBytes: int = 1024 * 1024,
        webSocketPingTimeout: float = 10.0,
        webSocketCompression: bool = False,
        tokenSecret: Optional[str] = None,
        tokenPublicKey: Union[str, bytes, None] = None,
        tokenJWKS: Optional[str] = None,
        tokenPreviousKey: Union[str, bytes, None] = None,
        tokenPreviousUntil: Optional[float] = None,
        tokenAudience: Optional[str] = None,
        tokenIssuer: Optional[str] = None,
        tokenLeeway: float = 5.0,
        tokenGrace: float = 30.0,
        tokenRequired: bool = False,
        tokenRequireSub: bool = False,
        rulesPath: Optional[str] = None,
        connectHook: Optional[str] = None,
        subscribeHook: Optional[str] = None,
        publishHook: Optional[str] = None,
        hookTimeout: float = 1.0,
        hookHeaders: Sequence[str] = ("cookie", "authorization"),
    ) -> None:
        for name, value in [
            ("heartbeat", heartbeat),
            ("sessionTimeout", sessionTimeout),
            ("webSocketPingTimeout", webSocketPingTimeout),
            ("hookTimeout", hookTimeout),
        ]:
            if not value > 0:
                raise ValueError("%s must be more than 0, not %r" % (name, value))
        for name, value in [
            ("historyLength", historyLength),
            ("recycleBytes", recycleBytes),
            ("tokenLeeway", tokenLeeway),
            ("tokenGrace", tokenGrace),
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
        if closedSessionMemory < 0:
            raise ValueError("closedSessionMemory must be 0 or more, not %r" % (closedSessionMemory,))
        self.closedSessionMemory = float(closedSessionMemory)
        if controlRate < 0 or controlBurst < 1:
            raise ValueError("controlRate must be 0 or more and controlBurst 1 or more")
        self.controlRate = float(controlRate)
        self.controlBurst = controlBurst
        self.allowedOrigins = tuple(allowedOrigins)
        self.publisherSecret = publisherSecret
        self.apiKey = apiKey
        self.clientPublish = clientPublish
        self.recycleBytes = recycleBytes
        self.webSocketPingTimeout = float(webSocketPingTimeout)
        self.webSocketCompression = webSocketCompression
        self.tokenSecret = tokenSecret
        self.tokenPublicKey = tokenPublicKey
        self.tokenJWKS = tokenJWKS
        self.tokenPreviousKey = tokenPreviousKey
        self.tokenPreviousUntil = tokenPreviousUntil
        self.tokenAudience = tokenAudience
        self.tokenIssuer = tokenIssuer
        self.tokenLeeway = float(tokenLeeway)
        self.tokenGrace = float(tokenGrace)
        self.tokenRequired = tokenRequired
        self.tokenRequireSub = tokenRequireSub
        self.rulesPath = rulesPath
        self.connectHook = connectHook
        self.subscribeHook = subscribeHook
        self.publishHook = publishHook
        self.hookTimeout = float(hookTimeout)
        self.hookHeaders = tuple(h.lower() for h in hookHeaders)

    @property
    def isOpen(self) -> bool:
        """
        Whether no token, rules file or hook is configured: anyone who
        reaches the server may subscribe to and publish on any channel.
        """
        return not (
            self.tokenSecret
            or self.tokenPublicKey
            or self.tokenJWKS
            or self.rulesPath
            or self.connectHook
            or self.subscribeHook
            or self.publishHook
        )

    def originAllowed(self, origin: Optional[str]) -> bool:
        """
        Whether a cross-origin request from C{origin} is granted access.
        """
        if origin is None:
            return False
        return "*" in self.allowedOrigins or origin in self.allowedOrigins
