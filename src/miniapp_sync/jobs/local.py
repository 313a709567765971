"""The embedded default queue: jobs held in this process's memory and run by an asyncio pool.

One process owns everything here (``serve`` on SQLite), so the per-key promises are kept with a
dict of queued jobs and a set of running keys. Nothing survives the process, and nothing has to:
sync runs resume from their checkpoints, the webhook inbox is durable, schedules fire again.
Time (retry delays, cron) goes through the injected clock, so tests drive it with a FakeClock.

The periodic work is Procrastinate's periodic tasks' (D33): each definition's cron (or the
deployment's default) enqueues its scheduled syncs; ``sweep`` enqueues the drains and the
delivery that are due (at start, too: what the last process left); ``purge`` runs hourly. The
same ``Work`` runs every job, so the embedded default and the workers behave alike (D36).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Final

from miniapp_sync.clock import Clock
from miniapp_sync.jobs.model import Enqueued, Job, JobRetry, Outcome
from miniapp_sync.jobs.queue import JobQueue
from miniapp_sync.jobs.work import Work

log = logging.getLogger("miniapp_sync.jobs")
MAX_NAP: Final = 60.0  # the scheduler re-reads installations at least this often
SWEEP_EVERY: Final = 10.0  # seconds between sweeps: the safety net under enqueue-on-commit (as a worker's heartbeat)
PURGE_EVERY: Final = 3600.0
HISTORY: Final = 1000  # finished jobs kept for inspection
# Workers beside the ``concurrency`` ones that take only inbox drains and trigger deliveries: a
# sync holds its worker for minutes to hours (a rate budget of 4 requests/s syncs ~14,000 records
# an hour), so with every worker syncing, webhooks would wait for a sync to end to be processed.
SHORT_LANE: Final = 1
SHORT_KINDS: Final = frozenset({"drain", "deliver"})


@dataclass(frozen=True, slots=True)
class _Queued:
    id: str
    job: Job
    not_before: float  # clock.monotonic()


@dataclass(frozen=True, slots=True)
class Finished:
    """A job this queue ran: its id, the job, how it ended, and when it started and ended (wall clock)."""

    id: str
    job: Job
    outcome: Outcome
    started_at: float
    finished_at: float


class LocalQueue(JobQueue):
    """Run jobs in this process: at most one queued and one running per key, retries on the injected clock."""

    runs_here = True

    def __init__(self, work: Work, *, retry: JobRetry | None = None, clock: Clock | None = None) -> None:
        super().__init__(work, retry=retry)
        self.clock = clock or work.runtime.clock
        self.finished: deque[Finished] = deque(maxlen=HISTORY)
        self._queued: dict[str, _Queued] = {}  # by key, in enqueue order
        self._running: dict[str, str] = {}  # key → job id
        self._changed = asyncio.Event()

    @property
    def queued(self) -> list[Job]:
        """Return the jobs waiting, oldest first."""
        return [entry.job for entry in self._queued.values()]

    @property
    def running(self) -> list[str]:
        """Return the keys of the jobs running now."""
        return list(self._running)

    async def open(self) -> None:
        """Nothing to acquire: the queue lives in this process's memory."""

    async def close(self) -> None:
        """Nothing to release."""

    async def enqueue(self, job: Job, *, delay: float = 0.0) -> Enqueued:
        """Queue ``job`` to run after ``delay`` seconds, unless a job with its key is queued already."""
        if job.key in self._queued:
            return Enqueued(job, None)
        entry = _Queued(uuid.uuid4().hex, job, self.clock.monotonic() + delay)
        self._queued[job.key] = entry
        self._changed.set()
        return Enqueued(job, entry.id)

    async def hasten(self, job: Job) -> str | None:
        """Make the waiting job of ``job``'s key due now, as ``job`` asks (its attempts start over); return its id."""
        entry = self._queued.get(job.key)
        if entry is None:
            return None
        self._queued[job.key] = _Queued(entry.id, job, min(entry.not_before, self.clock.monotonic()))
        self._changed.set()
        return entry.id

    async def join(self) -> None:
        """Wait until nothing is queued or running."""
        while self._queued or self._running:
            self._changed.clear()
            await self._changed.wait()

    @contextlib.asynccontextmanager
    async def serving(self, *, concurrency: int = 4) -> AsyncIterator[None]:
        """Run this process's jobs and periodic work in the background while the block runs (``serve``)."""
        worker = asyncio.create_task(self.run_worker(concurrency=concurrency), name="job queue")
        try:
            yield
        finally:
            worker.cancel()  # a sync cut short resumes from its checkpoint, claimed rows are adopted at start
            await asyncio.gather(worker, return_exceptions=True)

    async def run_until_idle(self, *, concurrency: int = 1) -> list[Finished]:
        """Run what is queued, and what it leads to, until nothing is queued or running; return what ran."""
        before = len(self.finished)
        worker = asyncio.create_task(self.run_worker(concurrency=concurrency, schedule=False), name="job queue")
        try:
            joined = asyncio.ensure_future(self.join())
            await asyncio.wait({joined, worker}, return_when=asyncio.FIRST_COMPLETED)
            if worker.done():
                joined.cancel()
                worker.result()  # raise what stopped the worker
            await joined
        finally:
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)
        return list(self.finished)[before:]

    async def run_worker(self, *, concurrency: int = 4, schedule: bool = True) -> None:
        """Run ``concurrency`` jobs at a time until cancelled; with ``schedule``, also the periodic work.

        ``SHORT_LANE`` more workers run only inbox drains and trigger deliveries, so syncs never starve them.

        Only the store's owner (``serve`` on SQLite) may ``schedule``: it adopts the inbox rows a
        stopped process left claimed, which would steal them from a server that is running.
        """
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        if schedule:
            adopted = await asyncio.to_thread(self.work.adopt)
            if adopted:
                log.warning("retrying %d webhook deliveries a stopped process left unfinished", adopted)
        tasks = [asyncio.create_task(self._work_loop(), name=f"job worker {n}") for n in range(concurrency)]
        short = (self._work_loop(short_only=True) for _ in range(SHORT_LANE))
        tasks += [asyncio.create_task(loop, name=f"drain worker {n}") for n, loop in enumerate(short)]
        if schedule:
            tasks.append(asyncio.create_task(self._periodic_loop(), name="job scheduler"))
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _take(self, short_only: bool) -> tuple[_Queued | None, float | None]:
        """Return the oldest runnable job, else (None, seconds until one this worker waits for is due, or None).

        A ``short_only`` worker takes drains and deliveries only, and waits for their delays; the
        others take any job and wait for the syncs' delays, so one delay never has two sleepers.
        """
        now = self.clock.monotonic()
        wait: float | None = None
        for key, entry in self._queued.items():
            short = entry.job.kind in SHORT_KINDS
            if key in self._running or (short_only and not short):
                continue  # the job's lock: the same key is running; or not this worker's kind
            if entry.not_before <= now:
                del self._queued[key]
                return entry, None
            if short == short_only:
                wait = entry.not_before - now if wait is None else min(wait, entry.not_before - now)
        return None, wait

    async def _work_loop(self, *, short_only: bool = False) -> None:
        while True:
            entry, wait = self._take(short_only)
            if entry is None:
                self._changed.clear()
                await self._wait(wait)
                continue
            key = entry.job.key
            self._running[key] = entry.id
            started = self.clock.now()
            try:
                outcome = await self.work.run(entry.job, entry.id)
                self.finished.append(Finished(entry.id, entry.job, outcome, started, self.clock.now()))
                await self.settle(entry.job, outcome)  # a retry queued now waits for this key to be free
            finally:
                del self._running[key]
                self._changed.set()

    async def _wait(self, seconds: float | None) -> None:
        changed = asyncio.ensure_future(self._changed.wait())
        waiters: set[asyncio.Future[Any]] = {changed}
        if seconds is not None:
            waiters.add(asyncio.ensure_future(self.clock.sleep(seconds)))
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await waiter

    async def _periodic_loop(self) -> None:
        last = self.clock.now()
        sweep_at = purge_at = self.clock.monotonic()  # both at once: what the last process left
        while True:
            mono, now = self.clock.monotonic(), self.clock.now()
            try:  # a store that is away for a moment must not end the schedules for good: try next turn
                if mono >= sweep_at:
                    await self._enqueue_all(await asyncio.to_thread(self.work.sweep), "swept")
                    sweep_at = mono + SWEEP_EVERY
                if mono >= purge_at:
                    log.info("%s", await asyncio.to_thread(self.work.purge))
                    purge_at = mono + PURGE_EVERY
                await self._enqueue_all(await asyncio.to_thread(self.work.due_syncs, last, now), "scheduled")
                last = now
            except Exception:
                log.exception("the periodic jobs failed; trying again in %.0f s", SWEEP_EVERY)
                sweep_at, purge_at = max(sweep_at, mono + SWEEP_EVERY), max(purge_at, mono + SWEEP_EVERY)
            upcoming = self.work.next_schedule(now)
            nap = min(MAX_NAP, sweep_at - mono, purge_at - mono)
            if upcoming is not None:
                nap = min(nap, upcoming - now)
            await self.clock.sleep(max(0.0, nap))

    async def _enqueue_all(self, jobs: list[Job], why: str) -> None:
        for job in jobs:
            if (await self.enqueue(job)).duplicate:
                log.info("%s %s is already queued", why, job)
