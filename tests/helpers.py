"""Helpers shared by tests: credentials, issuing through HTTP, reading what Redis holds."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any, cast

from aiohttp import ClientSession
from aiohttp.test_utils import TestClient
from redis.asyncio import RedisCluster

from service.clients import hash_secret
from service.redis_client import AnyRedis

Client = TestClient[Any, Any]
ADMIN_ID = "test-admin"
ADMIN_SECRET = "tkc_test-admin-secret-0123456789"


def basic(client_id: str, secret: str) -> dict[str, str]:
    raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def bare(secret: str) -> dict[str, str]:
    return {"Authorization": secret}


ADMIN_HEADERS = bearer(ADMIN_SECRET)


def client_entry(client_id: str, secret: str, permissions: list[str], apps: list[str]) -> Any:
    digest = hash_secret(secret).hex()
    return {"id": client_id, "secret_sha256": digest, "permissions": permissions, "apps": apps}


def write_clients(path: Path, *entries: Any) -> Path:
    path.write_text(json.dumps({"clients": list(entries)}), encoding="utf-8")
    return path


def add_clients(path: Path, *entries: Any) -> Path:
    """The clients file at ``path`` with these entries added (sync: call it from a fixture)."""
    existing = json.loads(path.read_text(encoding="utf-8"))["clients"]
    return write_clients(path, *existing, *entries)


async def issue(client: Client, user_id: str = "alice", app_id: str = "app", **extra: Any) -> Any:
    response = await client.post("/v1/tokens", json={"user_id": user_id, "app_id": app_id, **extra})
    assert response.status == 201, await response.text()
    return await response.json()


async def introspect(client: Client, token: str) -> Any:
    response = await client.post("/v1/introspect", json={"token": token})
    assert response.status == 200, await response.text()
    return await response.json()


async def call_as(
    client: Client, headers: Any, method: str, path: str, **kwargs: Any
) -> tuple[int, Any, Any]:
    """(status, headers, JSON body) of a call with these credentials only (None: none), not
    the client's default ones."""
    async with (
        ClientSession() as session,
        session.request(method, client.make_url(path), headers=headers, **kwargs) as response,
    ):
        json_body = response.content_type == "application/json"
        return (
            response.status,
            response.headers,
            await (response.json() if json_body else response.read()),
        )


async def all_keys(redis: AnyRedis) -> list[bytes]:
    """Every key on every node (the test servers hold nothing else)."""
    if isinstance(redis, RedisCluster):
        keys: list[bytes] = []
        for node in redis.get_primaries():
            keys += cast(list[bytes], await redis.keys(target_nodes=node))
        return keys
    return cast(list[bytes], await redis.keys())


async def user_hashes(redis: AnyRedis) -> dict[bytes, dict[bytes, bytes]]:
    """Every user hash (storage layout v2, ``h:{tag}``) with its fields."""
    r = cast(Any, redis)
    return {key: await r.hgetall(key) for key in await all_keys(redis) if b"h:{" in key}


def token_fields(hashes: dict[bytes, dict[bytes, bytes]]) -> list[bytes]:
    """The token fields (rids) of these user hashes, whoever owns them."""
    return [field for fields in hashes.values() for field in fields if len(field) == 8]


async def dump_values(redis: AnyRedis) -> bytes:
    """Every key name and value stored, concatenated, to search for leaked secrets."""
    out = b""
    r = cast(Any, redis)
    for key in await all_keys(redis):
        out += key
        kind = (await r.type(key)).decode()
        if kind == "hash":
            for field, value in (await r.hgetall(key)).items():
                out += field + value
        elif kind == "zset":
            out += b"".join(await r.zrange(key, 0, -1))
        elif kind == "string":
            out += await r.get(key)
        elif kind == "stream":
            for _id, fields in await r.xrange(key):
                out += b"".join(k + v for k, v in fields.items())
    return out


async def snapshot(redis: AnyRedis) -> dict[bytes, Any]:
    """Every key with its type and value (not its TTL), to assert that a call changed nothing."""
    r = cast(Any, redis)
    state: dict[bytes, Any] = {}
    for key in sorted(await all_keys(redis)):
        kind = (await r.type(key)).decode()
        if kind == "none":
            continue  # gone since KEYS: the app sweeper runs on its own after an app revocation
        readers = {
            "hash": lambda k: r.hgetall(k),
            "zset": lambda k: r.zrange(k, 0, -1, withscores=True),
            "string": lambda k: r.get(k),
            "list": lambda k: r.lrange(k, 0, -1),
            "stream": lambda k: r.xrange(k),
        }
        state[key] = (kind, await readers[kind](key))
    return state
