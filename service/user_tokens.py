"""One user's tokens in Redis: issuing, revoking (one token, a user's, or a user hash's when an
app is swept) and listing them. Each change is one Lua script on the user hash's slot.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING

import orjson

from service.clock import now_ms
from service.durability import unless_pending
from service.errors import NotDurable
from service.keys import OWNER_FIELD, RID_BYTES, rid_field
from service.records import TokenDraft, TokenRecord, json_text
from service.storage import IdClash, Issued, NoSession, Revoked, RevokedOne, SessionTerms
from service.tokens import TokenId

if TYPE_CHECKING:
    from service.store import TokenStore

# Fields a write script looks at for expired tokens to prune, at most (about): a user with
# many tokens is pruned over several writes, never in one long script. (64 cost an issue at
# 1,000 tokens 276 us of Redis time, 16 cost 131 us: bench/README.md.) A compact (listpack)
# hash is read whole, which hash-max-listpack-entries 128 bounds (deploy/README.md).
PRUNE_BUDGET = 32


def revoked_tokens(tag: str, flat: Sequence[bytes]) -> list[Revoked]:
    """``[rid, app (JSON), ...]`` of a script's reply as Revoked tokens."""
    return [
        Revoked(TokenId(tag, flat[i].hex()), orjson.loads(flat[i + 1]))
        for i in range(0, len(flat), 2)
    ]


def scope_args(user_id: str | None, apps: Collection[str] | None) -> tuple[bytes, list[bytes]]:
    """A call's scope as scripts take it: the user (JSON id, b"" for any), the apps (JSON ids,
    sorted; none for any)."""
    user = b"" if user_id is None else json_text(user_id)
    return user, sorted(json_text(app) for app in apps or ())


class UserTokens:
    def __init__(self, store: TokenStore) -> None:
        self._store = store
        self._keys = store.keys

    async def issue(
        self,
        tid: TokenId,
        draft: TokenDraft,
        digest: bytes,
        ttl_ms: int,
        max_tokens: int,
        session: SessionTerms | None,
    ) -> Issued:
        store = self._store
        await store.apps.add_user(draft.app_id, tid.tag, now_ms() + ttl_ms + 1000)
        user, app = json_text(draft.user_id), json_text(draft.app_id)
        tail = draft.tail_pieces()
        args = [rid_field(tid), ttl_ms, max_tokens, user, app, digest, tail, PRUNE_BUDGET]
        if session is not None:
            args += _session_args(tid, session)
        reply = await store.run(
            "issue", (await store.scripts()).issue, [self._keys.user(tid.tag)], args
        )
        if reply is None:
            raise IdClash
        if reply == 0:
            raise NoSession
        record = TokenRecord.parse(str(tid), reply[1], reply[0])
        assert record is not None
        if reply[2]:  # an app sweep dropped the user from the index meanwhile (issue.lua)
            await store.apps.add_user(draft.app_id, tid.tag, now_ms() + ttl_ms + 1000)
        return Issued(record, revoked_tokens(tid.tag, reply[3:]))

    async def revoke_one(
        self, tid: TokenId, user_id: str | None, apps: Collection[str] | None
    ) -> RevokedOne | None:
        if apps is not None and not apps:
            return None
        user, app_args = scope_args(user_id, apps)
        args = [rid_field(tid), user, PRUNE_BUDGET, *app_args]
        script = (await self._store.scripts()).revoke_one
        reply, pending = await self._store.run_durable(
            "revoke_one", script, [self._keys.user(tid.tag)], args
        )
        revoked = RevokedOne(orjson.loads(reply[0]), orjson.loads(reply[1])) if reply else None
        return unless_pending(revoked, pending)

    async def revoke_user(
        self,
        user_id: str,
        apps: Collection[str] | None,
        keep: TokenId | None,
        keep_session: TokenId | None,
    ) -> list[Revoked]:
        tag = await self._store.user_tag(user_id)
        keep_rid = rid_field(keep) if keep is not None and keep.tag == tag else b""
        if keep_session is not None and keep_session.tag == tag:
            keep_rid = keep_session.rid.encode()  # 16 hex digits: a session, not a token
        try:
            revoked, _ = await self.revoke_tag(
                tag, json_text(user_id), apps, keep_rid, None, durable=True
            )
        except NotDurable as exc:
            exc.outcome = exc.outcome[0]  # the revoked tokens, as returned below
            raise
        return revoked

    async def revoke_tag(
        self,
        tag: str,
        user: bytes,
        apps: Collection[str] | None,
        keep_rid: bytes,
        created_before: int | None,
        *,
        durable: bool = False,
    ) -> tuple[list[Revoked], int]:
        """Revoked tokens of the user hash ``tag`` (``user``: JSON id, b"" for any), and the
        latest expiry of those apps' tokens that stay (0: none). ``durable``: a revocation to
        confirm (not the sweep of an app, whose watermark is the revocation)."""
        if apps is not None and not apps:
            return [], 0
        store = self._store
        before = "" if created_before is None else created_before
        args = [user, keep_rid, before, *sorted(json_text(app) for app in apps or ())]
        script, keys = (await store.scripts()).revoke_user, [self._keys.user(tag)]
        if durable:
            reply, pending = await store.run_durable("revoke_user", script, keys, args)
        else:
            reply, pending = await store.run("revoke_user", script, keys, args), None
        return unless_pending((revoked_tokens(tag, reply[1:]), int(reply[0])), pending)

    async def list_user(self, user_id: str) -> list[TokenRecord]:
        # Another user may share the tag (1 in 2**64): the record's user id tells them apart.
        records = await self.list_tag(await self._store.user_tag(user_id))
        return [r for r in records if r.user_id == user_id]

    async def list_tag(self, tag: str) -> list[TokenRecord]:
        """The live tokens of user hash ``tag`` (of every user that shares the tag)."""
        store = self._store
        ops = await store.ops()
        with store.calls("list_user"):
            fields = await ops.hgetall(self._keys.user(tag))
        owner = fields.get(OWNER_FIELD.encode())
        now = now_ms()
        records = (
            TokenRecord.parse(str(TokenId(tag, rid.hex())), owner, raw)
            for rid, raw in fields.items()
            if len(rid) == RID_BYTES
        )
        return [r for r in records if r is not None and r.expires_at > now]


def _session_args(tid: TokenId, session: SessionTerms) -> list[bytes | int | str]:
    """ARGV[9..11] of issue.lua."""
    ttl = "" if session.session_ttl_ms is None else session.session_ttl_ms
    join = session.join.rid if session.join is not None and session.join.tag == tid.tag else ""
    if session.join is not None and not join:
        join = "-"  # a session of another user's hash: joins nothing here
    return [session.idle_ttl_s, ttl, join]
