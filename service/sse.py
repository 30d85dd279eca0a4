"""The Server-Sent Events wire format (WHATWG HTML, "server-sent events"), both ways: the
service writes messages, ``service.client`` parses them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass


def message(
    *,
    event: str | None = None,
    data: str | None = None,
    id: str | None = None,
    retry_ms: int | None = None,
) -> bytes:
    """One message; ``data`` must be one line (ours is compact JSON)."""
    lines = []
    if retry_ms is not None:
        lines.append(f"retry: {retry_ms}")
    if id is not None:
        lines.append(f"id: {id}")
    if event is not None:
        lines.append(f"event: {event}")
    if data is not None:
        lines.append(f"data: {data}")
    return ("\n".join(lines) + "\n\n").encode()


def comment(text: str) -> bytes:
    """A comment line: ignored by clients, but it keeps proxies from closing an idle stream."""
    return f": {text}\n\n".encode()


@dataclass(frozen=True, slots=True)
class Message:
    id: str | None  # None: the message did not set one
    event: str | None
    data: str | None  # None: no data lines (e.g. a message that only moves the id)


async def parse(readline: Callable[[], Awaitable[bytes]]) -> AsyncIterator[Message]:
    """The messages of a stream, given its ``readline``; ends at end of stream."""
    fields: dict[str, str] = {}
    data: list[str] = []
    while line := await readline():
        text = line.decode("utf-8", errors="replace").rstrip("\r\n")
        if not text:
            # Per the standard, a block without data dispatches nothing but may move the id.
            if "id" in fields or data:
                yield Message(fields.get("id"), fields.get("event"), _joined(data))
            fields, data = {}, []
            continue
        if text.startswith(":"):
            continue
        name, _, value = text.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            data.append(value)
        elif name in {"id", "event"}:
            fields[name] = value


def _joined(data: list[str]) -> str | None:
    return "\n".join(data) if data else None
