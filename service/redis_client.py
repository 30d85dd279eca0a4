"""Opening the Redis client the settings ask for.

- No URL: the embedded in-memory store (fakeredis with Lua), for trying the service out. It is
  the optional ``embedded`` extra: the container image leaves it out and needs a URL.
- A URL: a standalone client, or a ``RedisCluster`` when the server says it is a Cluster node.
  The connection is made lazily and retried on use, so the service starts (and reports
  not-ready) while Redis is down; a configured Redis is never replaced by memory.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import time
import traceback
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeAlias, cast

from redis.asyncio import BlockingConnectionPool, Redis, RedisCluster
from redis.exceptions import RedisClusterException, RedisError

from service.errors import Unavailable
from service.observer import NO_OBSERVER, Observer
from service.settings import Settings, SettingsError, env_name

AnyRedis: TypeAlias = Redis | RedisCluster
log = logging.getLogger(__name__)


# RedisClusterException is not a RedisError: the Cluster client raises it when no node is known
# for a slot or its slot map cannot be loaded whole (a failover under way).
REDIS_FAILURES = (RedisError, RedisClusterException, OSError, asyncio.TimeoutError)
# What redis-py itself raises when a connection is closed under a command in flight: its
# Cluster client closes every connection on some errors (a failover), those in use included
# (a writer gone: AttributeError; a transport closed, under uvloop: RuntimeError from its
# handle; a reader shared: RuntimeError). Counted as Redis failures
# only when raised inside redis-py (is_redis_failure), so that a bug of ours still answers 500.
_CLIENT_STATE_ERRORS = (AttributeError, RuntimeError, IndexError, KeyError)


def is_redis_failure(exc: BaseException) -> bool:
    """Whether ``exc`` means Redis (or redis-py's connection to it) failed, as opposed to a
    programming error of the service."""
    if isinstance(exc, REDIS_FAILURES):
        return True
    return isinstance(exc, _CLIENT_STATE_ERRORS) and _raised_in_redis_py(exc)


def _raised_in_redis_py(exc: BaseException) -> bool:
    """True if the innermost frame not of the event loop (asyncio, uvloop) is redis-py's: the
    error rose from within the client (or from the loop under it), not from our code."""
    for frame, _ in reversed(list(traceback.walk_tb(exc.__traceback__))):
        module: str = frame.f_globals.get("__name__", "")
        if not module.startswith(("asyncio.", "uvloop")):
            return module == "redis" or module.startswith("redis.")
    return False


def check_embedded_store() -> None:
    """Start-up check for a process with no Redis URL: the embedded store must be installed."""
    if importlib.util.find_spec("fakeredis") is None:
        variable = env_name("redis_url")
        raise SettingsError(
            f"{variable} is not set, and the embedded in-memory store of the quick start is not "
            "installed here (the container image leaves it out). "
            f"Set {variable}=redis://HOST:6379/0, or install 'tokenstore[embedded]' to try "
            "the service out without Redis."
        )


def unavailable(exc: BaseException) -> Unavailable:
    """Every Redis failure is the client's 503: the service fails closed, never open."""
    log.warning("redis unavailable: %s: %s", type(exc).__name__, exc)
    error = Unavailable("the token store is unavailable; retry shortly")
    error.__cause__ = exc
    return error


class RedisCalls:
    """The one place Redis round trips are timed and counted: the store runs each of them in
    ``with calls(op):`` (``op`` names a store operation, never a key). Failures are counted by
    exception class, then become Unavailable."""

    def __init__(self, observer: Observer = NO_OBSERVER) -> None:
        self._observer = observer

    @contextmanager
    def __call__(self, op: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        except Exception as exc:
            if not is_redis_failure(exc):
                raise
            self._observer.redis_call(op, time.perf_counter() - start, type(exc).__name__)
            raise unavailable(exc) from exc
        self._observer.redis_call(op, time.perf_counter() - start, None)


class RedisConnector:
    def __init__(
        self,
        settings: Settings,
        on_connect: Callable[[AnyRedis], Awaitable[None]],
        calls: RedisCalls | None = None,
    ):
        self._settings = settings
        self._on_connect = on_connect
        self._calls = calls or RedisCalls()
        self._client: AnyRedis | None = None
        self._lock = asyncio.Lock()
        self.embedded = settings.redis_url is None
        self.cluster = False

    async def client(self) -> AnyRedis:
        client = self._client
        if client is not None:
            return client
        async with self._lock:
            if self._client is None:
                with self._calls("connect"):
                    new = await self._open()
                    try:
                        await self._on_connect(new)
                    except BaseException:
                        await new.aclose()  # tried again on the next call, with a new client
                        raise
                self._client = new
            return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _open(self) -> AnyRedis:
        s = self._settings
        if s.redis_url is None:
            import fakeredis  # optional (the embedded extra): imported only when used

            return cast(Redis, fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer()))
        timeouts: dict[str, Any] = {
            "socket_timeout": s.redis_timeout,
            "socket_connect_timeout": s.redis_timeout,
            "protocol": 2,
        }
        pool = BlockingConnectionPool.from_url(
            s.redis_url, max_connections=s.redis_pool_size, timeout=s.redis_timeout, **timeouts
        )
        standalone = Redis.from_pool(pool)
        try:
            info = await standalone.info("cluster")
        except BaseException:
            await standalone.aclose()
            raise
        if not info.get("cluster_enabled"):
            return standalone
        await standalone.aclose()
        cluster = RedisCluster.from_url(s.redis_url, max_connections=s.redis_pool_size, **timeouts)
        try:
            await cluster.initialize()
        except BaseException:
            await cluster.aclose()
            raise
        self.cluster = True
        return cluster
