"""The OpenAPI paths and schemas of the wire-compatible dialects: OAuth (RFC 7662, 7009),
FusionAuth, Usergrid and the Onegini-style access-token API."""

from __future__ import annotations

from service.api.openapi_parts import Schema, json_body, param, ref

USER_ID = param("user_id", "path", "User id (1-256 characters, URL-encoded)")

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
    "400": json_body(ref("OAuthError"), "invalid_request"),
    "401": json_body(ref("OAuthError"), "invalid_client (WWW-Authenticate set)"),
    "503": json_body(ref("OAuthError"), "temporarily_unavailable"),
}
_FA_ERRORS = {
    s: json_body(ref("FusionAuthErrors"), t)
    for s, t in [
        ("400", "Bad request (always a JSON body)"),
        ("401", "Missing or wrong API key"),
        ("404", "No such refresh token"),
        ("503", "Redis unavailable"),
    ]
}
_FA_CRITERIA = [
    param("token", "query", "A refresh token value"),
    param("userId", "query", "Every token of this user (AND applicationId)"),
    param("applicationId", "query", "Every token of this application"),
]
_UG_PARAMS = [param("callback", "query", "JSONP: wrap the answer in this function call")]
_UG_ANSWER = {
    "200": json_body(ref("UsergridAction"), "Revoked"),
    "400": json_body(ref("UsergridError"), "Missing or bad token"),
}
_UG_TOKEN = [param("token", "query", "The token to revoke", required=True)]


def _usergrid(name: str, summary: str, params: list[Schema]) -> dict[str, Schema]:
    return {
        method: {"operationId": f"usergrid.{name}_{method}", "summary": summary,
                 "parameters": params + _UG_PARAMS, "responses": _UG_ANSWER}
        for method in ("put", "post")
    }  # fmt: skip


UG_APP = [
    param(n, "path", d)
    for n, d in [
        ("org", "Organization (accepted, ignored)"),
        ("app", "Application id"),
        ("user_id", "User id"),
    ]
]
UG_MGMT = [param("user_id", "path", "User id")]
TOKEN_ID_UUID = param("token_id", "path", "Token id (UUID)")
PATHS: dict[str, dict[str, Schema]] = {
    "/oauth2/introspect": {"post": {"operationId": "oauth.introspect",
        "summary": "RFC 7662 introspection (HTTP Basic client authentication)",
        "requestBody": _FORM_TOKEN,
        "responses": {"200": json_body(ref("OAuthIntrospection"), "Exactly {active:false} if not "
                                   "active; Cache-Control: no-store"), **_OAUTH_ERRORS}}},
    "/oauth2/revoke": {"post": {"operationId": "oauth.revoke",
        "summary": "RFC 7009 revocation: 200 whether or not the token existed",
        "requestBody": _FORM_TOKEN,
        "responses": {"200": {"description": "Revoked (empty body)"}, **_OAUTH_ERRORS}}},
    "/api/jwt/refresh": {
        "get": {"operationId": "fusionauth.list",
                "summary": "FusionAuth: a user's refresh tokens, newest first",
                "parameters": [param("userId", "query", "User id", required=True)],
                "responses": {"200": json_body({"type": "object", "properties": {"refreshTokens": {
                    "type": "array", "items": ref("RefreshToken")}}}, "The tokens"),
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
                "responses": {"200": json_body({"type": "object", "properties": {
                    "refreshToken": ref("RefreshToken")}}, "The token"), **_FA_ERRORS}},
        "delete": {"operationId": "fusionauth.revoke_by_id",
                   "summary": "FusionAuth: revoke one refresh token by id",
                   "parameters": [TOKEN_ID_UUID],
                   "responses": {"200": {"description": "Revoked (empty body)"},
                                 **_FA_ERRORS}}},
    "/oauth/api/v1/users/{user_id}/tokens": {"get": {"operationId": "onegini.list",
        "summary": "Onegini-style: a user's access tokens (404 if none)",
        "parameters": [USER_ID],
        "responses": {"200": json_body({"type": "object", "properties": {"tokens": {
            "type": "array", "items": ref("OneginiToken")}}}, "The tokens"),
            "404": json_body(ref("OneginiError"), "No tokens found")}}},
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
}  # fmt: skip

SCHEMAS: dict[str, Schema] = {
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
}  # fmt: skip
