"""Every bad input gets a clear 4xx with a JSON {error, message} body, and writes nothing."""

from __future__ import annotations

from typing import Any

import pytest
from helpers import Client, dump_values

from service.redis_client import AnyRedis

TOKEN_ID = "0123abcd-0000-4000-8000-0123456789ab"


def nested(depth: int) -> Any:
    """A JSON object nested ``depth`` deep ({} is 1 deep)."""
    return {} if depth <= 1 else {"a": nested(depth - 1)}


BAD_REQUESTS: list[tuple[str, str, Any, int]] = [
    # method, path, body (bytes: raw; None: no body; else JSON), status
    ("POST", "/v1/tokens", b"{not json", 400),
    ("POST", "/v1/tokens", b"", 400),
    ("POST", "/v1/tokens", [1, 2], 400),
    ("POST", "/v1/tokens", "a string", 400),
    ("POST", "/v1/tokens", {"app_id": "a"}, 400),
    ("POST", "/v1/tokens", {"user_id": "u"}, 400),
    ("POST", "/v1/tokens", {"user_id": "", "app_id": "a"}, 400),
    ("POST", "/v1/tokens", {"user_id": "u" * 257, "app_id": "a"}, 400),
    ("POST", "/v1/tokens", {"user_id": 5, "app_id": "a"}, 400),
    # null is not "mint one": a client meaning to register a value must not get a new one.
    ("POST", "/v1/tokens", {"user_id": "u", "app_id": "a", "token": None}, 400),
    ("POST", "/v1/tokens", {"user_id": "u", "app_id": "a", "type": "bad\x85"}, 400),  # C1
    ("POST", "/v1/tokens", {"user_id": "u", "app_id": "a", "surprise": 1}, 400),
    ("POST", "/v1/tokens", {"user_id": "u", "app_id": "a", "ttl": 0}, 400),
    ("POST", "/v1/tokens", {"user_id": "u", "app_id": "a", "ttl": -5}, 400),
    ("POST", "/v1/tokens", {"user_id": "u", "app_id": "a", "ttl": 10**9}, 400),
    ("POST", "/v1/tokens", {"user_id": "u", "app_id": "a", "ttl": "60"}, 400),
    ("POST", "/v1/tokens", {"user_id": "u", "app_id": "a", "ttl": 1.5}, 400),
    ("POST", "/v1/tokens", {"user_id": "u", "app_id": "a", "ttl": True}, 400),
    ("POST", "/v1/tokens", {"user_id": "u", "app_id": "a", "scopes": "email"}, 400),
    ("POST", "/v1/tokens", {"user_id": "u", "app_id": "a", "scopes": ["a b"]}, 400),
    ("POST", "/v1/tokens", {"user_id": "u", "app_id": "a", "scopes": [1]}, 400),
    ("POST", "/v1/tokens", {"user_id": "u", "app_id": "a", "metadata": [1]}, 400),
    ("POST", "/v1/tokens", {"user_id": "u", "app_id": "a", "metadata": {"x": "y" * 5000}}, 413),
    # Nesting: the body may be 32 deep (its metadata 31); deeper is refused before any write.
    ("POST", "/v1/tokens", {"user_id": "u", "app_id": "a", "metadata": nested(32)}, 400),
    ("POST", "/v1/tokens", {"user_id": "u", "app_id": "a", "metadata": nested(252)}, 400),
    ("POST", "/v1/tokens", {"user_id": "u", "app_id": "a", "metadata": nested(254)}, 400),
    ("POST", "/v1/tokens", b'{"user_id": "u", "app_id": "a", "x": ' + b"[" * 2000, 400),
    ("POST", "/v1/introspect", {"token": "t", "x": nested(40)}, 400),
    ("POST", "/v1/revoke", {"token": "t", "x": nested(300)}, 400),
    ("POST", "/v1/tokens", {"user_id": "u", "app_id": "a", "type": ""}, 400),
    ("POST", "/v1/tokens", {"user_id": "u", "app_id": "a", "device_name": "d" * 300}, 400),
    ("POST", "/v1/tokens", {"user_id": "u", "app_id": "a", "token": ""}, 400),
    ("POST", "/v1/tokens", {"user_id": "u", "app_id": "a", "token": "tks_x"}, 400),
    ("POST", "/v1/tokens", {"user_id": "u", "app_id": "a", "token": "x" * 5000}, 400),
    ("POST", "/v1/tokens", b"x" * 70_000, 413),
    ("POST", "/v1/introspect", {}, 400),
    ("POST", "/v1/introspect", {"token": 5}, 400),
    ("POST", "/v1/introspect", {"token": "t", "extra": 1}, 400),
    ("POST", "/v1/introspect", b"]", 400),
    ("POST", "/v1/revoke", {}, 400),
    ("GET", "/v1/tokens/not-an-id", None, 400),
    ("DELETE", "/v1/tokens/not-an-id", None, 400),
    ("GET", f"/v1/tokens/{TOKEN_ID}", None, 404),
    ("DELETE", "/v1/users/alice/tokens?except=bad-id", None, 400),
    ("GET", "/v1/apps/app/tokens?limit=0", None, 400),
    ("GET", "/v1/apps/app/tokens?limit=abc", None, 400),
    ("GET", "/v1/apps/app/tokens?limit=1001", None, 400),
    ("GET", "/v1/apps/app/tokens?cursor=nonsense", None, 400),
    # Absurd numbers: thousands of digits, digits that are not ASCII.
    ("GET", "/v1/apps/app/tokens?limit=" + "1" * 5000, None, 400),
    ("GET", "/v1/apps/app/tokens?limit=" + "0" * 4999 + "5", None, 400),
    ("GET", "/v1/apps/app/tokens?limit=%D9%A3", None, 400),  # ARABIC-INDIC DIGIT THREE
    ("GET", "/v1/apps/app/tokens?limit=%C2%B2", None, 400),  # SUPERSCRIPT TWO
    ("GET", f"/v1/apps/app/tokens?cursor=%C2%B2.{TOKEN_ID}", None, 400),
    ("GET", f"/v1/apps/app/tokens?cursor=%D9%A3.{TOKEN_ID}", None, 400),
    ("GET", f"/v1/apps/app/tokens?cursor={'1' * 5000}.{TOKEN_ID}", None, 400),
    ("GET", f"/v1/apps/app/tokens?cursor=01.{TOKEN_ID}", None, 400),  # cursors are as written
    ("GET", f"/v1/apps/app/tokens?cursor=1024.{TOKEN_ID}", None, 400),
    ("GET", "/v1/events?last_event_id=%D9%A3-0", None, 400),
    ("GET", "/v1/nothing-here", None, 404),
    ("PUT", "/v1/tokens", None, 405),
    ("GET", "/v1/introspect", None, 405),
]


@pytest.mark.parametrize(("method", "path", "body", "status"), BAD_REQUESTS)
@pytest.mark.parametrize("backend", ["standalone"], indirect=True)
async def test_bad_input_is_a_json_4xx_and_writes_nothing(
    client: Client, redis: AnyRedis, method: str, path: str, body: Any, status: int
) -> None:
    before = await dump_values(redis)
    kwargs: dict[str, Any] = {}
    if isinstance(body, bytes):
        kwargs["data"] = body
    elif body is not None:
        kwargs["json"] = body
    response = await client.request(method, path, **kwargs)
    assert response.status == status
    assert response.content_type == "application/json"
    answer = await response.json()
    assert set(answer) == {"error", "message"}
    assert answer["error"] and answer["message"]
    if status == 405:
        assert response.headers["Allow"]
    assert await dump_values(redis) == before
