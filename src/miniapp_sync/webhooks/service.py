"""The webhook runtime of one server: receiver, group commit, processor and trigger delivery, wired once.

After each commit the server defers one "drain this installation's inbox" job per installation
that got deliveries (D33), through the deployment's queue (D36): embedded, this process's queue
runs the drain with this service's processor, and the delivery of the trigger events it emitted;
scaled out, workers run them, so any number of servers can receive side by side. Acknowledgements
never wait for a drain: the commit only asks for one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from miniapp_sync.clock import Clock
from miniapp_sync.errors import MiniAppSyncError
from miniapp_sync.runtime import Runtime
from miniapp_sync.store import Inbox, InboxEntry, Outbox
from miniapp_sync.store.health import gauges
from miniapp_sync.webhooks.commit import GroupCommit
from miniapp_sync.webhooks.concurrency import Call, OwnThread, caller
from miniapp_sync.webhooks.delivery import TriggerDelivery
from miniapp_sync.webhooks.metrics import WebhookMetrics
from miniapp_sync.webhooks.posting import Poster
from miniapp_sync.webhooks.processor import Processor
from miniapp_sync.webhooks.receiver import Receiver
from miniapp_sync.webhooks.rejections import RejectionTrail
from miniapp_sync.webhooks.samples import SampleRecorder
from miniapp_sync.webhooks.settings import WebhookSettings
from miniapp_sync.webhooks.tenancy import Directory

if TYPE_CHECKING:
    from miniapp_sync.jobs import JobQueue  # for its type only: jobs import the webhook processor

log = logging.getLogger("miniapp_sync.webhooks")


class DrainRequests:
    """Defer drain jobs for installations that got deliveries: one enqueue in flight, of every installation asking.

    A burst coalesces twice: here, where the installations whose deliveries committed while an
    enqueue is in flight are enqueued together after it (the jobs it made may have started before
    they were committed), and in the queue, whose ``queueing_lock`` refuses a second waiting drain
    of the same installation. One enqueue of them all (``drain_inboxes``: on PostgreSQL a lookup and
    one insert), not one per installation: at 200 deliveries/s over 50 installations the server
    made ~30 enqueues a second, most refused as duplicates, each a round trip and an error
    (issue #17 item 5).
    """

    def __init__(self, queue: JobQueue) -> None:
        self.queue = queue
        self._wanted: dict[tuple[str, str], None] = {}  # asked for since the enqueue in flight began, in order
        self._task: asyncio.Task[None] | None = None

    def request(self, ns: str, installation_id: str) -> None:
        """Make sure a drain of the installation runs after the deliveries committed so far."""
        self._wanted[(ns, installation_id)] = None
        if self._task is None:
            self._task = asyncio.create_task(self._enqueue(), name="enqueue inbox drains")

    async def _enqueue(self) -> None:
        try:
            while self._wanted:
                keys, self._wanted = list(self._wanted), {}
                try:
                    await self.queue.drain_inboxes(keys)
                except MiniAppSyncError as exc:  # the rows are stored: the workers' inbox sweep finds them
                    log.error("could not queue drains of %d installations' inboxes: %s", len(keys), exc)
        finally:
            self._task = None

    async def close(self) -> None:
        """Wait for the enqueues in flight."""
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)


class WebhookService:
    """Everything the webhook routes and the drain and deliver jobs share; ``connect`` it to a queue.

    ``processes_here``: whether this process's loop also runs the processor and trigger delivery
    (the embedded queue in this process). When it does not (``serve --processor separate``), the
    inbox commit and the rejection trail on SQLite run on a thread of their own, so that the loop
    goes on receiving while they wait for the writer lock and the disk (see ``concurrency``).
    """

    def __init__(
        self,
        runtime: Runtime,
        *,
        settings: WebhookSettings | None = None,
        clock: Clock | None = None,
        metrics: WebhookMetrics | None = None,
        poster: Poster | None = None,
        queue: JobQueue | None = None,
        processes_here: bool = True,
    ) -> None:
        self.runtime = runtime
        self.drains = DrainRequests(queue) if queue is not None else None  # without one, tests drain by hand
        self.settings = settings or WebhookSettings()
        self.clock = clock or runtime.clock
        self.metrics = metrics or WebhookMetrics()
        self.inbox = Inbox(runtime.store)
        self.outbox = Outbox(runtime.store)
        call = caller(runtime.backend.inline_store_calls)
        # Inline on SQLite only while the loop has the processor's CPU work too (GIL handoffs cost
        # more than the wait then); receiving alone, the loop must not sit in the lock and the fsync.
        # A departure from D35 (SQLite written on the loop's thread, measured with the processor in
        # the process) for the receiver of ``serve --processor separate`` only (issue #17 item 4).
        self.committer = (
            OwnThread("miniapp-sync-inbox") if runtime.backend.inline_store_calls and not processes_here else None
        )
        receiving: Call = self.committer or call
        self.delivery = TriggerDelivery(
            self.outbox,
            runtime.installations.vault,
            self.clock,
            settings=self.settings,
            poster=poster,
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
            call=receiving,
            crowd=self.settings.yield_crowd,
            crowd_rate=self.settings.yield_rate,
        )
        self.processor = Processor(
            runtime,
            self.inbox,
            settings=self.settings,
            clock=self.clock,
            metrics=self.metrics,
            busy=self.commit.busy,
            call=call,
        )
        self.directory = Directory(runtime.store, runtime.installations, self.clock)
        samples = SampleRecorder(Path(self.settings.record_samples)) if self.settings.record_samples else None
        self.rejections = RejectionTrail(
            runtime.store, self.clock, receiving, per_hour=self.settings.rejections_per_hour
        )
        self.receiver = Receiver(
            runtime, self.directory, self.commit, self.metrics, samples, rejections=self.rejections, clock=self.clock
        )

    def connect(self, queue: JobQueue) -> None:
        """Defer the drains of committed deliveries through ``queue`` from now on."""
        self.drains = DrainRequests(queue)

    def _committed(self, entries: Sequence[InboxEntry]) -> None:
        wanted = {(e.ns, e.installation_id) for e in entries if e.status == "pending" and e.installation_id}
        for ns, installation_id in wanted:
            self.queue_processing(ns, installation_id)

    def queue_processing(self, ns: str, installation_id: str) -> None:
        """See that an installation's pending rows get processed: defer a drain job (D36; unconnected: by hand)."""
        if self.drains is not None:
            self.drains.request(ns, installation_id)

    async def stop(self) -> None:
        """Commit what the receiver holds and wait for the drain requests it made (while the queue is open)."""
        await self.commit.close()
        if self.committer is not None:
            self.committer.close()
        if self.drains is not None:
            await self.drains.close()

    async def close(self) -> None:
        """Close the trigger delivery's idle connections: only once the queue stopped (a deliver job may still POST)."""
        await self.delivery.close()

    async def scrape(self) -> bytes:
        """Return this process's metrics in the Prometheus text format, the store's gauges read now."""
        owned = self.metrics.owns_gauges
        figures = await asyncio.to_thread(gauges, self.runtime.store.database) if owned else None
        return self.metrics.render(figures, self.clock.now(), self.runtime.apps)
