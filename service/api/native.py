"""The native JSON API under ``/v1``: snake_case, times in epoch milliseconds."""

from __future__ import annotations

from aiohttp import web

from service.api import hints
from service.api.access import principal
from service.api.bodies import Fields, json_object, query_int
from service.api.openapi_parts import (
    errors,
    json_body,
    param,
    path_segment,
    ref,
    request_body,
    text,
)
from service.api.responses import SETTINGS, SWEEPER, json_response, service
from service.api.routing import Dialect, Route
from service.app_index import CURSOR_PATTERN
from service.auth import Rule
from service.clients import Permission
from service.records import DEFAULT_TYPE
from service.tokens import ID_PATTERN
from service.validation import MAX_ID_CHARS

ISSUE_FIELDS = {
    "user_id", "app_id", "ttl", "type", "scopes", "client_name", "device_name", "metadata",
    "token", "session_id", "idle_ttl", "session_max_ttl",
}  # fmt: skip
INACTIVE = {"active": False}
PAGE_DEFAULT, PAGE_MAX = 100, 1000  # an app listing's page size (`limit`)


async def issue(request: web.Request) -> web.Response:
    fields = Fields(await json_object(request), ISSUE_FIELDS)
    svc = service(request)
    draft = svc.draft(
        user_id=fields.required_text("user_id"),
        app_id=fields.required_text("app_id"),
        type=_default(fields.text("type"), DEFAULT_TYPE),
        scopes=fields.text_list("scopes"),
        client_name=fields.text("client_name"),
        device_name=fields.text("device_name"),
        metadata=fields.mapping("metadata"),
    )
    issued = await svc.issue(
        draft,
        ttl=fields.integer("ttl"),
        # null is not "mint one": a client that meant to register a value must not get a new one.
        token=fields.text("token", nullable=False),
        scope=principal(request).scope,
        idle_ttl=fields.integer("idle_ttl"),
        session_id=fields.text("session_id"),
        session_max_ttl=fields.integer("session_max_ttl"),
    )
    body = issued.record.to_json()
    if issued.token is not None:
        body["token"] = issued.token
    return json_response(body, status=201, headers={"Cache-Control": "no-store"})


def _default(value: str | None, default: str) -> str:
    return default if value is None else value


async def introspect(request: web.Request) -> web.Response:
    token = Fields(await json_object(request), {"token"}).required_text("token")
    record = await service(request).introspect(token, scope=principal(request).scope)
    settings = request.app[SETTINGS]
    if record is None:
        return json_response(INACTIVE, headers={"Cache-Control": hints.inactive(settings)})
    return web.Response(
        body=record.introspection_json(),
        content_type="application/json",
        headers={"Cache-Control": hints.live(settings, record.live_until)},
    )


async def get_token(request: web.Request) -> web.Response:
    token_id = request.match_info["token_id"]
    record = await service(request).get(token_id, scope=principal(request).scope)
    return json_response(record.to_json())


async def revoke_by_id(request: web.Request) -> web.Response:
    caller = principal(request)
    revoked = await service(request).revoke_id(
        request.match_info["token_id"], caller.as_actor(), scope=caller.scope
    )
    return json_response({"revoked": revoked})


async def revoke_by_value(request: web.Request) -> web.Response:
    token = Fields(await json_object(request), {"token"}).required_text("token")
    caller = principal(request)
    revoked = await service(request).revoke_token(token, caller.as_actor(), scope=caller.scope)
    return json_response({"revoked": revoked})


async def list_user_tokens(request: web.Request) -> web.Response:
    app_id = request.query.get("app_id") or None
    records = await service(request).list_user(
        request.match_info["user_id"], app_id, scope=principal(request).scope
    )
    return json_response({"tokens": [r.to_json() for r in records]})


async def revoke_user_tokens(request: web.Request) -> web.Response:
    caller = principal(request)
    revoked = await service(request).revoke_user(
        request.match_info["user_id"],
        app_id=request.query.get("app_id") or None,
        keep_id=request.query.get("except") or None,
        actor=caller.as_actor(),
        scope=caller.scope,
        keep_session_id=request.query.get("except_session") or None,
    )
    return json_response({"revoked": revoked})


async def user_events(request: web.Request) -> web.Response:
    events = await service(request).user_events(
        request.match_info["user_id"], scope=principal(request).scope
    )
    return json_response({"events": [event.public() for event in events]})


async def list_app_tokens(request: web.Request) -> web.Response:
    limit = query_int(request.query, "limit", PAGE_DEFAULT, low=1, high=PAGE_MAX)
    page = await service(request).list_app(
        request.match_info["app_id"],
        limit,
        request.query.get("cursor"),
        scope=principal(request).scope,
    )
    tokens = [r.to_json() for r in page.tokens]
    return json_response({"tokens": tokens, "next_cursor": page.next_cursor})


async def revoke_app_tokens(request: web.Request) -> web.Response:
    caller = principal(request)
    watermark = await service(request).revoke_app(
        request.match_info["app_id"], caller.as_actor(), scope=caller.scope
    )
    request.app[SWEEPER].kick()
    return json_response({"revoked_before": watermark})


LIMIT = {"type": "integer", "minimum": 1, "maximum": PAGE_MAX, "default": PAGE_DEFAULT}
TOKEN_ID = param(
    "token_id", "path", "Public token id (UUID-shaped, self-routing)", schema=text(ID_PATTERN)
)
USER_ID = param(
    "user_id", "path", "User id (1-256 characters, URL-encoded)", schema=path_segment(MAX_ID_CHARS)
)
APP_ID = param(
    "app_id",
    "path",
    "Application id (1-256 characters, URL-encoded)",
    schema=path_segment(MAX_ID_CHARS),
)
ONLY_APP = param("app_id", "query", "Only this application's (empty: every one)")
REVOKED = json_body(
    {"type": "object", "properties": {"revoked": {"type": "array", "items": {"type": "string"}}}},
    "Ids of the tokens revoked by this call (empty if none)",
)
TOKEN_VALUE = {
    "type": "object",
    "required": ["token"],
    "additionalProperties": False,
    "properties": {"token": {"type": "string"}},
}

# Self-service routes also take a user's own token (Bearer), acting on that user's tokens only.
DIALECT = Dialect("v1", (
    Route("POST", "/v1/tokens", issue, name="v1.issue", rule=Rule(Permission.ISSUE), openapi={
        "summary": "Mint a token, or register an externally minted one (with `token`)",
        "requestBody": request_body(ref("IssueRequest")),
        "responses": {"201": json_body(ref("IssuedToken"), "Stored; `token` only when minted"),
                      **errors(400, 404, 409, 413, 503)}}),
    Route("POST", "/v1/introspect", introspect, name="v1.introspect",
          rule=Rule(Permission.INTROSPECT), openapi={
        "summary": "Is this token live? Unknown, malformed, expired or revoked: active false",
        "requestBody": request_body(TOKEN_VALUE),
        "responses": {"200": json_body(ref("Introspection"), "The answer"), **errors(400, 503)}}),
    Route("GET", "/v1/tokens/{token_id:(?!rotate$)[^/]+}", get_token, name="v1.get_token",
          rule=Rule(Permission.READ), openapi={
        "summary": "One live token's record", "parameters": [TOKEN_ID],
        "responses": {"200": json_body(ref("TokenRecord"), "The record"),
                      **errors(400, 404, 503)}}),
    Route("DELETE", "/v1/tokens/{token_id:(?!rotate$)[^/]+}", revoke_by_id, name="v1.revoke_by_id",
          rule=Rule(Permission.REVOKE, self_service=True), openapi={
        "summary": "Revoke a token by id (idempotent)", "parameters": [TOKEN_ID],
        "responses": {"200": REVOKED, **errors(400, 503)}}),
    Route("POST", "/v1/revoke", revoke_by_value, name="v1.revoke_by_value",
          rule=Rule(Permission.REVOKE, self_service=True), openapi={
        "summary": "Revoke a token by value", "requestBody": request_body(TOKEN_VALUE),
        "description": "`token` may also be a JWT of a configured issuer (JWTs configured): "
                       "it is denied until its exp, as by `POST /v1/jwt/revoke`, and `revoked` "
                       "is `[jti]` (also when it was denied already). An invalid, expired or "
                       "unknown JWT, or one outside the caller's scope: `[]`.",
        "responses": {"200": REVOKED, **errors(400, 503)}}),
    Route("GET", "/v1/users/{user_id:[^/]+}/tokens", list_user_tokens,
          name="v1.list_user_tokens", rule=Rule(Permission.READ, self_service=True), openapi={
        "summary": "A user's live tokens, newest first", "parameters": [USER_ID, ONLY_APP],
        "responses": {"200": json_body(ref("TokenList"), "The tokens"), **errors(400, 503)}}),
    Route("DELETE", "/v1/users/{user_id:[^/]+}/tokens", revoke_user_tokens,
          name="v1.revoke_user_tokens", rule=Rule(Permission.REVOKE, self_service=True),
          openapi={
        "summary": "Revoke a user's tokens (log out everywhere)",
        "parameters": [USER_ID, ONLY_APP, param("except", "query", "Id of a token to keep",
                                                schema=text(ID_PATTERN, allow_empty=True)),
                       param("except_session", "query", "Id of a session whose tokens to keep",
                             schema=text(ID_PATTERN, allow_empty=True))],
        "responses": {"200": REVOKED, **errors(400, 503)}}),
    Route("GET", "/v1/users/{user_id:[^/]+}/events", user_events, name="v1.user_events",
          rule=Rule(Permission.READ), openapi={
        "summary": "A user's recent revocations (at most 100, newest first; not app-wide ones)",
        "parameters": [USER_ID],
        "responses": {"200": json_body(ref("EventList"), "The events"), **errors(400, 503)}}),
    Route("GET", "/v1/apps/{app_id:[^/]+}/tokens", list_app_tokens, name="v1.list_app_tokens",
          rule=Rule(Permission.READ), openapi={
        "summary": "An application's live tokens, paged",
        "parameters": [APP_ID, param("limit", "query", "Page size (ASCII digits)", schema=LIMIT),
                       param("cursor", "query", "`next_cursor` of the previous page",
                             schema=text(CURSOR_PATTERN, allow_empty=True))],
        "responses": {"200": json_body(ref("TokenPage"), "One page"), **errors(400, 503)}}),
    Route("DELETE", "/v1/apps/{app_id:[^/]+}/tokens", revoke_app_tokens,
          name="v1.revoke_app_tokens", rule=Rule(Permission.ADMIN), openapi={
        "summary": "Revoke every token of an application, at once", "parameters": [APP_ID],
        "responses": {"200": json_body(
            {"type": "object", "properties": {"revoked_before": {"type": "integer"}}},
            "Tokens created before this epoch ms are revoked"), **errors(400, 503)}}),
))  # fmt: skip
