"""Webhooks' dead letters under ``/v1/webhooks`` (admin), and the delivery workers' place in
the app's life: started once Redis is set up, stopped before it is closed."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

from aiohttp import web

from service.api.bodies import query_int
from service.api.metrics import METRICS
from service.api.openapi_parts import errors, json_body, param, text
from service.api.responses import SETTINGS, STORE, json_response
from service.api.routing import Dialect, Route
from service.auth import Rule
from service.clients import Permission
from service.errors import BadRequest
from service.webhooks.config import ID_PATTERN
from service.webhooks.dead_letters import PAGE_DEFAULT, PAGE_MAX
from service.webhooks.registry import Webhooks

WEBHOOKS = web.AppKey("webhooks", Webhooks)
EVENT_ID_PATTERN = r"[0-9]{1,20}-[0-9]{1,20}"  # a Redis stream id
_WEBHOOK_ID_RE, _EVENT_ID_RE = re.compile(ID_PATTERN), re.compile(EVENT_ID_PATTERN)


def _setup(app: web.Application) -> None:
    app[WEBHOOKS] = Webhooks.for_settings(app[STORE], app[SETTINGS], app[METRICS])
    app.cleanup_ctx.append(_workers)


async def _workers(app: web.Application) -> AsyncIterator[None]:
    webhooks = app[WEBHOOKS]
    await webhooks.start()
    yield
    await webhooks.stop()


def _path(request: web.Request, name: str, pattern: re.Pattern[str]) -> str:
    value = request.match_info[name]
    if not pattern.fullmatch(value):
        raise BadRequest(f"{name}: malformed", code=f"invalid_{name}")
    return value


async def failures(request: web.Request) -> web.Response:
    webhook_id = _path(request, "webhook_id", _WEBHOOK_ID_RE)
    limit = query_int(request.query, "limit", PAGE_DEFAULT, low=1, high=PAGE_MAX)
    cursor = request.query.get("cursor") or None
    if cursor is not None and not _EVENT_ID_RE.fullmatch(cursor):
        raise BadRequest("not a cursor of this listing", code="invalid_cursor")
    page = await request.app[WEBHOOKS].failures(webhook_id, limit, cursor)
    letters = [letter.public() for letter in page.letters]
    return json_response({"failures": letters, "next_cursor": page.next_cursor})


async def redeliver(request: web.Request) -> web.Response:
    webhook_id = _path(request, "webhook_id", _WEBHOOK_ID_RE)
    event_id = _path(request, "event_id", _EVENT_ID_RE)
    error = await request.app[WEBHOOKS].redeliver(webhook_id, event_id)
    return json_response({"delivered": error is None, "error": error})


WEBHOOK_ID = param("webhook_id", "path", "A webhook's id (webhooks file)", schema=text(ID_PATTERN))
EVENT_ID = param(
    "event_id", "path", "The event's stream id (`webhook-id`)", schema=text(EVENT_ID_PATTERN)
)
FAILURE = {
    "type": "object",
    "required": ["event_id", "event", "attempts", "last_error", "failed_at"],
    "properties": {
        "event_id": {"type": "string"},
        "event": {"type": "object", "description": "As in `/v1/users/{user_id}/events`"},
        "attempts": {"type": "integer"},
        "last_error": {"type": "string", "description": "`HTTP <status>`, `timeout`, ..."},
        "failed_at": {"type": "integer", "description": "Epoch ms"},
    },
}
FAILURES = {"type": "object", "required": ["failures", "next_cursor"], "properties": {
    "failures": {"type": "array", "items": FAILURE},
    "next_cursor": {"type": ["string", "null"],
                    "description": "`cursor` of the next page; null on the last one"}}}  # fmt: skip
LIMIT = {"type": "integer", "minimum": 1, "maximum": PAGE_MAX, "default": PAGE_DEFAULT}
CURSOR = param("cursor", "query", "`next_cursor` of the previous page",
               schema=text(EVENT_ID_PATTERN, allow_empty=True))  # fmt: skip
REDELIVERED = {
    "type": "object",
    "required": ["delivered", "error"],
    "properties": {"delivered": {"type": "boolean"}, "error": {"type": ["string", "null"]}},
}

DIALECT = Dialect("webhooks", (
    Route("GET", "/v1/webhooks/{webhook_id:[^/]+}/failures", failures, name="webhooks.failures",
          rule=Rule(Permission.ADMIN), openapi={
        "summary": "A webhook's dead letters: events not delivered in the retry window "
                   "(oldest first, paged)",
        "parameters": [WEBHOOK_ID,
                       param("limit", "query", "Page size (ASCII digits)", schema=LIMIT),
                       CURSOR],
        "responses": {"200": json_body(FAILURES, "The dead letters"),
                      **errors(400, 404, 503)}}),
    Route("POST", "/v1/webhooks/{webhook_id:[^/]+}/failures/{event_id:[^/]+}/redeliver",
          redeliver, name="webhooks.redeliver", rule=Rule(Permission.ADMIN), openapi={
        "summary": "Deliver a dead letter again, once, now (dropped from the list on a 2xx)",
        "parameters": [WEBHOOK_ID, EVENT_ID],
        "responses": {"200": json_body(REDELIVERED, "The attempt's outcome"),
                      **errors(400, 404, 503)}}),
), setup=_setup)  # fmt: skip
