"""The webhook runtime of one server: receiver, group commit, processor and trigger delivery, wired once."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp

from miniapp_sync.clock import Clock
from miniapp_sync.runtime import Runtime
from miniapp_sync.store import Inbox, InboxEntry, Outbox
from miniapp_sync.webhooks.commit import GroupCommit
from miniapp_sync.webhooks.concurrency import caller
from miniapp_sync.webhooks.delivery import TriggerDelivery
from miniapp_sync.webhooks.metrics import WebhookMetrics
from miniapp_sync.webhooks.processor import Processor
from miniapp_sync.webhooks.receiver import Receiver
from miniapp_sync.webhooks.samples import SampleRecorder
from miniapp_sync.webhooks.settings import WebhookSettings
from miniapp_sync.webhooks.tenancy import Directory


class WebhookService:
    """Everything the webhook routes and background workers share; ``start``/``stop`` run the workers."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        settings: WebhookSettings | None = None,
        clock: Clock | None = None,
        metrics: WebhookMetrics | None = None,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.runtime = runtime
        self.settings = settings or WebhookSettings()
        self.clock = clock or runtime.clock
        self.metrics = metrics or WebhookMetrics()
        self.inbox = Inbox(runtime.store)
        self.outbox = Outbox(runtime.store)
        call = caller(runtime.store)
        self.delivery = TriggerDelivery(
            self.outbox,
            runtime.installations.vault,
            self.clock,
            settings=self.settings,
            session=session,
            metrics=self.metrics,
            call=call,
        )
        self.commit = GroupCommit(
            self.inbox,
            self.clock,
            max_batch=self.settings.commit_max_batch,
            max_delay=self.settings.commit_max_delay,
            metrics=self.metrics,
            on_commit=self._committed,
            call=call,
            crowd=self.settings.yield_crowd,
            crowd_rate=self.settings.yield_rate,
        )
        self.processor = Processor(
            runtime,
            self.inbox,
            settings=self.settings,
            clock=self.clock,
            metrics=self.metrics,
            on_event=self.delivery.wake,
            busy=self.commit.busy,
            call=call,
        )
        self.directory = Directory(runtime.store, runtime.installations, self.clock)
        samples = SampleRecorder(Path(self.settings.record_samples)) if self.settings.record_samples else None
        self.receiver = Receiver(runtime, self.directory, self.commit, self.metrics, samples)
        self._stop = asyncio.Event()
        self._workers: list[asyncio.Task[Any]] = []

    def _committed(self, entries: Sequence[InboxEntry]) -> None:
        if any(entry.status == "pending" for entry in entries):
            self.processor.wake()

    async def start(self, *, process: bool = True, deliver: bool = True) -> None:
        """Run the processor and trigger delivery in the background."""
        self._stop.clear()
        if process:
            self._workers.append(asyncio.create_task(self.processor.run_forever(self._stop), name="inbox processor"))
        if deliver:
            self._workers.append(asyncio.create_task(self.delivery.run_forever(self._stop), name="trigger delivery"))

    async def stop(self) -> None:
        """Commit what the receiver holds, then stop the workers (rows being processed are retried on restart)."""
        await self.commit.close()
        self._stop.set()
        for worker in self._workers:
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        self._workers.clear()
        await self.delivery.close()

    async def counts(self) -> dict[str, int]:
        """Return the inbox's row counts by state."""
        return await asyncio.to_thread(self.inbox.counts)
