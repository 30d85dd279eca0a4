"""Idle lifetimes: a token not used for ``idle_ttl`` seconds is inactive everywhere; uses are
recorded at most once per resolution, in batches off the request path; cache hints never
outlive the idle time left. Short TTLs, on standalone Redis, Redis Cluster and embedded."""

from __future__ import annotations

import asyncio
import re
from typing import Any, cast

import pytest
from helpers import ADMIN_HEADERS, Client, bearer, call_as, introspect, issue

from service.api.responses import SERVICE, STORE
from service.app import create_app
from service.clock import now_ms
from service.redis_client import AnyRedis
from service.scope import EVERYTHING
from service.settings import Settings
from service.tokens import parse_id

AiohttpClient = Any


def writes(metrics: str, op: str) -> int:
    """How many store round trips of ``op`` the process made, from its /metrics text."""
    pattern = rf'tokenstore_redis_command_duration_seconds_count\{{op="{op}"\}} (\d+)'
    found = re.search(pattern, metrics)
    return int(found.group(1)) if found else 0


async def metrics(client: Client) -> str:
    return await (await client.get("/metrics")).text()


async def test_uses_keep_a_token_alive_and_idleness_ends_it_everywhere(client: Client) -> None:
    body = await issue(client, idle_ttl=1, ttl=600)
    assert body["idle_ttl"] == 1
    for _ in range(6):  # used every 0.3 s for 1.8 s: longer than its idle lifetime
        await asyncio.sleep(0.3)
        assert (await introspect(client, body["token"]))["active"] is True
    await asyncio.sleep(0.3)  # the last use is written
    used = await (await client.get(f"/v1/tokens/{body['id']}")).json()
    assert used["last_used_at"] > body["created_at"] + 1000
    await asyncio.sleep(1.1)
    token, token_id = body["token"], body["id"]
    assert await introspect(client, token) == {"active": False}
    oauth = await client.post("/oauth2/introspect", data={"token": token})
    assert await oauth.json() == {"active": False}
    assert (await call_as(client, bearer(token), "GET", "/v1/authz"))[0] == 401
    assert (await client.get(f"/v1/tokens/{token_id}")).status == 404
    listed = await (await client.get("/v1/users/alice/tokens")).json()
    assert listed == {"tokens": []}
    assert (await client.get("/oauth/api/v1/users/alice/tokens")).status == 404
    fusion = await (await client.get("/api/jwt/refresh?userId=alice")).json()
    assert fusion == {"refreshTokens": []}
    assert (await (await client.get("/v1/apps/app/tokens")).json())["tokens"] == []
    assert (await (await client.get("/v1/users/alice/sessions")).json()) == {"sessions": []}
    status, answer = await _rotate(client, token)
    assert (status, answer["error"]) == (400, "invalid_token")


async def _rotate(client: Client, token: str) -> tuple[int, Any]:
    response = await client.post("/v1/tokens/rotate", json={"token": token})
    return response.status, await response.json()


async def test_rotation_counts_as_a_use(client: Client) -> None:
    body = await issue(client, idle_ttl=1)
    await asyncio.sleep(0.6)
    status, successor = await _rotate(client, body["token"])
    assert status == 201 and successor["idle_ttl"] == 1
    await asyncio.sleep(0.6)  # 1.2 s after the login, 0.6 s after the rotation
    assert (await introspect(client, successor["token"]))["active"] is True


async def test_uses_are_written_in_batches_at_most_once_per_resolution(client: Client) -> None:
    idle = await issue(client, idle_ttl=3600)  # resolution: min(60 s, 360 s)
    plain = await issue(client)
    before = writes(await metrics(client), "record_uses")
    await asyncio.sleep(0.01)
    for _ in range(3):
        answers = await asyncio.gather(
            *(introspect(client, t) for t in [idle["token"], plain["token"]] * 20)
        )
        assert all(a["active"] for a in answers)
        await asyncio.sleep(0.3)
    # The first use is recorded (60 s after creation had not passed: none is, at first).
    assert writes(await metrics(client), "record_uses") == before
    stale = await issue(client, idle_ttl=10)  # resolution 1 s
    await asyncio.sleep(1.05)
    for _ in range(3):
        await asyncio.gather(*(introspect(client, stale["token"]) for _ in range(20)))
        await asyncio.sleep(0.3)
    assert writes(await metrics(client), "record_uses") == before + 1


async def test_cache_hints_never_outlive_the_idle_time_left(
    settings: Settings, aiohttp_client: AiohttpClient
) -> None:
    long_cache = Settings(
        redis_url=settings.redis_url, clients_file=settings.clients_file, cache_max_age=600
    )
    client: Client = await aiohttp_client(create_app(long_cache), headers=ADMIN_HEADERS)
    idle = await issue(client, idle_ttl=3, ttl=600)
    plain = await issue(client, ttl=600)
    answer = await client.post("/v1/introspect", json={"token": idle["token"]})
    assert answer.headers["Cache-Control"] in {f"max-age={s}, must-revalidate" for s in (2, 3)}
    answer = await client.post("/v1/introspect", json={"token": plain["token"]})
    assert answer.headers["Cache-Control"] in {f"max-age={s}, must-revalidate" for s in (599, 600)}
    status, headers, _ = await call_as(client, bearer(idle["token"]), "GET", "/v1/authz")
    assert status == 200 and headers["Cache-Control"].startswith(("max-age=2,", "max-age=3,"))


async def test_a_late_use_never_revives_an_idle_token(client: Client) -> None:
    body = await issue(client, idle_ttl=1)
    await asyncio.sleep(1.05)
    tid = parse_id(body["id"])
    assert tid is not None
    await client.app[STORE].record_uses({tid: now_ms()})  # written after it went idle
    assert await introspect(client, body["token"]) == {"active": False}
    assert (await client.get(f"/v1/tokens/{body['id']}")).status == 404


async def test_pending_uses_are_written_at_shutdown(client: Client) -> None:
    body = await issue(client, idle_ttl=2)
    await asyncio.sleep(0.25)  # past the resolution (0.2 s)
    service = client.app[SERVICE]
    record = await service.introspect(body["token"], scope=EVERYTHING)
    assert record is not None
    await service.close()  # flushes at once, without waiting for the batch timer
    after = await (await client.get(f"/v1/tokens/{body['id']}")).json()
    assert after["last_used_at"] > body["created_at"]


@pytest.mark.parametrize("value", [-1, "5", 1.5, 10**9])
async def test_bad_idle_ttls(client: Client, value: Any) -> None:
    response = await client.post(
        "/v1/tokens", json={"user_id": "a", "app_id": "b", "idle_ttl": value}
    )
    assert response.status == 400


async def test_uses_are_recorded_after_redis_lost_its_scripts(
    client: Client, redis: AnyRedis
) -> None:
    body = await issue(client, idle_ttl=5)
    tid = parse_id(body["id"])
    assert tid is not None
    store = client.app[STORE]
    await store.record_uses({tid: now_ms()})  # the first: loads the script
    await cast(Any, redis).script_flush()  # as a restarted Redis: EVALSHA finds nothing
    used = now_ms() + 1
    await store.record_uses({tid: used})
    after = await (await client.get(f"/v1/tokens/{body['id']}")).json()
    assert after["last_used_at"] == used
