"""A real, throw-away nginx (Debian's package) running deploy/nginx/tokenstore.conf.template.

The example file itself is rendered (its ``${...}`` placeholders filled) and included into a
minimal main configuration written to a temp dir: no daemon, one process, pid, logs, temp and
cache paths all inside that dir, listening on a free loopback port. So the example cannot rot
without a test failing.
"""

from __future__ import annotations

import atexit
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from processes import Managed, terminate
from redis_servers import HOST, free_port

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "deploy" / "nginx" / "tokenstore.conf.template"
STARTUP_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0
_PLACEHOLDER = re.compile(r"\$\{([A-Z_]+)\}")
# Servers still running; stopped at interpreter exit if a fixture's teardown never ran.
_live: set[NginxServer] = set()

MAIN_CONF = """\
daemon off;
master_process off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    include {dir}/tokenstore.conf;
{extra}
}}
"""


def nginx_binary() -> str:
    path = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")
    if path is None:
        raise RuntimeError(
            "nginx not found: install Debian's nginx package "
            "(apt-get install nginx; scripts/dev test does it)"
        )
    return path


def render(template: str, values: Mapping[str, str]) -> str:
    """Fills ``${NAME}`` placeholders as envsubst does; nginx's own ``$variables`` stay."""

    def value(match: re.Match[str]) -> str:
        if match[1] not in values:
            raise KeyError(f"no value for placeholder ${{{match[1]}}}")
        return values[match[1]]

    return _PLACEHOLDER.sub(value, template)


class NginxServer(Managed):
    """nginx protecting ``app_address`` with tokenstore at ``tokenstore_address``."""

    def __init__(
        self, tokenstore_address: str, app_address: str, *, cache: bool = True, extra: str = ""
    ) -> None:
        self.port = 0
        self._values = {
            "TOKENSTORE_ADDRESS": tokenstore_address,
            "APP_ADDRESS": app_address,
            "AUTHZ_CACHE": "tokenstore_authz" if cache else "off",
        }
        self._extra = extra
        self._dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def error_log(self) -> str:
        try:
            return (self._dir / "error.log").read_text() if self._dir else ""
        except OSError:
            return ""

    def start(self) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="nginx-"))
        self.port = free_port()
        values = {
            **self._values,
            "GATEWAY_LISTEN": f"{HOST}:{self.port}",
            "AUTHZ_CACHE_PATH": str(self._dir / "cache"),
        }
        (self._dir / "tokenstore.conf").write_text(render(TEMPLATE.read_text(), values))
        main = self._dir / "nginx.conf"
        main.write_text(MAIN_CONF.format(dir=self._dir, extra=self._extra))
        error_log = str(self._dir / "error.log")
        self._proc = subprocess.Popen(
            [nginx_binary(), "-p", str(self._dir), "-c", str(main), "-e", error_log],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        _live.add(self)
        self._wait_ready(self._proc)

    def _wait_ready(self, proc: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"nginx exited with {proc.returncode}:\n{self.error_log}")
            try:
                with socket.create_connection((HOST, self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"nginx not listening after {STARTUP_TIMEOUT}s:\n{self.error_log}")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            terminate(proc, STOP_TIMEOUT)
        _live.discard(self)
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None


@atexit.register
def _stop_leftovers() -> None:
    for server in list(_live):
        server.stop()
