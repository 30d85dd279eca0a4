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
"""

from __future__ import annotations

import dataclasses

from aiohttp import web

from service import validation
from service.api import hints
from service.api.errors import ERROR_RENDERERS, HttpError, render_default
from service.api.responses import SETTINGS, json_response, service
from service.identity import Identity, bearer_token, decode_header
from service.records import TokenRecord

REQUIRED_SCOPE = "X-Required-Scope"
REQUIRED_APP = "X-Required-App"


@dataclasses.dataclass(frozen=True, slots=True)
class Requirements:
    scopes: frozenset[str]
    apps: frozenset[str]

    @classmethod
    def of(cls, request: web.Request) -> Requirements:
        scopes: list[str] = []
        for raw in (
            *request.headers.getall(REQUIRED_SCOPE, ()),
            *request.query.getall("scope", ()),
        ):
            scopes += raw.split()
        apps = {decode_header(raw) for raw in request.headers.getall(REQUIRED_APP, ())}
        apps.update(request.query.getall("app", ()))
        return cls(frozenset(validation.scopes(scopes)), frozenset(apps))

    def app_denies(self, record: TokenRecord) -> bool:
        return bool(self.apps) and self.apps != {record.app_id}

    def missing_scopes(self, record: TokenRecord) -> list[str]:
        return sorted(self.scopes - set(record.scopes))


def _deny(
    request: web.Request, status: int, challenge: str, error: str, cache_control: str
) -> web.Response:
    headers = {"WWW-Authenticate": challenge, "Cache-Control": cache_control, **_vary(request)}
    return json_response({"error": error, "message": _MESSAGES[error]}, status, headers)


_MESSAGES = {
    "missing_token": "no bearer token in the request",
    "invalid_token": "the token is not live, or not valid here",
    "insufficient_scope": "the token lacks a required scope",
}


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
    invalid = 'Bearer error="invalid_token"'
    record = await service(request).introspect(token) if token else None
    if record is None:
        return _deny(request, 401, invalid, "invalid_token", hints.inactive(settings))
    # From here the answer is a fact about a live token: it may be reused as long as a live one.
    cache_control = hints.live(settings, record.expires_at)
    if requirements.app_denies(record):
        return _deny(request, 401, invalid, "invalid_token", cache_control)
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


def setup(app: web.Application) -> None:
    app[ERROR_RENDERERS]["authz"] = render_error
    app.router.add_get("/v1/authz", check, name="authz.check", allow_head=False)
