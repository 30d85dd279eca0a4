"""The revocation event model: every form an event takes (Redis stream, a user's list, the
feed, the gateway client's reading of the feed) reads back as the same event."""

from __future__ import annotations

import orjson

from service.events import USER_APP, EventKind, RevocationEvent
from service.feed import FeedEvent
from service.gateway_cache import Invalidation

EVENTS = [
    RevocationEvent(EventKind.TOKEN, "web", user_id="alice", ids=("i-1",), actor="limit", at=5),
    RevocationEvent(
        EventKind.USER,
        "web",
        user_id="ünï {x}",
        ids=("i-1", "i-2"),
        scope=USER_APP,
        actor="self",
        via="i-3",
        at=7,
        info={"reason": ["stolen"]},
    ),
    RevocationEvent(EventKind.APP, "mobile", revoked_before=1234, actor="ops", at=9),
]


def _as_stored(fields: dict[str, str | int]) -> dict[str, str]:
    """As Redis gives the fields back: every value a string."""
    return {name: str(value) for name, value in fields.items()}


def test_the_stream_and_a_users_list_read_back_as_written() -> None:
    for event in EVENTS:
        fields = event.stream_fields()
        assert RevocationEvent.from_fields(_as_stored(fields)) == event  # the stream
        assert RevocationEvent.from_fields(orjson.loads(orjson.dumps(fields))) == event  # list
        stored = RevocationEvent.from_fields(_as_stored(fields))
        assert stored is not None and stored.info == event.info  # not compared by ==


def test_the_feed_carries_what_a_gateway_needs_and_nothing_internal() -> None:
    for event in EVENTS:
        feed = FeedEvent.from_entry(("1-0", _as_stored(event.stream_fields())))
        assert feed.kind is event.kind and feed.app_id == event.app_id
        data = feed.wire.decode().split("data: ", 1)[1].split("\n", 1)[0]
        assert not {"actor", "via", "info"} & orjson.loads(data).keys()
        read = RevocationEvent.from_feed(event.kind.value, data)
        assert read is not None
        assert (read.kind, read.app_id, read.user_id, read.ids) == (
            event.kind, event.app_id, event.user_id, event.ids
        )  # fmt: skip
        assert (read.scope, read.revoked_before, read.at) == (
            event.scope, event.revoked_before, event.at
        )  # fmt: skip


def test_kinds_of_a_newer_version_are_passed_over() -> None:
    assert RevocationEvent.from_fields({"kind": "device", "app_id": "web"}) is None
    feed = FeedEvent.from_entry(("2-0", {"kind": "device", "app_id": "web"}))
    assert (feed.kind, feed.wire) == (None, b"")  # nobody is sent it; the position moves on
    assert RevocationEvent.from_feed("device", b'{"app_id": "web"}') is None
    assert RevocationEvent.from_feed("user", b"not json") is None


def test_a_one_app_user_event_invalidates_that_app_only() -> None:
    invalidation = Invalidation.from_event(EVENTS[1])
    assert (invalidation.kind, invalidation.user_id, invalidation.one_app) == (
        "user", "ünï {x}", True
    )  # fmt: skip
