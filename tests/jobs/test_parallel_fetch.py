"""ParallelFetch: a Procrastinate worker that fetches a backlog with several loops, and a lone job with one.

On Procrastinate's in-memory connector, whose fetch is made to take a round trip's time (a
yield to the loop), so that fetches in flight at once can be counted. The poll is 30 s: every round
of fetches here follows a new job's notification.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from procrastinate import App
from procrastinate.testing import InMemoryConnector

from miniapp_sync.jobs.procrastinate_queue import ParallelFetch

from .conftest import until


class CountingConnector(InMemoryConnector):
    """The in-memory connector, counting fetches and the most in flight at once."""

    def __init__(self) -> None:
        super().__init__()
        self.fetches = 0
        self.in_flight = 0
        self.most_in_flight = 0

    async def fetch_job_one(self, queues: Iterable[str] | None, worker_id: int) -> dict[str, Any]:
        self.fetches += 1
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            for _ in range(3):  # the round trip: other loops run meanwhile
                await asyncio.sleep(0)
            return await super().fetch_job_one(queues, worker_id)
        finally:
            self.in_flight -= 1


async def test_a_backlog_is_fetched_by_several_loops_and_a_lone_job_by_one() -> None:
    connector = CountingConnector()
    app = App(connector=connector)
    release = asyncio.Event()
    started: list[int] = []

    @app.task(name="hold")
    async def hold(n: int) -> None:
        started.append(n)
        await release.wait()

    async with app.open_async():
        for n in range(12):
            await hold.defer_async(n=n)
        worker = ParallelFetch(
            app=app, fetchers=4, concurrency=12, install_signal_handlers=False, fetch_job_polling_interval=30
        )
        running = asyncio.create_task(worker.run())  # type: ignore[no-untyped-call]
        try:
            await until(lambda: len(started) == 12)
            assert connector.most_in_flight > 1  # the backlog: several loops fetched at once
            release.set()
            await until(lambda: not worker._running_jobs)
            await until(lambda: connector.in_flight == 0)
            connector.fetches = connector.most_in_flight = 0
            release.clear()
            await hold.defer_async(n=12)
            await until(lambda: len(started) == 13)
            await until(lambda: connector.in_flight == 0)
            # One loop: the fetch that found it, and the one that found nothing after it.
            assert connector.most_in_flight == 1
            assert connector.fetches == 2
        finally:
            release.set()
            worker.stop()
            await running
