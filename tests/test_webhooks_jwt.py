"""``jwt`` events (a denied jti, a user's JWTs cut off) delivered by webhooks to real receivers
on loopback, in both formats, signed (the receivers verify with ``standardwebhooks``)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from helpers import ADMIN_HEADERS
from jwt_keys import AUDIENCE, ISSUER, SigningKey, write_jwks
from webhook_receivers import Receiver, write_webhooks

from service.app import create_app
from service.settings import Settings

Client = TestClient[Any, Any]
KEY = SigningKey.new("EdDSA", "ed")


@pytest.mark.parametrize("backend", ["standalone", "cluster", "embedded"], indirect=True)
async def test_jwt_events_reach_standard_and_fusionauth_receivers(
    aiohttp_client: Any, redis_url: str | None, clients_file: Path, tmp_path: Path
) -> None:
    async with Receiver() as standard, Receiver() as fusionauth:
        hooks = write_webhooks(
            tmp_path,
            {"id": "std", "url": standard.url, "events": ["jwt"]},
            {"id": "fa", "url": fusionauth.url, "events": ["jwt"], "format": "fusionauth"},
        )
        settings = Settings(
            redis_url=redis_url, clients_file=str(clients_file), webhooks_file=str(hooks),
            jwt_jwks_file=str(write_jwks(tmp_path / "jwks.json", KEY)), jwt_issuers=(ISSUER,),
            jwt_audience=AUDIENCE, webhook_timeout=0.3,
            webhook_backoff=0.05,
        )  # fmt: skip
        client: Client = await aiohttp_client(create_app(settings), headers=ADMIN_HEADERS)
        exp = int(time.time()) + 300
        denied = await client.post("/v1/jwt/revoke", json={"token": KEY.sign(jti="j-1", exp=exp)})
        assert denied.status == 200
        before_ms = int(time.time() * 1000)
        for path in ("/v1/users/bob/tokens?app_id=web", "/v1/users/carol/tokens"):
            assert (await client.delete(path)).status == 200  # user events too: not wanted

        await standard.wait_for(lambda: len(standard.delivered()) == 3)
        await fusionauth.wait_for(lambda: len(fusionauth.delivered()) == 3)
        _check_standard(standard, exp * 1000, before_ms)
        _check_fusionauth(fusionauth, settings.max_ttl)
        # One stream id per event, the same in both formats.
        ids = [r.webhook_id for r in standard.delivered()]
        assert len(set(ids)) == 3 and ids == [r.webhook_id for r in fusionauth.delivered()]


def _check_standard(receiver: Receiver, expires_at: int, before_ms: int) -> None:
    bodies = [r.body for r in receiver.delivered()]
    assert {b["type"] for b in bodies} == {"revocation.jwt"}
    denial, bob, carol = (b["data"] for b in bodies)
    assert (denial["kind"], denial["ids"], denial["user_id"], denial["app_id"]) == (
        "jwt", ["j-1"], "alice", "web",
    )  # fmt: skip
    assert (denial["issuer"], denial["expires_at"]) == (ISSUER, expires_at)
    assert denial["revoked_before"] is None and denial["actor"] == "test-admin"
    assert (bob["user_id"], bob["app_id"], bob["scope"], bob["ids"]) == (
        "bob", "web", "user_app", [],
    )  # fmt: skip
    assert (carol["user_id"], carol["app_id"], carol["scope"]) == ("carol", "", None)
    for cut_off in (bob, carol):
        assert cut_off["revoked_before"] >= before_ms
        assert (cut_off["issuer"], cut_off["expires_at"]) == (None, None)


def _check_fusionauth(receiver: Receiver, ttl_s: int) -> None:
    delivered = receiver.delivered()
    events = [r.body["event"] for r in delivered]
    for got, event in zip(delivered, events, strict=True):
        assert event["type"] == "jwt.refresh-token.revoke"
        assert event["id"] == got.webhook_id and isinstance(event["createInstant"], int)
        assert "refreshTokenId" not in event  # a jti names no refresh token
    denial, bob, carol = events
    assert (denial["userId"], denial["applicationId"]) == ("alice", "web")
    assert denial["applicationTimeToLiveInSeconds"] == {"web": ttl_s}
    assert (bob["userId"], bob["applicationId"]) == ("bob", "web")
    assert carol["userId"] == "carol" and "applicationId" not in carol  # every app
    assert carol["applicationTimeToLiveInSeconds"] == {}
