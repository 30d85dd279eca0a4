"""The webhooks file (``TOKENSTORE_WEBHOOKS_FILE``), with the clients file's conventions.

Format: ``{"webhooks": [{"id": "billing", "url": "https://...", "secret_file": "/run/...",
"events": ["token", "user", "app", "session"], "apps": ["*"], "format": "standard"}]}``.
``secret_file`` holds the signing secret as Standard Webhooks writes it (``whsec_`` + base64)
and must not be readable by other users. Every mistake stops start-up with a message naming
the file and the entry. Outbound calls go to these URLs and nowhere else.
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from service import config_fields
from service.events import EventKind, RevocationEvent

FIELDS = ("id", "url", "secret_file", "events", "apps", "format")
SECRET_PREFIX = "whsec_"
# Ids name consumer groups, Redis keys and metric labels: a short plain alphabet.
ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
_ID_RE = re.compile(ID_PATTERN)


class WebhooksError(ValueError):
    """The webhooks file or a secret file is missing, unreadable or invalid."""


class Format(enum.StrEnum):
    STANDARD = "standard"  # {"type", "timestamp", "data"}: the Standard Webhooks shape
    FUSIONAUTH = "fusionauth"  # FusionAuth's jwt.refresh-token.revoke event


@dataclass(frozen=True, slots=True)
class Webhook:
    id: str
    url: str
    secret: str = ""  # "whsec_..." (read from secret_file); never logged
    events: frozenset[EventKind] = frozenset(EventKind)
    apps: frozenset[str] | None = None  # None: every app
    format: Format = Format.STANDARD

    def __repr__(self) -> str:  # the secret stays out of logs and tracebacks
        return f"Webhook(id={self.id!r}, url={self.url!r})"

    def wants(self, event: RevocationEvent) -> bool:
        return event.kind in self.events and (self.apps is None or event.app_id in self.apps)


def load(path: str | Path) -> list[Webhook]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise WebhooksError(f"{path}: cannot read the webhooks file: {exc}") from None
    return parse(text, str(path))


def parse(text: str, source: str) -> list[Webhook]:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise WebhooksError(f"{source}: not valid JSON: {exc}") from None
    if (
        not isinstance(document, dict)
        or set(document) != {"webhooks"}
        or not isinstance(document["webhooks"], list)
    ):
        raise WebhooksError(f'{source}: expected an object {{"webhooks": [...]}} and nothing else')
    hooks = [_entry(source, i, raw) for i, raw in enumerate(document["webhooks"])]
    ids = [hook.id for hook in hooks]
    for index, hook_id in enumerate(ids):
        if hook_id in ids[:index]:
            raise WebhooksError(f"{source}: webhooks[{index}]: id {hook_id!r} is used twice")
    return hooks


def _entry(source: str, index: int, raw: Any) -> Webhook:
    label = f"{source}: webhooks[{index}]"
    if isinstance(raw, dict) and isinstance(raw.get("id"), str):
        label += f" (id {raw['id'][:64]!r})"
    try:
        if not isinstance(raw, dict):
            raise ValueError("expected an object")
        missing = [name for name in FIELDS if name not in raw]
        unknown = sorted(set(raw) - set(FIELDS))
        if missing or unknown:
            raise ValueError(f"missing fields {missing}, unknown fields {unknown}")
        return Webhook(
            id=_id(raw["id"]),
            url=_url(raw["url"]),
            secret=read_secret(_string("secret_file", raw["secret_file"])),
            events=_events(raw["events"]),
            apps=config_fields.apps(raw["apps"]),
            format=_format(raw["format"]),
        )
    except ValueError as exc:
        raise WebhooksError(f"{label}: {exc}") from None


def _string(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name}: expected a non-empty string")
    return value


def _id(value: Any) -> str:
    if not isinstance(value, str) or not _ID_RE.fullmatch(value):
        raise ValueError(
            "id: expected 1-64 characters of A-Z a-z 0-9 . _ - (not starting with . _ -)"
        )
    return value


def _url(value: Any) -> str:
    url = _string("url", value)
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname or parts.username:
        raise ValueError("url: expected an http:// or https:// URL with a host and no user")
    return url


def _events(value: Any) -> frozenset[EventKind]:
    names = config_fields.some_of("events", value, [kind.value for kind in EventKind])
    return frozenset(EventKind(name) for name in names)


def _format(value: Any) -> Format:
    try:
        return Format(value)
    except ValueError:
        raise ValueError(f"format: expected one of {[f.value for f in Format]}") from None


def read_secret(path: str) -> str:
    """The ``whsec_`` secret in ``path``, a file other users cannot read."""
    try:
        mode = stat.S_IMODE(Path(path).stat().st_mode)
        text = Path(path).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"secret_file: cannot read {path}: {exc}") from None
    if mode & 0o007:
        raise ValueError(
            f"secret_file: {path} is mode {mode:04o}: other users may read it; "
            f"`chmod o-rwx {path}` (0600, or 0640 for the service's group)"
        )
    body = text.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if not text.startswith(SECRET_PREFIX) or len(key) < 24:
        raise ValueError(
            f"secret_file: {path} must hold {SECRET_PREFIX} followed by the base64 of at "
            "least 24 random bytes (e.g. `echo whsec_$(head -c32 /dev/urandom | base64)`)"
        )
    return text
