"""What the gateway benchmarks share: a redis-server, one ``tokenstore serve`` process, an
admin client to issue and revoke tokens, percentiles.

The service gets an admin API client (a clients file): issuing, revoking and following the
feed take its credentials; /v1/authz (what nginx asks) needs none.
"""

from __future__ import annotations

import contextlib
import math
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from redis_servers import RedisServer

from bench.harness import service_process, write_clients_file

READY_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class Tokenstore:
    url: str
    authorization: str  # an admin API client's credentials

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": self.authorization}

    async def issue(self, session: aiohttp.ClientSession, user_id: str, app_id: str) -> Any:
        body = {"user_id": user_id, "app_id": app_id}
        url = f"{self.url}/v1/tokens"
        async with session.post(url, json=body, headers=self.headers) as response:
            if response.status != 201:
                raise RuntimeError(f"issue: {response.status} {await response.text()}")
            return await response.json()

    async def revoke(self, session: aiohttp.ClientSession, token_id: str) -> None:
        url = f"{self.url}/v1/tokens/{token_id}"
        async with session.delete(url, headers=self.headers) as response:
            if response.status != 200:
                raise RuntimeError(f"revoke: {response.status} {await response.text()}")


@contextlib.contextmanager
def tokenstore(env: Mapping[str, str] | None = None) -> Iterator[Tokenstore]:
    """A redis-server and one ``tokenstore serve`` on free loopback ports, stopped on exit."""
    with RedisServer() as redis, tempfile.TemporaryDirectory(prefix="bench-gw-") as tmp:
        credentials = write_clients_file(Path(tmp))
        with service_process(redis.url, credentials, name="gateway", extra_env=env) as service:
            yield Tokenstore(service.url, credentials.authorization)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), nearest rank."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]
