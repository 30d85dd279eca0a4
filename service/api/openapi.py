"""The OpenAPI 3.1 document served at ``/openapi.json``, built from the routes the router serves.

Each route declares its own operation (service.api.routing); its ``operationId`` is the route
name, and who may call it (security, 401/403) is filled in from the access rules, so the
document cannot disagree with the router or the rules. The schemas are shared here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from aiohttp import web

from service import __version__, tokens, validation
from service.api import access, openapi_compat
from service.api.openapi_parts import Schema, errors, ref
from service.api.responses import SETTINGS, json_response
from service.api.routing import ROUTES, Dialect, Route
from service.auth import OPEN, Rule
from service.events import USER_APP, EventKind, SessionReason, openapi_kinds
from service.settings import Settings

_NULLABLE_STRING = {"type": ["string", "null"]}
_NAME = {"type": ["string", "null"], "maxLength": validation.MAX_NAME_CHARS}
_ID = {"type": "string", "minLength": 1, "maxLength": validation.MAX_ID_CHARS}
_JSON_DATA = {"type": "string", "contentMediaType": "application/json"}
SCHEMAS: dict[str, Schema] = {
    "Error": {"type": "object", "required": ["error", "message"],
              "properties": {"error": {"type": "string"}, "message": {"type": "string"}}},
    # null means "the default" for every field but `token` (leave it out to mint one).
    "IssueRequest": {
        "type": "object", "required": ["user_id", "app_id"], "additionalProperties": False,
        # A session's absolute lifetime is set when it starts, never when joining it.
        "not": {"required": ["session_id", "session_max_ttl"],
                "properties": {"session_id": {"type": "string"},
                               "session_max_ttl": {"type": "number"}}},
        "properties": {
            "user_id": _ID, "app_id": _ID,
            "ttl": {"type": ["integer", "null"], "minimum": 1,
                    "description": "Seconds (TOKENSTORE_DEFAULT_TTL if left out)"},
            "type": {"type": ["string", "null"], "pattern": f"^{validation.TYPE_PATTERN}$",
                     "default": "DEFAULT"},
            "scopes": {"type": ["array", "null"], "maxItems": validation.MAX_SCOPES,
                       "items": {"type": "string",
                                 "pattern": f"^{validation.SCOPE_PATTERN}$"}},
            "client_name": _NAME, "device_name": _NAME,
            "metadata": {"type": ["object", "null"],
                         "description": "At most 4 KiB of JSON (TOKENSTORE_MAX_METADATA_BYTES; "
                                        "more is a 413), nested at most 31 deep"},
            "token": {"type": "string", "minLength": 1, "maxLength": tokens.MAX_TOKEN_CHARS,
                      "not": {"pattern": f"^{tokens.PREFIX}"},
                      "description": "Register this externally minted value (never one "
                                     f"starting with `{tokens.PREFIX}`: those are minted here)"},
            "session_id": {"type": ["string", "null"], "pattern": f"^{tokens.ID_PATTERN}$",
                           "description": "Join this live session of the same user and app "
                                          "(404 if there is none); unset: a new session"},
            "idle_ttl": {"type": ["integer", "null"], "minimum": 0,
                         "description": "Seconds without use after which the token is "
                                        "inactive (0: none)"},
            "session_max_ttl": {"type": ["integer", "null"], "minimum": 1,
                                "description": "A new session's absolute lifetime (s): no "
                                               "token of it, rotations included, outlives it"},
        }},
    "TokenRecord": {
        "type": "object",
        "properties": {
            "id": {"type": "string"}, "user_id": {"type": "string"},
            "app_id": {"type": "string"}, "type": {"type": "string"},
            "scopes": {"type": "array", "items": {"type": "string"}},
            "client_name": _NULLABLE_STRING, "device_name": _NULLABLE_STRING,
            "metadata": {"type": ["object", "null"]},
            "created_at": {"type": "integer", "description": "Epoch ms"},
            "expires_at": {"type": "integer", "description": "Epoch ms"},
            "session_id": {"type": "string", "description": "Id of the session's first token"},
            "idle_ttl": {"type": "integer", "description": "Seconds; 0: no idle lifetime"},
            "last_used_at": {"type": "integer",
                             "description": "Epoch ms of the last recorded use (creation if "
                                            "none); recorded only for tokens with idle_ttl"},
            "rotated": {"const": True, "description": "Only on `GET /v1/tokens/{id}` of a "
                                                      "rotated token's record while it is kept"},
        }},
    "SessionList": {"type": "object", "properties": {"sessions": {"type": "array", "items": {
        "type": "object",
        "properties": {
            "session_id": {"type": "string"}, "app_id": {"type": "string"},
            "device_name": _NULLABLE_STRING, "client_name": _NULLABLE_STRING,
            "created_at": {"type": "integer", "description": "The session's start, epoch ms"},
            "last_used_at": {"type": "integer", "description": "Epoch ms"},
            "token_ids": {"type": "array", "items": {"type": "string"}},
        }}}}},
    "IssuedToken": {"allOf": [ref("TokenRecord"), {
        "type": "object",
        "properties": {"token": {"type": "string", "description": "Shown once"}}}]},
    "Introspection": {"oneOf": [
        {"type": "object", "properties": {"active": {"const": False}}, "required": ["active"]},
        {"allOf": [ref("TokenRecord"),
                   {"type": "object", "properties": {"active": {"const": True}}}]}]},
    "TokenList": {"type": "object",
                  "properties": {"tokens": {"type": "array", "items": ref("TokenRecord")}}},
    "TokenPage": {"type": "object", "properties": {
        "tokens": {"type": "array", "items": ref("TokenRecord")},
        "next_cursor": _NULLABLE_STRING}},
    "EventList": {"type": "object", "properties": {"events": {"type": "array", "items": {
        "type": "object",
        "properties": {
            "kind": openapi_kinds(
                EventKind.TOKEN, EventKind.USER, EventKind.SESSION, EventKind.JWT),
            "user_id": {"type": "string"},
            "app_id": {"type": "string"},
            "ids": {"type": "array", "items": {"type": "string"}},
            "scope": {"type": ["string", "null"], "description": "`user_app`: one app's"},
            "session_id": {"type": "string", "description": "`session` events"},
            "reason": {"enum": [r.value for r in SessionReason],
                       "description": "`session` events: why"},
            "revoked_before": {"type": ["integer", "null"],
                               "description": "`jwt` events: a cut-off's JWTs issued before "
                                              "(epoch ms); null for a denied jti"},
            "issuer": {**_NULLABLE_STRING,
                       "description": "`jwt` events: a denied jti's issuer (null: every "
                                      "configured issuer)"},
            "expires_at": {"type": ["integer", "null"],
                           "description": "`jwt` events: a denied jti is denied until then "
                                          "(epoch ms)"},
            "actor": {"type": "string",
                      "description": "Client id, `self` (the user's own token) or `limit`"},
            "via": {**_NULLABLE_STRING, "description": "Id of the token used by `self`"},
            "at": {"type": "integer", "description": "Epoch ms"},
            "info": {"type": ["object", "null"]},
        }}}}},
    "RevocationEvent": {
        "type": "object", "required": ["kind", "app_id"],
        "description": "`data` of a feed event; its SSE `id` is the Redis stream id",
        "properties": {
            "kind": openapi_kinds(),
            "app_id": {"type": "string"},
            "ids": {"type": "array", "items": {"type": "string"},
                    "description": "Tokens revoked (token and user events); the jti of a "
                                   "denied JWT (jwt events)"},
            "user_id": {"type": "string", "description": "User events"},
            "scope": {"const": USER_APP, "description": "Only the user's tokens of app_id"},
            "session_id": {"type": "string", "description": "Session events: the session"},
            "reason": {"enum": [r.value for r in SessionReason],
                       "description": "Session events: `revoked` (by a client), `user` (by "
                                      "the user), `reuse` (a rotated token presented again)"},
            "revoked_before": {"type": "integer",
                               "description": "App events: tokens created before; jwt "
                                              "events: the user's JWTs issued before (epoch "
                                              "ms)"},
            "issuer": {"type": "string",
                       "description": "jwt events: the issuer of the denied jti (absent: "
                                      "every configured issuer)"},
            "expires_at": {"type": "integer",
                           "description": "jwt events: the jti is denied until then (epoch "
                                          "ms)"},
            "at": {"type": "integer", "description": "Epoch ms"}}},
    # One message of the feed as a client's SSE parser sees it: its fields, `data` as text.
    "FeedMessage": {"anyOf": [
        {"type": "object", "required": ["event", "data"], "properties": {
            "event": openapi_kinds(), "id": {"type": "string"},
            "data": {**_JSON_DATA, "contentSchema": ref("RevocationEvent")}}},
        {"type": "object", "required": ["event", "data"], "properties": {
            "event": {"const": "ready"}, "id": {"type": "string"},
            "data": {**_JSON_DATA, "contentSchema": {
                "type": "object", "required": ["heartbeat"],
                "properties": {"heartbeat": {"type": "number",
                                             "description": "Seconds between heartbeats"}}}}}},
        {"type": "object", "required": ["event", "data"], "properties": {
            "event": {"const": "reset"}, "id": {"type": "string"},
            "data": {**_JSON_DATA, "contentSchema": {
                "type": "object", "properties": {"reason": {"type": "string"}}}}}},
        {"type": "object", "description": "Only moves the id (a heartbeat after events the "
                                          "client may not see)",
         "not": {"anyOf": [{"required": ["event"]}, {"required": ["data"]}]}}]},
}  # fmt: skip

SECURITY_SCHEMES: dict[str, Schema] = {
    "basic": {"type": "http", "scheme": "basic",
              "description": "An API client's id and secret (raw, or form-encoded per RFC 6749)"},
    "bearer": {"type": "http", "scheme": "bearer",
               "description": "An API client's secret; on self-service operations also a "
                              "user's own live token, acting on that user's tokens only"},
    "bare": {"type": "apiKey", "in": "header", "name": "Authorization",
             "description": "An API client's secret alone, as FusionAuth clients send it"},
}  # fmt: skip
CLIENT_SECURITY: list[dict[str, list[str]]] = [{"basic": []}, {"bearer": []}, {"bare": []}]


def _with_access(operation: Schema, rule: Rule) -> Schema:
    if rule.permission is None:
        return {**operation, "security": []}
    needs = f"Needs the `{rule.permission.value}` permission (`admin` has every permission)."
    if rule.self_service:
        needs += " Self-service: a user's own token (Bearer) may call it for that user."
    # A dialect that declares its own 401/403 bodies keeps them.
    responses = {**errors(401, 403), **operation["responses"]}
    return {**operation, "description": needs, "responses": responses}


def _schemas(settings: Settings) -> dict[str, Schema]:
    """The shared schemas, with the limits this process was configured with."""
    issue = SCHEMAS["IssueRequest"]
    lifetimes = ("ttl", "idle_ttl", "session_max_ttl")
    limited = {
        name: {**issue["properties"][name], "maximum": settings.max_ttl} for name in lifetimes
    }
    issue = {**issue, "properties": {**issue["properties"], **limited}}
    return {**SCHEMAS, "IssueRequest": issue, **openapi_compat.SCHEMAS}


def document(routes: Iterable[Route], rules: Mapping[str, Rule], settings: Settings) -> Schema:
    paths: dict[str, dict[str, Schema]] = {}
    for route in routes:
        if route.openapi is None:
            continue
        operation = {"operationId": route.name, **route.openapi}
        paths.setdefault(route.openapi_path, {})[route.method.lower()] = _with_access(
            operation, rules[route.name]
        )
    return {
        "openapi": "3.1.0",
        "info": {"title": "tokenstore", "version": __version__},
        "security": CLIENT_SECURITY,
        "paths": paths,
        "components": {"schemas": _schemas(settings),
                       "securitySchemes": SECURITY_SCHEMES},
    }  # fmt: skip


async def serve_document(request: web.Request) -> web.Response:
    routes, rules = request.app[ROUTES], request.app[access.RULES]
    return json_response(document(routes, rules, request.app[SETTINGS]))


# Open, like the probes; "health." so that it is logged and measured as they are.
DIALECT = Dialect("health", (
    Route("GET", "/openapi.json", serve_document, name="health.openapi", rule=OPEN, openapi={
        "summary": "This document", "responses": {"200": {"description": "OpenAPI 3.1"}}}),
))  # fmt: skip
