"""The OpenAPI 3.1 document served at ``/openapi.json``; a test keeps it equal to the router.

Each operation's ``operationId`` is its route name; who may call it (security, 401/403) is
filled in from the routes' access rules, so the document cannot disagree with them.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from service import __version__
from service.api import access
from service.api.responses import json_response
from service.auth import OPEN, Rule

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

PATHS: dict[str, dict[str, Schema]] = {
    "/healthz": {"get": {"operationId": "health.healthz",
                         "summary": "Liveness: the process runs (never asks Redis)",
                         "responses": {"200": {"description": "Alive"}}}},
    "/readyz": {"get": {"operationId": "health.readyz", "summary": "Readiness: Redis answers",
                        "responses": {"200": {"description": "Ready"},
                                      "503": {"description": "Not ready"}}}},
    "/openapi.json": {"get": {"operationId": "health.openapi", "summary": "This document",
                              "responses": {"200": {"description": "OpenAPI 3.1"}}}},
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
