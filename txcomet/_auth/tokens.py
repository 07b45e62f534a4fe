# -*- test-case-name: tests.auth.test_tokens,tests.auth.test_authorizer -*-
"""
Connection and channel tokens: JSON Web Tokens checked with PyJWT.

A L{TokenVerifier} knows the keys a server trusts (a shared secret for
HS256/384/512, a public key for RS*/PS*/ES*/EdDSA, or a JWKS URL whose keys
are fetched with treq and cached) and the claims it requires (C{aud},
C{iss}), and turns a token into L{Claims} or a L{CometError}:
C{invalid_token} (401), C{token_expired} (401) or C{unavailable} (503, the
key set could not be fetched).

Which algorithms a token may use follows from the key, never from the
token: a server with a secret takes only HS*, one with an RSA key only
RS*/PS*, and so on; C{alg: none} is never accepted.  Times (C{exp},
C{nbf}, C{iat}) are checked here against the injected clock, with a small
leeway, so expiry can be tested without waiting.
"""

import json
from typing import Any, Dict, List, Optional, Sequence, Tuple

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from twisted.internet.defer import Deferred, fail, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from txcomet._model.errors import CometError

log = Logger()

#: The largest token accepted, in bytes (of its compact form).
MAX_TOKEN_SIZE = 8 * 1024

HMAC_ALGORITHMS = ("HS256", "HS384", "HS512")
RSA_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
EDDSA_ALGORITHMS = ("EdDSA",)
_EC_ALGORITHMS = {"secp256r1": ("ES256",), "secp384r1": ("ES384",), "secp521r1": ("ES512",)}


def algorithmsForKey(key: Any) -> Tuple[str, ...]:
    """
    The algorithms a token signed with (the private half of) C{key} may
    name: C{key} is a secret (L{bytes}/L{str}) or a public key object.
    """
    if isinstance(key, (bytes, str)):
        return HMAC_ALGORITHMS
    if isinstance(key, rsa.RSAPublicKey):
        return RSA_ALGORITHMS
    if isinstance(key, ec.EllipticCurvePublicKey):
        return _EC_ALGORITHMS.get(key.curve.name, ())
    if isinstance(key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
        return EDDSA_ALGORITHMS
    raise ValueError("unsupported key type %s" % (type(key).__name__,))


def loadPublicKey(pem: bytes) -> Any:
    """
    A public key from PEM text (RSA, EC P-256/384/521, Ed25519, Ed448), or
    L{ValueError} saying why not.
    """
    try:
        key = load_pem_public_key(pem)
    except Exception as e:
        raise ValueError("not a PEM public key (%s)" % (e.__class__.__name__,))
    algorithmsForKey(key)
    return key


class Claims:
    """
    What a verified token says.

    @ivar sub: the user (L{str}); C{None} for an anonymous token (no or
        empty C{sub}).
    @ivar exp: when the token expires (seconds since the epoch), or C{None}.
    @ivar info: the C{info} claim (a dict shown in presence), or C{None}.
    @ivar channels: the C{channels} claim: channels the server subscribes
        the session to on join.
    @ivar channel: a channel token's C{channel} claim, or C{None}.
    @ivar raw: every claim, as decoded.
    """

    def __init__(self, raw: Dict[str, Any]) -> None:
        self.raw = raw
        sub = raw.get("sub")
        self.sub: Optional[str] = sub or None
        self.exp: Optional[float] = raw.get("exp")
        self.info: Optional[dict] = raw.get("info")
        self.channels: List[str] = list(raw.get("channels") or ())
        self.channel: Optional[str] = raw.get("channel")

    def __repr__(self) -> str:
        # Claims, never the token: fine in a log line.
        return "<Claims sub=%r exp=%r>" % (self.sub, self.exp)


def _checkClaimTypes(raw: Any) -> None:
    if not isinstance(raw, dict):
        raise CometError("invalid_token", "The token's payload is not a JSON object.")
    for name in ("exp", "nbf", "iat"):
        value = raw.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise CometError("invalid_token", "The %r claim must be a number of seconds." % (name,))
    sub = raw.get("sub")
    if sub is not None and (not isinstance(sub, str) or len(sub) > 128):
        raise CometError("invalid_token", "The 'sub' claim must be a string of at most 128 characters.")
    if raw.get("info") is not None and not isinstance(raw["info"], dict):
        raise CometError("invalid_token", "The 'info' claim must be an object.")
    channels = raw.get("channels")
    if channels is not None and (
        not isinstance(channels, list) or not all(isinstance(c, str) for c in channels)
    ):
        raise CometError("invalid_token", "The 'channels' claim must be an array of strings.")
    if raw.get("channel") is not None and not isinstance(raw["channel"], str):
        raise CometError("invalid_token", "The 'channel' claim must be a string.")


class _Key:
    """
    One trusted key: a secret or public key object, its algorithms, and
    (for a previous key) until when it is trusted.
    """

    def __init__(self, key: Any, until: Optional[float] = None, kid: Optional[str] = None) -> None:
        self.key = key
        self.algorithms = algorithmsForKey(key)
        self.until = until
        self.kid = kid


class JWKSCache:
    """
    The keys of a JWKS URL, fetched with treq and cached.

    A token naming a C{kid} the cache does not hold makes the cache fetch
    the set again (at most once every C{minRefetch} seconds; concurrent
    tokens share one fetch), so a key the issuer has just added works at
    once.  Nothing blocks: a token waiting for the set gets a L{Deferred}.
    A fetch that fails or takes longer than C{timeout} seconds fails the
    tokens waiting for it with C{unavailable}; keys already cached stay in
    use (until C{maxAge} seconds after they were fetched).
    """

    def __init__(
        self,
        url: str,
        clock: Any,
        http: Any = None,
        timeout: float = 2.0,
        maxAge: float = 3600.0,
        minRefetch: float = 30.0,
    ) -> None:
        if http is None:
            import treq as http
        self.url = url
        self.clock = clock
        self.http = http
        self.timeout = timeout
        self.maxAge = maxAge
        self.minRefetch = minRefetch
        self.keys: Dict[Optional[str], _Key] = {}
        self.fetchedAt: Optional[float] = None
        self._attemptedAt: Optional[float] = None
        self._inFlight: Optional[List[Deferred]] = None

    def key(self, kid: Optional[str]) -> Deferred:
        """
        The L{_Key} for C{kid} (C{None}: the set's only key), fetching the
        set if needed; fails with L{CometError}.
        """
        now = self.clock.seconds()
        fresh = self.fetchedAt is not None and now - self.fetchedAt < self.maxAge
        found = self._lookup(kid) if fresh else None
        if found is not None:
            return succeed(found)
        if (
            fresh
            and self._attemptedAt is not None
            and now - self._attemptedAt < self.minRefetch
        ):
            return fail(CometError("invalid_token", "The token's key (kid %r) is not in the key set." % (kid,)))

        def fetched(_: Any) -> _Key:
            found = self._lookup(kid)
            if found is None:
                raise CometError("invalid_token", "The token's key (kid %r) is not in the key set." % (kid,))
            return found

        return self._fetch().addCallback(fetched)

    def _lookup(self, kid: Optional[str]) -> Optional[_Key]:
        if kid is None:
            if len(self.keys) == 1:
                return next(iter(self.keys.values()))
            return None
        return self.keys.get(kid)

    def _fetch(self) -> Deferred:
        d: Deferred = Deferred()
        if self._inFlight is not None:
            self._inFlight.append(d)
            return d
        self._inFlight = [d]
        self._attemptedAt = self.clock.seconds()
        request = self.http.get(self.url, headers={b"Accept": [b"application/json"]})
        timer = self.clock.callLater(self.timeout, request.cancel)

        def got(response: Any) -> Any:
            if response.code != 200:
                raise ValueError("HTTP %d" % (response.code,))
            return self.http.content(response)

        def parsed(body: bytes) -> None:
            document = json.loads(body)
            keys: Dict[Optional[str], _Key] = {}
            for entry in document.get("keys", []):
                try:
                    jwk = jwt.PyJWK(entry)
                    key = _Key(jwk.key, kid=entry.get("kid"))
                except Exception as e:
                    log.warn("Skipping a key of {url}: {why}", url=self.url, why=e.__class__.__name__)
                    continue
                keys[entry.get("kid")] = key
            self.keys = keys
            self.fetchedAt = self.clock.seconds()

        def done(result: Any) -> None:
            if timer.active():
                timer.cancel()
            waiters, self._inFlight = self._inFlight or [], None
            if isinstance(result, Failure):
                log.warn(
                    "Fetching the key set {url} failed: {why}",
                    url=self.url,
                    why=result.getErrorMessage() or result.type.__name__,
                )
                for waiter in waiters:
                    waiter.errback(CometError("unavailable", "The token key set cannot be fetched right now."))
            else:
                for waiter in waiters:
                    waiter.callback(None)

        request.addCallback(got).addCallback(parsed).addBoth(done)
        return d


class TokenVerifier:
    """
    Checks connection and channel tokens.

    @param secret: the shared secret for HS* tokens, or C{None}.
    @param publicKey: a public key object (see L{loadPublicKey}), or C{None}.
    @param jwks: a L{JWKSCache}, or C{None}.
    @param previous: keys still trusted for a while during a rotation: a
        list of C{(secret or public key, until)} with C{until} in seconds
        since the epoch; after it, tokens signed with that key are refused.
    @param audience: the C{aud} a token must carry, or C{None} (not checked).
    @param issuer: the C{iss} a token must carry, or C{None} (not checked).
    @param leeway: seconds of clock skew allowed on C{exp}, C{nbf}, C{iat}.
    @param requireSub: whether a token without C{sub} is refused.
    """

    def __init__(
        self,
        clock: Any,
        secret: Optional[str] = None,
        publicKey: Any = None,
        jwks: Optional[JWKSCache] = None,
        previous: Sequence[Tuple[Any, float]] = (),
        audience: Optional[str] = None,
        issuer: Optional[str] = None,
        leeway: float = 5.0,
        requireSub: bool = False,
    ) -> None:
        self.clock = clock
        self.keys: List[_Key] = []
        if secret is not None:
            if not secret:
                raise ValueError("the token secret is empty")
            self.keys.append(_Key(secret.encode("utf-8") if isinstance(secret, str) else secret))
        if publicKey is not None:
            self.keys.append(_Key(publicKey))
        for key, until in previous:
            if isinstance(key, str):
                key = key.encode("utf-8")
            self.keys.append(_Key(key, until=until))
        self.jwks = jwks
        if not self.keys and jwks is None:
            raise ValueError("a token verifier needs a secret, a public key or a JWKS URL")
        self.audience = audience
        self.issuer = issuer
        self.leeway = leeway
        self.requireSub = requireSub

    def verify(self, token: object) -> Deferred:
        """
        Check C{token}: a L{Deferred} firing with its L{Claims}, or failing
        with L{CometError} (C{invalid_token}, C{token_expired},
        C{unavailable}).
        """
        try:
            header = self._header(token)
        except CometError as e:
            return fail(e)
        assert isinstance(token, str)
        algorithm = header.get("alg")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            return fail(CometError("invalid_token", "The token's 'kid' is not a string."))
        candidates = [k for k in self.keys if algorithm in k.algorithms]
        if self.jwks is not None and (kid is not None or not candidates):
            d = self.jwks.key(kid)
            d.addCallback(lambda key: self._decode(token, algorithm, [key]))
            return d
        try:
            return succeed(self._decode(token, algorithm, candidates))
        except CometError as e:
            return fail(e)

    def _header(self, token: object) -> dict:
        if not isinstance(token, str) or not token:
            raise CometError("invalid_token", "A token is a non-empty string.")
        if len(token) > MAX_TOKEN_SIZE:
            raise CometError("invalid_token", "The token is larger than %d bytes." % (MAX_TOKEN_SIZE,))
        try:
            header = jwt.get_unverified_header(token)
        except Exception:
            raise CometError("invalid_token", "The token is not a JSON Web Token.")
        algorithm = header.get("alg")
        if not isinstance(algorithm, str) or algorithm.lower() == "none":
            raise CometError("invalid_token", "The token names no signing algorithm this server takes.")
        return header

    def _decode(self, token: str, algorithm: str, keys: Sequence[_Key]) -> Claims:
        now = self.clock.seconds()
        usable = [k for k in keys if algorithm in k.algorithms and (k.until is None or now < k.until)]
        if not usable:
            raise CometError("invalid_token", "The token's algorithm %r does not fit this server's key." % (algorithm[:20],))
        raw: Any = None
        for key in usable:
            try:
                raw = jwt.decode(
                    token,
                    key.key,
                    algorithms=list(key.algorithms),
                    audience=self.audience,
                    issuer=self.issuer,
                    options={
                        # Times are checked below, on the injected clock.
                        "verify_exp": False,
                        "verify_nbf": False,
                        "verify_iat": False,
                        "verify_aud": self.audience is not None,
                        "verify_iss": self.issuer is not None,
                        "require": [],
                    },
                )
                break
            except jwt.InvalidSignatureError:
                continue
            except jwt.InvalidAudienceError:
                raise CometError("invalid_token", "The token is not for this audience.")
            except jwt.InvalidIssuerError:
                raise CometError("invalid_token", "The token is not from the expected issuer.")
            except jwt.MissingRequiredClaimError as e:
                raise CometError("invalid_token", "The token lacks the %r claim." % (e.claim,))
            except jwt.InvalidTokenError as e:
                raise CometError("invalid_token", "The token is not valid (%s)." % (e.__class__.__name__,))
            except Exception as e:
                # A key PyJWT will not use this way (an asymmetric key as an
                # HMAC secret, say): never a 500.
                raise CometError("invalid_token", "The token is not valid (%s)." % (e.__class__.__name__,))
        if raw is None:
            raise CometError("invalid_token", "The token's signature does not verify.")
        _checkClaimTypes(raw)
        leeway = self.leeway
        exp = raw.get("exp")
        if exp is not None and now >= exp + leeway:
            raise CometError("token_expired")
        nbf = raw.get("nbf")
        if nbf is not None and now < nbf - leeway:
            raise CometError("invalid_token", "The token is not valid yet (nbf).")
        iat = raw.get("iat")
        if iat is not None and now < iat - leeway:
            raise CometError("invalid_token", "The token was issued in the future (iat).")
        claims = Claims(raw)
        if self.requireSub and claims.sub is None:
            raise CometError("invalid_token", "The token names no user (sub).")
        return claims


def bearerToken(authorization: Optional[str]) -> Optional[str]:
    """
    The token of an C{Authorization: Bearer <token>} header value, or
    C{None}.
    """
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None
