"""Signing keys made in the test, their JWKS file, and JWTs signed with them (PyJWT)."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

ISSUER = "https://issuer.test"
AUDIENCE = "https://api.test"
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


@dataclass(frozen=True)
class SigningKey:
    kid: str
    alg: str
    private: PrivateKey

    @classmethod
    def new(cls, alg: str, kid: str | None = None) -> SigningKey:
        private: PrivateKey
        if alg == "RS256":
            private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        elif alg == "ES256":
            private = ec.generate_private_key(ec.SECP256R1())
        else:
            private = ed25519.Ed25519PrivateKey.generate()
        return cls(kid or f"{alg}-{uuid.uuid4().hex[:8]}", alg, private)

    def jwk(self) -> dict[str, Any]:
        public = self.private.public_key()
        if isinstance(public, rsa.RSAPublicKey):
            data = RSAAlgorithm.to_jwk(public, as_dict=True)
        elif isinstance(public, ec.EllipticCurvePublicKey):
            data = ECAlgorithm.to_jwk(public, as_dict=True)
        else:
            data = OKPAlgorithm.to_jwk(public, as_dict=True)
        return {**data, "kid": self.kid, "alg": self.alg, "use": "sig"}

    def sign(self, claims: dict[str, Any] | None = None, **overrides: Any) -> str:
        """A JWT of the standard claims with these (a None value leaves a claim out)."""
        merged = {**standard_claims(), **(claims or {}), **overrides}
        return jwt.encode(
            {name: value for name, value in merged.items() if value is not None},
            self.private,
            algorithm=self.alg,
            headers={"kid": self.kid},
        )


def standard_claims(ttl: int = 300) -> dict[str, Any]:
    now = int(time.time())
    return {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "alice",
        "azp": "web",
        "scope": "read write",
        "jti": uuid.uuid4().hex,
        "iat": now,
        "exp": now + ttl,
    }


def write_jwks(path: Path, *keys: SigningKey, extra: list[dict[str, Any]] | None = None) -> Path:
    path.write_text(json.dumps({"keys": [key.jwk() for key in keys] + (extra or [])}))
    return path
