"""The ``tokenstore`` command: ``serve`` runs the service, ``healthcheck`` probes it,
``client add`` creates or renews an API client in the clients file."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from service import clients_file, runner, workers
from service import healthcheck as health_probe
from service.app import create_app
from service.clients_file import ClientsError
from service.logs import configure
from service.settings import Settings, SettingsError, env_name, parse_workers

CONFIG_ERROR = 2


def serve(settings: Settings, worker_count: int | None = None) -> int:
    """One process (the default), or ``--workers`` processes under a supervisor."""
    count = workers.resolve(settings.workers if worker_count is None else worker_count)
    if count > 1 and settings.redis_url is None:
        # Each worker would hold its own embedded store: a token issued by one is unknown to
        # the others, and each would print its own quick-start secret.
        print(
            "tokenstore: configuration error: the embedded store lives in one process; "
            f"set {env_name('redis_url')} to run {count} workers",
            file=sys.stderr,
        )
        return 2
    app = create_app(settings)  # first: a bad clients file is reported before anything starts
    configure(settings.log_level)
    if count == 1:
        return runner.run(app, settings)
    return workers.supervise(settings, count)  # each worker builds its own app


def _workers_option(raw: str) -> int:
    try:
        return parse_workers(raw)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def healthcheck() -> int:
    """The image's HEALTHCHECK command, ``tokenstore-healthcheck``, under this name too."""
    return health_probe.main()


def add_client(settings: Settings, args: argparse.Namespace) -> int:
    path = args.file or settings.clients_file
    if not path:
        raise ClientsError(f"no clients file: pass --file PATH or set {env_name('clients_file')}")
    group = None if args.group is None else clients_file.parse_group(args.group)
    secret = clients_file.add_client(
        path, args.id, _comma_list(args.permissions), _comma_list(args.apps), group
    )
    print(f"client {args.id!r} written to {path} (its hash only); its secret, shown once:",
          file=sys.stderr)  # fmt: skip
    print(secret)
    return 0


def _comma_list(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tokenstore", description=__doc__)
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
        "healthcheck", help="exit 0 if the local service answers /healthz, else 1 and why"
    )
    client = commands.add_parser("client", help="manage API clients in the clients file")
    actions = client.add_subparsers(dest="action", required=True)
    add = actions.add_parser(
        "add",
        help="add a client, or give an existing one a new secret and these rights",
        description="Prints a new random secret once on stdout; the file keeps only its hash.",
    )
    add.add_argument("--id", required=True, help="client id: A-Z a-z 0-9 . _ - (1-64)")
    add.add_argument(
        "--permissions",
        required=True,
        help="comma-separated: introspect, issue, read, revoke, admin (admin implies all)",
    )
    add.add_argument("--apps", required=True, help="comma-separated app ids, or '*' for all")
    add.add_argument("--file", help=f"clients file (default: ${env_name('clients_file')})")
    add.add_argument(
        "--group",
        metavar="GID",
        help="make the file readable by this group (mode 0640), e.g. 10001 for the container "
        "image; default: keep the file's group and mode, or 0600 for a new file",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        if args.command == "serve":
            return serve(settings, args.workers)
        if args.command == "client":
            return add_client(settings, args)
    except (SettingsError, ClientsError) as exc:
        print(f"tokenstore: configuration error: {exc}", file=sys.stderr)
        return CONFIG_ERROR
    return healthcheck()
