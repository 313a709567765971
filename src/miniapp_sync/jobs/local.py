"""The embedded default queue: jobs held in this process's memory and run by an asyncio pool.

One process owns everything here (``serve`` on SQLite), so the per-key promises are kept with a
dict of queued jobs and a set of running keys. Nothing survives the process, and nothing has to:
sync runs resume from their checkpoints, the webhook inbox is durable, schedules fire again.
Time (retry delays, cron) goes through the injected clock, so tests drive it with a FakeClock.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections import deque
from dataclasses import dataclass
from typing import Any, Final

from miniapp_sync.clock import Clock
from miniapp_sync.jobs.model import Enqueued, Job, JobRetry, Outcome
from miniapp_sync.jobs.queue import JobQueue
from miniapp_sync.jobs.work import Work

log = logging.getLogger("miniapp_sync.jobs")
MAX_NAP: Final = 60.0  # the scheduler re-reads installations at least this often
HISTORY: Final = 1000  # finished jobs kept for inspection


@dataclass(frozen=True, slots=True)
class _Queued:
    id: int
    job: Job
    not_before: float  # clock.monotonic()


@dataclass(frozen=True, slots=True)
class Finished:
    """A job this queue ran: its id, the job, how it ended, and when it started and ended (wall clock)."""

    id: int
    job: Job
    outcome: Outcome
    started_at: float
    finished_at: float


class LocalQueue(JobQueue):
    """Run jobs in this process: at most one queued and one running per key, retries on the injected clock."""

    def __init__(self, work: Work, *, retry: JobRetry | None = None, clock: Clock | None = None) -> None:
        super().__init__(work, retry=retry)
        self.clock = clock or work.runtime.clock
        self.finished: deque[Finished] = deque(maxlen=HISTORY)
        self._queued: dict[str, _Queued] = {}  # by key, in enqueue order
        self._running: dict[str, int] = {}  # key → job id
        self._ids = itertools.count(1)
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
        entry = _Queued(next(self._ids), job, self.clock.monotonic() + delay)
        self._queued[job.key] = entry
        self._changed.set()
        return Enqueued(job, entry.id)

    async def join(self) -> None:
        """Wait until nothing is queued or running."""
        while self._queued or self._running:
            self._changed.clear()
            await self._changed.wait()

    async def run_worker(self, *, concurrency: int = 4, schedule: bool = True) -> None:
        """Run ``concurrency`` jobs at a time (and enqueue scheduled syncs) until cancelled."""
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        tasks = [asyncio.create_task(self._work_loop(), name=f"job worker {n}") for n in range(concurrency)]
        if schedule:
            tasks.append(asyncio.create_task(self._schedule_loop(), name="job scheduler"))
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _take(self) -> tuple[_Queued | None, float | None]:
        """Return the oldest runnable job, else (None, seconds until one is due; None if nothing is queued)."""
        now = self.clock.monotonic()
        wait: float | None = None
        for key, entry in self._queued.items():
            if key in self._running:
                continue  # the job's lock: the same key is running
            if entry.not_before <= now:
                del self._queued[key]
                return entry, None
            wait = entry.not_before - now if wait is None else min(wait, entry.not_before - now)
        return None, wait

    async def _work_loop(self) -> None:
        while True:
            entry, wait = self._take()
            if entry is None:
                self._changed.clear()
                await self._wait(wait)
                continue
            key = entry.job.key
            self._running[key] = entry.id
            started = self.clock.now()
            try:
                outcome = await self.work.run(entry.job)
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

    async def _schedule_loop(self) -> None:
        last = self.clock.now()
        while True:
            upcoming = self.work.next_schedule(last)
            nap = MAX_NAP if upcoming is None else min(MAX_NAP, upcoming - self.clock.now())
            await self.clock.sleep(max(0.0, nap))
            now = self.clock.now()
            for job in await asyncio.to_thread(self.work.due_syncs, last, now):
                receipt = await self.enqueue(job)
                if receipt.duplicate:
                    log.info("scheduled %s is already queued", job)
            last = now
