"""The clients file (``TOKENSTORE_CLIENTS_FILE``): strict parsing, atomic updates, and what the
service uses when there is none.

Format: ``{"clients": [{"id": "gateway", "secret_sha256": "<64 hex>",
"permissions": ["introspect"], "apps": ["*"]}]}``. Every mistake stops start-up with a message
naming the file and the entry.

A new file is mode 0600, or 0640 with a group (``client add --group 10001``: the container
image's gid) so that a service running as another user can read it; updates keep the mode,
owner and group.
"""

from __future__ import annotations

import contextlib
import grp
import json
import os
import re
import stat
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from service import config_fields
from service.clients import ApiClient, ClientRegistry, Permission, hash_secret, new_secret
from service.settings import Settings, env_name

ALL_APPS = config_fields.ALL_APPS
FIELDS = ("id", "secret_sha256", "permissions", "apps")
# Ids go into logs, events and Basic credentials (where a ':' would end the id).
_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_HEX_RE = re.compile(r"[0-9a-fA-F]{64}")
# Actor names the service writes into events itself; a client must not pass for them.
RESERVED_IDS = frozenset({"self", "limit", "anonymous"})
QUICK_START_ID = "quickstart"
QUICK_START = """\
================================ tokenstore quick start ================================
{variable} is not set and the store is embedded: this run has ONE in-memory
admin client, for trying the service out. Its secret is shown here once and never again:

    client id: {client_id}
    secret:    {secret}

    curl -s -H 'Authorization: Bearer {secret}' \\
        -XPOST localhost:{port}/v1/tokens -d '{{"user_id":"alice","app_id":"web"}}'

For anything else, create clients with `tokenstore client add` and set {variable}.
========================================================================================"""


class ClientsError(ValueError):
    """The clients file is missing, unreadable or invalid."""


# --- parsing ------------------------------------------------------------------------------


def parse(text: str, source: str) -> list[ApiClient]:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ClientsError(f"{source}: not valid JSON: {exc}") from None
    if (
        not isinstance(document, dict)
        or set(document) != {"clients"}
        or not isinstance(document["clients"], list)
    ):
        raise ClientsError(f'{source}: expected an object {{"clients": [...]}} and nothing else')
    clients = [_entry(source, index, raw) for index, raw in enumerate(document["clients"])]
    _check_unique(source, clients)
    return clients


def load(path: str | Path) -> list[ApiClient]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except PermissionError as exc:
        raise ClientsError(f"{path}: cannot read the clients file: {exc}. {_whom(path)}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ClientsError(f"{path}: cannot read the clients file: {exc}") from None
    return parse(text, str(path))


def _whom(path: str | Path) -> str:
    """What to do about a file this process may not read (in a container: a mount)."""
    uid, gid = os.geteuid(), os.getegid()
    try:
        st = os.stat(path)
        found = f"it is mode {stat.S_IMODE(st.st_mode):04o}, uid {st.st_uid}, gid {st.st_gid}"
    except OSError:
        found = "its directory cannot be searched"
    return (
        f"This process runs as uid {uid}, gid {gid}, and {found}: let uid {uid} or gid {gid} "
        f"read it: `chgrp {gid} FILE && chmod 0640 FILE`, or write it with `tokenstore client "
        f"add --group {gid} ...`; in Kubernetes mount the Secret with fsGroup: {gid}."
    )


def _entry(source: str, index: int, raw: Any) -> ApiClient:
    label = f"{source}: clients[{index}]"
    if isinstance(raw, dict) and isinstance(raw.get("id"), str):
        label += f" (id {raw['id'][:64]!r})"
    try:
        if not isinstance(raw, dict):
            raise ValueError("expected an object")
        missing = [name for name in FIELDS if name not in raw]
        unknown = sorted(set(raw) - set(FIELDS))
        if missing or unknown:
            raise ValueError(f"missing fields {missing}, unknown fields {unknown}")
        return build(raw["id"], _digest(raw["secret_sha256"]), raw["permissions"], raw["apps"])
    except ValueError as exc:
        raise ClientsError(f"{label}: {exc}") from None


def build(client_id: Any, digest: bytes, permissions: Any, apps: Any) -> ApiClient:
    """A validated client; ValueError says which field is wrong."""
    return ApiClient(
        _client_id(client_id), digest, _permissions(permissions), config_fields.apps(apps)
    )


def _client_id(value: Any) -> str:
    if not isinstance(value, str) or not _ID_RE.fullmatch(value):
        raise ValueError(
            "id: expected 1-64 characters of A-Z a-z 0-9 . _ - (not starting with . _ -)"
        )
    if value in RESERVED_IDS:
        raise ValueError(f"id: {value!r} is reserved (it names the service's own actions)")
    return value


def _digest(value: Any) -> bytes:
    if not isinstance(value, str) or not _HEX_RE.fullmatch(value):
        raise ValueError("secret_sha256: expected 64 hexadecimal characters")
    return bytes.fromhex(value)


def _permissions(value: Any) -> frozenset[Permission]:
    known = sorted(p.value for p in Permission)
    return frozenset(
        Permission(name) for name in config_fields.some_of("permissions", value, known)
    )


def _check_unique(source: str, clients: Sequence[ApiClient]) -> None:
    ids: dict[str, int] = {}
    digests: dict[bytes, str] = {}
    for index, client in enumerate(clients):
        if client.id in ids:
            raise ClientsError(f"{source}: clients[{index}]: id {client.id!r} is used twice")
        if client.secret_digest in digests:
            raise ClientsError(
                f"{source}: clients[{index}] (id {client.id!r}): same secret_sha256 as client "
                f"{digests[client.secret_digest]!r}; every client needs its own secret"
            )
        ids[client.id] = index
        digests[client.secret_digest] = client.id


# --- writing ------------------------------------------------------------------------------


def to_json(client: ApiClient) -> dict[str, Any]:
    return {
        "id": client.id,
        "secret_sha256": client.secret_digest.hex(),
        "permissions": [p.value for p in Permission if p in client.permissions],
        "apps": [ALL_APPS] if client.apps is None else sorted(client.apps),
    }


def save(path: str | Path, clients: Sequence[ApiClient], group: int | None = None) -> None:
    """Replace the file atomically (a reader sees the old or the new file, whole), keeping an
    existing file's mode, owner and group (a container may read it through its group); a new
    file gets mode 0600. With ``group``: that group and mode 0640. A symbolic link is followed,
    not replaced."""
    target = Path(os.path.realpath(path))
    text = json.dumps({"clients": [to_json(c) for c in clients]}, indent=2) + "\n"
    try:
        kept: os.stat_result | None = target.stat()
    except FileNotFoundError:
        kept = None
    fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            os.fchmod(out.fileno(), 0o600 if kept is None else stat.S_IMODE(kept.st_mode))
            if kept is not None:
                _keep_owner(out.fileno(), kept, path)
            if group is not None:
                _give_group(out.fileno(), group, path)
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise


def _keep_owner(fd: int, kept: os.stat_result, path: str | Path) -> None:
    now = os.fstat(fd)
    if (now.st_uid, now.st_gid) == (kept.st_uid, kept.st_gid):
        return
    try:
        os.fchown(fd, kept.st_uid, kept.st_gid)
    except PermissionError:
        raise ClientsError(
            f"{path}: cannot keep its owner and group ({kept.st_uid}:{kept.st_gid}) in the new "
            "file: run this as root or as its owner (the file is unchanged)"
        ) from None


GROUP_READABLE = 0o640


def _give_group(fd: int, gid: int, path: str | Path) -> None:
    try:
        os.fchown(fd, -1, gid)
    except PermissionError:
        raise ClientsError(
            f"{path}: cannot give group {gid} the clients file: only root or a member of "
            f"group {gid} can (e.g. `sudo tokenstore client add --group {gid} ...`)"
        ) from None
    os.fchmod(fd, GROUP_READABLE)


def parse_group(value: str) -> int:
    """A group id, or the name of a group of this machine."""
    if value.isascii() and value.isdigit():
        return int(value)
    try:
        return grp.getgrnam(value).gr_gid
    except KeyError:
        raise ClientsError(f"--group {value!r}: no such group here; give its number") from None


class UnknownClient(ClientsError):
    """No client has that id."""


def _build(client_id: str, digest: bytes, permissions: Any, apps: Any) -> ApiClient:
    try:
        return build(client_id, digest, permissions, apps)
    except ValueError as exc:
        raise ClientsError(str(exc)) from None


def _index_of(path: str | Path, clients: Sequence[ApiClient], client_id: str) -> int:
    ids = [c.id for c in clients]
    if client_id not in ids:
        known = ", ".join(ids) or "none"
        raise UnknownClient(f"{path}: no client with id {client_id!r} (clients: {known})")
    return ids.index(client_id)


def add_client(
    path: str | Path,
    client_id: str,
    permissions: list[str],
    apps: list[str],
    *,
    replace: bool = False,
    group: int | None = None,
) -> str:
    """Add the client (with ``replace``: or give an existing one a new secret and these
    rights); returns the new secret, which is written nowhere (only its hash is). ``group``:
    the file gets that group and mode 0640."""
    existing = load(path) if Path(path).exists() else []
    secret = new_secret()
    client = _build(client_id, hash_secret(secret), permissions, apps)
    ids = [c.id for c in existing]
    if client.id in ids and not replace:
        raise ClientsError(
            f"{path}: client {client.id!r} exists already: `client rotate` gives it a new "
            "secret, `client add --replace` new rights and a new secret"
        )
    if client.id in ids:
        existing[ids.index(client.id)] = client
    else:
        existing.append(client)
    save(path, existing, group)
    return secret


def rotate_secret(path: str | Path, client_id: str) -> str:
    """Give the client a new secret, keeping its rights; returns it (only its hash is kept)."""
    clients = load(path)
    index = _index_of(path, clients, client_id)
    old = clients[index]
    secret = new_secret()
    clients[index] = ApiClient(old.id, hash_secret(secret), old.permissions, old.apps)
    save(path, clients)
    return secret


def remove_client(path: str | Path, client_id: str) -> None:
    clients = load(path)
    del clients[_index_of(path, clients, client_id)]
    save(path, clients)


# --- start-up -----------------------------------------------------------------------------


def _to_stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def for_settings(
    settings: Settings, announce: Callable[[str], None] = _to_stderr
) -> ClientRegistry:
    """The clients the service accepts. With no file: refuse a real Redis; on the embedded store
    (the quick start) make one admin client and announce its secret, once, outside the logs."""
    variable = env_name("clients_file")
    if settings.clients_file is not None:
        return ClientRegistry(load(settings.clients_file))
    if settings.redis_url is not None:
        raise ClientsError(
            f"{variable} is not set: the service does not serve a real Redis without API "
            f"clients. Create them with `tokenstore client add --file PATH ...` and set {variable}."
        )
    secret = new_secret()
    announce(
        QUICK_START.format(
            variable=variable, client_id=QUICK_START_ID, secret=secret, port=settings.port
        )
    )
    admin = ApiClient(QUICK_START_ID, hash_secret(secret), frozenset({Permission.ADMIN}), None)
    return ClientRegistry([admin])
