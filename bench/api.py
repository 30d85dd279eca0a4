"""A small HTTP client of the native API, sending the benchmark's credentials every time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import aiohttp

from bench.harness import Credentials
from bench.workload import Spec

TIMEOUT = aiohttp.ClientTimeout(total=120)


class ApiError(RuntimeError):
    pass


class Api:
    def __init__(self, base_url: str, credentials: Credentials) -> None:
        self.base_url = base_url
        self._headers = credentials.headers
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        connector = aiohttp.TCPConnector(limit=64)
        self._session = aiohttp.ClientSession(
            self.base_url, headers=self._headers, timeout=TIMEOUT, connector=connector
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._session is not None:
            await self._session.close()

    async def call(
        self, method: str, path: str, body: Any = None, expect: int = 200
    ) -> tuple[Any, float]:
        """(JSON answer, seconds from sending to the whole answer read)."""
        assert self._session is not None
        started = time.perf_counter()
        async with self._session.request(method, path, json=body) as response:
            answer = await response.json(content_type=None)
            elapsed = time.perf_counter() - started
            if response.status != expect:
                raise ApiError(f"{method} {path}: {response.status} {answer}")
        return answer, elapsed

    async def issue(self, spec: Spec, ttl: int) -> dict[str, Any]:
        answer, _ = await self.call("POST", "/v1/tokens", {**spec.body(), "ttl": ttl}, 201)
        return dict(answer)

    async def issue_all(self, specs: Iterable[Spec], ttl: int, parallel: int = 32) -> list[str]:
        """Token values of the specs, issued through HTTP, ``parallel`` at a time."""
        limit = asyncio.Semaphore(parallel)

        async def one(spec: Spec) -> str:
            async with limit:
                return str((await self.issue(spec, ttl))["token"])

        return list(await asyncio.gather(*map(one, specs)))

    async def introspect(self, token: str) -> dict[str, Any]:
        answer, _ = await self.call("POST", "/v1/introspect", {"token": token})
        return dict(answer)

    async def active_count(self, tokens: Iterable[str]) -> int:
        answers = await asyncio.gather(*map(self.introspect, tokens))
        return sum(1 for answer in answers if answer.get("active") is True)

    async def list_user(self, user_id: str) -> list[dict[str, Any]]:
        answer, _ = await self.call("GET", f"/v1/users/{quote(user_id, safe='')}/tokens")
        return list(answer["tokens"])

    async def revoke_user(self, user_id: str) -> tuple[list[str], float]:
        answer, elapsed = await self.call("DELETE", f"/v1/users/{quote(user_id, safe='')}/tokens")
        return list(answer["revoked"]), elapsed

    async def revoke_app(self, app_id: str) -> tuple[int, float]:
        answer, elapsed = await self.call("DELETE", f"/v1/apps/{quote(app_id, safe='')}/tokens")
        return int(answer["revoked_before"]), elapsed
