"""
For the authorization tests: keys, token minting, the shared rules file,
a hook backend and a session helper.
"""

import base64
import json
from typing import Any, Dict

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from txcomet.testing import RecordingDataChannel

#: The channel rules the tests share (docs/auth.md explains each).
EXAMPLE = """
[[channel]]
pattern = "notifications/{sub}"
subscribe = "owner"
presence = "nobody"

[[channel]]
pattern = "private/**"
subscribe = "token"

[[channel]]
pattern = "chat/**"
subscribe = "authenticated"
publish = "subscribers"
presence = "subscribers"
notices = false

[[channel]]
pattern = "news"
subscribe = "anyone"
history = "anyone"

[[channel]]
pattern = "users/{sub}/inbox"
subscribe = "owner"
publish = "owner"
"""

SECRET = "a-test-secret-long-enough-for-hs512-" + "s" * 28

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RSA_OTHER = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
ED_KEY = ed25519.Ed25519PrivateKey.generate()


def publicPEM(key: Any) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def mint(claims: Dict[str, Any], key: Any = SECRET, algorithm: str = "HS256", headers: Any = None) -> str:
    """
    A signed token.
    """
    return jwt.encode(claims, key, algorithm=algorithm, headers=headers)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unsigned(claims: Dict[str, Any]) -> str:
    """
    An C{alg: none} token.
    """
    header = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return header + "." + b64(json.dumps(claims).encode()) + "."


def hmacWith(claims: Dict[str, Any], secret: bytes) -> str:
    """
    An HS256 token made by hand with any bytes as the secret (PyJWT
    refuses a PEM key as an HMAC secret; an attacker does not).
    """
    import hashlib
    import hmac

    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = b64(json.dumps(claims).encode())
    signature = hmac.new(secret, (header + "." + payload).encode(), hashlib.sha256).digest()
    return header + "." + payload + "." + b64(signature)


def jwk(key: Any, kid: str) -> Dict[str, Any]:
    """
    The public JWK of C{key} (RSA) with C{kid}.
    """
    entry = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    entry.update(kid=kid, use="sig", alg="RS256")
    return entry


def tempPath(testCase: Any, name: str = "file") -> str:
    """
    A path in a temporary directory removed after C{testCase} (trial's
    C{mktemp} would write under the working directory when pytest runs
    the tests).
    """
    import shutil
    import tempfile

    directory = tempfile.mkdtemp(prefix="txcomet-auth-")
    testCase.addCleanup(shutil.rmtree, directory, True)
    return directory + "/" + name


class Backend(Resource):
    """
    A backend answering hook questions as its C{mode} says, remembering
    each question.
    """

    isLeaf = True

    def __init__(self):
        super().__init__()
        self.mode = "allow"
        self.questions = []
        self.held = []

    def render_POST(self, request):
        question = json.loads(request.content.read())
        self.questions.append(question)
        request.setHeader(b"Content-Type", b"application/json")
        if self.mode == "slow":
            self.held.append(request)
            return NOT_DONE_YET
        if self.mode == "error":
            request.setResponseCode(500)
            return b"{}"
        if self.mode == "deny":
            return json.dumps({"allow": False, "reason": "banned"}).encode()
        cookie = question.get("headers", {}).get("cookie", "")
        if question["hook"] == "connect" and "session=alice" in cookie:
            return json.dumps({"allow": True, "user": "alice", "info": {"name": "Alice"}, "channels": ["inbox/alice"]}).encode()
        if question["hook"] == "connect" and cookie:
            return json.dumps({"allow": False, "reason": "unknown cookie"}).encode()
        return json.dumps({"allow": True}).encode()


def joinAs(comet, user, channels=()):
    session = comet.hub.join(user=user)
    session = session.result
    for channel in channels:
        session.subscribe(channel)
    channel = RecordingDataChannel(oneShot=False)
    session.attach(channel)
    return session, channel
