"""OAuth 2.0 token introspection (RFC 7662) and revocation (RFC 7009).

Form bodies in, ``{"error", "error_description"}`` errors out (RFC 6749 section 5.2), and
``Cache-Control: no-store`` on every answer: these carry token state.
"""

from __future__ import annotations

from aiohttp import web

from service.api.access import principal
from service.api.bodies import form_fields
from service.api.errors import HttpError
from service.api.openapi_parts import json_body, ref
from service.api.responses import json_response, service
from service.api.routing import Dialect, Route
from service.auth import Rule
from service.clients import Permission
from service.errors import BadRequest

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_OAUTH_CODES = {401: "invalid_client", 403: "unauthorized_client", 503: "temporarily_unavailable"}


async def _token_field(request: web.Request) -> str:
    token = (await form_fields(request)).get("token")
    if not token:
        raise BadRequest("the token parameter is required")
    # token_type_hint is advisory (RFC 7009 2.1): we find any token without it.
    return token


async def introspect(request: web.Request) -> web.Response:
    token = await _token_field(request)
    record = await service(request).introspect(token, scope=principal(request).scope)
    if record is None:
        return json_response({"active": False}, headers=NO_STORE)
    # RFC 7662's members: active, scope, client_id, sub, exp, iat, token_type, jti
    # (records.TokenRecord.oauth_json; tests/test_records.py checks it field by field).
    return web.Response(body=record.oauth_json(), content_type="application/json", headers=NO_STORE)


async def revoke(request: web.Request) -> web.Response:
    caller = principal(request)
    await service(request).revoke_token(
        await _token_field(request), caller.as_actor(), scope=caller.scope
    )
    return web.Response(status=200, headers=NO_STORE)


def render_error(request: web.Request, error: HttpError) -> web.StreamResponse:
    code = _OAUTH_CODES.get(
        error.status, "invalid_request" if error.status < 500 else "server_error"
    )
    body = {"error": code, "error_description": error.message}
    return json_response(body, error.status, {**error.headers, **NO_STORE})


_FORM_TOKEN = {
    "required": True,
    "content": {
        "application/x-www-form-urlencoded": {
            "schema": {
                "type": "object",
                "required": ["token"],
                "properties": {
                    "token": {"type": "string", "minLength": 1},
                    "token_type_hint": {"type": "string"},
                },
            }
        }
    },
}
_ERRORS = {
    "400": json_body(ref("OAuthError"), "invalid_request"),
    "401": json_body(ref("OAuthError"), "invalid_client (WWW-Authenticate set)"),
    "403": json_body(ref("OAuthError"), "unauthorized_client"),
    "503": json_body(ref("OAuthError"), "temporarily_unavailable"),
}

DIALECT = Dialect("oauth", (
    Route("POST", "/oauth2/introspect", introspect, name="oauth.introspect",
          rule=Rule(Permission.INTROSPECT), openapi={
        "summary": "RFC 7662 introspection (HTTP Basic client authentication)",
        "requestBody": _FORM_TOKEN,
        "responses": {"200": json_body(ref("OAuthIntrospection"), "Exactly {active:false} if not "
                                   "active; Cache-Control: no-store"), **_ERRORS}}),
    Route("POST", "/oauth2/revoke", revoke, name="oauth.revoke", rule=Rule(Permission.REVOKE),
          openapi={
        "summary": "RFC 7009 revocation: 200 whether or not the token existed",
        "description": "`token` may also be a JWT of a configured issuer (JWTs configured): "
                       "it is denied until its exp, as by `POST /v1/jwt/revoke`. An invalid, "
                       "expired or unknown JWT, or one of an app outside the client's, is "
                       "answered 200 and left alone, as an unknown token is.",
        "requestBody": _FORM_TOKEN,
        "responses": {"200": {"description": "Revoked (empty body)"}, **_ERRORS}}),
), render_error=render_error)  # fmt: skip
