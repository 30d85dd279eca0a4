"""The ``tokenstore`` command: ``serve`` runs the service, ``healthcheck`` probes it,
``client list | add | rotate | remove`` manage the API clients in the clients file.

Exit codes: 0 done; 1 the probe failed, or no client has that id; 2 a bad setting, a bad
clients file or bad arguments.
"""

from __future__ import annotations

import argparse
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence

from service import __version__, clients_file, runner, workers
from service.app import create_app
from service.clients import Permission
from service.clients_file import ClientsError, UnknownClient
from service.logs import configure
from service.settings import (
    Settings,
    SettingsError,
    env_name,
    parse_workers,
    unknown_variables,
)
from service.webhooks.config import WebhooksError

FAILED = 1
CONFIG_ERROR = 2


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _say_all(texts: list[str]) -> None:
    for text in texts:
        _say(text)


def serve(settings: Settings, worker_count: int | None = None) -> int:
    """One process (the default), or ``--workers`` processes under a supervisor."""
    count = workers.resolve(settings.workers if worker_count is None else worker_count)
    if count > 1 and settings.redis_url is None:
        # Each worker would hold its own embedded store: a token issued by one is unknown to
        # the others, and each would print its own quick-start secret.
        _say(
            "tokenstore: configuration error: the embedded store lives in one process; "
            f"set {env_name('redis_url')} to run {count} workers"
        )
        return CONFIG_ERROR
    # The quick-start secret waits until the port is ours: a failed start prints no secret.
    notices: list[str] = []
    # First: a bad clients file is reported before anything starts.
    app = create_app(settings, clients_file.for_settings(settings, notices.append))
    configure(settings.log_level)
    if count == 1:
        return runner.run(app, settings, on_listening=lambda: _say_all(notices))
    return workers.supervise(settings, count)  # each worker builds its own app


def _workers_option(raw: str) -> int:
    try:
        return parse_workers(raw)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def healthcheck(settings: Settings) -> int:
    """Exit 0 if the local service answers /healthz, else say why and exit 1 (never 2, which
    Docker's HEALTHCHECK reserves)."""
    host = "127.0.0.1" if settings.host in {"0.0.0.0", "::", ""} else settings.host
    url = f"http://{host}:{settings.port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            if response.status == 200:
                return 0
            reason = f"answered {response.status}"
    except urllib.error.HTTPError as exc:
        reason = f"answered {exc.code}"
    except urllib.error.URLError as exc:
        reason = f"{exc.reason} (is the service running, on {env_name('port')}={settings.port}?)"
    except OSError as exc:
        reason = str(exc) or type(exc).__name__
    _say(f"tokenstore healthcheck: {url}: {reason}")
    return FAILED


# --- clients --------------------------------------------------------------------------------


def _clients_path(settings: Settings, args: argparse.Namespace) -> str:
    path: str | None = args.file or settings.clients_file
    if not path:
        raise ClientsError(f"no clients file: pass --file PATH or set {env_name('clients_file')}")
    return path


def _show_secret(client_id: str, path: str, secret: str, what: str) -> None:
    _say(f"client {client_id!r} {what} in {path} (its hash only); its secret, shown once:")
    print(secret, flush=True)


def client_command(settings: Settings, args: argparse.Namespace) -> int:
    path = _clients_path(settings, args)
    if args.action == "list":
        return list_clients(path)
    if args.action == "remove":
        clients_file.remove_client(path, args.id)
        _say(f"client {args.id!r} removed from {path}; restart the service to apply it")
        return 0
    if args.action == "rotate":
        secret = clients_file.rotate_secret(path, args.id)
        _show_secret(args.id, path, secret, "has a new secret")
        return 0
    group = None if args.group is None else clients_file.parse_group(args.group)
    secret = clients_file.add_client(
        path,
        args.id,
        _comma_list(args.permissions),
        _comma_list(args.apps),
        replace=args.replace,
        group=group,
    )
    _show_secret(args.id, path, secret, "written")
    return 0


def list_clients(path: str) -> int:
    """Ids and rights, one client a line; never a secret or a hash."""
    rows = [("ID", "PERMISSIONS", "APPS")]
    for client in clients_file.load(path):
        permissions = ",".join(p.value for p in Permission if p in client.permissions)
        apps = clients_file.ALL_APPS if client.apps is None else ",".join(sorted(client.apps))
        rows.append((client.id, permissions, apps))
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    for client_id, permissions, apps in rows:
        print(f"{client_id:<{widths[0]}}  {permissions:<{widths[1]}}  {apps}")
    return 0


def _comma_list(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


# --- arguments ------------------------------------------------------------------------------


def _client_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    client = commands.add_parser("client", help="manage API clients in the clients file")
    actions = client.add_subparsers(dest="action", required=True)
    file_help = f"clients file (default: ${env_name('clients_file')})"
    listing = actions.add_parser("list", help="the clients' ids, permissions and apps")
    add = actions.add_parser(
        "add",
        help="add a client; prints its new secret once",
        description="Prints a new random secret once on stdout; the file keeps only its hash.",
    )
    add.add_argument("--id", required=True, help="client id: A-Z a-z 0-9 . _ - (1-64)")
    add.add_argument(
        "--permissions",
        required=True,
        help="comma-separated: introspect, issue, read, revoke, admin (admin implies all)",
    )
    add.add_argument("--apps", required=True, help="comma-separated app ids, or '*' for all")
    add.add_argument(
        "--replace",
        action="store_true",
        help="if the id exists, give it these rights and a new secret (else: refused)",
    )
    add.add_argument(
        "--group",
        metavar="GID",
        help="make the file readable by this group (mode 0640), e.g. 10001 for the container "
        "image; default: a new file is 0600, an existing one keeps its mode, owner and group",
    )
    rotate = actions.add_parser(
        "rotate", help="give a client a new secret (printed once), keeping its rights"
    )
    remove = actions.add_parser("remove", help="remove a client")
    for action in (rotate, remove):
        action.add_argument("--id", required=True, help="the client's id")
    for action in (listing, add, rotate, remove):
        action.add_argument("--file", help=file_help)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tokenstore",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"tokenstore {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve_command = commands.add_parser(
        "serve", help="run the HTTP service (settings from TOKENSTORE_*)"
    )
    serve_command.add_argument(
        "--workers",
        type=_workers_option,
        metavar="N",
        help="processes sharing the port; 0 or auto: one per CPU (default: TOKENSTORE_WORKERS)",
    )
    commands.add_parser(
        "healthcheck", help="exit 0 if the local service answers /healthz, else say why, exit 1"
    )
    _client_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    for warning in unknown_variables():
        _say(f"tokenstore: warning: {warning}")
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        _say(f"tokenstore: configuration error: {exc}")
        return FAILED if args.command == "healthcheck" else CONFIG_ERROR
    try:
        if args.command == "serve":
            return serve(settings, args.workers)
        if args.command == "client":
            return client_command(settings, args)
    except UnknownClient as exc:
        _say(f"tokenstore: {exc}")
        return FAILED
    except (ClientsError, WebhooksError, SettingsError) as exc:  # Settings: no store to serve
        _say(f"tokenstore: configuration error: {exc}")
        return CONFIG_ERROR
    return healthcheck(settings)
