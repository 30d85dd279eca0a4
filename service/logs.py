"""Process-wide logging set-up: one line per record on stderr."""

from __future__ import annotations

import logging


def configure(level: str) -> None:
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True
    )
    # aiohttp logs every request at INFO through its access logger; keep it quiet by default.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
