"""The revocation feed: ``GET /v1/events``, Server-Sent Events from the Redis events stream.

A stream opens with the events a client missed (``Last-Event-ID`` header or ``last_event_id``
query: every event after that id, replayed from Redis; or, without one, ``since``: every event
written since that time, in epoch ms, as a gateway that rebuilds the JWT deny-list asks), then
``event: ready`` whose ``id`` is
the position reached, then each event as it happens: ``id`` the stream id, ``event`` its
kind (``token``, ``user``, ``app``), ``data`` JSON. Heartbeat comments keep proxies from
closing a quiet stream; a heartbeat after events the client may not see carries an ``id``
alone, so its ``Last-Event-ID`` stays recent. If events after the client's id have been
trimmed away (older than the longest token lifetime) or the stream was wiped, the client gets
``event: reset`` first and must drop whatever it cached (with ``since``, the replay of what
is kept follows the reset).
"""

from __future__ import annotations

import contextlib

from aiohttp import web

from service import sse
from service.api.access import principal
from service.api.metrics import METRICS
from service.api.openapi_parts import errors, param, ref, text
from service.api.responses import SETTINGS, STORE
from service.api.routing import Dialect, Route
from service.auth import Rule
from service.clients import Permission
from service.errors import BadRequest, Unavailable
from service.feed import (
    EVENT_ID_PATTERN,
    EventFeed,
    FeedEvent,
    Subscription,
    event_key,
    events_lost_after,
    events_lost_since,
    just_before,
    parse_event_id,
)
from service.settings import Settings
from service.store import TokenStore

FEED = web.AppKey("feed", EventFeed)
REPLAY_PAGE = 1000
SINCE_DIGITS = 15
RETRY_MS = 1000
HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-store",
    "X-Accel-Buffering": "no",  # nginx: pass each event on at once
}


def visible_apps(request: web.Request) -> frozenset[str] | None:
    """The apps whose events this caller may see (its client's apps); None: every app."""
    return principal(request).scope.apps


class _Writer:
    """Writes events a client may see and remembers how far it has got."""

    def __init__(self, response: web.StreamResponse, visible: frozenset[str] | None) -> None:
        self.response = response
        self.visible = visible
        self.position = "0-0"  # every event up to here was sent or is not for this client
        self.client_position = "0-0"  # what the client's Last-Event-ID now is

    async def event(self, event: FeedEvent) -> None:
        if event_key(event.id) <= event_key(self.position):
            return  # replayed already
        self.position = event.id
        if event.wire and (self.visible is None or event.app_id in self.visible):
            await self.response.write(event.wire)
            self.client_position = event.id

    async def heartbeat(self) -> None:
        if self.client_position != self.position:
            await self.response.write(sse.message(id=self.position))
            self.client_position = self.position
        else:
            await self.response.write(sse.comment("heartbeat"))

    async def control(self, event: str, data: str) -> None:
        await self.response.write(sse.message(id=self.position, event=event, data=data))
        self.client_position = self.position


async def _replay(writer: _Writer, store: TokenStore, after: str, last: str) -> None:
    while event_key(after) < event_key(last):
        page = await store.event_range(after, last, REPLAY_PAGE)
        if not page:
            return
        for entry in page:
            await writer.event(FeedEvent.from_entry(entry))
        after = page[-1][0]


def _last_event_id(request: web.Request) -> str | None:
    """The header's id, else the query's; either, if given, must be an id of this feed."""
    given = [request.headers.get("Last-Event-ID"), request.query.get("last_event_id")]
    ids = [raw for raw in given if raw]
    if any(parse_event_id(raw) is None for raw in ids):
        raise BadRequest("Last-Event-ID is not an id of this feed", code="invalid_event_id")
    return ids[0] if ids else None


def _since(request: web.Request) -> int | None:
    raw = request.query.get("since")
    if not raw:
        return None
    if not raw.isascii() or not raw.isdigit() or len(raw) > SINCE_DIGITS:
        raise BadRequest(f"since must be a time in epoch ms (at most {SINCE_DIGITS} digits)")
    return int(raw)


async def events(request: web.Request) -> web.StreamResponse:
    settings, store, feed = request.app[SETTINGS], request.app[STORE], request.app[FEED]
    after, since = _last_event_id(request), _since(request)
    replay_kept = after is None and since is not None
    visible = visible_apps(request)
    # Until the response starts, a failure is an ordinary error answer (503 if Redis is down).
    subscription = await feed.subscribe()
    metrics = request.app[METRICS]
    metrics.feed_subscribers += 1
    try:
        if after is not None:
            lost = events_lost_after(await store.event_stream(), after)
        elif since is not None:
            lost, after = events_lost_since(await store.event_stream(), since), just_before(since)
        else:
            lost = False
        response = web.StreamResponse(headers=HEADERS)
        await response.prepare(request)
        # Once the stream has started an error can only end it; the client reconnects with
        # its Last-Event-ID and loses nothing.
        with contextlib.suppress(Unavailable, ConnectionResetError):
            await _stream(
                _Writer(response, visible), subscription, store, settings, after, lost,
                replay_kept=replay_kept,
            )  # fmt: skip
        return response
    finally:
        metrics.feed_subscribers -= 1
        feed.unsubscribe(subscription)


async def _stream(
    writer: _Writer,
    subscription: Subscription,
    store: TokenStore,
    settings: Settings,
    after: str | None,
    lost: bool,
    replay_kept: bool = False,
) -> None:
    """``replay_kept``: after a reset, replay what is kept anyway (``since`` asked for it)."""
    await writer.response.write(sse.message(retry_ms=RETRY_MS))
    if after is None or (lost and not replay_kept):
        writer.position = subscription.start
        if lost:
            await writer.control("reset", '{"reason":"events_lost"}')
    else:
        writer.position = after
        if lost:
            await writer.control("reset", '{"reason":"events_lost"}')
        await _replay(writer, store, after, subscription.start)
        # Nothing else up to there. ``since`` may lie past the stream's end: the id sent must
        # not, or the client's next Last-Event-ID would look like one of a wiped stream.
        if replay_kept or event_key(subscription.start) > event_key(writer.position):
            writer.position = subscription.start
    await writer.control("ready", f'{{"heartbeat":{settings.feed_heartbeat}}}')
    async for event in subscription.follow(settings.feed_heartbeat):
        if event is None:
            await writer.heartbeat()
        else:
            await writer.event(event)


async def _close_streams(app: web.Application) -> None:
    await app[FEED].close()


def _setup(app: web.Application) -> None:
    # XREAD BLOCK must return before the Redis socket timeout would cut it.
    block_ms = max(10, min(1000, int(app[SETTINGS].redis_timeout * 500)))
    app[FEED] = EventFeed(app[STORE], block_ms)
    app.on_shutdown.append(_close_streams)


_EVENT_ID = text(EVENT_ID_PATTERN, allow_empty=True)  # empty: from the start

# Gateways hold `introspect`; the feed tells them which of their cached answers to drop.
DIALECT = Dialect("v1", (
    Route("GET", "/v1/events", events, name="v1.events", rule=Rule(Permission.INTROSPECT),
          openapi={
        "summary": "Revocation feed (Server-Sent Events): replay after Last-Event-ID, then "
                   "live; `ready` once caught up, `reset` if events were lost",
        "parameters": [param("Last-Event-ID", "header", "Replay every event after this id",
                             schema=_EVENT_ID),
                       param("last_event_id", "query", "Same as Last-Event-ID",
                             schema=_EVENT_ID),
                       param("since", "query", "Without Last-Event-ID: replay every event "
                             "written since this time (epoch ms)",
                             schema=text(f"[0-9]{{1,{SINCE_DIGITS}}}", allow_empty=True))],
        "responses": {
            "200": {"description": "text/event-stream: events `token`, `user`, `app` "
                                   "(JSON data), `ready`, `reset`; heartbeat comments",
                    "content": {"text/event-stream": {"schema": ref("FeedMessage")}}},
            **errors(400, 503)}}),
), setup=_setup)  # fmt: skip
