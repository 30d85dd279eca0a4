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

``local_jwt=True``: JWTs of the service's issuers are verified here, with the policy and keys
the service serves (``/v1/jwt/config``), against the deny-list and cut-offs rebuilt from the
feed (service/gateway_jwt.py): no request per check. A JWT naming a key we do not hold makes
the keys be fetched again (at most every ``KEYS_REFETCH_S``); a JWT of no key of ours, and any
other token, is checked as above. Such checks fail closed (GatewayError) until the feed has
replayed the revocations of the longest JWT lifetime, and once it has been lost for more than
``jwt_grace`` seconds.
"""

from __future__ import annotations

import asyncio
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
from service.clock import now_ms
from service.events import RevocationEvent
from service.gateway_cache import EVERYTHING, AnswerCache, Invalidation
from service.gateway_jwt import LocalJwt, StaleState
from service.identity import Identity, bearer_token
from service.jwt_verify import (
    JwksError,
    JwtClaims,
    JwtPolicy,
    JwtVerifier,
    looks_like_jwt,
    named_kid,
    parse_jwks,
)
from service.single_flight import SingleFlight

log = logging.getLogger(__name__)

IDENTITY = web.RequestKey("tokenstore_identity", Identity)
_MAX_AGE = re.compile(r"(?:^|[,\s])max-age=(\d+)")
# Before the first ``ready`` says how often the service sends heartbeats.
DEFAULT_SILENCE = 60.0


KEYS_REFRESH_S = 300.0
KEYS_REFETCH_S = 10.0


class GatewayError(Exception):
    """tokenstore gave no usable answer (unreachable, 5xx, unexpected reply): fail closed."""


class _NoLocalJwt(GatewayError):
    """The service will not serve its JWT policy to this client (limited to some apps)."""


class _StartOver(GatewayError):
    """The feed lost events the JWT deny-list needs: it is rebuilt from a new replay."""


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
        local_jwt: bool = False,
        jwt_grace: float = 30.0,
        jwt_cache_entries: int = 100_000,
    ) -> None:
        if local_jwt and not follow_feed:
            raise ValueError("local_jwt needs the revocation feed (follow_feed=True)")
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
        self._local_jwt = local_jwt
        self._jwt_grace = jwt_grace
        self._jwt_cache_entries = jwt_cache_entries  # verified JWTs kept, ~700 B each
        self.jwt: LocalJwt | None = None  # once the service's JWT policy and keys are fetched
        self._jwt_synced = asyncio.Event()
        self._replaying_since = False  # this feed connection replays by time (``since``)
        self._keys: SingleFlight[None] = SingleFlight()
        self._refresher: asyncio.Task[None] | None = None

    # --- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        if self._follow_feed and self._feed is None:
            self._feed = asyncio.create_task(self._follow())

    async def close(self) -> None:
        tasks = [self._feed, self._refresher, self._keys.task]
        self._feed = self._refresher = None
        for task in tasks:
            # Cancelled again until done: a cancellation can be lost in a race with a result.
            while task is not None and not task.done():
                task.cancel()
                await asyncio.wait({task}, timeout=1.0)
            if task is not None and not task.cancelled():
                task.exception()  # marks it retrieved: nobody else awaits it
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
        if self._local_jwt and looks_like_jwt(token):
            local = self.jwt
            if local is None or not local.synced:
                local = await self._wait_for_jwt_state()  # None: local checks turned off
            if local is not None:
                verdict = local.verifier.verify(token)
                if verdict is None and local.verifier.names_unknown_key(token):
                    await self._fetch_keys(token)
                    verdict = local.verifier.verify(token)
                if isinstance(verdict, JwtClaims):
                    try:
                        return local.identity(verdict)
                    except StaleState as exc:
                        raise GatewayError(str(exc)) from None
                if verdict is not None:
                    return None  # a JWT of ours, invalid: expired, forged, another audience...
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

    # --- local JWTs -------------------------------------------------------------------------

    async def _wait_for_jwt_state(self) -> LocalJwt | None:
        try:
            async with asyncio.timeout(self._timeout.total):
                await self._jwt_synced.wait()
        except TimeoutError:
            raise GatewayError("the JWT deny-list is not synced with the feed yet") from None
        return self.jwt if self._local_jwt else None

    async def _jwt_config(self, kid: str | None = None) -> tuple[JwtPolicy, JwtVerifier]:
        """The service's policy and keys (a verifier of them); GatewayError if unavailable."""
        if self._session is None:
            raise GatewayError("GatewayClient is not started")
        headers = {hdrs.AUTHORIZATION: self._authorization} if self._authorization else {}
        params = {"kid": kid} if kid is not None else {}
        try:
            async with self._session.get(
                f"{self.base_url}/v1/jwt/config",
                headers=headers,
                params=params,
                timeout=self._timeout,
            ) as response:
                body = await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise GatewayError(f"tokenstore unreachable: {exc!r}") from exc
        if response.status == 403:
            raise _NoLocalJwt("local JWT checks need an API client of every app")
        if response.status != 200:
            raise GatewayError(f"tokenstore answered {response.status} to /v1/jwt/config")
        try:
            config = orjson.loads(body)
            policy = JwtPolicy.from_public(config)
            keys = parse_jwks(config.get("jwks"), "/v1/jwt/config")
        except (orjson.JSONDecodeError, AttributeError, ValueError, JwksError) as exc:
            raise GatewayError(f"unusable /v1/jwt/config answer: {exc}") from None
        return policy, JwtVerifier(policy, keys, cache_entries=self._jwt_cache_entries)

    async def _fetch_keys(self, token: str | None = None) -> None:
        """Fetches the keys again (a JWT named one we do not hold: at most every
        ``KEYS_REFETCH_S``, concurrent callers sharing one request)."""
        kid = None if token is None else named_kid(token)
        await self._keys.run(
            lambda: self._replace_keys(kid), 0.0 if token is None else KEYS_REFETCH_S
        )

    async def _replace_keys(self, kid: str | None) -> None:
        try:
            policy, verifier = await self._jwt_config(kid)
        except GatewayError as exc:
            log.warning("cannot fetch the JWT keys: %s", exc)
            return
        local = self.jwt
        if local is None:
            return
        if policy == local.verifier.policy:
            local.verifier.replace_keys(verifier.key_set)
            return
        # Issuers, lifetimes or claims changed: what we verified and kept was by the old rules.
        log.warning("the service's JWT policy changed: rebuilding the JWT deny-list")
        self.jwt = None
        self._jwt_synced.clear()
        self.last_event_id = None
        self.cache.invalidate(EVERYTHING)
        if self._feed is not None:
            self._feed.cancel()
            self._feed = asyncio.create_task(self._follow())

    async def _start_local_jwt(self) -> None:
        try:
            _, verifier = await self._jwt_config()
        except _NoLocalJwt as exc:
            log.error("%s: JWTs are checked with the service instead", exc)
            self._local_jwt = False
            self._jwt_synced.set()  # wakes checks waiting for the state: they ask the service
            return
        self.jwt = LocalJwt(verifier, self._jwt_grace)
        if self._refresher is None:
            self._refresher = asyncio.create_task(self._refresh_keys())

    async def _refresh_keys(self) -> None:
        while True:
            await asyncio.sleep(KEYS_REFRESH_S)
            await self._fetch_keys()

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
                if self._local_jwt and self.jwt is None:
                    await self._start_local_jwt()
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
        params: dict[str, str] = {}
        self._replaying_since = self.jwt is not None and not self.last_event_id
        if self.jwt is not None and self._replaying_since:
            # No position yet: every revocation a live JWT may have met, by time.
            params["since"] = str(self.jwt.revocations.replay_since(now_ms()))
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self._timeout.total)
        async with self._session.get(
            f"{self.base_url}/v1/events", headers=headers, params=params, timeout=timeout
        ) as response:
            if response.status != 200:
                raise GatewayError(f"the feed answered {response.status}")

            async def readline() -> bytes:
                # Heartbeats come every few seconds: silence means a dead connection.
                # (asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation.)
                async with asyncio.timeout(self._silence):
                    line = await response.content.readline()
                if self.jwt is not None:
                    self.jwt.heard()
                return line

            async for message in sse.parse(readline):
                self._on_message(message)

    def _on_message(self, message: sse.Message) -> None:
        if message.event == "ready" and message.data:
            self.feed_connected = True
            self.feed_connections += 1
            heartbeat = float(orjson.loads(message.data).get("heartbeat", DEFAULT_SILENCE))
            self._silence = 3 * heartbeat + 1
            if self.jwt is not None:
                self.jwt.feed_ready(heartbeat)
                self._jwt_synced.set()
        elif message.event == "reset":
            self.cache.invalidate(EVERYTHING)
            self._on_reset()
        elif message.event and message.data:
            event = RevocationEvent.from_feed(message.event, message.data)
            if event is not None:  # another kind (of a newer service) revokes nothing we cache
                self.cache.invalidate(Invalidation.from_event(event))
                if self.jwt is not None:
                    self.jwt.revocations.apply(event, now_ms())
        if message.id is not None:
            self.last_event_id = message.id

    def _on_reset(self) -> None:
        if self.jwt is None:
            return
        if self._replaying_since:
            # Events older than the service keeps were trimmed: the replay of the rest follows.
            log.warning("the revocation feed keeps less than the longest JWT lifetime")
            return
        # Events after our position are gone, revocations among them: replay by time again.
        self.jwt.start_over()
        self._jwt_synced.clear()
        self.last_event_id = None
        raise _StartOver("the revocation feed lost events: rebuilding the JWT deny-list")

    def _feed_lost(self) -> None:
        self.feed_connected = False
        self._silence = DEFAULT_SILENCE
        # Revocations may now go unheard: cached answers must not outlive that knowledge.
        self.cache.invalidate(EVERYTHING)
