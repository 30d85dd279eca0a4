"""GatewayClient: check tokens against tokenstore from a Python gateway, with a local cache.

    credentials = aiohttp.encode_basic_auth("gateway", secret)  # this gateway's API client
    async with GatewayClient("http://tokenstore:8080", authorization=credentials) as ts:
        identity = await ts.check(token)  # Identity, or None if the token is not live
        app = web.Application(middlewares=[ts.middleware(scopes={"read"})])

``check`` asks ``GET /v1/authz`` (the token is its only credential) and keeps each answer as
long as its ``Cache-Control`` allows (a live one at most ``TOKENSTORE_CACHE_MAX_AGE``, never
past the token's expiry). A background task follows the revocation feed (``/v1/events``, with
``authorization``: the gateway's own API client credentials) and drops cached answers as their
revocations arrive, so a revocation is normally seen within milliseconds
(bench/gateway_feed.py measures it), and at worst within the max-age:

- feed lost (error, end of stream, or 3 heartbeats of silence): the whole cache is dropped,
  and the feed is reconnected with ``Last-Event-ID`` (exponential backoff); the replay drops
  what was revoked in between. Answers cached meanwhile live no longer than their max-age.
- ``event: reset`` (the events after our id are gone): the whole cache is dropped.
- The service unreachable or failing: ``check`` raises GatewayError, the middleware answers
  503. Never a cached or assumed "yes" beyond the hint.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
import re
import time
from collections.abc import Iterable
from types import TracebackType
from typing import Self

import aiohttp
import orjson
from aiohttp import hdrs, web
from aiohttp.typedefs import Handler, Middleware

from service import sse
from service.events import RevocationEvent
from service.gateway_cache import EVERYTHING, AnswerCache, Invalidation
from service.identity import Identity, bearer_token

log = logging.getLogger(__name__)

IDENTITY = web.RequestKey("tokenstore_identity", Identity)
_MAX_AGE = re.compile(r"(?:^|[,\s])max-age=(\d+)")
# Before the first ``ready`` says how often the service sends heartbeats.
DEFAULT_SILENCE = 60.0


class GatewayError(Exception):
    """tokenstore gave no usable answer (unreachable, 5xx, unexpected reply): fail closed."""


def max_age(cache_control: str) -> int:
    """Seconds an answer may be reused: 0 for ``no-store``, ``no-cache`` or no hint."""
    if "no-store" in cache_control or "no-cache" in cache_control:
        return 0
    match = _MAX_AGE.search(cache_control)
    return int(match[1]) if match else 0


def _key(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class GatewayClient:
    def __init__(
        self,
        base_url: str,
        *,
        authorization: str | None = None,
        follow_feed: bool = True,
        token_header: str = hdrs.AUTHORIZATION,
        max_entries: int = 100_000,
        timeout: float = 2.0,
        backoff: tuple[float, float] = (0.1, 10.0),
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._authorization = authorization
        self._follow_feed = follow_feed
        self._token_header = token_header
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._backoff = backoff
        self.cache = AnswerCache(max_entries)
        self._inflight: dict[bytes, asyncio.Task[Identity | None]] = {}
        self._session: aiohttp.ClientSession | None = None
        self._feed: asyncio.Task[None] | None = None
        self.last_event_id: str | None = None
        self.feed_connected = False
        self.feed_connections = 0
        self._silence = DEFAULT_SILENCE

    # --- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        if self._follow_feed and self._feed is None:
            self._feed = asyncio.create_task(self._follow())

    async def close(self) -> None:
        feed, self._feed = self._feed, None
        if feed is not None:
            feed.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await feed
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # --- checks -----------------------------------------------------------------------------

    async def check(self, token: str) -> Identity | None:
        """The identity of a live token, None otherwise; GatewayError if unanswerable."""
        key = _key(token)
        entry = self.cache.get(key, time.monotonic())
        if entry is not None:
            return entry.identity
        # Concurrent checks of one token share one request.
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.create_task(self._ask(key, token))
            self._inflight[key] = task
            task.add_done_callback(lambda done: self._forget(key, done))
        return await asyncio.shield(task)

    def _forget(self, key: bytes, task: asyncio.Task[Identity | None]) -> None:
        self._inflight.pop(key, None)
        if not task.cancelled():
            task.exception()  # marks it retrieved: every waiter may have been cancelled

    def cached(self, token: str) -> Identity | None:
        """The cached positive answer for ``token``, if any (no request is made)."""
        entry = self.cache.get(_key(token), time.monotonic())
        return None if entry is None else entry.identity

    async def _ask(self, key: bytes, token: str) -> Identity | None:
        if self._session is None:
            raise RuntimeError("GatewayClient is not started: use `async with` or start()")
        mark, asked_at = self.cache.mark(), time.monotonic()
        headers = {self._token_header: f"Bearer {token}"}
        try:
            async with self._session.get(
                f"{self.base_url}/v1/authz", headers=headers, timeout=self._timeout
            ) as response:
                await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise GatewayError(f"tokenstore unreachable: {exc!r}") from exc
        if response.status == 200:
            try:
                identity: Identity | None = Identity.from_headers(response.headers)
            except ValueError as exc:
                raise GatewayError(str(exc)) from None
        elif response.status == 401:
            identity = None
        else:
            raise GatewayError(f"tokenstore answered {response.status} to /v1/authz")
        # The age of an answer counts from the request, not from its arrival.
        seconds = max_age(response.headers.get(hdrs.CACHE_CONTROL, ""))
        if seconds > 0:
            self.cache.put(key, identity, asked_at + seconds, mark)
        return identity

    def middleware(self, *, scopes: Iterable[str] = (), app: str | None = None) -> Middleware:
        """aiohttp middleware: 401 unless a live token (of ``app``, if given) with ``scopes``;
        403 if it lacks a scope; 503 if tokenstore cannot answer. The identity is put in
        ``request[IDENTITY]``."""
        required = frozenset(scopes)

        @web.middleware
        async def require_token(request: web.Request, handler: Handler) -> web.StreamResponse:
            token = bearer_token(request.headers.get(hdrs.AUTHORIZATION, ""))
            if token is None:
                raise web.HTTPUnauthorized(headers={hdrs.WWW_AUTHENTICATE: "Bearer"})
            try:
                identity = await self.check(token)
            except GatewayError as exc:
                log.warning("token check failed: %s", exc)
                raise web.HTTPServiceUnavailable(headers={hdrs.RETRY_AFTER: "1"}) from None
            if identity is None or (app is not None and identity.app_id != app):
                challenge = 'Bearer error="invalid_token"'
                raise web.HTTPUnauthorized(headers={hdrs.WWW_AUTHENTICATE: challenge})
            if not identity.has_scopes(required):
                wanted = " ".join(sorted(required))
                challenge = f'Bearer error="insufficient_scope", scope="{wanted}"'
                raise web.HTTPForbidden(headers={hdrs.WWW_AUTHENTICATE: challenge})
            request[IDENTITY] = identity
            return await handler(request)

        return require_token

    # --- the revocation feed ----------------------------------------------------------------

    async def _follow(self) -> None:
        low, high = self._backoff
        delay = low
        while True:
            try:
                await self._listen()
            except (aiohttp.ClientError, TimeoutError, ValueError, GatewayError) as exc:
                log.warning("revocation feed lost: %r", exc)
            except Exception:
                log.exception("revocation feed failed")
            if self.feed_connected:
                delay = low  # it worked for a while: start the backoff over
            self._feed_lost()
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, high)

    async def _listen(self) -> None:
        assert self._session is not None
        headers: dict[str, str] = {hdrs.ACCEPT: "text/event-stream"}
        if self.last_event_id:
            headers["Last-Event-ID"] = self.last_event_id
        if self._authorization:
            headers[hdrs.AUTHORIZATION] = self._authorization
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self._timeout.total)
        async with self._session.get(
            f"{self.base_url}/v1/events", headers=headers, timeout=timeout
        ) as response:
            if response.status != 200:
                raise GatewayError(f"the feed answered {response.status}")

            async def readline() -> bytes:
                # Heartbeats come every few seconds: silence means a dead connection.
                return await asyncio.wait_for(response.content.readline(), self._silence)

            async for message in sse.parse(readline):
                self._on_message(message)

    def _on_message(self, message: sse.Message) -> None:
        if message.event == "ready" and message.data:
            self.feed_connected = True
            self.feed_connections += 1
            heartbeat = float(orjson.loads(message.data).get("heartbeat", DEFAULT_SILENCE))
            self._silence = 3 * heartbeat + 1
        elif message.event == "reset":
            self.cache.invalidate(EVERYTHING)
        elif message.event and message.data:
            event = RevocationEvent.from_feed(message.event, message.data)
            if event is not None:  # another kind (of a newer service) revokes nothing we cache
                self.cache.invalidate(Invalidation.from_event(event))
        if message.id is not None:
            self.last_event_id = message.id

    def _feed_lost(self) -> None:
        self.feed_connected = False
        self._silence = DEFAULT_SILENCE
        # Revocations may now go unheard: cached answers must not outlive that knowledge.
        self.cache.invalidate(EVERYTHING)
