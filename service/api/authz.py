"""Forward auth: ``GET /v1/authz`` for nginx ``auth_request``, Traefik ``forwardAuth`` and
Envoy's HTTP ``ext_authz``.

The bearer token is the only credential (gateways forward the caller's ``Authorization``
unchanged), so these routes are named ``authz.*`` and need no API client credentials; the
answer tells nothing beyond the identity of the token's own holder. Statuses follow RFC 6750:
200 with the identity headers (service/identity.py); 401 ``Bearer`` when no token was sent;
401 ``error="invalid_token"`` for a token that is not live (or not for the required app);
403 ``error="insufficient_scope"`` for a live token lacking a required scope; 503 if Redis
cannot be reached (never 200). Every answer carries a cache hint (api/hints.py).

Requirements come from ``X-Required-Scope`` / ``X-Required-App`` headers and ``scope`` /
``app`` query parameters; all of them apply, so a requirement a client smuggles into its own
request can only make its check stricter.

Envoy's HTTP ext_authz keeps the client's method and appends the client's path (and query) to
its ``path_prefix``: ``/v1/authz/{path}`` answers any of those methods, ignores the path, and
takes requirements from headers only (the query there is the client's, not the gateway's).
"""

from __future__ import annotations

import dataclasses

from aiohttp import web

from service import validation
from service.api import hints
from service.api.errors import HttpError, render_default
from service.api.openapi_parts import Schema, errors, json_body, param, ref, text
from service.api.responses import SETTINGS, json_response, service
from service.api.routing import Dialect, Route
from service.auth import OPEN
from service.errors import BadRequest
from service.identity import HEADERS as IDENTITY
from service.identity import PERCENT_ENCODED_PATTERN, Identity, bearer_token, decode_header
from service.records import TokenRecord
from service.scope import EVERYTHING

REQUIRED_SCOPE = "X-Required-Scope"
REQUIRED_APP = "X-Required-App"
# What ``/v1/authz/{path}`` answers: the methods a client may send through Envoy.
PROXIED_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


@dataclasses.dataclass(frozen=True, slots=True)
class Requirements:
    scopes: frozenset[str]
    apps: frozenset[str]

    @classmethod
    def of(cls, request: web.Request) -> Requirements:
        scope_values = request.headers.getall(REQUIRED_SCOPE, [])
        try:
            apps = {decode_header(raw) for raw in request.headers.getall(REQUIRED_APP, ())}
        except ValueError:
            raise BadRequest(f"{REQUIRED_APP} is not percent-encoded UTF-8") from None
        if "path" not in request.match_info:
            scope_values += request.query.getall("scope", [])
            apps.update(request.query.getall("app", ()))
        scopes = [scope for raw in scope_values for scope in validation.scope_list(raw)]
        return cls(frozenset(validation.scopes(scopes)), frozenset(apps))

    def app_denies(self, record: TokenRecord) -> bool:
        return bool(self.apps) and self.apps != {record.app_id}

    def missing_scopes(self, record: TokenRecord) -> list[str]:
        return sorted(self.scopes - set(record.scopes))


_MESSAGES = {
    "missing_token": "no bearer token in the request",
    "invalid_token": "the token is not live, or not valid here",
    "insufficient_scope": "the token lacks a required scope",
}
INVALID = 'Bearer error="invalid_token"'


def _deny(
    request: web.Request, status: int, challenge: str, error: str, cache_control: str
) -> web.Response:
    headers = {"WWW-Authenticate": challenge, "Cache-Control": cache_control, **_vary(request)}
    return json_response({"error": error, "message": _MESSAGES[error]}, status, headers)


def _vary(request: web.Request) -> dict[str, str]:
    header = request.app[SETTINGS].authz_header
    return {"Vary": f"{header}, {REQUIRED_SCOPE}, {REQUIRED_APP}"}


def _token(request: web.Request) -> str | None:
    """The bearer token, "" if the header is there but unusable, None if it is absent."""
    header = request.app[SETTINGS].authz_header
    values = request.headers.getall(header, ())
    if not values:
        return None
    # Two such headers: which one a proxy in front looked at is unknowable, so neither counts.
    if len(values) > 1:
        return ""
    bare_allowed = header.lower() != "authorization"
    return bearer_token(values[0], bare_allowed=bare_allowed) or ""


async def check(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    requirements = Requirements.of(request)
    token = _token(request)
    if token is None:
        return _deny(request, 401, "Bearer", "missing_token", hints.inactive(settings))
    # The token is the caller's own credential: it may learn its own identity, nothing else.
    record = await service(request).introspect(token, scope=EVERYTHING) if token else None
    if record is None:
        return _deny(request, 401, INVALID, "invalid_token", hints.inactive(settings))
    # From here the answer is a fact about a live token: it may be reused as long as a live one.
    cache_control = hints.live(settings, record.live_until)
    if requirements.app_denies(record):
        return _deny(request, 401, INVALID, "invalid_token", cache_control)
    missing = requirements.missing_scopes(record)
    if missing:
        challenge = f'Bearer error="insufficient_scope", scope="{" ".join(missing)}"'
        return _deny(request, 403, challenge, "insufficient_scope", cache_control)
    identity = Identity(record.id, record.user_id, record.app_id, record.scopes, record.expires_at)
    headers = {**identity.headers(), "Cache-Control": cache_control, **_vary(request)}
    return web.Response(status=200, headers=headers)


def render_error(request: web.Request, error: HttpError) -> web.StreamResponse:
    """Errors (a 503 when Redis is down, a malformed requirement) must never be cached."""
    headers = {**error.headers, "Cache-Control": hints.NO_STORE}
    return render_default(request, dataclasses.replace(error, headers=headers))


_SCOPES = text(validation.SCOPE_LIST_PATTERN)
CHECK: Schema = {
    "summary": "Forward auth (nginx auth_request, Traefik forwardAuth): is the bearer token "
               "live? Needs no client credentials",
    "description": "Reads `Authorization: Bearer <token>` (or the header named by "
                   "TOKENSTORE_AUTHZ_HEADER). Every answer carries a Cache-Control hint.",
    "parameters": [
        param("X-Required-Scope", "header", "Space-separated scopes the token must have",
              schema=_SCOPES),
        param("X-Required-App", "header", "App the token must belong to (percent-encoded "
              "UTF-8, as X-Token-App)", schema=text(PERCENT_ENCODED_PATTERN)),
        param("scope", "query", "Same as X-Required-Scope; every requirement applies",
              schema=_SCOPES),
        param("app", "query", "Same as X-Required-App, not encoded")],
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
PROXIED_CHECK: Schema = {
    **CHECK,
    "summary": "Forward auth for Envoy's HTTP ext_authz (path_prefix /v1/authz): the client's "
    "method and path are kept and ignored; requirements from headers",
    "parameters": [
        # Any path, even empty; "." and ".." never arrive (clients resolve them away).
        param(
            "path",
            "path",
            "The client's path, ignored",
            schema={"type": "string", "not": {"enum": [".", ".."]}},
        ),
        *CHECK["parameters"][:2],
    ],
}

# The bearer token is the credential: a gateway forwards the user's Authorization header
# unchanged, and the answer tells only that token's own identity.
DIALECT = Dialect(
    "authz",
    (
        Route("GET", "/v1/authz", check, name="authz.check", rule=OPEN, openapi=CHECK),
        *(
            # (?s): a path may hold any character, a newline (%0A) too.
            Route(method, "/v1/authz/{path:(?s:.*)}", check, name=f"authz.check_{method.lower()}",
                  rule=OPEN, openapi=PROXIED_CHECK)
            for method in PROXIED_METHODS
        ),
    ),
    render_error=render_error,
)  # fmt: skip
