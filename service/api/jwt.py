"""``POST /v1/jwt/revoke``: deny a JWT until it expires; ``GET /v1/jwt/config``: what a gateway
needs to verify JWTs as we do. Both are served when JWTs are configured.

``{"token": "<the JWT>"}`` (an API client with ``revoke``, or the JWT's own holder, Bearer
with that JWT) or ``{"jti", "exp", "iss"?, "user_id"?, "app_id"?}`` (an API client: the JWT
need not be at hand). Answers ``{"revoked": jti}``.
"""

from __future__ import annotations

from aiohttp import web

from service import validation
from service.api.access import principal
from service.api.bodies import Fields, json_object
from service.api.openapi_parts import errors, json_body, param, request_body, text
from service.api.responses import json_response, service
from service.api.routing import Dialect, Route
from service.auth import Rule
from service.clients import Permission
from service.errors import BadRequest, Forbidden, NotFound
from service.jwt_rules import JwtDenial, JwtRules
from service.jwt_verify import JwtClaims
from service.service import TokenService

FIELDS = {"token", "jti", "exp", "iss", "user_id", "app_id"}
NO_STORE = {"Cache-Control": "no-store"}


def _rules(svc: TokenService) -> JwtRules:
    if svc.jwt is None:  # the route is added only with JWTs configured
        raise NotFound("JWTs are not configured")
    return svc.jwt


async def revoke(request: web.Request) -> web.Response:
    fields = Fields(await json_object(request), FIELDS)
    svc = service(request)
    rules, caller = _rules(svc), principal(request)
    token = fields.text("token", nullable=False)
    if token is not None:
        if set(fields.body) != {"token"}:
            raise BadRequest("token goes alone: the other fields come from it")
        claims = await svc.revoke_jwt(token, caller.as_actor(), scope=caller.scope)
        if not isinstance(claims, JwtClaims):
            raise BadRequest("not a valid JWT of a configured issuer", code="invalid_token")
        return json_response({"revoked": claims.jti}, headers=NO_STORE)
    jti, exp = fields.required_text("jti"), fields.integer("exp")
    if exp is None:
        raise BadRequest("exp is required with jti", code="missing_field")
    user_id = fields.text("user_id", nullable=False)
    app_id = fields.text("app_id", nullable=False)
    if user_id is not None:
        validation.identifier("user_id", user_id)
    if app_id is not None:
        validation.identifier("app_id", app_id)
    issuer = fields.text("iss", nullable=False)
    until = await rules.deny_jti(jti, exp, issuer, app_id, caller.scope)
    if until is not None:  # an expired JWT needs no denial, nor an event
        await svc.jwt_revoked(JwtDenial(jti, issuer, until), user_id, app_id, caller.as_actor())
    return json_response({"revoked": jti}, headers=NO_STORE)


async def config(request: web.Request) -> web.Response:
    """The JWT policy and the public keys held. ``kid``: a key the gateway met and does not
    hold; if we hold none either, the JWKS URL is fetched again first (rate-limited)."""
    rules = _rules(service(request))
    if principal(request).scope.apps is not None:
        # Such a client's feed lacks the revocations of other apps, and those of no app.
        raise Forbidden("local JWT checks need an API client of every app")
    kid = request.query.get("kid")
    if kid is not None and len(kid) > MAX_KID_CHARS:
        raise BadRequest(f"kid is longer than {MAX_KID_CHARS} characters")
    keys = await rules.key_set(kid)
    body = {**rules.verifier.policy.public(), "jwks": keys.jwks}
    return json_response(body, headers=NO_STORE)


MAX_KID_CHARS = 256
_TEXT = {"type": "string", "minLength": 1, "maxLength": 256}
REVOKE_REQUEST = {
    "oneOf": [
        {
            "type": "object",
            "required": ["token"],
            "additionalProperties": False,
            "properties": {"token": {"type": "string"}},
        },
        {
            "type": "object",
            "required": ["jti", "exp"],
            "additionalProperties": False,
            "properties": {
                "jti": {**_TEXT, "pattern": r"^[\x21\x23-\x5b\x5d-\x7e]+$"},
                "exp": {"type": "integer", "description": "The JWT's exp (epoch s)"},
                "iss": {"type": "string", "description": "Default: every configured issuer"},
                "user_id": _TEXT,
                "app_id": _TEXT,
            },
        },
    ]
}

JWT_CONFIG = {
    "type": "object",
    "required": ["issuers", "audience", "max_ttl", "leeway", "user_claim", "app_claims", "jwks"],
    "properties": {
        "issuers": {"type": "array", "items": {"type": "string"}},
        "audience": {"type": ["string", "null"]},
        "max_ttl": {"type": "integer", "description": "Longest JWT lifetime (s)"},
        "leeway": {"type": "integer", "description": "Clock leeway (s)"},
        "user_claim": {"type": "string"},
        "app_claims": {"type": "array", "items": {"type": "string"}},
        "jwks": {"type": "object", "required": ["keys"],
                 "properties": {"keys": {"type": "array", "items": {"type": "object"}}}},
    },
}  # fmt: skip

DIALECT = Dialect("jwt", (
    Route("GET", "/v1/jwt/config", config, name="jwt.config",
          rule=Rule(Permission.INTROSPECT), openapi={
        "summary": "What a gateway needs to verify JWTs locally: issuers, audience, claims, "
                   "lifetime, leeway and the public keys (JWKS) (JWTs configured)",
        "parameters": [param("kid", "query", "A key id not held: the JWKS URL is fetched "
                             "again first (rate-limited)", schema=text(max_length=MAX_KID_CHARS))],
        "responses": {"200": json_body(JWT_CONFIG, "The policy and keys"),
                      **errors(400, 403, 503)}}),
    Route("POST", "/v1/jwt/revoke", revoke, name="jwt.revoke",
          rule=Rule(Permission.REVOKE, self_service=True), openapi={
        "summary": "Deny a JWT until its exp, by value or by jti (JWTs configured)",
        "requestBody": request_body(REVOKE_REQUEST),
        "responses": {"200": json_body(
            {"type": "object", "required": ["revoked"],
             "properties": {"revoked": {"type": "string"}}}, "Denied until its exp"),
            **errors(400, 403, 503)}}),
))  # fmt: skip
