"""TOKENSTORE_JWT_JWKS_URL: the JWKS served by a local HTTP server, fetched at start, and
fetched again (rate-limited) when a JWT names a kid we do not hold: key rotation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from helpers import ADMIN_HEADERS, introspect
from jwt_keys import ISSUER, SigningKey

from service.api.responses import SERVICE
from service.app import create_app
from service.jwks_fetch import JwksFetcher
from service.settings import Settings

Client = TestClient[Any, Any]


class Issuer:
    """An identity provider's jwks_uri: serves its current keys and counts the fetches."""

    def __init__(self, *keys: SigningKey) -> None:
        self.keys = list(keys)
        self.fetches = 0
        self.failing = False

    async def jwks(self, _request: web.Request) -> web.Response:
        self.fetches += 1
        if self.failing:
            return web.Response(status=503)
        return web.json_response({"keys": [key.jwk() for key in self.keys]})


async def _service(
    aiohttp_client: Any, aiohttp_server: Any, issuer: Issuer, clients_file: Path
) -> Client:
    idp = web.Application()
    idp.router.add_get("/jwks.json", issuer.jwks)
    server: TestServer = await aiohttp_server(idp)
    settings = Settings(
        clients_file=str(clients_file),
        jwt_jwks_url=str(server.make_url("/jwks.json")),
        jwt_issuers=(ISSUER,),
    )
    client: Client = await aiohttp_client(create_app(settings), headers=ADMIN_HEADERS)
    return client


async def _active(client: Client, token: str) -> bool:
    return bool((await introspect(client, token))["active"])


async def test_keys_are_fetched_at_start_and_again_for_a_new_kid(
    aiohttp_client: Any, aiohttp_server: Any, clients_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old, new, bogus = SigningKey.new("ES256"), SigningKey.new("EdDSA"), SigningKey.new("ES256")
    issuer = Issuer(old)
    client = await _service(aiohttp_client, aiohttp_server, issuer, clients_file)
    assert issuer.fetches == 1  # before serving
    assert await _active(client, old.sign(aud=None))
    assert issuer.fetches == 1
    # The issuer rotates: the new key is published, the old one withdrawn.
    issuer.keys = [new]
    monkeypatch.setattr(JwksFetcher, "MIN_REFETCH_S", 0.0)
    assert await _active(client, new.sign(aud=None))  # unknown kid: fetched again
    assert issuer.fetches == 2
    assert not await _active(client, old.sign(aud=None))  # its key is gone
    monkeypatch.setattr(JwksFetcher, "MIN_REFETCH_S", 3600.0)
    assert not await _active(client, bogus.sign(aud=None))
    assert not await _active(client, SigningKey.new("ES256").sign(aud=None))
    assert issuer.fetches == 3  # the old key's kid made one more; then rate-limited
    assert await _active(client, new.sign(aud=None))


async def test_a_failed_fetch_keeps_every_jwt_inactive_until_keys_arrive(
    aiohttp_client: Any, aiohttp_server: Any, clients_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = SigningKey.new("RS256")
    issuer = Issuer(key)
    issuer.failing = True
    monkeypatch.setattr(JwksFetcher, "MIN_REFETCH_S", 0.0)
    client = await _service(aiohttp_client, aiohttp_server, issuer, clients_file)
    assert not await _active(client, key.sign(aud=None))
    issuer.failing = False
    assert await _active(client, key.sign(aud=None))
    issuer.failing = True
    rules = client.app[SERVICE].jwt
    assert rules is not None and rules.fetcher is not None
    assert not await rules.fetcher.fetch()  # the periodic refresh, failing
    assert await _active(client, key.sign(aud=None))  # the keys held are kept
