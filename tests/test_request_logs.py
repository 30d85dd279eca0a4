"""Request ids, the JSON line of every request, and the log formatter."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from helpers import ADMIN_HEADERS, ADMIN_ID, Client, call_as, introspect, issue
from redis_servers import free_port

from service.api.observe import REQUEST_ID_HEADER
from service.app import create_app
from service.lifecycle import LIFECYCLE
from service.logs import JsonFormatter
from service.settings import Settings

AiohttpClient = Any


def lines(caplog: pytest.LogCaptureFixture, logger: str | None = None) -> list[dict[str, Any]]:
    """The JSON lines the service printed (aiohttp's access log is the test server's own)."""
    parsed = [json.loads(line) for line in caplog.text.splitlines()]
    return [
        line
        for line in parsed
        if line["logger"] != "aiohttp.access" and (logger is None or line["logger"] == logger)
    ]


@pytest.fixture(autouse=True)
def json_capture(caplog: pytest.LogCaptureFixture) -> None:
    # Formatted when logged, as the service's handler does, so the request context is seen.
    caplog.handler.setFormatter(JsonFormatter())


@pytest.fixture
def settings(clients_file: Path) -> Settings:
    # The embedded store: these tests are about HTTP, not Redis.
    return Settings(clients_file=str(clients_file))


async def test_one_line_per_request_without_tokens_or_user_ids(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    body = await issue(client, "alice-the-user", "web")
    await introspect(client, body["token"])
    await client.delete("/v1/users/alice-the-user/tokens")
    await client.get("/healthz")  # a probe: DEBUG only
    access = lines(caplog, "tokenstore.access")
    assert [(a["method"], a["route"], a["status"]) for a in access] == [
        ("POST", "v1.issue", 201),
        ("POST", "v1.introspect", 200),
        ("DELETE", "v1.revoke_user_tokens", 200),
    ]
    for a in access:
        assert a["level"] == "INFO" and a["msg"] == "request"
        assert isinstance(a["duration_ms"], float) and a["remote"] == "127.0.0.1"
        assert len(a["request_id"]) == 32 and a["client_id"] == ADMIN_ID
    text = "\n".join(json.dumps(line) for line in lines(caplog))
    for leak in (body["token"], body["token"][4:40], "alice-the-user"):
        assert leak not in text


async def test_user_ids_are_logged_only_when_enabled(
    aiohttp_client: AiohttpClient, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    app = create_app(replace(settings, log_user_ids=True))
    client = await aiohttp_client(app, headers=ADMIN_HEADERS)
    await client.get("/v1/users/alice/tokens")
    await client.post("/v1/tokens", json={"user_id": "bob", "app_id": "web"})
    first, second = lines(caplog, "tokenstore.access")
    assert first["user_id"] == "alice"
    assert "user_id" not in second  # only the path's, never a body's


async def test_refusals_are_logged_without_a_client_or_credentials(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    wrong = {"Authorization": "Bearer not-the-secret-xyz"}
    status, headers, _ = await call_as(client, wrong, "POST", "/v1/introspect", json={"token": "x"})
    assert status == 401 and REQUEST_ID_HEADER in headers
    (line,) = lines(caplog, "tokenstore.access")
    assert (line["route"], line["status"]) == ("v1.introspect", 401)
    assert "client_id" not in line
    assert "not-the-secret-xyz" not in caplog.text


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("abc-123_XYZ.42", True),
        ("x" * 128, True),
        ("x" * 129, False),
        ("has space", False),
        ("", False),
        ("caf\u00e9", False),
    ],
)
async def test_request_id_is_taken_if_valid_and_echoed(
    client: Client, caplog: pytest.LogCaptureFixture, sent: str, kept: bool
) -> None:
    caplog.set_level(logging.INFO)
    headers = {REQUEST_ID_HEADER: sent.encode().decode("latin-1")}
    response = await client.post("/v1/introspect", json={"token": "x"}, headers=headers)
    echoed = response.headers[REQUEST_ID_HEADER]
    if kept:
        assert echoed == sent
    else:
        assert len(echoed) == 32 and int(echoed, 16) >= 0
    (line,) = lines(caplog, "tokenstore.access")
    assert line["request_id"] == echoed


async def test_error_responses_carry_the_request_id(client: Client) -> None:
    response = await client.get("/nowhere", headers={REQUEST_ID_HEADER: "r-404"})
    assert response.status == 404
    assert response.headers[REQUEST_ID_HEADER] == "r-404"


async def test_app_logs_during_a_request_carry_its_id(
    aiohttp_client: AiohttpClient, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    down = replace(settings, redis_url=f"redis://127.0.0.1:{free_port()}/0", redis_timeout=0.2)
    client = await aiohttp_client(create_app(down), headers=ADMIN_HEADERS)
    caplog.clear()  # start-up warnings belong to no request
    headers = {REQUEST_ID_HEADER: "r-503"}
    response = await client.post("/v1/introspect", json={"token": "ext"}, headers=headers)
    assert response.status == 503
    during = [w for w in lines(caplog, "service.redis_client") if "request_id" in w]
    assert during and {w["request_id"] for w in during} == {"r-503"}
    assert "redis unavailable" in during[0]["msg"]


async def test_draining_turns_readiness_off_and_closes_connections(client: Client) -> None:
    assert (await client.get("/readyz")).status == 200
    client.app[LIFECYCLE].drain()
    ready = await client.get("/readyz")
    assert ready.status == 503
    assert await ready.json() == {"status": "shutting_down"}
    served = await client.post("/v1/introspect", json={"token": "x"})
    assert served.status == 200  # still served, on a connection closed afterwards
    assert served.headers["Connection"] == "close"


def test_formatter_writes_one_json_object_per_record() -> None:
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed %s", ("here",), None)
    record.app_id = "web"
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record.exc_info = sys.exc_info()
    line = JsonFormatter().format(record)
    assert "\n" not in line.replace("\\n", "")
    data = json.loads(line)
    assert data["msg"] == "failed here" and data["level"] == "ERROR" and data["app_id"] == "web"
    assert data["ts"].endswith("+00:00") and "ValueError: boom" in data["exc"]


def test_the_fast_access_line_is_the_formatters_line(monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from service import logs

    stream = io.StringIO()
    handler = logs.BufferedStderrHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [handler])
    previous_level = root.level
    root.setLevel(logging.INFO)  # (setLevel, not setattr: it clears the loggers' caches)
    monkeypatch.setattr(logging.root.manager, "disable", logging.NOTSET)
    logger = logging.getLogger("tokenstore.access")
    fields = {"method": "POST", "route": "v1.introspect", "status": 200, "remote": "::1"}
    token = logs.request_id.set("rid-1")
    try:
        assert logs._sole_handler(logger, logging.INFO) is handler  # the fast path is taken
        logs.log_fast(logger, logging.INFO, "request", fields)
        logger.info("request", extra=fields)  # the general path, same handler
        assert logs._sole_handler(logger, logging.DEBUG) is None  # below the level: nothing
    finally:
        logs.request_id.reset(token)
        root.setLevel(previous_level)
    handler.flush()
    fast, general = (json.loads(line) for line in stream.getvalue().splitlines())
    assert abs(_ms(fast.pop("ts")) - _ms(general.pop("ts"))) < 1000
    assert fast == general
    assert fast["request_id"] == "rid-1" and fast["route"] == "v1.introspect"


def _ms(ts: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(ts).timestamp() * 1000
