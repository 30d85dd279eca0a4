"""FusionAuth's refresh-token API, ``/api/jwt/refresh``, as its official clients call it.

Errors use FusionAuth's ``{"fieldErrors", "generalErrors"}`` shape: its clients parse the body
of every 400 as JSON. Unlike FusionAuth, a RefreshToken here never carries the token value.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from service.api.access import principal
from service.api.bodies import form_fields, parse_json, read_body
from service.api.errors import HttpError
from service.api.openapi_compat import TOKEN_ID_UUID
from service.api.openapi_parts import Schema, json_body, param, ref, text
from service.api.responses import SWEEPER, json_response, service
from service.api.routing import Dialect, Route
from service.auth import Rule
from service.clients import Permission
from service.errors import BadRequest, Forbidden, NotFound
from service.records import TokenRecord
from service.service import Actor
from service.tokens import parse_id
from service.validation import MAX_ID_CHARS

CRITERIA = ("token", "userId", "applicationId")


def refresh_token(record: TokenRecord) -> dict[str, Any]:
    meta = record.metadata or {}
    device = dict(meta["device"]) if isinstance(meta.get("device"), dict) else {}
    if record.device_name:
        device.setdefault("name", record.device_name)
    if record.idle_ttl:  # uses are recorded only for tokens with an idle lifetime
        device["lastAccessedInstant"] = record.last_used_at
    return {
        "id": record.id,
        "userId": record.user_id,
        "applicationId": record.app_id,
        "insertInstant": record.created_at,
        "startInstant": record.session_started_at,  # FusionAuth: the login's start
        "metaData": {"device": device, "scopes": list(record.scopes)},
        "data": meta["data"] if isinstance(meta.get("data"), dict) else {},
    }


def _errors(field_errors: dict[str, str], status: int = 400) -> web.Response:
    body = {
        "fieldErrors": {
            field: [{"code": f"[missing]{field}", "message": message}]
            for field, message in field_errors.items()
        },
        "generalErrors": [],
    }
    return json_response(body, status)


async def list_tokens(request: web.Request) -> web.Response:
    user_id = request.query.get("userId")
    if not user_id:
        return _errors({"userId": "You must specify the userId of the refresh tokens."})
    records = await service(request).list_user(
        user_id, request.query.get("applicationId"), scope=principal(request).scope
    )
    return json_response({"refreshTokens": [refresh_token(r) for r in records]})


async def get_token(request: web.Request) -> web.Response:
    token_id = _known_id(request)
    record = await service(request).get(token_id, scope=principal(request).scope)
    return json_response({"refreshToken": refresh_token(record)})


async def _body(request: web.Request) -> dict[str, Any]:
    """A DELETE may carry criteria as JSON or as a form; a body of nothing or null is none."""
    if request.content_type in {"application/x-www-form-urlencoded", "multipart/form-data"}:
        return dict(await form_fields(request))
    raw = await read_body(request)
    if not raw.strip():
        return {}
    body = parse_json(raw, code="[invalid]body", deep_code="[invalid]body")
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object", code="[invalid]body")
    return body


async def revoke(request: web.Request) -> web.Response:
    body = await _body(request)
    criteria: dict[str, str] = {}
    for name in CRITERIA:
        value = request.query.get(name) or body.get(name)
        if value is not None and not isinstance(value, str):
            raise BadRequest(f"{name} must be a string", code=f"[invalid]{name}")
        if value:
            criteria[name] = value
    if not criteria:
        message = "You must specify the token, the userId and/or the applicationId."
        return _errors(dict.fromkeys(CRITERIA, message))
    caller = principal(request)
    info = body.get("eventInfo")
    actor = Actor(caller.actor, info=info if isinstance(info, dict) else None)
    await _revoke(request, criteria, actor)
    return web.Response(status=200)


async def _revoke(request: web.Request, criteria: dict[str, str], actor: Actor) -> None:
    svc, caller = service(request), principal(request)
    user_id, app_id = criteria.get("userId"), criteria.get("applicationId")
    if "token" in criteria:
        await svc.revoke_token(criteria["token"], actor, scope=caller.scope)
    elif user_id is not None:
        await svc.revoke_user(user_id, app_id, actor=actor, scope=caller.scope)
    elif app_id is not None:
        if not caller.may(Permission.ADMIN):
            raise Forbidden("revoking every token of an application needs the admin permission")
        await svc.revoke_app(app_id, actor, scope=caller.scope)
        request.app[SWEEPER].kick()


async def revoke_by_id(request: web.Request) -> web.Response:
    caller = principal(request)
    if not await service(request).revoke_id(
        _known_id(request), caller.as_actor(), scope=caller.scope
    ):
        raise NotFound("no such refresh token")
    return web.Response(status=200)


def _known_id(request: web.Request) -> str:
    token_id = request.match_info["token_id"]
    if parse_id(token_id) is None:
        raise NotFound("no such refresh token")  # FusionAuth ids are UUIDs: others never exist
    return token_id


def render_error(request: web.Request, error: HttpError) -> web.StreamResponse:
    body = {"fieldErrors": {}, "generalErrors": [{"code": error.code, "message": error.message}]}
    return json_response(body, error.status, error.headers)


_ERRORS = {
    s: json_body(ref("FusionAuthErrors"), t)
    for s, t in [
        ("400", "Bad request (always a JSON body)"),
        ("401", "Missing or wrong API key"),
        ("403", "The API key lacks the permission"),
        ("404", "No such refresh token"),
        ("503", "Redis unavailable"),
    ]
}
_TEXT, _ID = text(min_length=1), text(min_length=1, max_length=MAX_ID_CHARS)
# The criteria, as query parameters (an object exploded into the query string): at least one.
# The first given of token, userId, applicationId decides; an empty one counts as absent.
_CRITERIA: Schema = {
    "type": "object", "additionalProperties": False,
    "properties": {
        "token": {"type": "string", "description": "A refresh token value"},
        "userId": {"type": "string", "description": "Every token of this user (AND "
                                                    "applicationId)"},
        "applicationId": {"type": "string", "description": "Every token of this application"}},
    "anyOf": [
        {"required": ["token"], "properties": {"token": _TEXT}},
        {"required": ["userId"], "properties": {"userId": _ID}},
        {"required": ["applicationId"], "properties": {
            "applicationId": _ID, "userId": {"maxLength": 0}}}],
}  # fmt: skip
_REVOKED = {"200": {"description": "Revoked (empty body)"}, **_ERRORS}

DIALECT = Dialect("fusionauth", (
    Route("GET", "/api/jwt/refresh", list_tokens, name="fusionauth.list",
          rule=Rule(Permission.READ), openapi={
        "summary": "FusionAuth: a user's refresh tokens, newest first",
        "parameters": [
            param("userId", "query", "User id", required=True,
                  schema=text(min_length=1, max_length=MAX_ID_CHARS)),
            param("applicationId", "query", "Only this application's")],
        "responses": {"200": json_body({"type": "object", "properties": {"refreshTokens": {
            "type": "array", "items": ref("RefreshToken")}}}, "The tokens"), **_ERRORS}}),
    # applicationId alone needs admin: checked in the handler.
    Route("DELETE", "/api/jwt/refresh", revoke, name="fusionauth.revoke",
          rule=Rule(Permission.REVOKE), openapi={
        "summary": "FusionAuth: revoke by token, user, user and application, or application "
                   "(query, JSON body or form body)",
        "parameters": [{**param("criteria", "query", "token, userId and/or applicationId",
                                required=True, schema=_CRITERIA),
                        "style": "form", "explode": True}],
        "responses": _REVOKED}),
    Route("GET", "/api/jwt/refresh/{token_id}", get_token, name="fusionauth.get",
          rule=Rule(Permission.READ), openapi={
        "summary": "FusionAuth: one refresh token", "parameters": [TOKEN_ID_UUID],
        "responses": {"200": json_body({"type": "object", "properties": {
            "refreshToken": ref("RefreshToken")}}, "The token"), **_ERRORS}}),
    Route("DELETE", "/api/jwt/refresh/{token_id}", revoke_by_id, name="fusionauth.revoke_by_id",
          rule=Rule(Permission.REVOKE), openapi={
        "summary": "FusionAuth: revoke one refresh token by id", "parameters": [TOKEN_ID_UUID],
        "responses": _REVOKED}),
), render_error=render_error)  # fmt: skip
