"""
Connection tokens: every good kind of key is accepted, every bad token in
issue 12's list is refused with the documented error, and a JWKS key set
is fetched, cached and refetched without blocking.
"""

import json

from treq.testing import StubTreq
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from txcomet._auth.tokens import MAX_TOKEN_SIZE, JWKSCache, TokenVerifier, bearerToken, loadPublicKey
from txcomet._model.errors import CometError

from tests.support.auth import (
    EC_KEY,
    ED_KEY,
    RSA_KEY,
    RSA_OTHER,
    SECRET,
    hmacWith,
    jwk,
    mint,
    publicPEM,
    unsigned,
)

NOW = 1_800_000_000


def clockAt(t=NOW):
    clock = Clock()
    clock.advance(t)
    return clock


class VerifierMixin:
    def claimsOf(self, verifier, token):
        return self.successResultOf(verifier.verify(token))

    def refused(self, verifier, token, code="invalid_token"):
        failure = self.failureResultOf(verifier.verify(token), CometError)
        self.assertEqual(failure.value.code, code, failure.value.message)
        return failure.value


class GoodTokenTests(VerifierMixin, SynchronousTestCase):
    def test_hmac(self):
        """
        HS256, HS384 and HS512 tokens signed with the secret verify; their
        claims are read.
        """
        verifier = TokenVerifier(clockAt(), secret=SECRET)
        for algorithm in ("HS256", "HS384", "HS512"):
            claims = self.claimsOf(
                verifier,
                mint({"sub": "alice", "exp": NOW + 60, "info": {"name": "A"}, "channels": ["a"]}, algorithm=algorithm),
            )
            self.assertEqual((claims.sub, claims.exp, claims.info, claims.channels), ("alice", NOW + 60, {"name": "A"}, ["a"]))

    def test_publicKeys(self):
        """
        RS256, PS256, ES256 and EdDSA tokens verify against their public
        keys read from PEM.
        """
        for private, algorithm in [(RSA_KEY, "RS256"), (RSA_KEY, "PS256"), (EC_KEY, "ES256"), (ED_KEY, "EdDSA")]:
            verifier = TokenVerifier(clockAt(), publicKey=loadPublicKey(publicPEM(private)))
            claims = self.claimsOf(verifier, mint({"sub": "bob"}, private, algorithm))
            self.assertEqual(claims.sub, "bob", algorithm)

    def test_anonymous(self):
        """
        A token with an empty C{sub} is anonymous: C{sub} is C{None}.
        """
        verifier = TokenVerifier(clockAt(), secret=SECRET)
        self.assertIsNone(self.claimsOf(verifier, mint({"sub": ""})).sub)

    def test_leeway(self):
        """
        A token expired less than the leeway ago still verifies.
        """
        verifier = TokenVerifier(clockAt(), secret=SECRET, leeway=5)
        self.assertEqual(self.claimsOf(verifier, mint({"sub": "a", "exp": NOW - 3})).sub, "a")

    def test_previousKeyUntil(self):
        """
        During a rotation, a token signed with the previous secret verifies
        until the given time, and not after.
        """
        clock = clockAt()
        verifier = TokenVerifier(clock, secret=SECRET, previous=[("old-secret-old-secret-old-secret!", NOW + 100)])
        old = mint({"sub": "a"}, "old-secret-old-secret-old-secret!")
        self.assertEqual(self.claimsOf(verifier, old).sub, "a")
        clock.advance(100)
        self.refused(verifier, old)
        self.assertEqual(self.claimsOf(verifier, mint({"sub": "a"})).sub, "a")

    def test_audienceIssuer(self):
        """
        With an audience and issuer configured, a token carrying both
        verifies.
        """
        verifier = TokenVerifier(clockAt(), secret=SECRET, audience="comet", issuer="https://app")
        claims = self.claimsOf(verifier, mint({"sub": "a", "aud": "comet", "iss": "https://app"}))
        self.assertEqual(claims.sub, "a")

    def test_bearer(self):
        """
        The token of an Authorization header is read only with the Bearer
        scheme.
        """
        self.assertEqual(bearerToken("Bearer abc"), "abc")
        self.assertEqual(bearerToken("bearer  abc "), "abc")
        self.assertIsNone(bearerToken("Basic abc"))
        self.assertIsNone(bearerToken(None))


class BadTokenTests(VerifierMixin, SynchronousTestCase):
    """
    Every bad token of issue 12's list, refused with the documented code.
    """

    def setUp(self):
        self.clock = clockAt()
        self.hmac = TokenVerifier(self.clock, secret=SECRET, audience="comet", issuer="app", requireSub=True)
        self.rsa = TokenVerifier(self.clock, publicKey=loadPublicKey(publicPEM(RSA_KEY)))

    def good(self, **claims):
        base = {"sub": "alice", "aud": "comet", "iss": "app", "exp": NOW + 60}
        base.update(claims)
        return base

    def test_algNone(self):
        """
        An C{alg: none} token is refused by both verifiers.
        """
        self.refused(self.hmac, unsigned(self.good()))
        self.refused(self.rsa, unsigned({"sub": "a"}))

    def test_hmacWithPublicKey(self):
        """
        An HS256 token whose secret is the server's RSA public key (the
        classic algorithm confusion) is refused.
        """
        self.refused(self.rsa, hmacWith({"sub": "a"}, publicPEM(RSA_KEY)))

    def test_wrongKey(self):
        """
        Tokens signed with another secret or another RSA key are refused.
        """
        self.refused(self.hmac, mint(self.good(), "another-secret-another-secret-12"))
        self.refused(self.rsa, mint({"sub": "a"}, RSA_OTHER, "RS256"))

    def test_algorithmOfAnotherKeyType(self):
        """
        An ES256 token is refused by an RSA-keyed server, whatever it says.
        """
        self.refused(self.rsa, mint({"sub": "a"}, EC_KEY, "ES256"))

    def test_tampered(self):
        """
        A token whose payload was changed after signing is refused.
        """
        token = mint(self.good())
        header, payload, signature = token.split(".")
        from tests.support.auth import b64

        forged = b64(json.dumps(self.good(sub="admin")).encode())
        self.refused(self.hmac, ".".join([header, forged, signature]))

    def test_expired(self):
        """
        An expired token is C{token_expired}.
        """
        self.refused(self.hmac, mint(self.good(exp=NOW - 60)), "token_expired")

    def test_notYetValid(self):
        """
        A token whose C{nbf} is in the future is refused, as is one issued
        in the future.
        """
        self.refused(self.hmac, mint(self.good(nbf=NOW + 600)))
        self.refused(self.hmac, mint(self.good(iat=NOW + 600)))

    def test_wrongAudienceIssuer(self):
        """
        A token for another audience, from another issuer, or with neither
        is refused.
        """
        self.refused(self.hmac, mint(self.good(aud="other")))
        self.refused(self.hmac, mint(self.good(iss="evil")))
        claims = self.good()
        del claims["aud"]
        self.refused(self.hmac, mint(claims))

    def test_missingSub(self):
        """
        Where a user is required, a token without C{sub} is refused.
        """
        claims = self.good()
        del claims["sub"]
        self.refused(self.hmac, mint(claims))

    def test_tooLarge(self):
        """
        A token over 8 KiB is refused before it is decoded.
        """
        token = mint(self.good(info={"pad": "x" * MAX_TOKEN_SIZE}))
        error = self.refused(self.hmac, token)
        self.assertIn("larger", error.message)

    def test_garbage(self):
        """
        Non-JWT garbage, an empty string and a non-string are refused.
        """
        for garbage in ["garbage", "a.b.c", "", "...", "\u2603.\u2603.\u2603", 42, None]:
            self.refused(self.hmac, garbage)

    def test_badClaimTypes(self):
        """
        Claims of the wrong type are refused: a string C{exp}, a C{sub}
        that is not a string, C{channels} that is not an array of strings.
        """
        self.refused(self.hmac, mint(self.good(exp="soon")))
        self.refused(self.hmac, mint(self.good(sub=5)))
        self.refused(self.hmac, mint(self.good(channels="a")))
        self.refused(self.hmac, mint(self.good(info=[1])))


class _JWKS(Resource):
    isLeaf = True

    def __init__(self, keys):
        super().__init__()
        self.keys = keys
        self.requests = 0
        self.mode = "ok"
        self.held = []

    def render_GET(self, request):
        self.requests += 1
        if self.mode == "down":
            request.setResponseCode(500)
            return b"no"
        if self.mode == "slow":
            self.held.append(request)
            return NOT_DONE_YET
        return json.dumps({"keys": self.keys}).encode()


class JWKSTests(VerifierMixin, SynchronousTestCase):
    def setUp(self):
        self.clock = clockAt()
        self.site = _JWKS([jwk(RSA_KEY, "k1")])
        self.http = StubTreq(self.site)
        self.jwks = JWKSCache("http://keys.example/jwks.json", self.clock, self.http, timeout=1.0)
        self.verifier = TokenVerifier(self.clock, jwks=self.jwks)

    def test_fetchedAndCached(self):
        """
        The key set is fetched once for the first token and cached for the
        next.
        """
        token = mint({"sub": "a"}, RSA_KEY, "RS256", headers={"kid": "k1"})
        self.assertEqual(self.claimsOf(self.verifier, token).sub, "a")
        self.assertEqual(self.claimsOf(self.verifier, token).sub, "a")
        self.assertEqual(self.site.requests, 1)

    def test_unknownKidRefetches(self):
        """
        A token naming a kid the cache lacks makes it fetch the set again,
        and the newly published key works at once.
        """
        self.claimsOf(self.verifier, mint({"sub": "a"}, RSA_KEY, "RS256", headers={"kid": "k1"}))
        self.site.keys.append(jwk(RSA_OTHER, "k2"))
        self.clock.advance(60)
        claims = self.claimsOf(self.verifier, mint({"sub": "b"}, RSA_OTHER, "RS256", headers={"kid": "k2"}))
        self.assertEqual((claims.sub, self.site.requests), ("b", 2))

    def test_unknownKidRateLimited(self):
        """
        Unknown kids do not make the server fetch the set more than once
        per C{minRefetch} seconds: a flood of made-up kids costs one fetch.
        """
        self.claimsOf(self.verifier, mint({"sub": "a"}, RSA_KEY, "RS256", headers={"kid": "k1"}))
        for i in range(5):
            self.refused(self.verifier, mint({"sub": "a"}, RSA_KEY, "RS256", headers={"kid": "x%d" % i}))
        self.assertEqual(self.site.requests, 1)

    def test_down(self):
        """
        A key set that answers an error is C{unavailable}, not a pass.
        """
        self.site.mode = "down"
        self.refused(self.verifier, mint({"sub": "a"}, RSA_KEY, "RS256", headers={"kid": "k1"}), "unavailable")

    def test_slow(self):
        """
        A key set that does not answer within the timeout fails the tokens
        waiting for it with C{unavailable}; until then they wait, sharing
        one request, and nothing blocks.
        """
        self.site.mode = "slow"
        token = mint({"sub": "a"}, RSA_KEY, "RS256", headers={"kid": "k1"})
        first = self.verifier.verify(token)
        second = self.verifier.verify(token)
        self.assertNoResult(first)
        self.assertNoResult(second)
        self.assertEqual(self.site.requests, 1)
        self.clock.advance(1.0)
        for d in (first, second):
            self.assertEqual(self.failureResultOf(d, CometError).value.code, "unavailable")

    def test_wrongKeyFromSet(self):
        """
        A token whose kid is in the set but signed with another key is
        refused.
        """
        self.refused(self.verifier, mint({"sub": "a"}, RSA_OTHER, "RS256", headers={"kid": "k1"}))
