"""Sessions and rotation in the native API: a user's logins, logging one out, and refresh-token
rotation with reuse detection (``TokenService.rotate``)."""

from __future__ import annotations

from aiohttp import hdrs, web

from service.api.access import CREDENTIALS, PRINCIPAL, principal
from service.api.bodies import Fields, json_object
from service.api.native import ONLY_APP, USER_ID
from service.api.openapi_parts import errors, json_body, param, ref, request_body, text
from service.api.responses import CLIENTS, json_response, service
from service.api.routing import Dialect, Route
from service.auth import SELF, Principal, Rule, authenticate, authorize, parse_authorization
from service.clients import Permission
from service.scope import EVERYTHING
from service.service import Actor
from service.tokens import ID_PATTERN

ROTATE_RULE = Rule(Permission.ISSUE)


async def rotate(request: web.Request) -> web.Response:
    token = Fields(await json_object(request), {"token"}).required_text("token")
    caller = await _rotating_caller(request, token)
    if caller is None:  # the token is its own credential, as in OAuth's refresh grant
        actor, scope = Actor(SELF), EVERYTHING
    else:
        actor, scope = caller.as_actor(), caller.scope
    issued = await service(request).sessions.rotate(token, actor, scope=scope)
    body = issued.record.to_json()
    body["token"] = issued.token
    return json_response(body, status=201, headers={"Cache-Control": "no-store"})


async def _rotating_caller(request: web.Request, token: str) -> Principal | None:
    """The API client rotating (it needs ``issue``), or None when the holder rotates: no
    ``Authorization``, or ``Bearer`` with the very token to rotate. The route is open so that
    a rotated token presented again reaches the reuse check (as a credential it is not live,
    and would be refused before)."""
    header = request.headers.get(hdrs.AUTHORIZATION)
    if header is None:
        return None
    credentials = parse_authorization(header)
    registry = request.app[CLIENTS]
    bearer = credentials.secret if credentials and credentials.scheme == "bearer" else None
    if bearer == token and registry.find(None, token) is None:
        return None
    cache = request.app[CREDENTIALS]
    caller = cache.get(registry, header)
    if caller is None:
        caller = await authenticate(header, ROTATE_RULE, registry, _no_tokens)
        cache.put(header, caller)
    authorize(caller, ROTATE_RULE, None)
    request[PRINCIPAL] = caller
    return caller


async def _no_tokens(value: str) -> None:
    return None  # ROTATE_RULE is no self-service rule: never called


async def list_sessions(request: web.Request) -> web.Response:
    views = await service(request).sessions.list_sessions(
        request.match_info["user_id"],
        request.query.get("app_id") or None,
        scope=principal(request).scope,
    )
    return json_response({"sessions": [view.to_json() for view in views]})


async def revoke_session(request: web.Request) -> web.Response:
    caller = principal(request)
    revoked = await service(request).sessions.revoke_session(
        request.match_info["session_id"], caller.as_actor(), scope=caller.scope
    )
    return json_response({"revoked": revoked})


SESSION_ID = param(
    "session_id",
    "path",
    "Session id (the id of the session's first token)",
    schema=text(ID_PATTERN),
)
ROTATE_DESCRIPTION = (
    "Open to the token's holder: no `Authorization`, or `Bearer` with the very token to "
    "rotate (a rotated token must reach the reuse check). An API client rotating for its "
    "users needs the `issue` permission (Basic, Bearer or bare secret)."
)

# Part of the native API ("v1."): declared here to keep native.py to tokens.
DIALECT = Dialect("v1", (
    Route("POST", "/v1/tokens/rotate", rotate, name="v1.rotate", rule=Rule(None), openapi={
        "summary": "Rotate a token: a new one in the same session; the presented one is done. "
                   "A rotated token presented again revokes its session (400 token_reused)",
        "description": ROTATE_DESCRIPTION,
        "requestBody": request_body({"type": "object", "required": ["token"],
                                     "additionalProperties": False,
                                     "properties": {"token": {"type": "string"}}}),
        "responses": {"201": json_body(ref("IssuedToken"), "The successor, with `token`"),
                      **errors(400, 401, 403, 503)}}),
    Route("GET", "/v1/users/{user_id:[^/]+}/sessions", list_sessions,
          name="v1.list_sessions", rule=Rule(Permission.READ, self_service=True), openapi={
        "summary": "A user's sessions (logins) with a live token, newest first",
        "parameters": [USER_ID, ONLY_APP],
        "responses": {"200": json_body(ref("SessionList"), "The sessions"),
                      **errors(400, 503)}}),
    Route("DELETE", "/v1/sessions/{session_id:[^/]+}", revoke_session,
          name="v1.revoke_session", rule=Rule(Permission.REVOKE, self_service=True), openapi={
        "summary": "Revoke every token of a session (log out one device)",
        "parameters": [SESSION_ID],
        "responses": {"200": json_body({"type": "object", "properties": {
            "revoked": {"type": "array", "items": {"type": "string"}}}},
            "Ids of the tokens revoked (empty if none)"), **errors(400, 503)}}),
))  # fmt: skip
