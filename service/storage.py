"""What the service needs of storage: the ``Store`` protocol and the values it speaks.

``TokenService`` knows tokens only through this interface: records, user ids, token ids and
opaque cursors; never key names, buckets, scripts or raw Redis replies. ``store.TokenStore``
implements it on Redis (standalone, Cluster, or the embedded in-memory server); the layout is
its own business (keys.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Mapping
from dataclasses import dataclass
from typing import Protocol

from service.errors import NotFound
from service.events import RevocationEvent
from service.records import TokenDraft, TokenRecord
from service.tokens import TokenId

# App id -> revoked_before, in microseconds: the app's tokens created before it are revoked.
Watermarks = Mapping[str, int]


class IdClash(Exception):
    """A freshly drawn record id is taken (about 1 in 2**64 per user): draw again."""


@dataclass(frozen=True, slots=True)
class Revoked:
    """A token that a call revoked (or that the per-user limit evicted)."""

    id: TokenId
    app_id: str


@dataclass(frozen=True, slots=True)
class Issued:
    record: TokenRecord
    evicted: list[Revoked]  # revoked by the per-user limit to make room


class NoSession(NotFound):
    """The session a token was to join has no live token of that user and app (a 404)."""

    def __init__(self) -> None:
        super().__init__("no live session of this user and app", code="session_not_found")


@dataclass(frozen=True, slots=True)
class SessionTerms:
    """How a new token relates to sessions: a new session (``join`` None), optionally with an
    absolute end, or joining a live one; and its idle lifetime (0: none)."""

    idle_ttl_s: int = 0
    session_ttl_ms: int | None = None  # a new session's absolute limit
    join: TokenId | None = None  # the session to join (its id, a token id)


@dataclass(frozen=True, slots=True)
class Rotated:
    record: TokenRecord  # the successor
    replaced: TokenId | None  # a successor it replaced (a retry within the grace)
    presented_created_us: int  # creation of the token presented (for its app's watermark)


@dataclass(frozen=True, slots=True)
class Reused:
    """A rotated token was presented again: its session was revoked."""

    user_id: str
    session_id: TokenId
    revoked: list[Revoked]


@dataclass(frozen=True, slots=True)
class SessionRevoked:
    user_id: str
    revoked: list[Revoked]


@dataclass(frozen=True, slots=True)
class RevokedOne:
    app_id: str
    user_id: str


@dataclass(frozen=True, slots=True)
class JwtState:
    """What revokes a JWT besides its own claims, read in one round trip."""

    denied: bool  # its jti is on the deny-list
    user_cutoffs: Mapping[str, int]  # "*" or app id -> us: the user's JWTs issued before
    watermarks: Watermarks  # the app watermarks: an app's JWTs issued before


class Store(Protocol):
    async def ping(self) -> bool: ...

    async def new_id(self, user_id: str) -> TokenId:
        """A fresh token id that routes to ``user_id``'s tokens."""

    async def issue(
        self,
        tid: TokenId,
        draft: TokenDraft,
        digest: bytes,
        ttl_ms: int,
        max_tokens: int,
        session: SessionTerms | None = None,
    ) -> Issued:
        """Store a token; raises IdClash if ``tid`` is taken, NoSession if the session to join
        is not live. ``max_tokens`` (0: no limit): the user's oldest tokens beyond it are
        revoked."""

    async def rotate(
        self,
        tid: TokenId,
        digest: bytes,
        successor: TokenId,
        successor_digest: bytes,
        grace_ms: int,
        *,
        user_id: str | None,
        apps: Collection[str] | None,
    ) -> Rotated | Reused | None:
        """Rotate the token ``tid`` whose value has ``digest``, of ``user_id`` (None: any) in
        ``apps`` (None: any), atomically: its successor, or the revoked session if it was
        rotated already (outside the grace), or None if it is not live or out of that scope.
        App watermarks are not checked (the caller does, after). Raises IdClash if
        ``successor`` is taken."""

    async def revoke_session(
        self, session_id: TokenId, *, user_id: str | None, apps: Collection[str] | None
    ) -> SessionRevoked | None:
        """Revoke every token of a session of ``user_id`` (None: any) in ``apps``."""

    async def record_uses(self, uses: Mapping[TokenId, int]) -> None:
        """Record when tokens with an idle lifetime were last used (epoch ms)."""

    async def index_token(self, app_id: str, tid: TokenId, expires_at: int) -> None:
        """Make the app's listings and sweeps find the user of ``tid`` until ``expires_at``."""

    async def read(self, tid: TokenId) -> tuple[TokenRecord | None, Watermarks]:
        """A live (unexpired) token's record, and the app watermarks, in one round trip."""

    async def watermarks(self, user_id: str | None = None) -> Watermarks:
        """The app watermarks (read where ``user_id``'s tokens are, if given: on a Cluster,
        then, one node answers for both)."""

    # Registered (externally minted) tokens are found by the digest of their value.
    async def find_registered(self, digest: bytes) -> TokenId | None: ...

    async def claim_pointer(self, digest: bytes, tid: TokenId, ttl_ms: int) -> TokenId | None:
        """Point ``digest`` at ``tid``; returns the id it pointed at already, if any."""

    async def set_pointer(self, digest: bytes, tid: TokenId, ttl_ms: int) -> None: ...

    async def drop_pointer(self, digest: bytes) -> None: ...

    # The three revocations raise NotDurable, with their outcome, when the replicas the
    # settings ask for did not confirm them (service.durability); they are in effect all the same.
    async def revoke_one(
        self, tid: TokenId, *, user_id: str | None, apps: Collection[str] | None
    ) -> RevokedOne | None:
        """Revoke a live token of ``user_id`` (None: any) in ``apps`` (None: any)."""

    async def revoke_user(
        self,
        user_id: str,
        *,
        apps: Collection[str] | None,
        keep: TokenId | None,
        keep_session: TokenId | None = None,
    ) -> list[Revoked]:
        """Revoke the user's tokens of ``apps`` (None: every app) but ``keep`` (a token) or
        the tokens of session ``keep_session``."""

    async def list_user(self, user_id: str) -> list[TokenRecord]:
        """The user's live tokens (not yet filtered by app watermarks)."""

    def app_tokens(self, app_id: str, after: str | None) -> AsyncIterator[tuple[TokenRecord, str]]:
        """The app's live tokens after cursor ``after`` (None: from the start), each with the
        cursor that resumes after it; raises BadRequest for a cursor of no such listing."""

    async def revoke_app(self, app_id: str, retention_ms: int) -> int:
        """Set the app's watermark (returned, in us) and queue the sweep of its tokens."""

    async def append_event(
        self, event: RevocationEvent, retention_ms: int, user_id: str | None = None
    ) -> str:
        """Append to the revocation stream (and, for a user's revocation, to the user's own
        recent events); returns the event's id."""

    async def user_events(self, user_id: str) -> list[RevocationEvent]:
        """The user's recent revocation events, newest first."""

    # JWTs (jwt_rules.py): the deny-list, the per-user cut-offs, and what a check reads.
    async def jwt_state(self, issuer: str, jti: str, user_id: str) -> JwtState: ...

    async def deny_jwt(self, issuer: str, jti: str, expires_at_ms: int) -> None:
        """Deny the JWT until it expires (raises NotDurable as the revocations do)."""

    async def cut_off_jwts(
        self, user_id: str, apps: Collection[str] | None, lifetime_ms: int
    ) -> int:
        """Revoke the user's JWTs of ``apps`` (None: every app) issued until now; returns that
        time in us. Kept ``lifetime_ms``. Raises NotDurable as the revocations do."""
