"""Apache Usergrid's logout endpoints, ``revoketoken`` and ``revoketokens``.

``/{org}/{app}/users/{user}/...`` acts on the user's tokens of application ``{app}`` (the
``{org}`` segment is accepted and ignored); ``/management/users/{user}/...`` on the user's
tokens of every application. Usergrid's SDKs send PUT or POST with no Content-Type and a body
of ``{}``, ``null`` or nothing: the body is never read. Success is exactly 200 with JSON; a
``callback`` query parameter wraps any answer as JSONP, as Usergrid does.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import orjson
from aiohttp import web

from service.api.access import principal
from service.api.errors import HttpError
from service.api.openapi_compat import USER_ID
from service.api.openapi_parts import Schema, param, path_segment, ref, text
from service.api.responses import service
from service.api.routing import Dialect, Route
from service.auth import Rule
from service.clients import Permission
from service.errors import BadRequest

# A JSONP callback: an ASCII JavaScript name, dotted (the OpenAPI document states it too).
CALLBACK_PATTERN = r"[A-Za-z_$][A-Za-z0-9_$.]{0,63}"
_CALLBACK_RE = re.compile(CALLBACK_PATTERN)
_STARTED = web.RequestKey("usergrid_started", float)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _answer(request: web.Request, body: dict[str, Any], status: int = 200) -> web.Response:
    started = request.get(_STARTED, time.monotonic())
    body = {**body, "timestamp": _now_ms(), "duration": int((time.monotonic() - started) * 1000)}
    callback = request.query.get("callback")
    if callback and _CALLBACK_RE.fullmatch(callback):
        text = f"{callback}({orjson.dumps(body).decode()});"
        return web.Response(text=text, status=status, content_type="application/javascript")
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def _start(request: web.Request) -> None:
    request[_STARTED] = time.monotonic()
    callback = request.query.get("callback")
    if callback is not None and not _CALLBACK_RE.fullmatch(callback):
        raise BadRequest("callback is not a JavaScript identifier", code="illegal_argument")


def _app_of(request: web.Request) -> str | None:
    return request.match_info.get("app")


async def revoke_tokens(request: web.Request) -> web.Response:
    _start(request)
    caller = principal(request)
    await service(request).revoke_user(
        request.match_info["user_id"], _app_of(request), actor=caller.as_actor(),
        scope=caller.scope,
    )  # fmt: skip
    return _answer(request, {"action": "revoked user tokens"})


async def revoke_token(request: web.Request) -> web.Response:
    _start(request)
    token = request.query.get("token")
    if not token:
        raise BadRequest("the token query parameter is required", code="illegal_argument")
    caller = principal(request)
    scope = caller.scope.within(user_id=request.match_info["user_id"], app_id=_app_of(request))
    if not await service(request).revoke_token(token, caller.as_actor(), scope=scope):
        raise BadRequest("unable to authenticate the token", code="auth_bad_access_token")
    return _answer(request, {"action": "revoked user token"})


def render_error(request: web.Request, error: HttpError) -> web.StreamResponse:
    response = _answer(
        request, {"error": error.code, "error_description": error.message}, error.status
    )
    response.headers.update(error.headers)
    return response


_PARAMS = [
    param(
        "callback",
        "query",
        "JSONP: wrap the answer in this function call",
        schema=text(CALLBACK_PATTERN),
    )
]


def _jsonp(schema: Schema, description: str) -> Schema:
    """JSON, or with ``callback`` the same JSON wrapped as JSONP."""
    return {"description": description, "content": {
        "application/json": {"schema": schema},
        "application/javascript": {"schema": {"type": "string"}}}}  # fmt: skip


_ANSWER = {
    "200": _jsonp(ref("UsergridAction"), "Revoked"),
    **{
        str(status): _jsonp(ref("UsergridError"), what)
        for status, what in [
            (400, "Missing or bad token (auth_bad_access_token: unknown, or another user's)"),
            (401, "Missing or wrong credentials"),
            (403, "Credentials without the permission"),
            (503, "Redis unavailable"),
        ]
    },
}
_TOKEN = [param("token", "query", "The token to revoke", required=True, schema=text(min_length=1))]
_APP_USER = [
    param("org", "path", "Organization (accepted, ignored)", schema=path_segment()),
    param("app", "path", "Application id", schema=path_segment()),
    USER_ID,
]
_ANY_USER = [USER_ID]
# Path prefix, scope in the route names, path parameters, summaries of revoketokens/revoketoken.
_USERS = [
    ("/{org:[^/]+}/{app:[^/]+}/users/{user_id:[^/]+}", "app", _APP_USER,
     "Usergrid: revoke the user's tokens of application {app}",
     "Usergrid: revoke one token of the user in application {app}"),
    ("/management/users/{user_id:[^/]+}", "all", _ANY_USER,
     "Usergrid: revoke the user's tokens of every application",
     "Usergrid: revoke one token of the user"),
]  # fmt: skip


def _routes() -> Iterator[Route]:
    # Usergrid's SDKs log a user out with that user's own token: self-service.
    rule = Rule(Permission.REVOKE, self_service=True)
    for prefix, scope, params, all_summary, one_summary in _USERS:
        actions = [
            ("revoketokens", revoke_tokens, all_summary, params),
            ("revoketoken", revoke_token, one_summary, params + _TOKEN),
        ]
        for method in ("PUT", "POST"):
            for action, handler, summary, action_params in actions:
                operation = {"summary": summary, "parameters": action_params + _PARAMS,
                             "responses": _ANSWER}  # fmt: skip
                name = f"usergrid.{scope}_{action}_{method.lower()}"
                path = f"{prefix}/{action}"
                yield Route(method, path, handler, name=name, rule=rule, openapi=operation)


DIALECT = Dialect("usergrid", tuple(_routes()), render_error=render_error)
