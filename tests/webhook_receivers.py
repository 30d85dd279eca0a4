"""Real webhook receivers for tests: aiohttp servers on loopback that verify every request
with the ``standardwebhooks`` reference library and behave as a test script says."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from aiohttp import web
from redis_servers import HOST, free_port
from standardwebhooks.webhooks import Webhook as Verifier

from service.events import EventKind

SECRET = "whsec_" + base64.b64encode(b"test webhook secret, 32 bytes..").decode()


@dataclass
class Received:
    webhook_id: str
    body: Any
    status: int  # what the receiver answered
    at: float = field(default_factory=time.monotonic)  # when the request arrived


# Given the number of requests so far (0 for the first), what to do: (delay s, status).
Behaviour = Callable[[int], tuple[float, int]]


def answer_ok(_n: int) -> tuple[float, int]:
    return 0.0, 204


@dataclass
class Receiver:
    behaviour: Behaviour = answer_ok
    port: int = field(default_factory=free_port)
    received: list[Received] = field(default_factory=list)
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/hook"

    async def _hook(self, request: web.Request) -> web.Response:
        raw = await request.read()
        # Raises (500, failing the test's expectations) on a bad signature.
        body = Verifier(SECRET).verify(raw, dict(request.headers))
        delay, status = self.behaviour(len(self.received))
        entry = Received(request.headers["webhook-id"], body, 0)
        self.received.append(entry)
        await asyncio.sleep(delay)
        gone = request.transport is None or request.transport.is_closing()
        entry.status = -1 if gone else status  # -1: the sender gave up (timed out) first
        return web.Response(status=status)

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        self._runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self._runner.setup()
        await web.TCPSite(self._runner, HOST, self.port).start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    def delivered(self) -> list[Received]:
        """Requests answered 2xx (the sender got the answer unless it timed out first)."""
        return [r for r in self.received if 200 <= r.status < 300]

    async def wait_for(self, check: Callable[[], bool], within: float = 15.0) -> None:
        await wait_until(check, within)


async def wait_until(check: Callable[[], bool], within: float = 15.0) -> None:
    async with asyncio.timeout(within):
        while not check():  # noqa: ASYNC110 (the checks look at several things)
            await asyncio.sleep(0.02)


def write_webhooks(directory: Path, *hooks: dict[str, Any]) -> Path:
    """A webhooks file (and its secret file, mode 0600) for these entries; each gets
    ``secret_file`` and the defaults it does not set."""
    secret = directory / "webhook.secret"
    secret.write_text(SECRET + "\n")
    os.chmod(secret, 0o600)
    every_kind = [kind.value for kind in EventKind]
    defaults = {"events": every_kind, "apps": ["*"], "format": "standard"}
    entries = [{**defaults, **hook, "secret_file": str(secret)} for hook in hooks]
    path = directory / "webhooks.json"
    path.write_text(json.dumps({"webhooks": entries}))
    return path
