"""The container image, built from the Dockerfile with podman and run against a real
redis-server the way compose.yaml and the Kubernetes manifests run it, with a clients file made
by ``tokenstore client add``: ready, issue, introspect, revoke, the HEALTHCHECK, a SIGTERM
drain; what it refuses (an unreadable clients file, no Redis URL); and what it holds (exactly
the locked packages, no pip). How podman is driven here: tests/container_engine.py.

Skipped only where podman is missing or cannot run (never on CI, where that fails instead).
The first run here bootstraps a base image (one to three minutes) and builds (about 30 s).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import container_engine
import pytest
import yaml
from container_engine import Container, podman
from packaging.markers import Marker
from packaging.requirements import Requirement
from redis.asyncio import Redis
from redis_servers import RedisServer, free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parent.parent
IMAGE_UID = IMAGE_GID = 10001
TIMEOUT = aiohttp.ClientTimeout(total=10)
IN_FLIGHT = 8
REDIS_PAUSE_MS = 1500


@pytest.fixture(scope="module")
def image() -> str:
    reason = container_engine.unavailable()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI must build the image: {reason}")
        pytest.skip(reason)
    return container_engine.build(container_engine.python_base())


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


def client_add(path: Path, *options: str) -> str:
    """``tokenstore client add`` as an operator runs it; returns the secret it prints."""
    args = ["--id", "backend", "--permissions", "admin", "--apps", "*", "--file", str(path)]
    done = subprocess.run(
        [sys.executable, "-m", "service", "client", "add", *args, *options],
        capture_output=True, text=True, timeout=60, check=True, cwd=ROOT,
    )  # fmt: skip
    return done.stdout.strip()


# --- the ways the docs run it -----------------------------------------------------------------


def _interpolate(value: str, variables: dict[str, str]) -> str:
    """Compose's ``${NAME:-default}``."""
    return re.sub(r"\$\{(\w+):-([^}]*)\}", lambda m: variables.get(m.group(1), m.group(2)), value)


def compose_options(variables: dict[str, str], env: dict[str, str]) -> list[str]:
    """compose.yaml's tokenstore service as podman options: its user, hardening, environment
    (with ``env`` over it) and volumes; host networking instead of the compose network."""
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text(encoding="utf-8"))
    service = compose["services"]["tokenstore"]
    options = ["--user", service["user"]]
    options += ["--read-only"] if service["read_only"] else []
    for path in service.get("tmpfs", []):
        options += ["--tmpfs", path]
    for capability in service.get("cap_drop", []):
        options += ["--cap-drop", capability]
    for option in service.get("security_opt", []):
        options += ["--security-opt", option]
    for name, value in (service["environment"] | env).items():
        options += ["--env", f"{name}={value}"]
    for volume in service["volumes"]:
        source, target, mode = _interpolate(volume, variables).split(":")
        options += ["--volume", f"{(ROOT / source).resolve()}:{target}:{mode}"]
    return options


def kubernetes_options(secret_dir: Path, env: dict[str, str]) -> list[str]:
    """deploy/base/deployment.yaml's pod as podman options: its security contexts, and its
    clients Secret mounted read-only as the kubelet does (owner root, group fsGroup, mode
    defaultMode)."""
    deployment = yaml.safe_load((ROOT / "deploy/base/deployment.yaml").read_text("utf-8"))
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    security = pod["securityContext"] | container["securityContext"]
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "clients"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == "clients"]
    for item in secret_dir.iterdir():
        os.chown(item, 0, security["fsGroup"])
        item.chmod(volume["secret"]["defaultMode"])
    options = ["--user", f"{security['runAsUser']}:{security['runAsGroup']}"]
    options += ["--group-add", str(security["fsGroup"]), "--cap-drop", "ALL", "--tmpfs", "/tmp"]
    assert security["readOnlyRootFilesystem"] and not security["allowPrivilegeEscalation"]
    options += ["--read-only", "--security-opt", "no-new-privileges"]
    options += ["--volume", f"{secret_dir}:{mount['mountPath']}:ro"]
    config = _kustomize_literals()
    for name, value in (config | env).items():
        options += ["--env", f"{name}={value}"]
    return options


def _kustomize_literals() -> dict[str, str]:
    kustomization = yaml.safe_load((ROOT / "deploy/base/kustomization.yaml").read_text("utf-8"))
    (config,) = kustomization["configMapGenerator"]
    return dict(literal.split("=", 1) for literal in config["literals"])


# --- talking to it ------------------------------------------------------------------------------


async def wait_ready(url: str, container: Container, within: float = 30.0) -> None:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1)) as session:
        for _ in range(int(within / 0.1)):
            try:
                async with session.get(f"{url}/readyz") as response:
                    if response.status == 200:
                        return
            except (aiohttp.ClientError, TimeoutError):
                pass
            assert container.state()["status"] == "running", container.logs()
            await asyncio.sleep(0.1)
    raise AssertionError(f"not ready in {within} s:\n{container.logs()}")


async def call(
    session: aiohttp.ClientSession, method: str, url: str, body: Any = None
) -> tuple[int, Any]:
    async with session.request(method, url, json=body) as response:
        return response.status, await response.json()


def container_env(redis: RedisServer, port: int) -> dict[str, str]:
    """Host networking: every port the container binds must be free on this machine."""
    return {
        "TOKENSTORE_REDIS_URL": redis.url,
        "TOKENSTORE_PORT": str(port),
        "TOKENSTORE_METRICS_PORT": str(free_port()),
    }


# --- the tests ----------------------------------------------------------------------------------


async def test_runs_as_compose_does_with_a_cli_made_clients_file(
    image: str, redis: RedisServer, tmp_path: Path
) -> None:
    redis.flush()
    clients = tmp_path / "clients.json"
    secret = client_add(clients, "--group", str(IMAGE_GID))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    options = compose_options({"CLIENTS_FILE": str(clients)}, container_env(redis, port))
    headers = {"Authorization": f"Bearer {secret}"}
    with Container(image, options) as container:
        await wait_ready(url, container)
        async with aiohttp.ClientSession(timeout=TIMEOUT, headers=headers) as session:
            body = {"user_id": "alice", "app_id": "web", "ttl": 600}
            status, issued = await call(session, "POST", f"{url}/v1/tokens", body)
            assert status == 201, issued
            token = {"token": issued["token"]}
            status, answer = await call(session, "POST", f"{url}/v1/introspect", token)
            assert (status, answer["active"], answer["user_id"]) == (200, True, "alice")
            status, revoked = await call(session, "POST", f"{url}/v1/revoke", token)
            assert (status, revoked["revoked"]) == (200, [issued["id"]])
            status, answer = await call(session, "POST", f"{url}/v1/introspect", token)
            assert (status, answer) == (200, {"active": False})

            healthcheck = podman("healthcheck", "run", container.id, check=False)
            assert healthcheck.returncode == 0, healthcheck.stdout + healthcheck.stderr

            await drains_on_sigterm(session, url, redis, container)
        lines = [line for line in container_logs_json(container) if "msg" in line]
    assert "shutdown: done" in [line["msg"] for line in lines]
    assert [line for line in lines if line.get("level") in {"ERROR", "CRITICAL"}] == []


def container_logs_json(container: Container) -> list[dict[str, Any]]:
    return [json.loads(line) for line in container.logs().splitlines() if line.startswith("{")]


async def drains_on_sigterm(
    session: aiohttp.ClientSession, url: str, redis: RedisServer, container: Container
) -> None:
    """Requests in flight when SIGTERM arrives are answered, then the process exits 0."""
    tokens = []
    for n in range(IN_FLIGHT):
        body = {"user_id": f"user-{n}", "app_id": "web"}
        tokens.append((await call(session, "POST", f"{url}/v1/tokens", body))[1]["token"])
    pauser = Redis.from_url(redis.url)
    await pauser.client_pause(REDIS_PAUSE_MS)  # holds every introspection below in flight
    await pauser.aclose()
    in_flight = [
        asyncio.create_task(call(session, "POST", f"{url}/v1/introspect", {"token": token}))
        for token in tokens
    ]
    await asyncio.sleep(0.3)
    assert not any(task.done() for task in in_flight)
    # `podman stop` sends the image's STOPSIGNAL (SIGTERM), then waits (compose's grace: 30 s).
    stopping = asyncio.create_task(asyncio.to_thread(podman, "stop", "--time", "30", container.id))
    answers = await asyncio.gather(*in_flight)
    assert [(status, body["active"]) for status, body in answers] == [(200, True)] * IN_FLIGHT
    await stopping
    assert container.state() == {"status": "exited", "exit_code": "0"}, container.logs()


async def test_runs_as_kubernetes_does_with_the_secret_made_from_a_cli_file(
    image: str, redis: RedisServer, tmp_path: Path
) -> None:
    made = tmp_path / "clients.json"
    secret = client_add(made)  # 0600, the operator's: `kubectl create secret --from-file`
    secret_dir = tmp_path / "secret"
    secret_dir.mkdir()
    (secret_dir / "clients.json").write_bytes(made.read_bytes())
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    options = kubernetes_options(secret_dir, container_env(redis, port))
    with Container(image, options) as container:
        await wait_ready(url, container)
        headers = {"Authorization": f"Bearer {secret}"}
        async with aiohttp.ClientSession(timeout=TIMEOUT, headers=headers) as session:
            status, _ = await call(session, "GET", f"{url}/v1/users/alice/tokens")
            assert status == 200
        # The Deployment's preStop hook runs `sleep` in the container, without a shell.
        assert container.exec("sleep", "0").returncode == 0


def test_an_unreadable_clients_file_stops_it_saying_who_must_read_it(
    image: str, redis: RedisServer, tmp_path: Path
) -> None:
    clients = tmp_path / "clients.json"
    client_add(clients)  # 0600, owned by root: what crash-looped before `--group`
    env = container_env(redis, free_port())
    with Container(image, compose_options({"CLIENTS_FILE": str(clients)}, env)) as container:
        assert container.wait(timeout=60) == 2
        logs = container.logs()
    assert "Permission denied" in logs and "Traceback" not in logs
    assert f"runs as uid {IMAGE_UID}, gid {IMAGE_GID}" in logs
    assert f"--group {IMAGE_GID}" in logs


def test_without_a_redis_url_it_says_the_image_needs_one(image: str) -> None:
    options = ["--read-only", "--env", f"TOKENSTORE_PORT={free_port()}"]
    with Container(image, options) as container:
        assert container.wait(timeout=60) == 2
        logs = container.logs()
    assert "TOKENSTORE_REDIS_URL is not set" in logs and "Traceback" not in logs
    assert "tkc_" not in logs and "client id:" not in logs  # no quick-start secret printed


def test_the_healthcheck_fails_saying_why(image: str) -> None:
    port = free_port()  # nothing listens there
    options = ["--entrypoint", "tokenstore-healthcheck", "--env", f"TOKENSTORE_PORT={port}"]
    with Container(image, options) as container:
        assert container.wait(timeout=60) == 1
        logs = container.logs()
    assert f"unhealthy: http://127.0.0.1:{port}/healthz: Connection refused" in logs


def test_the_image_holds_the_locked_packages_and_no_installer(image: str) -> None:
    config = json.loads(podman("image", "inspect", image).stdout)[0]
    assert config["Config"]["User"] == f"{IMAGE_UID}:{IMAGE_GID}"
    assert config["Healthcheck"]["Test"] == ["CMD", "tokenstore-healthcheck"]  # docker format
    listing = podman("run", "--rm", *container_engine.run_flags(), "--entrypoint", "python3",
                     image, "-c", INSPECT_PACKAGES)  # fmt: skip
    inside = json.loads(listing.stdout)
    installed = {name: version for name, version in inside["packages"] if name != "tokenstore"}
    assert installed == locked_for(inside["environment"])
    assert inside["missing"] == ["pip", "setuptools", "wheel", "ensurepip wheels", "gcc", "cc"]


# What `pip freeze` would list (the image has no pip), the marker environment, and what is not
# there; run by the image's own python.
INSPECT_PACKAGES = """
import glob, importlib.metadata as m, importlib.util, json, os, platform, shutil, sys
packages = sorted((d.metadata["Name"].lower().replace("_", "-"), d.version)
                  for d in m.distributions())
environment = {
    "implementation_name": sys.implementation.name, "os_name": os.name,
    "platform_machine": platform.machine(), "platform_python_implementation":
    platform.python_implementation(), "platform_release": platform.release(),
    "platform_system": platform.system(), "python_full_version": platform.python_version(),
    "python_version": ".".join(platform.python_version_tuple()[:2]), "sys_platform": sys.platform,
    "implementation_version": platform.python_version(), "platform_version": platform.version(),
}
wheels = glob.glob("/usr/share/python-wheels/*") + glob.glob("/usr/**/ensurepip/_bundled/*",
                                                             recursive=True)
missing = [n for n in ("pip", "setuptools", "wheel") if importlib.util.find_spec(n) is None]
missing += ["ensurepip wheels"] if not wheels else []
missing += [n for n in ("gcc", "cc") if shutil.which(n) is None]
print(json.dumps({"packages": packages, "environment": environment, "missing": missing}))
"""


def locked_for(environment: dict[str, str]) -> dict[str, str]:
    """requirements/runtime.txt's pins whose markers hold in ``environment``."""
    text = (ROOT / "requirements" / "runtime.txt").read_text(encoding="utf-8")
    text = re.sub(r"\\\n\s*--hash=\S+", "", text)
    pins = {}
    for line in text.splitlines():
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        requirement = Requirement(line.replace(" \\", ""))
        marker: Marker | None = requirement.marker
        if marker is None or marker.evaluate(environment):
            (spec,) = requirement.specifier
            pins[requirement.name.lower().replace("_", "-")] = spec.version
    return pins
