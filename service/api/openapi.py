"""The OpenAPI 3.1 document served at ``/openapi.json``; a test keeps it equal to the router.

Each operation's ``operationId`` is its route name; who may call it (security, 401/403) is
filled in from the routes' access rules, so the document cannot disagree with them.
"""

from __future__ import annotations

from aiohttp import web

from service import __version__
from service.api import access, openapi_compat
from service.api.authz import PROXIED_METHODS
from service.api.openapi_parts import Schema, errors, json_body, param, ref, request_body
from service.api.responses import json_response
from service.auth import OPEN, Rule
from service.identity import HEADERS as IDENTITY

TOKEN_ID = param("token_id", "path", "Public token id (UUID-shaped, self-routing)")
USER_ID = param("user_id", "path", "User id (1-256 characters, URL-encoded)")
APP_ID = param("app_id", "path", "Application id (1-256 characters, URL-encoded)")
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

AUTHZ: Schema = {
    "summary": "Forward auth (nginx auth_request, Traefik forwardAuth): is the bearer token "
               "live? Needs no client credentials",
    "description": "Reads `Authorization: Bearer <token>` (or the header named by "
                   "TOKENSTORE_AUTHZ_HEADER). Every answer carries a Cache-Control hint.",
    "parameters": [
        param("X-Required-Scope", "header", "Space-separated scopes the token must have"),
        param("X-Required-App", "header", "App the token must belong to (percent-encoded)"),
        param("scope", "query", "Same as X-Required-Scope; every requirement applies"),
        param("app", "query", "Same as X-Required-App")],
    "responses": {
        "200": {"description": "Live: X-Token-Id, X-Token-User, X-Token-App (percent-encoded"
                               " UTF-8), X-Token-Scopes, X-Token-Expires (epoch ms); "
                               "Cache-Control max-age up to the token's expiry",
                "headers": {name: {"schema": {"type": "string"}} for name in IDENTITY}},
        "401": json_body(ref("Error"), 'No token (`WWW-Authenticate: Bearer`), or not live or '
                                    'not for the required app (`error="invalid_token"`)'),
        "403": json_body(ref("Error"), 'Live, but lacks a required scope '
                                    '(`error="insufficient_scope"`)'),
        **errors(400, 503)}}  # fmt: skip

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
        "requestBody": request_body(ref("IssueRequest")),
        "responses": {"201": json_body(ref("IssuedToken"), "Stored; `token` only when minted"),
                      **errors(400, 409, 413, 503)}}},
    "/v1/introspect": {"post": {
        "operationId": "v1.introspect",
        "summary": "Is this token live? Unknown, malformed, expired or revoked: active false",
        "requestBody": request_body(TOKEN_VALUE),
        "responses": {"200": json_body(ref("Introspection"), "The answer"), **errors(400, 503)}}},
    "/v1/tokens/{token_id}": {
        "get": {"operationId": "v1.get_token",
                "summary": "One live token's record", "parameters": [TOKEN_ID],
                "responses": {"200": json_body(ref("TokenRecord"), "The record"),
                              **errors(400, 404, 503)}},
        "delete": {"operationId": "v1.revoke_by_id",
                   "summary": "Revoke a token by id (idempotent)", "parameters": [TOKEN_ID],
                   "responses": {"200": REVOKED, **errors(400, 503)}}},
    "/v1/revoke": {"post": {
        "operationId": "v1.revoke_by_value",
        "summary": "Revoke a token by value", "requestBody": request_body(TOKEN_VALUE),
        "responses": {"200": REVOKED, **errors(400, 503)}}},
    "/v1/users/{user_id}/tokens": {
        "get": {"operationId": "v1.list_user_tokens",
                "summary": "A user's live tokens, newest first",
                "parameters": [USER_ID, param("app_id", "query", "Only this application's")],
                "responses": {"200": json_body(ref("TokenList"), "The tokens"),
                              **errors(400, 503)}},
        "delete": {"operationId": "v1.revoke_user_tokens",
                   "summary": "Revoke a user's tokens (log out everywhere)",
                   "parameters": [USER_ID, param("app_id", "query", "Only this application's"),
                                  param("except", "query", "Id of a token to keep")],
                   "responses": {"200": REVOKED, **errors(400, 503)}}},
    "/v1/users/{user_id}/events": {"get": {
        "operationId": "v1.user_events",
        "summary": "A user's recent revocations (at most 100, newest first; not app-wide ones)",
        "parameters": [USER_ID],
        "responses": {"200": json_body(ref("EventList"), "The events"), **errors(400, 503)}}},
    "/v1/apps/{app_id}/tokens": {
        "get": {"operationId": "v1.list_app_tokens",
                "summary": "An application's live tokens, paged",
                "parameters": [APP_ID, param("limit", "query", "Page size, 1-1000 (100)"),
                               param("cursor", "query", "`next_cursor` of the previous page")],
                "responses": {"200": json_body(ref("TokenPage"), "One page"),
                              **errors(400, 503)}},
        "delete": {"operationId": "v1.revoke_app_tokens",
                   "summary": "Revoke every token of an application, at once",
                   "parameters": [APP_ID],
                   "responses": {"200": json_body(
                       {"type": "object",
                        "properties": {"revoked_before": {"type": "integer"}}},
                       "Tokens created before this epoch ms are revoked"),
                       **errors(400, 503)}}},
    "/v1/authz": {"get": {**AUTHZ, "operationId": "authz.check"}},
    "/v1/authz/{path}": {method.lower(): {
        **AUTHZ, "operationId": f"authz.check_{method.lower()}",
        "summary": "Forward auth for Envoy's HTTP ext_authz (path_prefix /v1/authz): the "
                   "client's method and path are kept and ignored; requirements from headers",
        "parameters": [param("path", "path", "The client's path, ignored"),
                       *AUTHZ["parameters"][:2]]}
        for method in PROXIED_METHODS},
    "/v1/events": {"get": {
        "operationId": "v1.events",
        "summary": "Revocation feed (Server-Sent Events): replay after Last-Event-ID, then "
                   "live; `ready` once caught up, `reset` if events were lost",
        "parameters": [param("Last-Event-ID", "header", "Replay every event after this id"),
                       param("last_event_id", "query", "Same as Last-Event-ID")],
        "responses": {
            "200": {"description": "text/event-stream: events `token`, `user`, `app` "
                                   "(JSON data), `ready`, `reset`; heartbeat comments",
                    "content": {"text/event-stream": {"schema": ref("RevocationEvent")}}},
            **errors(400, 503)}}},
}  # fmt: skip

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
    responses = {**operation["responses"], **errors(401, 403)}
    return {**operation, "description": needs, "responses": responses}


def document(rules: dict[str, Rule]) -> Schema:
    paths = {
        path: {method: _with_access(op, rules[op["operationId"]]) for method, op in ops.items()}
        for path, ops in {**PATHS, **openapi_compat.PATHS}.items()
    }
    schemas = {**SCHEMAS, **openapi_compat.SCHEMAS}
    return {
        "openapi": "3.1.0",
        "info": {"title": "tokenstore", "version": __version__},
        "security": CLIENT_SECURITY,
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": SECURITY_SCHEMES},
    }


async def serve_document(request: web.Request) -> web.Response:
    return json_response(document(request.app[access.RULES]))


def setup(app: web.Application) -> None:
    app.router.add_get("/openapi.json", serve_document, name="health.openapi", allow_head=False)
    access.declare(app, {"health.openapi": OPEN})
