"""The keys of ``TOKENSTORE_JWT_JWKS_URL``: fetched at start, refreshed every
``REFRESH_S``, and fetched again when a JWT names a ``kid`` we do not hold (the issuer rotated
its keys), at most once every ``MIN_REFETCH_S`` so that JWTs with made-up kids cannot make us
hammer the issuer. A failed fetch keeps the keys we had (none before the first success: every
JWT is then inactive, never active).
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import orjson

from service.jwt_verify import JwksError, JwtVerifier, parse_jwks
from service.settings import env_name
from service.single_flight import SingleFlight

log = logging.getLogger(__name__)


class JwksFetcher:
    REFRESH_S = 300.0
    MIN_REFETCH_S = 10.0
    TIMEOUT_S = 5.0
    MAX_BYTES = 1024 * 1024

    def __init__(self, url: str, verifier: JwtVerifier) -> None:
        self.url = url
        self._verifier = verifier
        self._session: aiohttp.ClientSession | None = None
        self._refresher: asyncio.Task[None] | None = None
        self._flight: SingleFlight[bool] = SingleFlight()

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.TIMEOUT_S))
        await self.fetch()
        self._refresher = asyncio.create_task(self._refresh())

    async def close(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
        if self._session is not None:
            await self._session.close()

    async def _refresh(self) -> None:
        while True:
            await asyncio.sleep(self.REFRESH_S)
            await self.fetch()

    async def on_unknown_kid(self) -> bool:
        """Fetch again for a kid we do not hold, unless fetched lately; True if new keys came.
        Concurrent callers share one fetch."""
        return bool(await self._flight.run(self._fetch, self.MIN_REFETCH_S))

    async def fetch(self) -> bool:
        return bool(await self._flight.run(self._fetch))

    async def _fetch(self) -> bool:
        where = f"{env_name('jwt_jwks_url')}={self.url}"
        if self._session is None:
            return False
        try:
            async with self._session.get(self.url) as response:
                response.raise_for_status()
                body = await response.content.read(self.MAX_BYTES + 1)
            if len(body) > self.MAX_BYTES:
                raise JwksError(f"{where}: larger than {self.MAX_BYTES} bytes")
            keys = parse_jwks(_json(body, where), where)
        except (aiohttp.ClientError, TimeoutError, JwksError) as exc:
            log.warning("cannot fetch the JWKS; keeping the keys held", extra={"error": str(exc)})
            return False
        self._verifier.replace_keys(keys)
        return True


def _json(body: bytes, where: str) -> object:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise JwksError(f"{where}: not JSON") from None
