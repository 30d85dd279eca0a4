"""The OpenAPI 3.1 document served at ``/openapi.json``; a test keeps it equal to the router.

Each operation's ``operationId`` is its route name; who may call it (security, 401/403) is
filled in from the routes' access rules, so the document cannot disagree with them.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from service import __version__
from service.api import access
from service.api.authz import PROXIED_METHODS
from service.api.responses import json_response
from service.auth import OPEN, Rule
from service.identity import HEADERS as IDENTITY

Schema = dict[str, Any]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: Schema, description: str) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict[str, Schema]:
    text = {
        400: "Malformed or invalid input",
        401: "Missing or wrong credentials (WWW-Authenticate says which forms)",
        403: "Valid credentials without the permission (or for another app)",
        404: "No such resource",
        409: "Already exists",
        413: "Body too large",
        503: "Redis unavailable (Retry-After set); introspection is never answered active",
    }
    return {str(s): _json(_ref("Error"), text[s]) for s in statuses}


def _body(schema: Schema) -> Schema:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _param(name: str, where: str, description: str, required: bool = False) -> Schema:
    return {
        "name": name,
        "in": where,
        "required": required or where == "path",
        "description": description,
        "schema": {"type": "string"},
    }


TOKEN_ID = _param("token_id", "path", "Public token id (UUID-shaped, self-routing)")
USER_ID = _param("user_id", "path", "User id (1-256 characters, URL-encoded)")
APP_ID = _param("app_id", "path", "Application id (1-256 characters, URL-encoded)")
REVOKED = _json(
    {"type": "object", "properties": {"revoked": {"type": "array", "items": {"type": "string"}}}},
    "Ids of the tokens revoked by this call (empty if none)",
)
TOKEN_VALUE = {
    "type": "object",
    "required": ["token"],
    "additionalProperties": False,
    "properties": {"token": {"type": "string"}},
}

AUTHZ: Schema = {
    "summary": "Forward auth (nginx auth_request, Traefik forwardAuth): is the bearer token "
               "live? Needs no client credentials",
    "description": "Reads `Authorization: Bearer <token>` (or the header named by "
                   "TOKENSTORE_AUTHZ_HEADER). Every answer carries a Cache-Control hint.",
    "parameters": [
        _param("X-Required-Scope", "header", "Space-separated scopes the token must have"),
        _param("X-Required-App", "header", "App the token must belong to (percent-encoded)"),
        _param("scope", "query", "Same as X-Required-Scope; every requirement applies"),
        _param("app", "query", "Same as X-Required-App")],
    "responses": {
        "200": {"description": "Live: X-Token-Id, X-Token-User, X-Token-App (percent-encoded"
                               " UTF-8), X-Token-Scopes, X-Token-Expires (epoch ms); "
                               "Cache-Control max-age up to the token's expiry",
                "headers": {name: {"schema": {"type": "string"}} for name in IDENTITY}},
        "401": _json(_ref("Error"), 'No token (`WWW-Authenticate: Bearer`), or not live or '
                                    'not for the required app (`error="invalid_token"`)'),
        "403": _json(_ref("Error"), 'Live, but lacks a required scope '
                                    '(`error="insufficient_scope"`)'),
        **_errors(400, 503)}}  # fmt: skip

PATHS: dict[str, dict[str, Schema]] = {
    "/healthz": {"get": {"operationId": "health.healthz",
                         "summary": "Liveness: the process runs (never asks Redis)",
                         "responses": {"200": {"description": "Alive"}}}},
    "/readyz": {"get": {"operationId": "health.readyz", "summary": "Readiness: Redis answers",
                        "responses": {"200": {"description": "Ready"},
                                      "503": {"description": "Not ready"}}}},
    "/openapi.json": {"get": {"operationId": "health.openapi", "summary": "This document",
                              "responses": {"200": {"description": "OpenAPI 3.1"}}}},
    "/metrics": {"get": {"operationId": "ops.metrics",
                         "summary": "Prometheus metrics, summed over every worker process",
                         "responses": {"200": {
                             "description": "Prometheus text format 0.0.4",
                             "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
    "/v1/tokens": {"post": {
        "operationId": "v1.issue",
        "summary": "Mint a token, or register an externally minted one (with `token`)",
        "requestBody": _body(_ref("IssueRequest")),
        "responses": {"201": _json(_ref("IssuedToken"), "Stored; `token` only when minted"),
                      **_errors(400, 409, 413, 503)}}},
    "/v1/introspect": {"post": {
        "operationId": "v1.introspect",
        "summary": "Is this token live? Unknown, malformed, expired or revoked: active false",
        "requestBody": _body(TOKEN_VALUE),
        "responses": {"200": _json(_ref("Introspection"), "The answer"), **_errors(400, 503)}}},
    "/v1/tokens/{token_id}": {
        "get": {"operationId": "v1.get_token",
                "summary": "One live token's record", "parameters": [TOKEN_ID],
                "responses": {"200": _json(_ref("TokenRecord"), "The record"),
                              **_errors(400, 404, 503)}},
        "delete": {"operationId": "v1.revoke_by_id",
                   "summary": "Revoke a token by id (idempotent)", "parameters": [TOKEN_ID],
                   "responses": {"200": REVOKED, **_errors(400, 503)}}},
    "/v1/revoke": {"post": {
        "operationId": "v1.revoke_by_value",
        "summary": "Revoke a token by value", "requestBody": _body(TOKEN_VALUE),
        "responses": {"200": REVOKED, **_errors(400, 503)}}},
    "/v1/users/{user_id}/tokens": {
        "get": {"operationId": "v1.list_user_tokens",
                "summary": "A user's live tokens, newest first",
                "parameters": [USER_ID, _param("app_id", "query", "Only this application's")],
                "responses": {"200": _json(_ref("TokenList"), "The tokens"),
                              **_errors(400, 503)}},
        "delete": {"operationId": "v1.revoke_user_tokens",
                   "summary": "Revoke a user's tokens (log out everywhere)",
                   "parameters": [USER_ID, _param("app_id", "query", "Only this application's"),
                                  _param("except", "query", "Id of a token to keep")],
                   "responses": {"200": REVOKED, **_errors(400, 503)}}},
    "/v1/users/{user_id}/events": {"get": {
        "operationId": "v1.user_events",
        "summary": "A user's recent revocations (at most 100, newest first; not app-wide ones)",
        "parameters": [USER_ID],
        "responses": {"200": _json(_ref("EventList"), "The events"), **_errors(400, 503)}}},
    "/v1/apps/{app_id}/tokens": {
        "get": {"operationId": "v1.list_app_tokens",
                "summary": "An application's live tokens, paged",
                "parameters": [APP_ID, _param("limit", "query", "Page size, 1-1000 (100)"),
                               _param("cursor", "query", "`next_cursor` of the previous page")],
                "responses": {"200": _json(_ref("TokenPage"), "One page"),
                              **_errors(400, 503)}},
        "delete": {"operationId": "v1.revoke_app_tokens",
                   "summary": "Revoke every token of an application, at once",
                   "parameters": [APP_ID],
                   "responses": {"200": _json(
                       {"type": "object",
                        "properties": {"revoked_before": {"type": "integer"}}},
                       "Tokens created before this epoch ms are revoked"),
                       **_errors(400, 503)}}},
    "/v1/authz": {"get": {**AUTHZ, "operationId": "authz.check"}},
    "/v1/authz/{path}": {method.lower(): {
        **AUTHZ, "operationId": f"authz.check_{method.lower()}",
        "summary": "Forward auth for Envoy's HTTP ext_authz (path_prefix /v1/authz): the "
                   "client's method and path are kept and ignored; requirements from headers",
        "parameters": [_param("path", "path", "The client's path, ignored"),
                       *AUTHZ["parameters"][:2]]}
        for method in PROXIED_METHODS},
    "/v1/events": {"get": {
        "operationId": "v1.events",
        "summary": "Revocation feed (Server-Sent Events): replay after Last-Event-ID, then "
                   "live; `ready` once caught up, `reset` if events were lost",
        "parameters": [_param("Last-Event-ID", "header", "Replay every event after this id"),
                       _param("last_event_id", "query", "Same as Last-Event-ID")],
        "responses": {
            "200": {"description": "text/event-stream: events `token`, `user`, `app` "
                                   "(JSON data), `ready`, `reset`; heartbeat comments",
                    "content": {"text/event-stream": {"schema": _ref("RevocationEvent")}}},
            **_errors(400, 503)}}},
}  # fmt: skip

_FORM_TOKEN = {
    "required": True,
    "content": {
        "application/x-www-form-urlencoded": {
            "schema": {
                "type": "object",
                "required": ["token"],
                "properties": {"token": {"type": "string"}, "token_type_hint": {"type": "string"}},
            }
        }
    },
}
_OAUTH_ERRORS = {
    "400": _json(_ref("OAuthError"), "invalid_request"),
    "401": _json(_ref("OAuthError"), "invalid_client (WWW-Authenticate set)"),
    "503": _json(_ref("OAuthError"), "temporarily_unavailable"),
}
_FA_ERRORS = {
    s: _json(_ref("FusionAuthErrors"), t)
    for s, t in [
        ("400", "Bad request (always a JSON body)"),
        ("401", "Missing or wrong API key"),
        ("404", "No such refresh token"),
        ("503", "Redis unavailable"),
    ]
}
_FA_CRITERIA = [
    _param("token", "query", "A refresh token value"),
    _param("userId", "query", "Every token of this user (AND applicationId)"),
    _param("applicationId", "query", "Every token of this application"),
]
_UG_PARAMS = [_param("callback", "query", "JSONP: wrap the answer in this function call")]
_UG_ANSWER = {
    "200": _json(_ref("UsergridAction"), "Revoked"),
    "400": _json(_ref("UsergridError"), "Missing or bad token"),
}
_UG_TOKEN = [_param("token", "query", "The token to revoke", required=True)]


def _usergrid(name: str, summary: str, params: list[Schema]) -> dict[str, Schema]:
    return {
        method: {"operationId": f"usergrid.{name}_{method}", "summary": summary,
                 "parameters": params + _UG_PARAMS, "responses": _UG_ANSWER}
        for method in ("put", "post")
    }  # fmt: skip


UG_APP = [
    _param(n, "path", d)
    for n, d in [
        ("org", "Organization (accepted, ignored)"),
        ("app", "Application id"),
        ("user_id", "User id"),
    ]
]
UG_MGMT = [_param("user_id", "path", "User id")]
TOKEN_ID_UUID = _param("token_id", "path", "Token id (UUID)")
PATHS.update({
    "/oauth2/introspect": {"post": {"operationId": "oauth.introspect",
        "summary": "RFC 7662 introspection (HTTP Basic client authentication)",
        "requestBody": _FORM_TOKEN,
        "responses": {"200": _json(_ref("OAuthIntrospection"), "Exactly {active:false} if not "
                                   "active; Cache-Control: no-store"), **_OAUTH_ERRORS}}},
    "/oauth2/revoke": {"post": {"operationId": "oauth.revoke",
        "summary": "RFC 7009 revocation: 200 whether or not the token existed",
        "requestBody": _FORM_TOKEN,
        "responses": {"200": {"description": "Revoked (empty body)"}, **_OAUTH_ERRORS}}},
    "/api/jwt/refresh": {
        "get": {"operationId": "fusionauth.list",
                "summary": "FusionAuth: a user's refresh tokens, newest first",
                "parameters": [_param("userId", "query", "User id", required=True)],
                "responses": {"200": _json({"type": "object", "properties": {"refreshTokens": {
                    "type": "array", "items": _ref("RefreshToken")}}}, "The tokens"),
                    **_FA_ERRORS}},
        "delete": {"operationId": "fusionauth.revoke",
                   "summary": "FusionAuth: revoke by token, user, user and application, or "
                              "application (query, JSON body or form body)",
                   "parameters": _FA_CRITERIA,
                   "responses": {"200": {"description": "Revoked (empty body)"},
                                 **_FA_ERRORS}}},
    "/api/jwt/refresh/{token_id}": {
        "get": {"operationId": "fusionauth.get", "summary": "FusionAuth: one refresh token",
                "parameters": [TOKEN_ID_UUID],
                "responses": {"200": _json({"type": "object", "properties": {
                    "refreshToken": _ref("RefreshToken")}}, "The token"), **_FA_ERRORS}},
        "delete": {"operationId": "fusionauth.revoke_by_id",
                   "summary": "FusionAuth: revoke one refresh token by id",
                   "parameters": [TOKEN_ID_UUID],
                   "responses": {"200": {"description": "Revoked (empty body)"},
                                 **_FA_ERRORS}}},
    "/oauth/api/v1/users/{user_id}/tokens": {"get": {"operationId": "onegini.list",
        "summary": "Onegini-style: a user's access tokens (404 if none)",
        "parameters": [USER_ID],
        "responses": {"200": _json({"type": "object", "properties": {"tokens": {
            "type": "array", "items": _ref("OneginiToken")}}}, "The tokens"),
            "404": _json(_ref("OneginiError"), "No tokens found")}}},
    "/oauth/api/v1/users/{user_id}/tokens/{token_id}": {"delete": {
        "operationId": "onegini.revoke",
        "summary": "Onegini-style: revoke one of the user's tokens; 204 whatever existed",
        "parameters": [USER_ID, TOKEN_ID_UUID],
        "responses": {"204": {"description": "Done"}}}},
    "/{org}/{app}/users/{user_id}/revoketokens": _usergrid("app_revoketokens",
        "Usergrid: revoke the user's tokens of application {app}", UG_APP),
    "/{org}/{app}/users/{user_id}/revoketoken": _usergrid("app_revoketoken",
        "Usergrid: revoke one token of the user in application {app}", UG_APP + _UG_TOKEN),
    "/management/users/{user_id}/revoketokens": _usergrid("all_revoketokens",
        "Usergrid: revoke the user's tokens of every application", UG_MGMT),
    "/management/users/{user_id}/revoketoken": _usergrid("all_revoketoken",
        "Usergrid: revoke one token of the user", UG_MGMT + _UG_TOKEN),
})  # fmt: skip

_NULLABLE_STRING = {"type": ["string", "null"]}
SCHEMAS: dict[str, Schema] = {
    "Error": {"type": "object", "required": ["error", "message"],
              "properties": {"error": {"type": "string"}, "message": {"type": "string"}}},
    "IssueRequest": {
        "type": "object", "required": ["user_id", "app_id"], "additionalProperties": False,
        "properties": {
            "user_id": {"type": "string", "minLength": 1, "maxLength": 256},
            "app_id": {"type": "string", "minLength": 1, "maxLength": 256},
            "ttl": {"type": "integer", "minimum": 1, "description": "Seconds, <= max TTL"},
            "type": {"type": "string", "default": "DEFAULT"},
            "scopes": {"type": "array", "items": {"type": "string"}},
            "client_name": _NULLABLE_STRING, "device_name": _NULLABLE_STRING,
            "metadata": {"type": ["object", "null"], "description": "At most 4 KiB of JSON"},
            "token": {"type": "string", "description": "Register this externally minted value"},
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
        }},
    "IssuedToken": {"allOf": [_ref("TokenRecord"), {
        "type": "object",
        "properties": {"token": {"type": "string", "description": "Shown once"}}}]},
    "Introspection": {"oneOf": [
        {"type": "object", "properties": {"active": {"const": False}}, "required": ["active"]},
        {"allOf": [_ref("TokenRecord"),
                   {"type": "object", "properties": {"active": {"const": True}}}]}]},
    "TokenList": {"type": "object",
                  "properties": {"tokens": {"type": "array", "items": _ref("TokenRecord")}}},
    "OAuthError": {"type": "object", "required": ["error"], "properties": {
        "error": {"type": "string"}, "error_description": {"type": "string"}}},
    "OAuthIntrospection": {"type": "object", "required": ["active"], "properties": {
        "active": {"type": "boolean"}, "scope": {"type": "string"},
        "client_id": {"type": "string"}, "sub": {"type": "string"},
        "exp": {"type": "integer"}, "iat": {"type": "integer"},
        "token_type": {"type": "string"}, "jti": {"type": "string"}}},
    "FusionAuthErrors": {"type": "object", "properties": {
        "fieldErrors": {"type": "object"}, "generalErrors": {"type": "array"}}},
    "RefreshToken": {"type": "object", "properties": {
        "id": {"type": "string", "format": "uuid"}, "userId": {"type": "string"},
        "applicationId": {"type": "string"}, "insertInstant": {"type": "integer"},
        "startInstant": {"type": "integer"},
        "metaData": {"type": "object", "properties": {
            "device": {"type": "object"}, "scopes": {"type": "array"}}},
        "data": {"type": "object"}}},
    "OneginiToken": {"type": "object", "properties": {
        "id": {"type": "string"}, "client_name": {"type": "string"},
        "device_name": {"type": "string"}, "created_at": {"type": "integer"},
        "scopes": {"type": "array", "items": {"type": "string"}},
        "type": {"type": "string"}}},
    "OneginiError": {"type": "object", "properties": {"error": {"type": "string"}}},
    "UsergridAction": {"type": "object", "properties": {
        "action": {"type": "string"}, "timestamp": {"type": "integer"},
        "duration": {"type": "integer"}}},
    "UsergridError": {"type": "object", "properties": {
        "error": {"type": "string"}, "error_description": {"type": "string"},
        "timestamp": {"type": "integer"}, "duration": {"type": "integer"}}},
    "TokenPage": {"type": "object", "properties": {
        "tokens": {"type": "array", "items": _ref("TokenRecord")},
        "next_cursor": _NULLABLE_STRING}},
    "EventList": {"type": "object", "properties": {"events": {"type": "array", "items": {
        "type": "object",
        "properties": {
            "kind": {"enum": ["token", "user"]}, "user_id": {"type": "string"},
            "app_id": {"type": "string"},
            "ids": {"type": "array", "items": {"type": "string"}},
            "scope": {"type": ["string", "null"], "description": "`user_app`: one app's"},
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
            "kind": {"enum": ["token", "user", "app"]},
            "app_id": {"type": "string"},
            "ids": {"type": "array", "items": {"type": "string"},
                    "description": "Tokens revoked (token and user events)"},
            "user_id": {"type": "string", "description": "User events"},
            "scope": {"const": "user_app", "description": "Only the user's tokens of app_id"},
            "revoked_before": {"type": "integer",
                               "description": "App events: tokens created before (epoch ms)"},
            "at": {"type": "integer", "description": "Epoch ms"}}},
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
    responses = {**operation["responses"], **_errors(401, 403)}
    return {**operation, "description": needs, "responses": responses}


def document(rules: dict[str, Rule]) -> Schema:
    paths = {
        path: {method: _with_access(op, rules[op["operationId"]]) for method, op in ops.items()}
        for path, ops in PATHS.items()
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "tokenstore", "version": __version__},
        "security": CLIENT_SECURITY,
        "paths": paths,
        "components": {"schemas": SCHEMAS, "securitySchemes": SECURITY_SCHEMES},
    }


async def serve_document(request: web.Request) -> web.Response:
    return json_response(document(request.app[access.RULES]))


def setup(app: web.Application) -> None:
    app.router.add_get("/openapi.json", serve_document, name="health.openapi", allow_head=False)
    access.declare(app, {"health.openapi": OPEN})
