"""TokenService: the rules of issuing, checking, listing and revoking tokens.

Every API dialect calls this one class; it never touches Redis itself (store.py does). Each
operation takes the caller's Scope: tokens outside it are treated as if they did not exist.
"""

from __future__ import annotations

import hmac
from collections import defaultdict
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, TypeVar

from service import tokens, validation
from service.clock import now_ms
from service.errors import BadRequest, Conflict, Forbidden, NotDurable, NotFound
from service.events import USER_APP, EventKind, RevocationEvent, SessionReason
from service.jwt_rules import JwtDenial, JwtRules
from service.jwt_verify import JwtClaims, JwtVerifier, Verdict
from service.observer import NO_OBSERVER, Observer
from service.records import DEFAULT_TYPE, TokenDraft, TokenRecord
from service.rule_types import ID_DRAWS, Actor, IssuedToken, parse_id
from service.scope import Scope
from service.session_rules import SessionRules
from service.settings import Settings
from service.storage import IdClash, Revoked, SessionTerms, Store
from service.tokens import TokenId
from service.uses import UseRecorder

# Actor and IssuedToken live in rule_types (session_rules.py needs them too); API modules
# import them from here, with the service.
__all__ = ["Actor", "AppPage", "IssuedToken", "TokenService"]


@dataclass(frozen=True, slots=True)
class AppPage:
    tokens: list[TokenRecord]
    next_cursor: str | None


class TokenService:
    def __init__(self, store: Store, settings: Settings, observer: Observer = NO_OBSERVER) -> None:
        self.store = store
        self.settings = settings
        self.observer = observer
        self._retention_ms = settings.max_ttl * 1000
        self.uses = UseRecorder(store, settings.idle_resolution)
        self.sessions = SessionRules(self)
        verifier = JwtVerifier.of(settings)  # raises JwksError (a SettingsError)
        self.jwt = None if verifier is None else JwtRules(store, settings, verifier)

    async def close(self) -> None:
        await self.uses.close()

    # --- issue ------------------------------------------------------------------------------

    def draft(
        self,
        *,
        user_id: str,
        app_id: str,
        type: str = DEFAULT_TYPE,
        scopes: list[str] | None = None,
        client_name: str | None = None,
        device_name: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> TokenDraft:
        return TokenDraft(
            user_id=validation.identifier("user_id", user_id),
            app_id=validation.identifier("app_id", app_id),
            type=validation.token_type(type),
            scopes=validation.scopes(scopes or []),
            client_name=validation.optional_name("client_name", client_name),
            device_name=validation.optional_name("device_name", device_name),
            metadata=validation.metadata(metadata, self.settings.max_metadata_bytes),
        )

    async def issue(
        self,
        draft: TokenDraft,
        *,
        ttl: int | None = None,
        token: str | None = None,
        scope: Scope,
        idle_ttl: int | None = None,
        session_id: str | None = None,
        session_max_ttl: int | None = None,
    ) -> IssuedToken:
        """Mint a token, or register an externally minted ``token`` value; in a new session,
        or in the live session ``session_id`` of the same user and app."""
        if scope.user_id is not None or not scope.admits_app(draft.app_id):
            raise Forbidden("this client may not issue tokens for this app")
        s = self.settings
        ttl_ms = validation.ttl(ttl, s.default_ttl, s.max_ttl) * 1000
        session = self._session_terms(idle_ttl, session_id, session_max_ttl)
        if token is not None:
            validation.registrable_token(token)
        for _ in range(ID_DRAWS):
            tid = await self.store.new_id(draft.user_id)
            value = token if token is not None else tokens.mint(tid)
            digest = tokens.digest(value)
            if token is not None:
                await self._claim(digest, tid, ttl_ms)
            try:
                issued = await self.store.issue(
                    tid, draft, digest, ttl_ms, s.max_tokens_per_user, session
                )
            except IdClash:
                continue
            except BaseException:
                if token is not None:
                    await self.store.drop_pointer(digest)
                raise
            if issued.evicted:
                await self._emit(EventKind.TOKEN, issued.evicted, Actor("limit"), draft.user_id)
                self.observer.revoked("limit")
            self.observer.issued(registered=token is not None)
            return IssuedToken(issued.record, None if token is not None else value)
        raise Conflict("could not draw a free token id; retry")

    def _session_terms(
        self, idle_ttl: int | None, session_id: str | None, session_max_ttl: int | None
    ) -> SessionTerms | None:
        if idle_ttl is None and session_id is None and session_max_ttl is None:
            return None
        if session_id is not None and session_max_ttl is not None:
            raise BadRequest("session_max_ttl is set when a session starts, not when joining")
        max_ttl = self.settings.max_ttl
        idle = 0 if not idle_ttl else validation.ttl(idle_ttl, max_ttl, max_ttl, "idle_ttl")
        session_ms = None
        if session_max_ttl is not None:
            session_ms = validation.ttl(session_max_ttl, max_ttl, max_ttl, "session_max_ttl")
            session_ms *= 1000
        join = None if session_id is None else parse_id(session_id, "session")
        return SessionTerms(idle, session_ms, join)

    async def _claim(self, digest: bytes, tid: TokenId, ttl_ms: int) -> None:
        existing = await self.store.claim_pointer(digest, tid, ttl_ms)
        if existing is None:
            return
        if await self._live(existing, digest) is not None:
            raise Conflict("this token is registered already", code="token_exists")
        await self.store.set_pointer(digest, tid, ttl_ms)

    # --- check ------------------------------------------------------------------------------

    async def introspect(self, value: str, *, scope: Scope) -> TokenRecord | None:
        """The record of a live token in scope, or None for anything else (never an error)."""
        if self.jwt is not None:
            verdict = await self.jwt.verify(value)
            if verdict is not None:  # a JWT of ours (else: maybe a registered token)
                jwt = await self.jwt.live(verdict) if isinstance(verdict, JwtClaims) else None
                found = jwt if jwt is not None and scope.admits(jwt) else None
                self.observer.introspected(found is not None)
                return found
        digest = tokens.digest(value)
        tid = await self._locate(value, digest)
        record = None if tid is None else await self._live(tid, digest)
        answer = record if record is not None and scope.admits(record) else None
        self.observer.introspected(answer is not None)
        if answer is not None and answer.idle_ttl and tid is not None:
            self.uses.note(tid, answer, now_ms())
        return answer

    async def _locate(self, value: str, digest: bytes) -> TokenId | None:
        """The id of the token ``value`` (whose digest is ``digest``): read off a minted one,
        looked up for a registered one."""
        if not 0 < len(value) <= tokens.MAX_TOKEN_CHARS:
            return None
        if tokens.looks_minted(value):
            return tokens.parse_minted(value)
        return await self.store.find_registered(digest)

    async def _live(self, tid: TokenId, digest: bytes | None) -> TokenRecord | None:
        record = await self._stored(tid, digest)
        return record if record is not None and record.usable(now_ms()) else None

    async def _stored(self, tid: TokenId, digest: bytes | None) -> TokenRecord | None:
        """The token's record, unless expired or revoked; rotated and idle ones included."""
        record, watermarks = await self.store.read(tid)
        if record is None:
            return None
        if digest is not None and not hmac.compare_digest(record.digest, digest):
            return None
        if record.created_us < watermarks.get(record.app_id, 0):
            return None
        return record

    async def get(self, token_id: str, *, scope: Scope) -> TokenRecord:
        """A live token's record, or a rotated one's while it is kept (``rotated``)."""
        record = await self._stored(parse_id(token_id), None)
        if record is None or not scope.admits(record):
            raise NotFound("no such token")
        if not record.rotated and not record.usable(now_ms()):
            raise NotFound("no such token")
        return record

    async def list_user(
        self, user_id: str, app_id: str | None = None, *, scope: Scope
    ) -> list[TokenRecord]:
        validation.identifier("user_id", user_id)
        if not scope.admits_user(user_id):
            return []
        records = await self.store.list_user(user_id)
        watermarks = await self.store.watermarks(user_id)
        now = now_ms()
        return sorted(
            (
                r
                for r in records
                if (app_id is None or r.app_id == app_id)
                and r.usable(now)
                and scope.admits_app(r.app_id)
                and r.created_us >= watermarks.get(r.app_id, 0)
            ),
            key=lambda r: (-r.created_us, r.id),
        )

    async def list_app(
        self, app_id: str, limit: int, cursor: str | None = None, *, scope: Scope
    ) -> AppPage:
        """One page of an app's live tokens, in the store's order."""
        validation.identifier("app_id", app_id)
        tokens_after = self.store.app_tokens(app_id, cursor)  # a bad cursor fails here
        if scope.user_id is not None or not scope.admits_app(app_id):
            return AppPage([], None)
        watermark = (await self.store.watermarks()).get(app_id, 0)
        page: list[TokenRecord] = []
        last_cursor = None
        now = now_ms()
        async for record, resume in tokens_after:
            if record.created_us < watermark or not record.usable(now):
                continue
            if len(page) == limit:
                return AppPage(page, last_cursor)
            page.append(record)
            last_cursor = resume
        return AppPage(page, None)

    # --- revoke -----------------------------------------------------------------------------

    async def revoke_id(self, token_id: str, actor: Actor, *, scope: Scope) -> list[str]:
        tid = parse_id(token_id)
        revoked, pending = await _durably(
            self.store.revoke_one(tid, user_id=scope.user_id, apps=scope.apps)
        )
        if revoked is not None:
            await self._emit(
                EventKind.TOKEN, [Revoked(tid, revoked.app_id)], actor, revoked.user_id
            )
            self.observer.revoked("token")
        _raise_pending(pending)
        return [] if revoked is None else [str(tid)]

    async def revoke_token(self, value: str, actor: Actor, *, scope: Scope) -> list[str]:
        """Revoke a token, or deny a JWT, by value; [] if none in scope (or not live)."""
        verdict = await self.revoke_jwt(value, actor, scope=scope)
        if verdict is not None:  # a JWT of ours (else: maybe a registered token)
            return [verdict.jti] if isinstance(verdict, JwtClaims) else []
        digest = tokens.digest(value)
        tid = await self._locate(value, digest)
        record = None if tid is None else await self._live(tid, digest)
        if record is None or not scope.admits(record):
            return []
        revoked = await self.revoke_id(record.id, actor, scope=scope)
        if not tokens.looks_minted(value):
            await self.store.drop_pointer(digest)
        return revoked

    async def revoke_user(
        self,
        user_id: str,
        app_id: str | None = None,
        keep_id: str | None = None,
        *,
        actor: Actor,
        scope: Scope,
        keep_session_id: str | None = None,
    ) -> list[str]:
        """Revoke the user's tokens of ``app_id`` (None: of every app in scope) but ``keep_id``
        and the tokens of session ``keep_session_id``."""
        validation.identifier("user_id", user_id)
        keep = parse_id(keep_id) if keep_id else None
        keep_session = parse_id(keep_session_id, "session") if keep_session_id else None
        if not scope.admits_user(user_id):
            return []
        revoked, pending = await _durably(
            self.store.revoke_user(
                user_id, apps=scope.bulk_apps(app_id), keep=keep, keep_session=keep_session
            )
        )
        await self._emit(EventKind.USER, revoked, actor, user_id, scope_app=app_id)
        # A JWT belongs to no session: calls keeping a token or a session leave JWTs alone.
        if self.jwt is not None and keep is None and keep_session is None:
            apps = scope.bulk_apps(app_id)
            if apps is None or apps:
                await self._cut_off_jwts(user_id, app_id, apps, actor)
        if revoked:
            self.observer.revoked("user_app" if app_id else "user")
        _raise_pending(pending)
        return [str(r.id) for r in revoked]

    async def revoke_app(self, app_id: str, actor: Actor, *, scope: Scope) -> int:
        """Revokes every token of the app created until now; returns that time in epoch ms."""
        validation.identifier("app_id", app_id)
        if scope.user_id is not None or not scope.admits_app(app_id):
            raise Forbidden("this client may not revoke the tokens of this app")
        watermark_us, pending = await _durably(self.store.revoke_app(app_id, self._retention_ms))
        watermark = -(-watermark_us // 1000)
        event = actor.event(EventKind.APP, app_id, revoked_before=watermark)
        await self.store.append_event(event, self._retention_ms)
        self.observer.revoked("app")
        _raise_pending(pending)
        return watermark

    async def _cut_off_jwts(
        self, user_id: str, app_id: str | None, apps: frozenset[str] | None, actor: Actor
    ) -> None:
        assert self.jwt is not None
        cutoff_us = await self.jwt.cut_off_user(user_id, apps)
        for app in sorted(apps) if apps is not None else [""]:
            event = actor.event(
                EventKind.JWT, app, user_id=user_id, revoked_before=-(-cutoff_us // 1000),
                scope=USER_APP if app_id is not None else None,
            )  # fmt: skip
            await self.store.append_event(event, self._retention_ms, user_id=user_id)

    async def revoke_jwt(self, value: str, actor: Actor, *, scope: Scope) -> Verdict:
        """Deny a JWT by value until its exp, with its event, if valid and in scope (for every
        route taking a JWT by value); the verdict as ``JwtRules.deny_token`` returns it."""
        claims = None if self.jwt is None else await self.jwt.deny_token(value, scope)
        if isinstance(claims, JwtClaims):
            denial = JwtDenial(claims.jti, claims.issuer, claims.expires_at_ms)
            await self.jwt_revoked(denial, claims.user_id, claims.app_id, actor)
        return claims

    async def jwt_revoked(
        self, denial: JwtDenial, user_id: str | None, app_id: str | None, actor: Actor
    ) -> None:
        """The event of a denied JWT (on the user's own list too, if the user is known)."""
        event = actor.event(
            EventKind.JWT, app_id or "", user_id=user_id, ids=(denial.jti,),
            issuer=denial.issuer, expires_at=denial.expires_at,
        )  # fmt: skip
        await self.store.append_event(event, self._retention_ms, user_id=user_id)
        self.observer.revoked("jwt")

    async def user_events(self, user_id: str, *, scope: Scope) -> list[RevocationEvent]:
        """The user's recent revocations (not app-wide ones) in scope, newest first."""
        validation.identifier("user_id", user_id)
        if not scope.admits_user(user_id):
            return []
        return [
            event
            for event in await self.store.user_events(user_id)
            # Another user may share the tag (1 in 2**64); the id tells them apart.
            if event.user_id == user_id and scope.admits_app(event.app_id)
        ]

    async def _emit(
        self,
        kind: EventKind,
        revoked: list[Revoked],
        actor: Actor,
        user_id: str,
        scope_app: str | None = None,
        session: tuple[str, SessionReason] | None = None,
    ) -> None:
        """One event per app touched, so a feed can be filtered by app; each also goes to the
        user's own recent events. ``session``: the id and reason of a revoked session."""
        by_app: dict[str, list[str]] = defaultdict(list)
        for token in revoked:
            by_app[token.app_id].append(str(token.id))
        sid, reason = session if session is not None else (None, None)
        for app, ids in by_app.items():
            scope = USER_APP if scope_app is not None else None
            event = actor.event(
                kind, app, user_id=user_id, ids=tuple(ids), scope=scope, session_id=sid,
                reason=reason,
            )  # fmt: skip
            await self.store.append_event(event, self._retention_ms, user_id=user_id)


T = TypeVar("T")


async def _durably(write: Awaitable[T]) -> tuple[T, NotDurable | None]:
    """A revocation's outcome, even when too few replicas confirmed it: it is in effect on the
    primary, so its event is written (feeds drop cached answers) before the 503 is raised."""
    try:
        return await write, None
    except NotDurable as exc:
        return exc.outcome, exc


def _raise_pending(pending: NotDurable | None) -> None:
    if pending is not None:
        raise pending
