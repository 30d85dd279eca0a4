"""The app watermarks on a Redis Cluster: one copy on every node, so that no node is read by
every introspection (a single point of failure).

Watermarks only grow, which makes copies simple to keep right:

- an app revocation sets the watermark on the first copy (with the pending sweep, one script),
  then raises it in every other copy (max-merge); it is acknowledged only once every copy has
  it, and answers 503 otherwise (the caller retries; a copy raised meanwhile stays raised);
- an introspection reads the copy on its token's node (one node answers for both), or the
  copy of the token's slot window while no copy is known there: a node that is down fails only
  the tokens it holds, and never makes a revoked token look active, since every acknowledged
  revocation is in every copy;
- a keyspace written before the copies existed (only ``{w}aw``) is copied over once, by the
  first process that connects, before it serves (``meta`` field ``watermark_copies``).

A standalone Redis keeps one copy, ``{w}aw``, and none of this runs.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from redis.asyncio import RedisCluster
from redis.crc import key_slot
from redis.exceptions import SlotNotCoveredError

from service.errors import NotDurable
from service.keys import WATERMARK_COPIES, copy_window
from service.redis_ops import RedisOps, Script

if TYPE_CHECKING:
    from service.store import TokenStore

COPIES_FIELD = "watermark_copies"


class WatermarkCopies:
    def __init__(
        self, store: TokenStore, client: RedisCluster, merge: Script, ops: RedisOps
    ) -> None:
        self._store = store
        self._client = client
        self._merge = merge
        self._ops = ops
        self.keys = store.keys.watermark_copies()
        self._slots = [key_slot(key.encode()) for key in self.keys]
        # Node name -> the copy it holds, for the slot map last seen (it changes on failover).
        self._seen_map: object = None
        self._on_node: dict[str, str] = {}

    def near(self, key: str) -> str:
        """The copy to read with ``key``: one on the node serving ``key``, if any."""
        slot = key_slot(key.encode())
        manager = self._client.nodes_manager
        if manager.slots_cache is not self._seen_map:
            self._map_copies()
        try:
            node = manager.get_node_from_slot(slot)
        except SlotNotCoveredError:
            return self.keys[copy_window(slot)]
        return self._on_node.get(node.name) or self.keys[copy_window(slot)]

    def _map_copies(self) -> None:
        manager = self._client.nodes_manager
        self._seen_map = manager.slots_cache
        on_node: dict[str, str] = {}
        for key, slot in zip(self.keys, self._slots, strict=True):
            try:
                on_node.setdefault(manager.get_node_from_slot(slot).name, key)
            except SlotNotCoveredError:
                continue
        self._on_node = on_node

    async def raise_all(
        self, marks: dict[str, int], retention_ms: int, *, durable: bool = False
    ) -> NotDurable | None:
        """Raise these watermarks (app id -> us) in every copy but the first; Unavailable
        unless every copy has them. ``durable``: each write as a revocation's (WAIT, with
        ``TOKENSTORE_WAIT_REPLICAS``); returns the NotDurable to raise if a copy's was not."""
        if not marks:
            return None
        store = self._store
        args: list[Any] = [retention_ms]
        for app_id, us in sorted(marks.items()):
            args += [app_id, us]

        async def merge(key: str) -> NotDurable | None:
            if durable:
                _reply, pending = await store.run_durable(
                    "merge_watermarks", self._merge, [key], args
                )
                return pending
            await store.run("merge_watermarks", self._merge, [key], args)
            return None

        results = await asyncio.gather(*map(merge, self.keys[1:]), return_exceptions=True)
        pending: NotDurable | None = None
        for result in results:
            if isinstance(result, NotDurable):
                pending = pending or result
            elif isinstance(result, BaseException):
                raise result
        return pending

    async def fill_once(self, retention_ms: int) -> None:
        """Copy the first copy's watermarks into the others, if no process has (a keyspace
        from before the copies); a process serves only after this."""
        store, ops = self._store, self._ops
        with store.calls("watermark_copies"):
            done = await ops.hget(store.keys.meta, COPIES_FIELD)
            if done == str(WATERMARK_COPIES).encode():
                return
            raw = await ops.hgetall(self.keys[0])
        await self.raise_all({app.decode(): int(us) for app, us in raw.items()}, retention_ms)
        with store.calls("watermark_copies"):
            await ops.hset(store.keys.meta, COPIES_FIELD, str(WATERMARK_COPIES))
