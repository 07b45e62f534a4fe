"""
Keys and token minting for the authorization tests.
"""

import base64
import json
from typing import Any, Dict

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

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
