"""One POST of a signed message to a webhook's URL: 2xx is delivered, anything else (another
status, a timeout, a refused connection) is an attempt to retry. Redirects are not followed:
outbound calls go to the configured URLs only."""

from __future__ import annotations

import aiohttp

from service.webhooks.payloads import Message


class Poster:
    def __init__(self, timeout_s: float) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def post(self, url: str, message: Message) -> str | None:
        """None if the receiver answered 2xx, else what went wrong (for the dead letter)."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        try:
            async with self._session.post(
                url, data=message.body, headers=message.headers, allow_redirects=False
            ) as response:
                await response.read()
                return None if 200 <= response.status < 300 else f"HTTP {response.status}"
        except TimeoutError:
            return "timeout"
        except aiohttp.ClientError as exc:
            return type(exc).__name__

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
