"""JWT revocation: checking a verified JWT against the deny-list and the cut-offs, and
revoking JWTs (one by its ``jti``, or all of a user or an app issued before a moment).

A JWT is revoked when its ``jti`` is denied (until its ``exp``), or when it was issued
(``iat``) before a cut-off of its user (all apps, or its app) or of its app (the app
watermark, which also revokes our own tokens). ``iat`` has whole seconds: a JWT issued in the
second of a cut-off, after it, is cut off too (the safe side).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from service.errors import BadRequest, Forbidden
from service.jwks_fetch import JwksFetcher
from service.jwt_verify import INVALID, JTI_RE, JwtClaims, JwtVerifier, KeySet, Verdict
from service.records import TokenRecord, json_text
from service.scope import Scope
from service.settings import Settings
from service.storage import Store

JWT_TYPE = b'"JWT"'
_EMPTY_PIECES = [b"", b"", b""]  # client name, device name, metadata
# A deny key outlives its JWT by this much: PyJWT judges exp by this host's clock, the key
# expires by Redis's; a Redis clock ahead by less than this cannot revive a denied JWT.
CLOCK_MARGIN_MS = 60_000


@dataclass(frozen=True, slots=True)
class JwtDenial:
    """A denied jti: of ``issuer`` (None: every configured issuer), until ``expires_at``
    (epoch ms)."""

    jti: str
    issuer: str | None
    expires_at: int


def as_record(claims: JwtClaims) -> TokenRecord:
    """A live JWT in the shape of our tokens' records, so that every answer is the same:
    id = ``jti``, type ``JWT``, created = ``iat``, expires = ``exp``."""
    user = json_text(claims.user_id)
    scopes = " ".join(claims.scopes).encode()
    pieces = [json_text(claims.app_id), user, JWT_TYPE, scopes, *_EMPTY_PIECES]
    return TokenRecord(
        claims.jti,
        expires_at=claims.expires_at_ms,
        created_us=claims.issued_at_us,
        digest=b"",
        flags=b"0",
        user_json=user,
        pieces=pieces,
    )


class JwtRules:
    def __init__(self, store: Store, settings: Settings, verifier: JwtVerifier) -> None:
        self.store = store
        self.verifier = verifier
        url = settings.jwt_jwks_url
        self.fetcher = None if url is None else JwksFetcher(url, verifier)
        self._issuers = settings.jwt_issuers
        # A JWT is accepted up to the leeway past its exp: denials and cut-offs last as long.
        self._lifetime_ms = (settings.jwt_max_ttl + settings.jwt_leeway) * 1000
        self._margin_ms = settings.jwt_leeway * 1000 + CLOCK_MARGIN_MS

    async def verify(self, value: str) -> Verdict:
        """The verdict on ``value``; a JWT naming a kid we do not hold makes a JWKS URL be
        fetched again (rate-limited) first."""
        verdict = self.verifier.verify(value)
        fetcher = self.fetcher
        if verdict is not None or fetcher is None or not self.verifier.names_unknown_key(value):
            return verdict
        return self.verifier.verify(value) if await fetcher.on_unknown_kid() else None

    async def key_set(self, kid: str | None) -> KeySet:
        """The keys held; first fetched again (rate-limited) if ``kid`` is not among them."""
        if kid is not None and self.fetcher is not None and not self.verifier.holds(kid):
            await self.fetcher.on_unknown_kid()
        return self.verifier.key_set

    async def live(self, claims: JwtClaims) -> TokenRecord | None:
        """The JWT's record unless it is revoked (one batched round trip)."""
        state = await self.store.jwt_state(claims.issuer, claims.jti, claims.user_id)
        if state.denied:
            return None
        app = claims.app_id
        cutoff = max(
            state.user_cutoffs.get("*", 0),
            state.user_cutoffs.get(app, 0),
            state.watermarks.get(app, 0),
        )
        if claims.issued_at_us < cutoff:
            return None
        return as_record(claims)

    async def deny_token(self, value: str, scope: Scope) -> Verdict:
        """Deny a JWT presented whole if it is valid and in ``scope``; returns its claims then,
        INVALID for a JWT of ours not denied (invalid, expired or out of scope), None for a
        value that is no JWT of ours (it may be a registered token)."""
        claims = await self.verify(value)
        if not isinstance(claims, JwtClaims):
            return claims
        if not scope.admits(as_record(claims)):
            return INVALID
        await self.store.deny_jwt(claims.issuer, claims.jti, claims.expires_at_ms + self._margin_ms)
        return claims

    async def deny_jti(
        self, jti: str, exp_s: int, issuer: str | None, app_id: str | None, scope: Scope
    ) -> int | None:
        """Deny the JWT ``jti`` of ``issuer`` (None: of every issuer configured) until
        ``exp_s`` (epoch s; capped at the longest JWT lifetime from now); returns that time
        in epoch ms, None if it has passed (nothing to deny)."""
        if JTI_RE.fullmatch(jti) is None:
            raise BadRequest('jti must be 1 to 256 printable ASCII characters, no " nor \\')
        if scope.user_id is not None:
            raise Forbidden("a user's own JWT revokes itself with the token form only")
        if scope.apps is not None and (app_id is None or not scope.admits_app(app_id)):
            raise Forbidden("this client may revoke the JWTs of its own apps only (app_id)")
        now_ms = int(time.time() * 1000)
        expires_at_ms = min(exp_s * 1000, now_ms + self._lifetime_ms)
        if expires_at_ms <= now_ms:
            return None
        # No issuer named: denied under each one (two issuers sharing a jti: both denied).
        for each in (issuer,) if issuer is not None else self._issuers:
            await self.store.deny_jwt(each, jti, expires_at_ms + self._margin_ms)
        return expires_at_ms

    async def cut_off_user(self, user_id: str, apps: frozenset[str] | None) -> int:
        """Revoke the user's JWTs (of ``apps``; None: all) issued until now; returns that
        time in us."""
        return await self.store.cut_off_jwts(user_id, apps, self._lifetime_ms)
