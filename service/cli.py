"""The ``tokenstore`` command: ``serve`` runs the service, ``healthcheck`` probes it."""

from __future__ import annotations

import argparse
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence

from aiohttp import web

from service.app import create_app
from service.logs import configure
from service.settings import Settings, SettingsError


def serve(settings: Settings) -> int:
    configure(settings.log_level)
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        pass
    web.run_app(create_app(settings), host=settings.host, port=settings.port, access_log=None)
    return 0


def healthcheck(settings: Settings) -> int:
    host = "127.0.0.1" if settings.host in {"0.0.0.0", "::", ""} else settings.host
    try:
        with urllib.request.urlopen(f"http://{host}:{settings.port}/healthz", timeout=3) as r:
            return 0 if r.status == 200 else 1
    except (urllib.error.URLError, OSError):
        return 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tokenstore", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the HTTP service (settings from TOKENSTORE_*)")
    commands.add_parser("healthcheck", help="exit 0 if the local service answers /healthz")
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"tokenstore: configuration error: {exc}", file=sys.stderr)
        return 2
    if args.command == "serve":
        return serve(settings)
    return healthcheck(settings)
