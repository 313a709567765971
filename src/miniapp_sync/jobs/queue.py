"""The job-queue interface (D32): what code above the engine asks of a queue, whichever runs the jobs.

Two implementations: ``LocalQueue`` (the embedded default: memory and an asyncio pool in this
process) and ``ProcrastinateQueue`` (PostgreSQL: jobs shared by every process and machine). Both
keep the same promises: a job's key (``Job.key``) is queued at most once (a duplicate enqueue is
refused and reported, the queued one covers it) and runs at most once at a time; failed jobs are
retried with backoff; scheduled syncs come from each definition's cron.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Self

from miniapp_sync.jobs.model import Enqueued, Job, JobRetry, Outcome
from miniapp_sync.jobs.work import Work

log = logging.getLogger("miniapp_sync.jobs")


class JobQueue(ABC):
    """Enqueue syncs, inbox drains and trigger deliveries; run a worker that executes them."""

    runs_here = False  # whether a server's jobs run in its own process (its metrics then cover processing)

    def __init__(self, work: Work, *, retry: JobRetry | None = None) -> None:
        self.work = work
        self.retry = retry or JobRetry()

    async def sync(
        self, ns: str, installation_id: str, resource: str | None = None, *, full: bool = False, now: bool = False
    ) -> list[Enqueued]:
        """Enqueue a sync of one resource of an installation, or of each enabled resource (one job each).

        ``full`` ignores the checkpoints: each resource is listed again from its first page.
        ``now``: an operator asked (API, console), so a twin waiting for its time (a failed sync's
        retry in its backoff, a scheduled sync) runs now, as asked, rather than refusing as a duplicate.
        """
        receipts = []
        for key in self.work.resources(ns, resource):
            job = Job("sync", ns, installation_id, key, full=full)
            receipt = await self.enqueue(job)
            if receipt.duplicate and now and (twin := await self.hasten(job)) is not None:
                receipt = Enqueued(job, twin)
            receipts.append(receipt)
        return receipts

    async def initial_sync(self, ns: str, installation_id: str) -> list[Enqueued]:
        """Enqueue the first import after an install: each enabled resource, none when bulk sync is off."""
        if not self.work.syncs_anything(ns):
            return []
        return await self.sync(ns, installation_id)

    async def drain_inbox(self, ns: str, installation_id: str) -> Enqueued:
        """Enqueue processing of an installation's webhook inbox; a burst of deliveries coalesces into one job (D33)."""
        return await self.enqueue(Job("drain", ns, installation_id))

    async def drain_inboxes(self, installations: list[tuple[str, str]]) -> list[Enqueued]:
        """Enqueue processing of the webhook inboxes of ``installations`` (ns, id) at once (one batch of them)."""
        return await self.enqueue_many([Job("drain", ns, installation_id) for ns, installation_id in installations])

    async def deliver_triggers(self) -> Enqueued:
        """Enqueue delivery of the trigger events due to subscribers."""
        return await self.enqueue(Job("deliver"))

    async def replay_deliveries(self, ns: str, replay_id: str) -> Enqueued:
        """Enqueue a recorded bulk replay of ``ns``'s webhook deliveries (its report: ``GET /api/jobs/{id}``)."""
        return await self.enqueue(Job("replay", ns, replay=replay_id))

    async def metrics(self) -> bytes:
        """Return the Prometheus series of processes that run this server's jobs apart from it (none here)."""
        return b""

    async def not_ready(self) -> str | None:
        """Return why jobs cannot be queued now, or None (``/readyz``); an in-process queue always can."""
        return None

    @abstractmethod
    async def enqueue(self, job: Job, *, delay: float = 0.0) -> Enqueued:
        """Queue ``job`` to run after ``delay`` seconds, unless a job with its key is queued already."""

    async def enqueue_many(self, jobs: list[Job]) -> list[Enqueued]:
        """Queue ``jobs`` to run now, each refused whose key is queued already (a queue may do it in one go)."""
        return [await self.enqueue(job) for job in jobs]

    @abstractmethod
    async def hasten(self, job: Job) -> str | None:
        """Make the waiting job of ``job``'s key run as soon as a worker is free, as ``job`` asks; return its id.

        None: no job of that key waits (none is queued, or it started meanwhile).
        """

    @abstractmethod
    async def run_worker(self, *, concurrency: int = 4) -> None:
        """Run jobs, ``concurrency`` at a time, and enqueue scheduled syncs, until cancelled or stopped."""

    @abstractmethod
    def serving(self, *, concurrency: int = 4) -> AbstractAsyncContextManager[None]:
        """What a server contributes to running jobs while it lives (``async with queue.serving(): …``).

        The in-process queue runs its jobs and the periodic work there; the shared queue runs
        nothing in a server (``worker`` processes do), the block only has it open for enqueues.
        """

    @abstractmethod
    async def open(self) -> None:
        """Acquire what the queue needs (connections)."""

    @abstractmethod
    async def close(self) -> None:
        """Release what ``open`` acquired."""

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def settle(self, job: Job, outcome: Outcome) -> list[Enqueued]:
        """Act on a finished job's outcome: retry a failure with backoff, queue the follow-ups of a success."""
        if outcome.status == "dropped":
            log.warning("dropped %s: %s", job, outcome.detail)
            return []
        if outcome.status == "failed":
            delay = self.retry.delay(job.attempt)
            if delay is None:
                log.error("gave up on %s after %d attempts: %s", job, job.attempt + 1, outcome.detail)
                return []
            log.warning("%s failed, retrying in %.0f s: %s", job, delay, outcome.detail)
            return [await self.enqueue(job.again(failed=True), delay=delay)]
        receipts = [await self.enqueue(follow) for follow in outcome.follow]
        if outcome.again_in is not None:
            receipts.append(await self.enqueue(job.again(failed=False), delay=outcome.again_in))
        return receipts
