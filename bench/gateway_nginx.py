"""Benchmark: requests per second through nginx with the tokenstore auth subrequest, against
the same nginx proxying to the same upstream without auth, with and without the subrequest
cache.

``python -m bench.gateway_nginx [--duration 5] [--rounds 3] [--tokens 1000]``

Starts a redis-server and one ``tokenstore serve`` process (default hints: live answers 5 s),
issues ``--tokens`` live tokens, then for each cache setting one nginx (one process, from
deploy/nginx/tokenstore.conf.template, exactly as tests/test_nginx.py runs it) with three
servers: the protected one, a baseline one proxying to the same upstream with no auth, and the
upstream itself (nginx answering 200 "ok", so the upstream costs next to nothing and the
auth overhead shows). wrk (one thread, 32 connections) sends ``Authorization: Bearer`` with a
rotating token to both, rounds alternating which goes first. Prints req/s and the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

import aiohttp
from nginx_server import NginxServer
from redis_servers import HOST, free_port

from bench.gateway_common import Tokenstore, tokenstore

WRK = "/usr/bin/wrk"
CONNECTIONS = 32

EXTRA_SERVERS = """\
    server {{
        listen {host}:{app_port};
        location / {{ return 200 "ok\\n"; }}
    }}
    server {{
        listen {host}:{baseline_port};
        location / {{
            proxy_pass http://protected_app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
"""

WRK_SCRIPT = """\
local tokens = {{{tokens}}}
local i = 0
request = function()
  i = i % #tokens + 1
  return wrk.format("GET", "/", {{["Authorization"] = "Bearer " .. tokens[i]}})
end
"""


def wrk(url: str, script: Path, duration: int) -> float:
    """Requests per second; fails if any answer was not a 2xx."""
    result = subprocess.run(
        [WRK, "-t1", f"-c{CONNECTIONS}", f"-d{duration}s", "-s", str(script), url],
        capture_output=True,
        text=True,
        timeout=duration + 30,
        check=True,
    )
    if "Non-2xx" in result.stdout:
        raise RuntimeError(f"wrk saw refused requests:\n{result.stdout}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", result.stdout)
    if match is None:
        raise RuntimeError(f"no Requests/sec in wrk's output:\n{result.stdout}")
    return float(match[1])


async def _issue(service: Tokenstore, count: int) -> list[str]:
    async with aiohttp.ClientSession() as session:
        bodies = [await service.issue(session, f"u{n}", "bench") for n in range(count)]
    return [str(body["token"]) for body in bodies]


def _measure(service_address: str, script: Path, cache: bool, rounds: int, duration: int) -> None:
    app_port, baseline_port = free_port(), free_port()
    extra = EXTRA_SERVERS.format(host=HOST, app_port=app_port, baseline_port=baseline_port)
    with NginxServer(service_address, f"{HOST}:{app_port}", cache=cache, extra=extra) as nginx:
        targets = {"no auth": f"http://{HOST}:{baseline_port}/", "auth": nginx.url + "/"}
        wrk(targets["auth"], script, 1)  # warm-up: fills the cache, opens keepalives
        results: dict[str, list[float]] = {name: [] for name in targets}
        for n in range(rounds):
            order = list(targets) if n % 2 == 0 else list(reversed(targets))
            for name in order:
                results[name].append(wrk(targets[name], script, duration))
    base, auth = statistics.median(results["no auth"]), statistics.median(results["auth"])
    label = "auth subrequest cached" if cache else "auth subrequest, no cache"
    print(f"  {label:26} {auth:9.0f} req/s   no auth {base:9.0f} req/s   ratio {auth / base:.2f}")
    print(f"    rounds: auth {[round(v) for v in results['auth']]}, "
          f"no auth {[round(v) for v in results['no auth']]}")  # fmt: skip


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=1000)
    args = parser.parse_args(argv)
    with tokenstore() as service, tempfile.TemporaryDirectory(prefix="bench-wrk-") as tmp:
        tokens = asyncio.run(_issue(service, args.tokens))
        script = Path(tmp) / "tokens.lua"
        script.write_text(WRK_SCRIPT.format(tokens=", ".join(f'"{t}"' for t in tokens)))
        address = service.url.removeprefix("http://")
        print(f"nginx (1 process) -> upstream, wrk -t1 -c{CONNECTIONS}, {args.tokens} tokens, "
              f"median of {args.rounds} x {args.duration} s")  # fmt: skip
        for cache in (True, False):
            _measure(address, script, cache, args.rounds, args.duration)


if __name__ == "__main__":
    main()
