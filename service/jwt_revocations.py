"""JWT revocations in Redis (keys.py: ``jd:``, ``jc:``): denied ``jti``s, each user's
cut-offs, and the one batched read of both with the app watermarks that a JWT check makes.
The rules are jwt_rules.py's."""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING

from service.app_watermarks import decode_marks
from service.durability import unless_pending
from service.storage import JwtState

if TYPE_CHECKING:
    from service.store import TokenStore


class JwtRevocations:
    def __init__(self, store: TokenStore) -> None:
        self._store = store
        self._keys = store.keys

    async def state(self, issuer: str, jti: str, user_id: str) -> JwtState:
        store, read = self._store, self._store.batcher.read
        tag = await store.user_tag(user_id)
        denied = read("GET", self._keys.jwt_denied(issuer, jti))
        cutoffs = read("HGETALL", self._keys.jwt_cutoffs(tag))
        marks = read("HGETALL", store.marks.key_near(self._keys.user(tag)))
        return JwtState(
            await denied is not None,
            decode_marks(await cutoffs),
            store.marks.converted(await marks),
        )

    async def deny(self, issuer: str, jti: str, expires_at_ms: int) -> None:
        store = self._store
        script = (await store.scripts()).deny_jwt
        keys = [self._keys.jwt_denied(issuer, jti)]
        _reply, pending = await store.run_durable("deny_jwt", script, keys, [expires_at_ms])
        unless_pending(None, pending)

    async def cut_off(self, user_id: str, apps: Collection[str] | None, lifetime_ms: int) -> int:
        store = self._store
        script = (await store.scripts()).cut_off_jwts
        keys = [self._keys.jwt_cutoffs(await store.user_tag(user_id))]
        fields = ["*"] if apps is None else sorted(apps)
        reply, pending = await store.run_durable(
            "cut_off_jwts", script, keys, [lifetime_ms, *fields]
        )
        return unless_pending(int(reply), pending)
