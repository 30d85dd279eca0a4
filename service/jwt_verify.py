"""JWT verification with PyJWT: the keys of a JWKS file, asymmetric algorithms only.

A value is taken for a JWT when it has the shape (three base64url segments) and its header
names one of our keys (by ``kid``, or the only key when there is one). Such a JWT is then
ours to judge: a bad signature, a wrong ``iss``/``aud``, an expired or not yet valid one, a
lifetime above ``TOKENSTORE_JWT_MAX_TTL`` or a missing claim make it invalid (``INVALID``).
Anything else is no JWT of ours (``None``): the caller may still find it as a registered token.

``alg: none`` and HMAC are refused: only the algorithms in ``ALGORITHMS`` are ever passed to
PyJWT, and each key is bound to one of them (its ``alg``, or the one its type implies), so a
public key can never serve as an HMAC secret.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import jwt

from service import validation
from service.errors import BadRequest
from service.settings import Settings, SettingsError, env_name

ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
MAX_JWT_CHARS = 8192
MAX_JTI_CHARS = 256


class JwksError(SettingsError):
    """The JWKS file cannot be used (start-up stops with this message)."""


@dataclass(frozen=True, slots=True)
class JwtClaims:
    """What the service uses of a verified JWT."""

    issuer: str
    jti: str
    user_id: str
    app_id: str
    scopes: tuple[str, ...]
    issued_at_us: int
    expires_at_ms: int
    valid_from_s: float = 0.0  # nbf or iat, whichever is later


class _Invalid:
    def __repr__(self) -> str:
        return "INVALID"


INVALID: Final = _Invalid()
Verdict = JwtClaims | _Invalid | None


def looks_like_jwt(value: str) -> bool:
    return len(value) <= MAX_JWT_CHARS and _SHAPE.fullmatch(value) is not None


def load_jwks(path: str) -> dict[str, jwt.PyJWK]:
    """kid -> key of the JWKS file at ``path`` (a key without ``kid`` is stored under "")."""
    where = f"{env_name('jwt_jwks_file')}={path}"
    try:
        with open(path, encoding="utf-8") as file:
            document = json.load(file)
    except (OSError, ValueError) as exc:
        raise JwksError(f"{where}: cannot read a JSON JWKS ({exc})") from None
    return parse_jwks(document, where)


def parse_jwks(document: Any, where: str) -> dict[str, jwt.PyJWK]:
    """kid -> key of a JWKS document; JwksError (naming ``where``) if it is unusable."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise JwksError(f'{where}: must be a JWKS, {{"keys": [...]}}')
    keys: dict[str, jwt.PyJWK] = {}
    for entry in document["keys"]:
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
            continue
        kid = entry.get("kid", "")
        try:
            key = jwt.PyJWK(entry)
        except jwt.PyJWTError as exc:
            raise JwksError(f"{where}: key {kid!r} is unusable ({exc})") from None
        if key.algorithm_name not in ALGORITHMS:
            raise JwksError(
                f"{where}: key {kid!r} has algorithm {key.algorithm_name}; only "
                f"{', '.join(sorted(ALGORITHMS))} are accepted (no symmetric keys)"
            )
        keys[str(kid)] = key
    if not keys:
        raise JwksError(f"{where}: holds no signing key")
    return keys


class JwtVerifier:
    """Verifies JWTs; keeps the ones it verified (``CACHE_ENTRIES`` at most, then it starts
    over) so that a JWT presented again costs a hash and a clock check, not a signature
    check: the signature, issuer, audience and lifetime of a given JWT never change, only
    whether it is yet (``nbf``, ``iat``) or still (``exp``) valid."""

    CACHE_ENTRIES = 10_000

    def __init__(
        self,
        settings: Settings,
        keys: dict[str, jwt.PyJWK],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._clock = clock
        # Digest of the JWT -> (its claims, when it becomes valid, s); failures are not kept,
        # so a flood of forged JWTs cannot push out the good ones.
        self._verified: dict[bytes, tuple[JwtClaims, float]] = {}
        self._keys = keys
        self._issuers = list(settings.jwt_issuers)
        self._audience = settings.jwt_audience
        self._max_ttl_s = settings.jwt_max_ttl
        self._user_claim = settings.jwt_user_claim
        self._app_claims = settings.jwt_app_claims
        required = ["exp", "iat", "iss", "jti"]
        self._options: Any = {"require": required, "verify_aud": self._audience is not None}

    @classmethod
    def of(cls, settings: Settings) -> JwtVerifier | None:
        """From the JWKS file; with a JWKS URL, without keys until they are fetched."""
        if settings.jwt_jwks_file is not None:
            return cls(settings, load_jwks(settings.jwt_jwks_file))
        return None if settings.jwt_jwks_url is None else cls(settings, {})

    def replace_keys(self, keys: dict[str, jwt.PyJWK]) -> None:
        """New keys (a JWKS fetched again): JWTs verified with a key now gone are forgotten."""
        self._keys = keys
        self._verified = {}

    def names_unknown_key(self, value: str) -> bool:
        """A JWT-shaped value whose header names a ``kid`` we have no key for."""
        if not looks_like_jwt(value):
            return False
        try:
            kid = jwt.get_unverified_header(value).get("kid")
        except jwt.PyJWTError:
            return False
        return isinstance(kid, str) and kid not in self._keys

    def verify(self, value: str) -> Verdict:
        if not looks_like_jwt(value):
            return None
        digest = hashlib.blake2b(value.encode(), digest_size=16).digest()
        seen = self._verified.get(digest)
        if seen is not None:
            claims, valid_from = seen
            return claims if valid_from <= self._clock() < claims.expires_at_ms / 1000 else INVALID
        verdict = self._verify(value)
        if isinstance(verdict, JwtClaims):
            if len(self._verified) >= self.CACHE_ENTRIES:
                self._verified = {}
            self._verified[digest] = (verdict, verdict.valid_from_s)
        return verdict

    def _verify(self, value: str) -> Verdict:
        key = self._key(value)
        if key is None:
            return None
        try:
            claims = jwt.decode(
                value,
                key,
                algorithms=[key.algorithm_name],
                issuer=self._issuers,
                audience=self._audience,
                options=self._options,
            )
        except jwt.PyJWTError:
            return INVALID
        return self._mapped(claims)

    def _key(self, value: str) -> jwt.PyJWK | None:
        try:
            header = jwt.get_unverified_header(value)
        except jwt.PyJWTError:
            return None
        kid = header.get("kid")
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))
        return self._keys.get(kid) if isinstance(kid, str) else None

    def _mapped(self, claims: dict[str, Any]) -> Verdict:
        jti, iat, exp = claims.get("jti"), claims["iat"], claims["exp"]
        user, app = claims.get(self._user_claim), self._app(claims)
        if not isinstance(jti, str) or not 1 <= len(jti) <= MAX_JTI_CHARS:
            return INVALID
        if exp - iat > self._max_ttl_s or not isinstance(user, str) or app is None:
            return INVALID
        try:
            validation.identifier("user_id", user)
            validation.identifier("app_id", app)
            scopes = validation.scopes(_scopes(claims))
        except BadRequest:
            return INVALID
        valid_from = max(iat, claims.get("nbf", iat))
        return JwtClaims(
            claims["iss"], jti, user, app, scopes, int(iat * 1_000_000), int(exp * 1000),
            valid_from,
        )  # fmt: skip

    def _app(self, claims: dict[str, Any]) -> str | None:
        for name in self._app_claims:
            value = claims.get(name)
            if isinstance(value, list):
                value = value[0] if value else None
            if isinstance(value, str):
                return value
        return None


def _scopes(claims: dict[str, Any]) -> list[str]:
    """``scope`` (RFC 9068: a space-separated string) or ``scp`` (a list, or a string)."""
    raw = claims.get("scope", claims.get("scp", ""))
    if isinstance(raw, str):
        return [s for s in raw.split(" ") if s]
    if isinstance(raw, list) and all(isinstance(s, str) for s in raw):
        return raw
    raise BadRequest("scope claim is neither a string nor a list of strings")
