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
from typing import Any

import orjson
from aiohttp import web

from service.api import access
from service.api.access import principal
from service.api.errors import ERROR_RENDERERS, HttpError
from service.api.responses import service
from service.auth import Rule
from service.clients import Permission
from service.errors import BadRequest

_CALLBACK_RE = re.compile(r"[A-Za-z_$][\w$.]{0,63}")
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


# Usergrid's SDKs log a user out with that user's own token: self-service.
_RULE = Rule(Permission.REVOKE, self_service=True)


def setup(app: web.Application) -> None:
    app[ERROR_RENDERERS]["usergrid"] = render_error
    for prefix, scope in [
        ("/{org:[^/]+}/{app:[^/]+}/users/{user_id:[^/]+}", "app"),
        ("/management/users/{user_id:[^/]+}", "all"),
    ]:
        for method in ("PUT", "POST"):
            for action, handler in [("revoketokens", revoke_tokens), ("revoketoken", revoke_token)]:
                name = f"usergrid.{scope}_{action}_{method.lower()}"
                app.router.add_route(method, f"{prefix}/{action}", handler, name=name)
                access.declare(app, {name: _RULE})
