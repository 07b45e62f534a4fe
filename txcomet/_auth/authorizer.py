# -*- test-case-name: tests.auth.test_authorizer,tests.node.test_auth_options -*-
"""
The built-in authorizer: connection tokens, channel rules and backend
hooks combined into one L{ITokenAuthorizer}.

It decides at join, subscribe, publish and refresh, never per delivery.
An application wraps it to add its own checks: hold one, provide
L{ITokenAuthorizer}, and ask it before (or after) asking its own.
"""

from typing import Any, Dict, List, Optional

from twisted.internet.defer import inlineCallbacks
from zope.interface import implementer

from txcomet._auth.hooks import BackendHooks
from txcomet._auth.rules import NEEDS_TOKEN, ChannelRules
from txcomet._auth.tokens import Claims, JWKSCache, TokenVerifier, loadPublicKey
from txcomet._model.channels import Pattern, isPattern, validateChannel
from txcomet._model.errors import CometError
from txcomet.interfaces import IGrant, ITokenAuthorizer


@implementer(IGrant)
class Grant:
    """
    What a session joined as: its user and info, the channels the server
    subscribed it to, and until when its token is good.  Past C{expires}
    plus C{grace} seconds without a refresh, the session is closed with
    reason C{token_expired}.

    @ivar headers: the forwarded headers (for the subscribe and publish
        hooks), or an empty dict.
    @ivar transport: the transport the session joined through, or C{None}.
    @ivar claims: the connection token's claims (a dict), or C{None}.
    """

    def __init__(
        self,
        clock: Any,
        user: Optional[str],
        info: Optional[dict],
        channels: List[str],
        expires: Optional[float],
        grace: float,
        claims: Optional[dict] = None,
        transport: Optional[str] = None,
        headers: Optional[Dict[str, str]] = None,
    ) -> None:
        self.clock = clock
        self.user = user
        self.info = info
        self.channels = channels
        self.expires = expires
        self.grace = grace
        self.claims = claims
        self.transport = transport
        self.headers = headers or {}
        self.session: Any = None
        self._timer: Any = None

    def __repr__(self) -> str:
        return "<Grant user=%r expires=%r>" % (self.user, self.expires)

    def bind(self, session: Any) -> None:
        self.session = session
        self._schedule()

    def release(self) -> None:
        self._cancel()
        self.session = None

    def export(self) -> dict:
        return {
            "user": self.user,
            "info": self.info,
            "channels": self.channels,
            "expires": self.expires,
            "claims": self.claims,
            "transport": self.transport,
            "headers": self.headers,
        }

    def renew(self, expires: Optional[float], claims: Optional[dict]) -> None:
        """
        A refreshed token: the session now lasts until C{expires}.
        """
        self.expires = expires
        self.claims = claims
        self._schedule()

    def _cancel(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def _schedule(self) -> None:
        self._cancel()
        if self.expires is None or self.session is None:
            return
        delay = max(0.0, self.expires + self.grace - self.clock.seconds())
        self._timer = self.clock.callLater(delay, self._expired)

    def _expired(self) -> None:
        self._timer = None
        session = self.session
        if session is not None:
            session.close("token_expired")


def subscribedTo(session: Any, channel: str) -> bool:
    """
    Whether C{session} receives C{channel}'s events: it subscribes to it
    by name or through a pattern.
    """
    subscriptions = session.subscriptions
    if channel in subscriptions:
        return True
    return any(Pattern(p).matches(channel) for p in subscriptions if isPattern(p))


@implementer(ITokenAuthorizer)
class CometAuthorizer:
    """
    Tokens, rules and hooks: see C{docs/auth.md}.

    @param verifier: the L{TokenVerifier} for connection and channel
        tokens, or C{None} (a token is then refused: nothing could check
        it).
    @param rules: the L{ChannelRules}, or C{None}: every channel open to
        every session (as without this authorizer).
    @param hooks: the L{BackendHooks}, or C{None}.
    @param grace: seconds a session outlives its token's C{exp} without a
        refresh.
    @param requireToken: whether a join without a token is refused
        (C{invalid_token}); otherwise it joins as an anonymous session,
        and the rules decide what it may do.
    """

    def __init__(
        self,
        clock: Any,
        verifier: Optional[TokenVerifier] = None,
        rules: Optional[ChannelRules] = None,
        hooks: Optional[BackendHooks] = None,
        grace: float = 30.0,
        requireToken: bool = False,
    ) -> None:
        self.clock = clock
        self.verifier = verifier
        self.rules = rules
        self.hooks = hooks
        self.grace = grace
        self.requireToken = requireToken
        #: The L{PooledHTTP} this authorizer's hooks and key set use, if it
        #: made its own; L{stop} closes it.
        self.http: Optional[PooledHTTP] = None

    def stop(self) -> Any:
        """
        Close the connections the hooks and key set keep open (the
        L{txcomet.Comet} service calls this when it stops).
        """
        if self.http is not None:
            return self.http.stop()
        return None

    def _verify(self, token: str) -> Any:
        if self.verifier is None:
            raise CometError("invalid_token", "This server is configured to check no tokens.")
        return self.verifier.verify(token)

    # IAuthorizer

    @inlineCallbacks
    def authorizeJoin(self, credentials: dict):
        token = credentials.get("auth")
        claims: Optional[Claims] = None
        if token is not None:
            claims = yield self._verify(token)
        elif self.requireToken:
            raise CometError("invalid_token", "Joining needs a connection token.")
        headers = self.hooks.forwarded(credentials.get("headers") or {}) if self.hooks is not None else {}
        transport = credentials.get("transport")
        if claims is not None:
            user, info, channels, expires = claims.sub, claims.info, list(claims.channels), claims.exp
        else:
            # Anonymous: a name the client gives itself is not an identity.
            user, info, channels, expires = None, credentials.get("info"), [], None
        if self.hooks is not None and self.hooks.connect is not None:
            answer = yield self.hooks.ask(
                "connect",
                {
                    "transport": transport,
                    "headers": headers,
                    "claims": claims.raw if claims is not None else None,
                    "user": user,
                },
            )
            if "user" in answer:
                user = answer["user"] or None
            if "info" in answer:
                info = answer["info"]
            channels.extend(c for c in answer.get("channels", ()) if c not in channels)
        for channel in channels:
            validateChannel(channel)
        return Grant(
            self.clock,
            user,
            info,
            channels,
            expires,
            self.grace,
            claims.raw if claims is not None else None,
            transport,
            headers,
        )

    @inlineCallbacks
    def authorizeSubscribe(self, session: Any, pattern: str):
        grant = session.grant
        if grant is not None and pattern in grant.channels:
            # The token or the backend subscribed it.
            return True
        if self.rules is not None:
            verdict = self.rules.decide("subscribe", pattern, session.user)
            if verdict == NEEDS_TOKEN:
                rule = self.rules.ruleFor(pattern)
                raise CometError(
                    "forbidden",
                    "Subscribing to %r needs a channel token (%s)."
                    % (pattern, rule.describe("subscribe") if rule is not None else "rules"),
                )
        yield self._askHook("subscribe", session, pattern)
        return True

    @inlineCallbacks
    def authorizePublish(self, session: Any, channel: str):
        if self.rules is not None:
            self.rules.decide("publish", channel, session.user, lambda c: subscribedTo(session, c))
        yield self._askHook("publish", session, channel)
        return True

    def _askHook(self, kind: str, session: Any, channel: str) -> Any:
        if self.hooks is None or getattr(self.hooks, kind) is None:
            return None
        grant = session.grant
        return self.hooks.ask(
            kind,
            {
                "transport": getattr(grant, "transport", None),
                "channel": channel,
                "headers": getattr(grant, "headers", {}),
                "claims": getattr(grant, "claims", None),
                "user": session.user,
            },
        )

    # ITokenAuthorizer

    @inlineCallbacks
    def authorizeChannelToken(self, session: Any, channel: str, token: str):
        if isPattern(channel):
            raise CometError("forbidden", "A channel token grants one channel, not a pattern.")
        claims = yield self._verify(token)
        if claims.channel != channel:
            raise CometError("forbidden", "The channel token is for another channel.")
        if claims.sub != session.user:
            raise CometError("forbidden", "The channel token is for another user.")
        if self.rules is not None:
            # Refused outright (nobody, another owner, no rule) stays refused.
            self.rules.decide("subscribe", channel, session.user)
        yield self._askHook("subscribe", session, channel)
        return True

    def authorizePresence(self, session: Any, channel: str) -> bool:
        if self.rules is not None:
            self.rules.decide("presence", channel, session.user, lambda c: subscribedTo(session, c))
        return True

    def authorizeHistory(self, session: Any, channel: str) -> bool:
        if self.rules is not None:
            # Asked when subscribing, once the subscription is allowed: a
            # "subscribers" history is this session's.
            self.rules.decide("history", channel, session.user, lambda c: True)
        return True

    def notices(self, channel: str) -> bool:
        return self.rules is None or self.rules.notices(channel)

    def restoreGrant(self, exported: dict) -> Grant:
        return Grant(
            self.clock,
            exported.get("user"),
            exported.get("info"),
            list(exported.get("channels") or ()),
            exported.get("expires"),
            self.grace,
            exported.get("claims"),
            exported.get("transport"),
            exported.get("headers"),
        )

    @inlineCallbacks
    def refresh(self, session: Any, token: str):
        claims = yield self._verify(token)
        grant = session.grant
        if grant is None or claims.sub != grant.user:
            raise CometError("invalid_token", "The new token is for another user.")
        grant.renew(claims.exp, claims.raw)
        return {"expires": claims.exp}


class PooledHTTP:
    """
    treq's C{get}, C{post} and C{content} through one persistent connection
    pool (hook and key set requests reuse connections), closed by L{stop}.
    """

    def __init__(self, reactor: Any = None) -> None:
        from twisted.web.client import HTTPConnectionPool

        if reactor is None:
            from twisted.internet import reactor
        self.pool = HTTPConnectionPool(reactor, persistent=True)

    def get(self, url: str, **kwargs: Any) -> Any:
        import treq

        return treq.get(url, pool=self.pool, **kwargs)

    def post(self, url: str, **kwargs: Any) -> Any:
        import treq

        return treq.post(url, pool=self.pool, **kwargs)

    def content(self, response: Any) -> Any:
        import treq

        return treq.content(response)

    def stop(self) -> Any:
        return self.pool.closeCachedConnections()


def authorizerFromConfig(config: Any, clock: Any, http: Any = None) -> Optional[CometAuthorizer]:
    """
    The L{CometAuthorizer} a L{txcomet.CometConfig}'s token, rules and hook
    settings describe, or C{None} when it sets none of them (an open
    server).  Raises L{ValueError} (a L{txcomet._auth.rules.RulesError}
    for the rules file) when a setting cannot be used.
    """
    ownHTTP = None
    if http is None and (config.tokenJWKS or config.connectHook or config.subscribeHook or config.publishHook):
        http = ownHTTP = PooledHTTP()
    verifier = None
    keyed = config.tokenSecret or config.tokenPublicKey or config.tokenJWKS
    if keyed:
        publicKey = None
        if config.tokenPublicKey:
            publicKey = _readPublicKey(config.tokenPublicKey)
        previous = []
        if config.tokenPreviousKey:
            if config.tokenPreviousUntil is None:
                raise ValueError("a previous token key needs the time until which it is accepted")
            key: Any = config.tokenPreviousKey
            if isinstance(key, bytes) and key.startswith(b"-----BEGIN"):
                key = loadPublicKey(key)
            previous.append((key, config.tokenPreviousUntil))
        jwks = JWKSCache(config.tokenJWKS, clock, http) if config.tokenJWKS else None
        verifier = TokenVerifier(
            clock,
            secret=config.tokenSecret,
            publicKey=publicKey,
            jwks=jwks,
            previous=previous,
            audience=config.tokenAudience,
            issuer=config.tokenIssuer,
            leeway=config.tokenLeeway,
            requireSub=config.tokenRequireSub,
        )
    rules = None
    if config.rulesPath is not None:
        rules = ChannelRules.fromFile(config.rulesPath)
    hooks = None
    if config.connectHook or config.subscribeHook or config.publishHook:
        hooks = BackendHooks(
            clock,
            http,
            connect=config.connectHook,
            subscribe=config.subscribeHook,
            publish=config.publishHook,
            timeout=config.hookTimeout,
            forwardHeaders=config.hookHeaders,
        )
    if verifier is None and rules is None and hooks is None:
        return None
    authorizer = CometAuthorizer(
        clock, verifier, rules, hooks, grace=config.tokenGrace, requireToken=config.tokenRequired
    )
    authorizer.http = ownHTTP
    return authorizer


def _readPublicKey(value: Any) -> Any:
    if isinstance(value, bytes):
        return loadPublicKey(value)
    try:
        with open(value, "rb") as f:
            pem = f.read()
    except OSError as e:
        raise ValueError("cannot read the token public key %s: %s" % (value, e.strerror))
    return loadPublicKey(pem)
