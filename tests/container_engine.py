"""Building and running the Dockerfile for tests/test_image.py, with Debian's podman as root.

What works on this kind of machine (Debian 12, podman 4.3, a hybrid cgroup v1/v2 host whose
root lacks CAP_SYS_RESOURCE), and why each flag is here:

- ``build --isolation chroot``: RUN steps need no OCI runtime, hence no cgroups;
  ``--format docker``: the OCI format has no HEALTHCHECK and buildah would drop it.
- ``run --runtime runc``: crun 1.8 refuses hybrid cgroup hosts ("cgroups in hybrid mode not
  supported"). Explicit ``--ulimit``s below the host's hard limits: podman asks root's default
  (over a million open files), which a process without CAP_SYS_RESOURCE may not set.
- ``--network host``: the container reaches the test's redis-server on loopback and the test
  reaches the container's port, with no bridge, iptables or port mapping involved.
- ``--health-interval disable``: there is no systemd to schedule checks; ``podman healthcheck
  run`` runs the image's HEALTHCHECK on demand.
- Storage: podman's default (overlay as root, /var/lib/containers/storage).

The base image: the Dockerfile's pinned ``PYTHON_IMAGE`` if it is in storage or can be pulled,
else a debootstrap copy made (once, cached) by scripts/base-image.
"""

from __future__ import annotations

import hashlib
import os
import re
import resource
import shutil
import subprocess
import uuid
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PODMAN = "podman"
BUILD_TIMEOUT_S = 600.0
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


def unavailable() -> str | None:
    """Why podman cannot be used here, or None."""
    if shutil.which(PODMAN) is None:
        return "podman is not installed (scripts/dev test installs it)"
    if os.geteuid() != 0:
        return "needs root: rootful podman, and mounted files owned by the image's ids"
    info = subprocess.run([PODMAN, "info"], capture_output=True, text=True, timeout=60)
    if info.returncode != 0:
        return f"podman does not run here: {info.stderr.strip()[-500:]}"
    return None


def podman(
    *args: str, timeout: float = 120.0, check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [PODMAN, *args], capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"podman {' '.join(args[:3])} ... exited {result.returncode}:\n{result.stderr[-3000:]}"
        )
    return result


def dockerfile_base() -> str:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    match = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.MULTILINE)
    assert match, "the Dockerfile lost its PYTHON_IMAGE argument"
    return match.group(1)


def python_base() -> str:
    pinned = dockerfile_base()
    if podman("image", "exists", pinned, check=False).returncode == 0:
        return pinned
    if podman("pull", "--quiet", pinned, timeout=300, check=False).returncode == 0:
        return pinned
    made = subprocess.run(
        [str(ROOT / "scripts" / "base-image")],
        capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, check=False,
    )  # fmt: skip
    if made.returncode != 0:
        raise AssertionError(f"scripts/base-image failed:\n{made.stderr[-3000:]}")
    return made.stdout.strip()


def build(base: str) -> str:
    """The image of this work tree; tagged per work tree, so that runs of two trees at once
    do not swap images. The build stage's layers stay as the cache (`podman image prune`)."""
    tag = "localhost/tokenstore-test:" + hashlib.sha256(str(ROOT).encode()).hexdigest()[:12]
    args = ["build", "--isolation", "chroot", "--network", "host", "--format", "docker"]
    args += ["--build-arg", f"PYTHON_IMAGE={base}", "--tag", tag]
    # Behind a TLS-intercepting proxy pip needs the host's CA bundle: a secret, never a layer.
    bundle = os.environ.get("PIP_CERT", CA_BUNDLE)
    if Path(bundle).is_file():
        args += ["--secret", f"id=pip_cert,src={bundle}"]
    before = _image_id(tag)
    podman(*args, str(ROOT), timeout=BUILD_TIMEOUT_S)
    if before and before != _image_id(tag):  # the previous build, now untagged: no pile-up
        podman("rmi", before, check=False)
    return tag


def _image_id(tag: str) -> str:
    return podman("image", "inspect", "--format", "{{.Id}}", tag, check=False).stdout.strip()


def run_flags() -> list[str]:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    files = min(16384, hard // 2) if hard != resource.RLIM_INFINITY else 16384
    return [
        "--runtime", "runc", "--network", "host", "--health-interval", "disable",
        "--ulimit", f"nofile={files}:{files}", "--ulimit", "nproc=4096:4096",
    ]  # fmt: skip


class Container:
    """One container of the image, removed on exit whatever happened."""

    def __init__(self, image: str, options: Sequence[str], args: Sequence[str] = ()) -> None:
        self.image, self.options, self.args = image, list(options), list(args)
        # Named, so that one created but never started (a failed `run`) is removed too.
        self.id = f"tokenstore-test-{uuid.uuid4().hex[:12]}"

    def __enter__(self) -> Container:
        try:
            podman("run", "--detach", "--name", self.id, *run_flags(), *self.options,
                   self.image, *self.args)  # fmt: skip
        except BaseException:
            self.remove()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def remove(self) -> None:
        podman("rm", "--force", "--ignore", "--time", "0", self.id, check=False)

    def logs(self) -> str:
        result = podman("logs", self.id, check=False)
        return result.stdout + result.stderr

    def state(self) -> dict[str, str]:
        fields = "{{.State.Status}} {{.State.ExitCode}}"
        status, code = podman("inspect", "--format", fields, self.id).stdout.split()
        return {"status": status, "exit_code": code}

    def wait(self, timeout: float) -> int:
        return int(podman("wait", self.id, timeout=timeout).stdout.strip())

    def exec(self, *command: str) -> subprocess.CompletedProcess[str]:
        return podman("exec", self.id, *command, check=False)
