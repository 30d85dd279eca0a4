"""Durable revocations: with ``TOKENSTORE_WAIT_REPLICAS=N``, a revocation is acknowledged only
once N replicas have it.

Redis answers a write once it is in the primary's memory; replicas and the AOF follow later.
``WAIT N timeout`` blocks until N replicas acknowledged every write **its own connection** made
(another connection's WAIT knows nothing of this write, and may confirm at once). So the write
script, a marker write and WAIT go out as one pipeline, on one connection: on a Cluster, to
the node that owns the user's slot, which must still own it afterwards (a redirected write was
confirmed by no one). Fewer than N in time: ``NotDurable``, a 503; the revocation is in effect
on the primary all the same.

WAIT is not WAITAOF (Redis 7.2+; Debian's 7.0 has none): a confirmed replica has the write in
memory, not necessarily on disk. The guarantee is that losing the primary, and promoting a
confirmed replica, keeps the revocation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from redis.asyncio import RedisCluster
from redis.exceptions import NoScriptError

from service.errors import NotDurable
from service.redis_client import AnyRedis
from service.redis_ops import Script

T = TypeVar("T")


class Durability:
    def __init__(self, replicas: int, timeout_s: float) -> None:
        self.replicas = replicas
        self.timeout_ms = max(1, round(timeout_s * 1000))

    async def run(
        self, client: AnyRedis, script: Script, keys: list[str], args: Sequence[Any], mark: str
    ) -> tuple[Any, NotDurable | None]:
        """The script's reply, and the error to raise once the caller has its outcome (None:
        enough replicas confirmed it). Raises like any Redis call if the write itself fails.
        ``mark``: a key in the slot of ``keys[0]`` to write after the script (keys.py)."""
        try:
            reply, confirmed = await self._write_and_wait(client, script, keys, args, mark)
        except NoScriptError:
            # A node that never ran it (restarted, promoted): load it there, send again.
            await script.load(client)
            reply, confirmed = await self._write_and_wait(client, script, keys, args, mark)
        if confirmed >= self.replicas:
            return reply, None
        return reply, NotDurable(confirmed, self.replicas)

    async def _write_and_wait(
        self, client: AnyRedis, script: Script, keys: list[str], args: Sequence[Any], mark: str
    ) -> tuple[Any, int]:
        pipe: Any = client.pipeline(transaction=False)
        # Not pipe.evalsha: redis-py refuses it in a Cluster pipeline (the raw command routes
        # by its keys all the same).
        pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
        # A script that changed nothing (a retry: the token is gone already) propagates
        # nothing, and WAIT would then wait for this connection's previous write only, maybe
        # older than the first attempt's. This write comes after all the node has had.
        pipe.execute_command("SET", mark, "1", "PX", 1000)
        if isinstance(client, RedisCluster):
            node = client.get_node_from_key(keys[0])
            pipe.execute_command("WAIT", self.replicas, self.timeout_ms, target_nodes=node)
            reply, _, confirmed = await pipe.execute()
            if client.get_node_from_key(keys[0]) is not node:
                return reply, 0  # redirected: WAIT went to a node that did not write
        else:
            pipe.execute_command("WAIT", self.replicas, self.timeout_ms)
            reply, _, confirmed = await pipe.execute()
        return reply, int(confirmed)


def unless_pending(outcome: T, pending: NotDurable | None) -> T:
    """``outcome``, or raise ``pending`` carrying it (a revocation in effect, not confirmed)."""
    if pending is not None:
        pending.outcome = outcome
        raise pending
    return outcome
