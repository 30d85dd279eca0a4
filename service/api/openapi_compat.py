"""The OpenAPI schemas of the wire-compatible dialects: OAuth (RFC 7662, 7009), FusionAuth,
Usergrid and the Onegini-style access-token API. Their operations are declared with their
routes."""

from __future__ import annotations

from service.api.openapi_parts import Schema, param, path_segment, text
from service.tokens import ID_PATTERN
from service.validation import MAX_ID_CHARS

USER_ID = param(
    "user_id", "path", "User id (1-256 characters, URL-encoded)", schema=path_segment(MAX_ID_CHARS)
)
ANY_USER_ID = param("user_id", "path", "User id (URL-encoded)", schema=path_segment())
TOKEN_ID_UUID = param("token_id", "path", "Token id (UUID)", schema=text(ID_PATTERN))

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
        "startInstant": {"type": "integer", "description": "The session's start"},
        "metaData": {"type": "object", "properties": {
            "device": {"type": "object", "description": "`lastAccessedInstant`: last use, "
                                                        "for tokens with an idle lifetime"},
            "scopes": {"type": "array"}}},
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
