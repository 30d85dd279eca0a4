"""The configured webhooks of a process: their delivery workers (started and stopped with the
app) and what the API asks of them (dead letters, redelivery)."""

from __future__ import annotations

import asyncio
import logging

from service.clock import now_ms
from service.errors import NotFound, Unavailable
from service.metrics import Metrics
from service.settings import Settings
from service.store import TokenStore
from service.webhooks import config, payloads
from service.webhooks.config import Webhook
from service.webhooks.dead_letters import DeadLetter, DeadLetterPage, DeadLetters
from service.webhooks.delivery import Poster
from service.webhooks.worker import WebhookWorker, consumer_name

log = logging.getLogger(__name__)
STOP_WAIT_S = 5.0


class Webhooks:
    def __init__(
        self, hooks: list[Webhook], store: TokenStore, settings: Settings, metrics: Metrics
    ) -> None:
        self.hooks = {hook.id: hook for hook in hooks}
        self._store = store
        self._settings = settings
        self._metrics = metrics
        self._poster = Poster(settings.webhook_timeout)
        self._dead = DeadLetters(store, settings.max_ttl * 1000)
        self._workers: list[WebhookWorker] = []
        self._tasks: list[asyncio.Task[None]] = []

    @classmethod
    def for_settings(cls, store: TokenStore, settings: Settings, metrics: Metrics) -> Webhooks:
        """May raise WebhooksError (a bad file stops start-up)."""
        hooks = [] if settings.webhooks_file is None else config.load(settings.webhooks_file)
        return cls(hooks, store, settings, metrics)

    async def start(self) -> None:
        """Start a worker per webhook, once its consumer group exists (so that an event
        written after start-up is delivered); without Redis the worker creates it later."""
        consumer = consumer_name()
        for hook in self.hooks.values():
            worker = WebhookWorker(
                hook, self._store, self._settings, self._metrics, consumer, self._poster
            )
            try:
                await worker.create_group()
            except Unavailable:
                log.warning("webhook consumer group not created yet: redis unavailable")
            self._workers.append(worker)
            self._tasks.append(asyncio.create_task(worker.run(), name=f"webhook {hook.id}"))

    async def stop(self) -> None:
        for worker in self._workers:
            worker.stop()
        if self._tasks:
            _done, late = await asyncio.wait(self._tasks, timeout=STOP_WAIT_S)
            for task in late:  # in a POST or Redis: its event stays pending (next holder)
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        await self._poster.close()

    def hook(self, webhook_id: str) -> Webhook:
        hook = self.hooks.get(webhook_id)
        if hook is None:
            raise NotFound(f"no webhook {webhook_id!r}", code="webhook_not_found")
        return hook

    async def failures(self, webhook_id: str, limit: int, cursor: str | None) -> DeadLetterPage:
        return await self._dead.page(self.hook(webhook_id).id, limit, cursor)

    async def redeliver(self, webhook_id: str, event_id: str) -> str | None:
        """One attempt now; None if delivered (the dead letter is dropped), else the error."""
        hook = self.hook(webhook_id)
        letter = await self._dead.get(hook.id, event_id)
        if letter is None:
            raise NotFound(f"no failed event {event_id!r}", code="failure_not_found")
        body = payloads.body(hook, event_id, letter.event, self._settings.max_ttl)
        message = payloads.sign(hook, event_id, body, payloads.now())
        error = await self._poster.post(hook.url, message)
        if error is None:
            await self._dead.drop(hook.id, event_id)
            self._metrics.webhook_delivery(hook.id, "redelivered")
            return None
        await self._dead.add(
            hook.id,
            DeadLetter(event_id, letter.event, letter.attempts + 1, error, now_ms()),
        )
        return error
