"""The OpenAPI 3.1 document served at ``/openapi.json``; a test keeps it equal to the router."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from service import __version__
from service.api.authz import PROXIED_METHODS
from service.api.responses import json_response
from service.identity import HEADERS as IDENTITY

Schema = dict[str, Any]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: Schema, description: str) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict[str, Schema]:
    text = {
        400: "Malformed or invalid input",
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


TOKEN_ID = _param("token_id", "path", "Public token id (32 characters)")
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
    "/healthz": {"get": {"summary": "Liveness: the process runs (never asks Redis)",
                         "responses": {"200": {"description": "Alive"}}}},
    "/readyz": {"get": {"summary": "Readiness: Redis answers",
                        "responses": {"200": {"description": "Ready"},
                                      "503": {"description": "Not ready"}}}},
    "/openapi.json": {"get": {"summary": "This document",
                              "responses": {"200": {"description": "OpenAPI 3.1"}}}},
    "/v1/tokens": {"post": {
        "summary": "Mint a token, or register an externally minted one (with `token`)",
        "requestBody": _body(_ref("IssueRequest")),
        "responses": {"201": _json(_ref("IssuedToken"), "Stored; `token` only when minted"),
                      **_errors(400, 409, 413, 503)}}},
    "/v1/introspect": {"post": {
        "summary": "Is this token live? Unknown, malformed, expired or revoked: active false",
        "requestBody": _body(TOKEN_VALUE),
        "responses": {"200": _json(_ref("Introspection"), "The answer"), **_errors(400, 503)}}},
    "/v1/tokens/{token_id}": {
        "get": {"summary": "One live token's record", "parameters": [TOKEN_ID],
                "responses": {"200": _json(_ref("TokenRecord"), "The record"),
                              **_errors(400, 404, 503)}},
        "delete": {"summary": "Revoke a token by id (idempotent)", "parameters": [TOKEN_ID],
                   "responses": {"200": REVOKED, **_errors(400, 503)}}},
    "/v1/revoke": {"post": {
        "summary": "Revoke a token by value", "requestBody": _body(TOKEN_VALUE),
        "responses": {"200": REVOKED, **_errors(400, 503)}}},
    "/v1/users/{user_id}/tokens": {
        "get": {"summary": "A user's live tokens, newest first",
                "parameters": [USER_ID, _param("app_id", "query", "Only this application's")],
                "responses": {"200": _json(_ref("TokenList"), "The tokens"),
                              **_errors(400, 503)}},
        "delete": {"summary": "Revoke a user's tokens (log out everywhere)",
                   "parameters": [USER_ID, _param("app_id", "query", "Only this application's"),
                                  _param("except", "query", "Id of a token to keep")],
                   "responses": {"200": REVOKED, **_errors(400, 503)}}},
    "/v1/apps/{app_id}/tokens": {
        "get": {"summary": "An application's live tokens, paged",
                "parameters": [APP_ID, _param("limit", "query", "Page size, 1-1000 (100)"),
                               _param("cursor", "query", "`next_cursor` of the previous page")],
                "responses": {"200": _json(_ref("TokenPage"), "One page"),
                              **_errors(400, 503)}},
        "delete": {"summary": "Revoke every token of an application, at once",
                   "parameters": [APP_ID],
                   "responses": {"200": _json(
                       {"type": "object",
                        "properties": {"revoked_before": {"type": "integer"}}},
                       "Tokens created before this epoch ms are revoked"),
                       **_errors(400, 503)}}},
    "/v1/authz": {"get": AUTHZ},
    "/v1/authz/{path}": {method.lower(): {
        **AUTHZ,
        "summary": "Forward auth for Envoy's HTTP ext_authz (path_prefix /v1/authz): the "
                   "client's method and path are kept and ignored; requirements from headers",
        "parameters": [_param("path", "path", "The client's path, ignored"),
                       *AUTHZ["parameters"][:2]]}
        for method in PROXIED_METHODS},
    "/v1/events": {"get": {
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
    "TokenPage": {"type": "object", "properties": {
        "tokens": {"type": "array", "items": _ref("TokenRecord")},
        "next_cursor": _NULLABLE_STRING}},
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


def document() -> Schema:
    return {
        "openapi": "3.1.0",
        "info": {"title": "tokenstore", "version": __version__},
        "paths": PATHS,
        "components": {"schemas": SCHEMAS},
    }


async def serve_document(request: web.Request) -> web.Response:
    return json_response(document())


def setup(app: web.Application) -> None:
    app.router.add_get("/openapi.json", serve_document, name="health.openapi", allow_head=False)
