"""The app watermarks in Redis: where to read them (on a Cluster, the copy beside the token,
watermark_copies.py), reading them once per batch, and raising one to revoke an app."""

from __future__ import annotations

from typing import TYPE_CHECKING

from service.durability import unless_pending
from service.storage import Watermarks
from service.watermark_copies import WatermarkCopies

if TYPE_CHECKING:
    from service.store import TokenStore


def decode_marks(raw: dict[bytes, bytes]) -> dict[str, int]:
    """A hash of app id (or ``*``) -> us, as Redis returns it."""
    return {app.decode(): int(us) for app, us in raw.items()}


class AppWatermarks:
    def __init__(self, store: TokenStore) -> None:
        self._store = store
        self._keys = store.keys
        # On a Cluster: the watermarks' copies, one per node (set once connected).
        self.copies: WatermarkCopies | None = None
        # The watermarks hash as last read, and as converted: every reader of one batch gets
        # the same reply object, so it is converted once per batch, not once per read.
        self._marks: tuple[dict[bytes, bytes], dict[str, int]] = ({}, {})

    def key_near(self, user_key: str) -> str:
        """The watermarks to read with ``user_key``: on a Cluster, the copy on its node, so
        that one node answers for both."""
        return self._keys.watermarks if self.copies is None else self.copies.near(user_key)

    def converted(self, marks: dict[bytes, bytes]) -> dict[str, int]:
        last, converted = self._marks
        if marks is not last:
            converted = decode_marks(marks)
            self._marks = (marks, converted)
        return converted

    async def read(self, user_id: str | None) -> Watermarks:
        key = self._keys.watermarks
        if self.copies is not None and user_id is not None:
            key = self.copies.near(self._keys.user(await self._store.user_tag(user_id)))
        return self.converted(await self._store.batcher.read("HGETALL", key))

    async def revoke_app(self, app_id: str, retention_ms: int) -> int:
        """Set the app's watermark (returned, in us) and queue the sweep of its tokens."""
        store = self._store
        keys = [self._keys.watermarks, self._keys.sweeps]
        script = (await store.scripts()).revoke_app
        reply, pending = await store.run_durable("revoke_app", script, keys, [app_id, retention_ms])
        watermark = int(reply)
        if self.copies is not None:  # acknowledged once every copy has it (durably, if asked)
            copies_pending = await self.copies.raise_all(
                {app_id: watermark}, retention_ms, durable=True
            )
            pending = pending or copies_pending
        return unless_pending(watermark, pending)
