"""The Onegini/OneWelcome-style access-token API: a user's signed-in devices, and logout of one.

Errors are ``{"error": "<message>"}`` as in that API; no live token is a 404, never an empty
list, and a DELETE answers 204 whatever existed, revoking only the user's own token.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from service.api.access import principal
from service.api.errors import HttpError
from service.api.openapi_compat import ANY_USER_ID, USER_ID
from service.api.openapi_parts import Schema, json_body, param, path_segment, ref
from service.api.responses import json_response, service
from service.api.routing import Dialect, Route
from service.auth import Rule
from service.clients import Permission
from service.errors import NotFound
from service.records import TokenRecord
from service.tokens import parse_id

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def access_token(record: TokenRecord) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": record.id,
        "client_name": record.client_name or record.app_id,
        "created_at": record.created_at,
        "scopes": list(record.scopes),
        "type": record.type,
    }
    if record.device_name:
        body["device_name"] = record.device_name
    return body


async def list_tokens(request: web.Request) -> web.Response:
    records = await service(request).list_user(
        request.match_info["user_id"], scope=principal(request).scope
    )
    if not records:
        raise NotFound("No tokens found")
    return json_response({"tokens": [access_token(r) for r in records]}, headers=NO_STORE)


async def revoke(request: web.Request) -> web.Response:
    token_id = request.match_info["token_id"]
    if parse_id(token_id) is not None:
        caller = principal(request)
        scope = caller.scope.within(user_id=request.match_info["user_id"])
        await service(request).revoke_id(token_id, caller.as_actor(), scope=scope)
    return web.Response(status=204, headers=NO_STORE)


def render_error(request: web.Request, error: HttpError) -> web.StreamResponse:
    return json_response({"error": error.message}, error.status, {**error.headers, **NO_STORE})


_BASE = "/oauth/api/v1/users/{user_id:[^/]+}/tokens"
_ERRORS: dict[str, Schema] = {
    str(status): json_body(ref("OneginiError"), what)
    for status, what in [
        (400, "Malformed input"),
        (401, "Missing or wrong credentials"),
        (403, "Credentials without the permission"),
        (503, "Redis unavailable"),
    ]
}

DIALECT = Dialect("onegini", (
    Route("GET", _BASE, list_tokens, name="onegini.list", rule=Rule(Permission.READ), openapi={
        "summary": "Onegini-style: a user's access tokens (404 if none)",
        "parameters": [USER_ID],
        "responses": {"200": json_body({"type": "object", "properties": {"tokens": {
            "type": "array", "items": ref("OneginiToken")}}}, "The tokens"),
            "404": json_body(ref("OneginiError"), "No tokens found"), **_ERRORS}}),
    Route("DELETE", _BASE + "/{token_id:[^/]+}", revoke, name="onegini.revoke",
          rule=Rule(Permission.REVOKE), openapi={
        "summary": "Onegini-style: revoke one of the user's tokens; 204 whatever existed",
        "parameters": [ANY_USER_ID, param("token_id", "path", "Token id (a UUID; anything "
                                           "else is no token)", schema=path_segment())],
        "responses": {"204": {"description": "Done"}, **_ERRORS}}),
), render_error=render_error)  # fmt: skip
