"""A replica killed (SIGKILL) in the middle of a webhook delivery: another replica takes its
pending event over (XAUTOCLAIM) and delivers it and every later one; nothing is lost, and no
event is answered 2xx twice. On a standalone Redis and a Cluster, with real processes."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from helpers import ADMIN_HEADERS
from redis_servers import RedisCluster, RedisServer
from service_process import ServiceProcess
from webhook_receivers import Receiver, wait_until, write_webhooks

EVENTS = 5
SETTINGS = {
    "TOKENSTORE_WEBHOOK_TIMEOUT": "0.5",
    "TOKENSTORE_WEBHOOK_CLAIM_IDLE": "1.2",
    "TOKENSTORE_WEBHOOK_BACKOFF": "0.05",
}


async def _revoke_some(url: str) -> list[str]:
    ids = []
    async with aiohttp.ClientSession(headers=ADMIN_HEADERS) as session:
        for n in range(EVENTS):
            issue = {"user_id": f"user{n}", "app_id": "web"}
            async with session.post(f"{url}/v1/tokens", json=issue) as response:
                assert response.status == 201
                token_id = (await response.json())["id"]
            async with session.delete(f"{url}/v1/tokens/{token_id}") as response:
                assert response.status == 200
            ids.append(token_id)
    return ids


@pytest.mark.parametrize("backend", ["standalone", "cluster"])
async def test_a_killed_replica_s_event_is_delivered_by_another(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    redis: RedisServer | RedisCluster = request.getfixturevalue(
        "redis_server" if backend == "standalone" else "redis_cluster"
    )
    redis.flush()
    # The first request is never answered in time: its sender is killed while it waits.
    async with Receiver(lambda n: (5.0 if n == 0 else 0.0, 200)) as receiver:
        hooks = write_webhooks(tmp_path, {"id": "audit", "url": receiver.url})
        env: dict[str, Any] = {
            "TOKENSTORE_REDIS_URL": redis.url, "TOKENSTORE_WEBHOOKS_FILE": str(hooks), **SETTINGS,
        }  # fmt: skip
        (tmp_path / "a").mkdir()
        (tmp_path / "b").mkdir()
        with ServiceProcess(tmp_path / "a", env) as first:
            await first.wait_ready()
            token_ids = await _revoke_some(first.url)
            await receiver.wait_for(lambda: len(receiver.received) >= 1)
            first.kill_group()  # mid-delivery: its POST was received, not answered
            await first.wait_exit(10)
        assert len(receiver.received) == 1
        with ServiceProcess(tmp_path / "b", env) as second:
            await second.wait_ready()
            await wait_until(lambda: len(receiver.delivered()) == EVENTS, within=20)
            await asyncio.sleep(1.5)  # past the claim idle time: no duplicate comes
        delivered = [r.body["data"]["ids"][0] for r in receiver.delivered()]
        assert sorted(delivered) == sorted(token_ids)  # nothing lost, none twice
        assert receiver.received[0].webhook_id == _the_one_for(receiver, token_ids[0])
        assert len(receiver.received) == EVENTS + 1  # the interrupted one, sent again


def _the_one_for(receiver: Receiver, token_id: str) -> str:
    [hit] = [r for r in receiver.delivered() if r.body["data"]["ids"] == [token_id]]
    return hit.webhook_id
