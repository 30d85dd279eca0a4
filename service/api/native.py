"""The native JSON API under ``/v1``: snake_case, times in epoch milliseconds."""

from __future__ import annotations

from aiohttp import web

from service.api import access, hints
from service.api.access import principal
from service.api.bodies import Fields, json_object, query_int
from service.api.responses import SETTINGS, SWEEPER, json_response, service
from service.auth import Rule
from service.clients import Permission
from service.records import DEFAULT_TYPE

ISSUE_FIELDS = {
    "user_id", "app_id", "ttl", "type", "scopes", "client_name", "device_name", "metadata",
    "token",
}  # fmt: skip
INACTIVE = {"active": False}

# What each route needs. Self-service routes also take a user's own token (Bearer), acting on
# that user's tokens only.
RULES = {
    "v1.issue": Rule(Permission.ISSUE),
    "v1.introspect": Rule(Permission.INTROSPECT),
    "v1.get_token": Rule(Permission.READ),
    "v1.revoke_by_id": Rule(Permission.REVOKE, self_service=True),
    "v1.revoke_by_value": Rule(Permission.REVOKE, self_service=True),
    "v1.list_user_tokens": Rule(Permission.READ, self_service=True),
    "v1.revoke_user_tokens": Rule(Permission.REVOKE, self_service=True),
    "v1.user_events": Rule(Permission.READ),
    "v1.list_app_tokens": Rule(Permission.READ),
    "v1.revoke_app_tokens": Rule(Permission.ADMIN),
}


async def issue(request: web.Request) -> web.Response:
    fields = Fields(await json_object(request), ISSUE_FIELDS)
    svc = service(request)
    draft = svc.draft(
        user_id=fields.required_text("user_id"),
        app_id=fields.required_text("app_id"),
        type=_default(fields.text("type"), DEFAULT_TYPE),
        scopes=fields.text_list("scopes"),
        client_name=fields.text("client_name"),
        device_name=fields.text("device_name"),
        metadata=fields.mapping("metadata"),
    )
    issued = await svc.issue(
        draft,
        ttl=fields.integer("ttl"),
        token=fields.text("token"),
        scope=principal(request).scope,
    )
    body = issued.record.to_json()
    if issued.token is not None:
        body["token"] = issued.token
    return json_response(body, status=201, headers={"Cache-Control": "no-store"})


def _default(value: str | None, default: str) -> str:
    return default if value is None else value


async def introspect(request: web.Request) -> web.Response:
    token = Fields(await json_object(request), {"token"}).required_text("token")
    record = await service(request).introspect(token, scope=principal(request).scope)
    settings = request.app[SETTINGS]
    if record is None:
        return json_response(INACTIVE, headers={"Cache-Control": hints.inactive(settings)})
    body = {"active": True, **record.to_json()}
    return json_response(body, headers={"Cache-Control": hints.live(settings, record.expires_at)})


async def get_token(request: web.Request) -> web.Response:
    token_id = request.match_info["token_id"]
    record = await service(request).get(token_id, scope=principal(request).scope)
    return json_response(record.to_json())


async def revoke_by_id(request: web.Request) -> web.Response:
    caller = principal(request)
    revoked = await service(request).revoke_id(
        request.match_info["token_id"], caller.as_actor(), scope=caller.scope
    )
    return json_response({"revoked": revoked})


async def revoke_by_value(request: web.Request) -> web.Response:
    token = Fields(await json_object(request), {"token"}).required_text("token")
    caller = principal(request)
    revoked = await service(request).revoke_token(token, caller.as_actor(), scope=caller.scope)
    return json_response({"revoked": revoked})


async def list_user_tokens(request: web.Request) -> web.Response:
    app_id = request.query.get("app_id") or None
    records = await service(request).list_user(
        request.match_info["user_id"], app_id, scope=principal(request).scope
    )
    return json_response({"tokens": [r.to_json() for r in records]})


async def revoke_user_tokens(request: web.Request) -> web.Response:
    caller = principal(request)
    revoked = await service(request).revoke_user(
        request.match_info["user_id"],
        app_id=request.query.get("app_id") or None,
        keep_id=request.query.get("except") or None,
        actor=caller.as_actor(),
        scope=caller.scope,
    )
    return json_response({"revoked": revoked})


async def user_events(request: web.Request) -> web.Response:
    events = await service(request).user_events(
        request.match_info["user_id"], scope=principal(request).scope
    )
    return json_response({"events": events})


async def list_app_tokens(request: web.Request) -> web.Response:
    limit = query_int(request.query, "limit", default=100, low=1, high=1000)
    page = await service(request).list_app(
        request.match_info["app_id"],
        limit,
        request.query.get("cursor"),
        scope=principal(request).scope,
    )
    tokens = [r.to_json() for r in page.tokens]
    return json_response({"tokens": tokens, "next_cursor": page.next_cursor})


async def revoke_app_tokens(request: web.Request) -> web.Response:
    caller = principal(request)
    watermark = await service(request).revoke_app(
        request.match_info["app_id"], caller.as_actor(), scope=caller.scope
    )
    request.app[SWEEPER].kick()
    return json_response({"revoked_before": watermark})


def setup(app: web.Application) -> None:
    app.router.add_routes(
        [
            web.post("/v1/tokens", issue, name="v1.issue"),
            web.post("/v1/introspect", introspect, name="v1.introspect"),
            web.get(
                "/v1/tokens/{token_id:[^/]+}", get_token, name="v1.get_token", allow_head=False
            ),
            web.delete("/v1/tokens/{token_id:[^/]+}", revoke_by_id, name="v1.revoke_by_id"),
            web.post("/v1/revoke", revoke_by_value, name="v1.revoke_by_value"),
            web.get(
                "/v1/users/{user_id:[^/]+}/tokens",
                list_user_tokens,
                name="v1.list_user_tokens",
                allow_head=False,
            ),
            web.delete(
                "/v1/users/{user_id:[^/]+}/tokens", revoke_user_tokens, name="v1.revoke_user_tokens"
            ),
            web.get(
                "/v1/users/{user_id:[^/]+}/events",
                user_events,
                name="v1.user_events",
                allow_head=False,
            ),
            web.get(
                "/v1/apps/{app_id:[^/]+}/tokens",
                list_app_tokens,
                name="v1.list_app_tokens",
                allow_head=False,
            ),
            web.delete(
                "/v1/apps/{app_id:[^/]+}/tokens", revoke_app_tokens, name="v1.revoke_app_tokens"
            ),
        ]
    )
    access.declare(app, RULES)
