"""CPU of one container HEALTHCHECK probe: ``tokenstore-healthcheck`` (stdlib only) against
``tokenstore healthcheck`` (the CLI, which imports the app) and a bare ``python -c pass``.

``python -m bench.healthcheck [--runs 40]`` starts ``tokenstore serve`` on the embedded store
on a free port, runs each command ``--runs`` times in turn, and prints the user+system CPU
seconds of the children per run. In the image (the numbers in the README), run the same loop
with ``podman exec``.
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def cpu_ms_per_run(command: list[str], runs: int, env: dict[str, str]) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    for _ in range(runs):
        subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return used / runs * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=40)
    runs = parser.parse_args().runs
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENSTORE_")}
    env |= {"TOKENSTORE_PORT": str(_free_port()), "TOKENSTORE_LOG_LEVEL": "WARNING"}
    server = subprocess.Popen(
        [str(BIN / "tokenstore"), "serve"], env=env, stderr=subprocess.DEVNULL
    )
    try:
        probe = [str(BIN / "tokenstore-healthcheck")]
        for _ in range(100):
            if subprocess.run(probe, env=env, capture_output=True).returncode == 0:
                break
            time.sleep(0.1)
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "tokenstore-healthcheck": probe,
            "tokenstore healthcheck": [str(BIN / "tokenstore"), "healthcheck"],
        }
        for name, command in commands.items():
            n = runs if name != "tokenstore healthcheck" else max(1, runs // 8)
            print(f"{name:26} {cpu_ms_per_run(command, n, env):7.1f} ms CPU per run ({n} runs)")
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
