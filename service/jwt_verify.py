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

import base64
import binascii
import hashlib
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import jwt
import orjson

from service import validation
from service.errors import BadRequest
from service.settings import Settings, SettingsError, env_name

ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
MAX_JWT_CHARS = 8192
# A jti goes into JSON answers and X-Token-Id as it is: printable ASCII without " and \.
JTI_RE = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]{1,256}")


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


def named_kid(value: str) -> str | None:
    """The ``kid`` a JWT-shaped value's header names (unverified), if any."""
    header = unverified_header(value)
    kid = None if header is None else header.get("kid")
    return kid if isinstance(kid, str) else None


def unverified_header(value: str) -> dict[str, Any] | None:
    """The header of a JWT-shaped value, unverified. Only its first segment is decoded
    (PyJWT's ``get_unverified_header`` decodes all three, and ``decode`` does it again)."""
    if not looks_like_jwt(value):
        return None
    head = value.partition(".")[0]
    try:
        header = orjson.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    except (ValueError, binascii.Error):
        return None
    return header if isinstance(header, dict) else None


@dataclass(frozen=True, slots=True)
class JwtPolicy:
    """What a JWT must be to be ours: the service's settings, also served to gateways that
    verify JWTs themselves (``GET /v1/jwt/config``), so both judge a JWT alike."""

    issuers: tuple[str, ...]
    audience: str | None
    max_ttl: int  # s
    leeway: int  # s
    user_claim: str
    app_claims: tuple[str, ...]

    @classmethod
    def of(cls, settings: Settings) -> JwtPolicy:
        return cls(
            settings.jwt_issuers, settings.jwt_audience, settings.jwt_max_ttl,
            settings.jwt_leeway, settings.jwt_user_claim, settings.jwt_app_claims,
        )  # fmt: skip

    def public(self) -> dict[str, Any]:
        return {
            "issuers": list(self.issuers), "audience": self.audience, "max_ttl": self.max_ttl,
            "leeway": self.leeway, "user_claim": self.user_claim,
            "app_claims": list(self.app_claims),
        }  # fmt: skip

    @classmethod
    def from_public(cls, body: dict[str, Any]) -> JwtPolicy:
        """The policy ``public`` wrote; ValueError if ``body`` is not one."""
        try:
            policy = cls(
                tuple(body["issuers"]), body["audience"], int(body["max_ttl"]),
                int(body["leeway"]), body["user_claim"], tuple(body["app_claims"]),
            )  # fmt: skip
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a JWT policy: {exc!r}") from None
        texts = [*policy.issuers, policy.user_claim, *policy.app_claims]
        if not all(isinstance(t, str) for t in texts) or not policy.app_claims:
            raise ValueError("not a JWT policy: claims and issuers must be strings")
        if policy.audience is not None and not isinstance(policy.audience, str):
            raise ValueError("not a JWT policy: audience must be a string or null")
        return policy


@dataclass(frozen=True, slots=True)
class KeySet:
    """The signing keys of a JWKS, by kid (a key without ``kid`` is under ""), and their
    public JWKs as given (what gateways are sent)."""

    keys: dict[str, jwt.PyJWK]
    jwks: dict[str, Any]


NO_KEYS = KeySet({}, {"keys": []})


def load_jwks(path: str) -> KeySet:
    """The keys of the JWKS file at ``path``."""
    where = f"{env_name('jwt_jwks_file')}={path}"
    try:
        with open(path, encoding="utf-8") as file:
            document = json.load(file)
    except (OSError, ValueError) as exc:
        raise JwksError(f"{where}: cannot read a JSON JWKS ({exc})") from None
    return parse_jwks(document, where)


def parse_jwks(document: Any, where: str) -> KeySet:
    """The keys of a JWKS document; JwksError (naming ``where``) if it is unusable."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise JwksError(f'{where}: must be a JWKS, {{"keys": [...]}}')
    keys: dict[str, jwt.PyJWK] = {}
    kept: list[dict[str, Any]] = []
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
        kept.append(entry)
    if not keys:
        raise JwksError(f"{where}: holds no signing key")
    return KeySet(keys, {"keys": kept})


class JwtVerifier:
    """Verifies JWTs; keeps the ones it verified (``cache_entries`` at most, the oldest
    dropped first) so that a JWT presented again costs a hash and a clock check, not a signature
    check: the signature, issuer, audience and lifetime of a given JWT never change, only
    whether it is yet (``nbf``, ``iat``) or still (``exp``) valid."""

    CACHE_ENTRIES = 10_000

    def __init__(
        self,
        policy: JwtPolicy,
        keys: KeySet,
        clock: Callable[[], float] = time.time,
        cache_entries: int = CACHE_ENTRIES,
    ) -> None:
        self.policy = policy
        self.cache_entries = cache_entries
        self._clock = clock
        # Digest of the JWT -> (its claims, when it becomes valid, s); failures are not kept,
        # so a flood of forged JWTs cannot push out the good ones.
        self._verified: dict[bytes, tuple[JwtClaims, float]] = {}
        self.key_set = keys
        self._keys = keys.keys
        self._issuers = list(policy.issuers)
        self._leeway = policy.leeway
        required = ["exp", "iat", "iss", "jti"]
        self._options: Any = {"require": required, "verify_aud": policy.audience is not None}

    @classmethod
    def of(cls, settings: Settings) -> JwtVerifier | None:
        """From the JWKS file; with a JWKS URL, without keys until they are fetched."""
        policy = JwtPolicy.of(settings)
        if settings.jwt_jwks_file is not None:
            return cls(policy, load_jwks(settings.jwt_jwks_file))
        return None if settings.jwt_jwks_url is None else cls(policy, NO_KEYS)

    def replace_keys(self, keys: KeySet) -> None:
        """New keys (a JWKS fetched again): JWTs verified with a key now gone are forgotten."""
        self.key_set = keys
        self._keys = keys.keys
        self._verified = {}

    def holds(self, kid: str) -> bool:
        return kid in self._keys

    def names_unknown_key(self, value: str) -> bool:
        """A JWT-shaped value whose header names a ``kid`` we have no key for."""
        kid = named_kid(value)
        return kid is not None and kid not in self._keys

    def verify(self, value: str) -> Verdict:
        if not looks_like_jwt(value):
            return None
        digest = hashlib.blake2b(value.encode(), digest_size=16).digest()
        seen = self._verified.get(digest)
        if seen is not None:
            claims, valid_from = seen
            now, leeway = self._clock(), self._leeway
            live = valid_from - leeway <= now < claims.expires_at_ms / 1000 + leeway
            return claims if live else INVALID
        verdict = self._verify(value)
        if isinstance(verdict, JwtClaims):
            if len(self._verified) >= self.cache_entries:
                # The oldest first (insertion order): no cliff past the bound.
                del self._verified[next(iter(self._verified))]
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
                audience=self.policy.audience,
                options=self._options,
                leeway=self._leeway,
            )
        except jwt.PyJWTError:
            return INVALID
        return self._mapped(claims)

    def _key(self, value: str) -> jwt.PyJWK | None:
        header = unverified_header(value)
        if header is None:
            return None
        kid = header.get("kid")
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))
        return self._keys.get(kid) if isinstance(kid, str) else None

    def _mapped(self, claims: dict[str, Any]) -> Verdict:
        jti, iat, exp = claims.get("jti"), claims["iat"], claims["exp"]
        user, app = claims.get(self.policy.user_claim), self._app(claims)
        if not isinstance(jti, str) or JTI_RE.fullmatch(jti) is None:
            return INVALID
        if exp - iat > self.policy.max_ttl or not isinstance(user, str) or app is None:
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
        for name in self.policy.app_claims:
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
