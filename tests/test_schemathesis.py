"""Schemathesis against a real service process (a real redis-server behind it), over the
service's own ``/openapi.json``, called as the admin client.

The document is built here from the same routes (schemathesis's lazy pytest loader does not
run under pytest 9.2), and the fixture checks that the process serves exactly it.

Every check schemathesis has runs on every generated request: no 5xx; every status, content
type, header and body as documented; every schema-valid request accepted (the document is not
looser than validation); every schema-violating request refused (it is not stricter either,
which is what catches a lenient handler, such as one taking ``token: null`` for "mint one").
The coverage phase (boundaries of every schema) and a bounded fuzzing phase both run.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests
import schemathesis
from helpers import ADMIN_HEADERS
from hypothesis import HealthCheck, settings
from jwt_keys import ISSUER, SigningKey, write_jwks
from redis_servers import RedisServer
from schemathesis import Case
from schemathesis.checks import CheckFunction
from schemathesis.core.transport import Response
from schemathesis.specs.openapi.checks import positive_data_acceptance
from service_process import ServiceProcess

from service.api.access import RULES
from service.api.openapi import document
from service.api.routing import ROUTES
from service.app import create_app
from service.clients import ClientRegistry
from service.settings import Settings

# Fuzzing examples per operation (the coverage phase adds its own): about a minute on 2 busy
# cores for the 38 operations. Raise it locally to search harder.
EXAMPLES = 20
REQUEST_TIMEOUT = 10.0
# /v1/events never ends: schemathesis reads it until its timeout has passed, and the heartbeat
# makes sure something arrives to notice that.
FEED_TIMEOUT = 0.4
FEED_HEARTBEAT = "0.1"
# JWTs on, so that POST /v1/jwt/revoke is documented and checked too. The JWKS is written at
# import (the document is built then); the directory goes when the interpreter exits.
_JWKS_DIR = tempfile.TemporaryDirectory(prefix="schemathesis-jwks-")
JWKS_FILE = write_jwks(Path(_JWKS_DIR.name) / "jwks.json", SigningKey.new("ES256"))
JWT_SETTINGS = {"TOKENSTORE_JWT_JWKS_FILE": str(JWKS_FILE), "TOKENSTORE_JWT_ISSUERS": ISSUER}


@pytest.fixture(scope="module")
def service_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    workdir: Path = tmp_path_factory.mktemp("schemathesis")
    with RedisServer() as redis:
        settings = {
            "TOKENSTORE_REDIS_URL": redis.url,
            "TOKENSTORE_FEED_HEARTBEAT": FEED_HEARTBEAT,
            **JWT_SETTINGS,
        }
        with ServiceProcess(workdir, settings) as service:
            asyncio.run(service.wait_ready())
            yield service.url
            errors = [line for line in service.lines() if line["level"] in {"ERROR", "CRITICAL"}]
            assert not errors, errors


def _document() -> dict[str, Any]:
    """The document the service process serves (it runs with the default limits, JWTs on)."""
    settings = Settings.from_env(JWT_SETTINGS)
    app = create_app(settings, ClientRegistry([]))
    # Through JSON, as served: tuples become lists.
    routes, rules = app[ROUTES], app[RULES]
    doc: dict[str, Any] = orjson.loads(orjson.dumps(document(routes, rules, settings)))
    return doc


DOCUMENT = _document()
schema = schemathesis.openapi.from_dict(DOCUMENT)


@pytest.fixture(scope="module")
def base_url(service_url: str) -> str:
    served = requests.get(f"{service_url}/openapi.json", timeout=10).json()
    assert served == DOCUMENT
    return service_url


@pytest.fixture(scope="module")
def live_token(base_url: str) -> str:
    """A token for /v1/authz (its own credential), so that its 200s and 403s are checked too;
    ids no generated request names, so that none revokes it."""
    issue = {"user_id": "schemathesis user", "app_id": "schemathesis app", "scopes": ["0", "A"]}
    response = requests.post(f"{base_url}/v1/tokens", json=issue, headers=ADMIN_HEADERS, timeout=10)
    assert response.status_code == 201, response.text
    token: str = response.json()["token"]
    return token


def _unknown_usergrid_token(case: Case[Any], response: Response) -> bool:
    """Usergrid answers an unknown token with 400 ``auth_bad_access_token`` (its clients expect
    that, README "Wire-compatible dialects"): its "not found", for a value no schema can tell
    from a live token's."""
    return (
        case.operation.path.endswith("/revoketoken")
        and response.status_code == 400
        and b'"error":"auth_bad_access_token"' in response.content  # JSON or JSONP
    )


def _not_a_valid_jwt(case: Case[Any], response: Response) -> bool:
    """``POST /v1/jwt/revoke {"token"}`` answers a value that is not a valid JWT of a
    configured issuer with 400 ``invalid_token``: no schema can tell a signed JWT from a
    string."""
    return (
        case.operation.path == "/v1/jwt/revoke"
        and response.status_code == 400
        and response.json().get("error") == "invalid_token"
    )


def _token_not_rotatable(case: Case[Any], response: Response) -> bool:
    """Rotation answers a value that is not a live token with 400 (``invalid_token``, or
    ``token_reused`` for a rotated one, as OAuth's refresh grant does): no schema can tell a
    live token's value from any other string."""
    return (
        case.operation.path == "/v1/tokens/rotate"
        and response.status_code == 400
        and response.json().get("error") in {"invalid_token", "token_reused"}
    )


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
)
def test_api_conforms_to_its_openapi_document(
    base_url: str, live_token: str, case: Case[Any]
) -> None:
    __tracebackhide__ = True
    gateway = case.operation.path.startswith("/v1/authz")
    transport: dict[str, Any] = {
        "base_url": base_url,
        "headers": {"Authorization": f"Bearer {live_token}"} if gateway else dict(ADMIN_HEADERS),
        "timeout": FEED_TIMEOUT if case.operation.path == "/v1/events" else REQUEST_TIMEOUT,
    }
    response = case.call(**transport)
    excluded: list[CheckFunction] = (
        [positive_data_acceptance]
        if _unknown_usergrid_token(case, response)
        or _token_not_rotatable(case, response)
        or _not_a_valid_jwt(case, response)
        else []
    )
    case.validate_response(
        response,
        excluded_checks=excluded,
        headers=transport["headers"],
        transport_kwargs=transport,
    )
