"""Whether a Redis keyspace can be served safely: its storage layout, its eviction policy and
its meta key (the tag key behind user tags), checked on connecting and by the readiness probe.
What cannot be served is refused with one log line saying what the operator must do.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from redis.asyncio import RedisCluster
from redis.asyncio.cluster import ClusterNode
from redis.exceptions import ResponseError

from service import tokens
from service.errors import Unavailable
from service.keys import LAYOUT_VERSION
from service.redis_ops import RedisOps
from service.settings import Settings, env_name

if TYPE_CHECKING:
    from service.store import TokenStore

log = logging.getLogger(__name__)


class KeyspaceRefused(Unavailable):
    """Redis cannot be served safely as it is: the process refuses to start, and a connection
    made later answers 503, until an operator acts (the message says how)."""


class LayoutMismatch(KeyspaceRefused):
    """Redis holds a keyspace of another storage layout: serving it would show an empty
    registry over existing tokens."""


class UnsafeRedis(KeyspaceRefused):
    """Redis may evict keys: a revocation (a deleted token, an app watermark) could come undone,
    or the tag key vanish and with it every user's tokens."""


class Keyspace:
    def __init__(self, store: TokenStore, settings: Settings) -> None:
        self._store = store
        self._keys = store.keys
        self._allow_eviction = settings.allow_evicting_redis
        self._node_timeout = settings.redis_timeout
        self.tag_key = b""

    async def open(self, ops: RedisOps) -> None:
        """Check a new connection's keyspace, and read its tag key (made if new)."""
        if not self._store.connector.embedded:
            await self.check_eviction(ops)
        await self._check_layout(ops)
        # The tag key must outlive every token: it is created once and never expires.
        await ops.hsetnx(self._keys.meta, "tag_key", tokens.new_tag_key())
        tag_key = await ops.hget(self._keys.meta, "tag_key")
        assert tag_key is not None
        self.tag_key = tag_key

    async def check_eviction(
        self, ops: RedisOps | None = None, node: ClusterNode | None = None
    ) -> None:
        """Raise UnsafeRedis if Redis's ``maxmemory-policy`` (of every primary, or of ``node``)
        may evict keys (unless allowed): only ``noeviction`` keeps every revocation. Where
        CONFIG is not allowed, warn."""
        store = self._store
        ops = ops or await store.ops()
        try:
            with store.calls("check_config"):
                policies = await ops.config_values("maxmemory-policy", node)
        except Unavailable as exc:
            if not isinstance(exc.__cause__, ResponseError):
                raise
            log.warning("cannot read Redis's maxmemory-policy; it must be noeviction")
            return
        evicting = sorted(policies - {"noeviction"})
        if not evicting:
            return
        message = (
            f"Redis's maxmemory-policy is {', '.join(evicting)}: it may evict keys, and with "
            "them revocations and the key behind user tags. Set maxmemory-policy noeviction, "
            f"or set {env_name('allow_evicting_redis')}=true to serve anyway."
        )
        if self._allow_eviction:
            log.warning(message)
            return
        raise _refused(UnsafeRedis, message)

    async def _check_layout(self, ops: RedisOps) -> None:
        meta = await ops.hgetall(self._keys.meta)
        if b"layout" not in meta and b"tag_key" not in meta:  # a new keyspace, or a lost meta
            if await ops.any_key(f"{glob_escape(self._keys.prefix)}h:{{*"):
                raise _refused(KeyspaceRefused, meta_lost_message(self._keys.meta))
            await ops.hsetnx(self._keys.meta, "layout", str(LAYOUT_VERSION))
            meta = await ops.hgetall(self._keys.meta)
        # A keyspace with a tag key but no layout was written by tokenstore 0.1 (layout 1).
        found = int(meta.get(b"layout", b"1"))
        if found != LAYOUT_VERSION:
            raise _refused(LayoutMismatch, layout_message(self._keys.prefix, found))

    async def readiness(self) -> int:
        """Check that Redis answers and may not evict keys (raising Unavailable or
        UnsafeRedis); returns how many Cluster primaries did not answer. Those fail only the
        tokens they hold, so only a Cluster none of whose primaries answers is not ready."""
        store = self._store
        client = await store.client()
        if not isinstance(client, RedisCluster):
            await store.ping()
            if not store.connector.embedded:
                await self.check_eviction()  # CONFIG SET may have changed it since start-up
                await self.keep_meta()
            return 0
        primaries = client.get_primaries()
        checks = await asyncio.gather(
            *(self._primary_ready(node) for node in primaries), return_exceptions=True
        )
        unsafe = [c for c in checks if isinstance(c, KeyspaceRefused)]
        if unsafe:
            raise unsafe[0]
        failed = [c for c in checks if isinstance(c, BaseException)]
        if failed and len(failed) == len(primaries):
            raise failed[0]
        for check in failed:
            if not isinstance(check, Unavailable):
                raise check
        if not failed:  # else its shard may be the one down: the probe must not wait on it
            with contextlib.suppress(Unavailable):
                await self.keep_meta()
        return len(failed)

    async def keep_meta(self) -> None:
        """A Redis that came back empty (no persistence) lost the meta key while this process
        kept serving with its tag key: write both back (every process holds the same key), so
        that a process started later finds the tokens issued since instead of refusing them.
        Raise KeyspaceRefused if another tag key was made meanwhile: this process's user tags
        no longer match the keyspace's, and it must be restarted."""
        store, meta_key = self._store, self._keys.meta
        ops = await store.ops()
        with store.calls("check_meta"):
            meta = await ops.hgetall(meta_key)
            if b"tag_key" not in meta:
                log.warning("%s was missing (Redis lost its data?); written back", meta_key)
                await ops.hsetnx(meta_key, "layout", str(LAYOUT_VERSION))
                await ops.hsetnx(meta_key, "tag_key", self.tag_key)
                meta = await ops.hgetall(meta_key)
        if meta.get(b"tag_key") != self.tag_key:
            raise _refused(
                KeyspaceRefused,
                f"{meta_key} holds another tag key than this process's (Redis lost its "
                "data and another process made a new one): restart this process",
            )

    async def _primary_ready(self, node: ClusterNode) -> None:
        store = self._store
        ops = await store.ops()
        with store.calls("ping"):
            async with asyncio.timeout(self._node_timeout):
                await ops.ping(node)
        await self.check_eviction(ops, node)


def _refused(kind: type[KeyspaceRefused], message: str) -> KeyspaceRefused:
    """The refusal to raise, logged once: the operator's one line saying what to do."""
    log.critical(message)
    return kind(message)


def glob_escape(text: str) -> str:
    """``text`` matched literally in a SCAN pattern."""
    return "".join(f"[{c}]" if c in "*?[]\\" else c for c in text)


def meta_lost_message(meta_key: str) -> str:
    return (
        f"{meta_key} is missing while user hashes exist: it was deleted or evicted, and with it "
        "the key behind user tags, so existing tokens could not be found by user. Restore it "
        "(from a backup or replica), or delete the tokenstore keys to start afresh."
    )


def layout_message(prefix: str, found: int) -> str:
    where = f"the keys under prefix {prefix!r}" if prefix else "this Redis"
    if found > LAYOUT_VERSION:
        return (
            f"{where} hold storage layout {found}, written by a newer tokenstore; this one "
            f"reads layout {LAYOUT_VERSION} only. Run the newer version."
        )
    return (
        f"{where} hold storage layout {found} (tokenstore 0.1); this version reads layout "
        f"{LAYOUT_VERSION} only and will not serve an empty registry over existing tokens. "
        "Either keep running 0.1 against them, or point this version at a fresh keyspace "
        "(another TOKENSTORE_KEY_PREFIX or Redis database) and re-issue tokens there; the old "
        "keys all expire with their tokens (README: Upgrading)."
    )
