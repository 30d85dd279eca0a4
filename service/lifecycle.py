"""Where a serving process is in its life: the runner flips it, ``/readyz`` and the access
middleware read it."""

from __future__ import annotations

from aiohttp import web


class Lifecycle:
    def __init__(self) -> None:
        self.draining = False

    def drain(self) -> None:
        """Shutdown has begun: report not ready and close connections after each response."""
        self.draining = True


LIFECYCLE = web.AppKey("lifecycle", Lifecycle)
