"""Procrastinate specifics: jobs of dead workers come back, schedules are periodic tasks, liveness settings."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from procrastinate import jobs as pq_jobs
from sqlalchemy import text

from miniapp_sync.errors import StoreError
from miniapp_sync.jobs import Work
from miniapp_sync.jobs.model import Job, Outcome
from miniapp_sync.jobs.procrastinate_queue import COMMON_QUEUE, SCHEDULE_TASK, Liveness, ProcrastinateQueue
from miniapp_sync.runtime import Runtime, load_miniapp
from miniapp_sync.sandbox import Sandbox, SandboxConfig

from .conftest import KEY, Stack, open_stack, until, write_definition


@pytest.fixture
async def pg_stack(tmp_path: Path, sandbox: Sandbox, pg_url: str) -> AsyncIterator[Stack]:
    stack = await open_stack("procrastinate", tmp_path, sandbox, pg_url)
    try:
        yield stack
    finally:
        await stack.stop()
        await stack.queue.close()
        stack.runtime.close()


async def _doing_under_a_dead_worker(stack: Stack, installation_id: str) -> int:
    """Enqueue a drain, let a worker that then dies take it: return the job id, left 'doing'."""
    queue = stack.queue
    assert isinstance(queue, ProcrastinateQueue)
    manager = queue.app.job_manager
    worker_id = await manager.register_worker()
    enqueued = await queue.drain_inbox("salla", installation_id)
    job = await manager.fetch_job(queues=queue.queues, worker_id=worker_id)
    assert job is not None
    assert str(job.id) == enqueued.id
    with stack.runtime.store.database.write("age the heartbeat") as conn:
        conn.execute(text("UPDATE procrastinate_workers SET last_heartbeat = now() - interval '1 hour'"))
    return job.id


async def _status(stack: Stack, job_id: int) -> str:
    assert isinstance(stack.queue, ProcrastinateQueue)
    return (await stack.queue.app.job_manager.get_job_status_async(job_id)).value


async def test_a_job_of_a_dead_worker_goes_back_to_the_queue(pg_stack: Stack) -> None:
    assert isinstance(pg_stack.queue, ProcrastinateQueue)
    job_id = await _doing_under_a_dead_worker(pg_stack, "inst-a")
    assert await pg_stack.queue.retry_stalled() == (1, 0)
    assert await _status(pg_stack, job_id) == "todo"
    assert await pg_stack.queue.retry_stalled() == (0, 0)
    ran: list[str] = []

    async def drain(ns: str, installation_id: str) -> float | None:
        ran.append(installation_id)
        return None

    pg_stack.work.drain = drain
    pg_stack.start()
    await pg_stack.settled()
    assert ran == ["inst-a"]


async def test_a_dead_workers_job_with_a_queued_twin_is_closed_as_covered(pg_stack: Stack) -> None:
    assert isinstance(pg_stack.queue, ProcrastinateQueue)
    job_id = await _doing_under_a_dead_worker(pg_stack, "inst-a")
    twin = await pg_stack.queue.drain_inbox("salla", "inst-a")
    assert twin.id is not None
    assert await pg_stack.queue.retry_stalled() == (0, 1)
    assert await _status(pg_stack, job_id) == "failed"
    assert await _status(pg_stack, int(twin.id)) == "todo"


async def test_a_definitions_schedule_is_a_periodic_task_that_enqueues_its_syncs(
    tmp_path: Path, pg_stack: Stack
) -> None:
    pg_stack.runtime.add(load_miniapp(write_definition(tmp_path, _hourly)))
    queue = ProcrastinateQueue(pg_stack.work)  # registers periodic tasks for the definitions it serves
    periodic = {p.periodic_id: p for p in queue.app.periodic_registry.periodic_tasks.values()}
    assert periodic["schedule:salla"].cron == "0 * * * *"
    assert periodic["schedule:salla"].configure_kwargs["queue"] == "salla:short"
    assert periodic["retry-stalled"].cron == periodic["sweep"].cron == "* * * * * */10"
    assert periodic["purge"].cron == "0 * * * *"
    async with queue:
        said = await queue.app.tasks[SCHEDULE_TASK](timestamp=1_700_000_000, ns="salla")
        assert said == "scheduled syncs of salla: 2 enqueued, 0 already queued"
        said = await queue.app.tasks[SCHEDULE_TASK](timestamp=1_700_003_600, ns="salla")
        assert said == "scheduled syncs of salla: 0 enqueued, 2 already queued"
        counts = {(c["queue"], c["task"], c["status"]): c["jobs"] for c in (await queue.status()).counts}
        assert counts == {("salla", "miniapp_sync.sync", "todo"): 2}


def _hourly(document: dict[str, object]) -> None:
    document["sync"]["syncConfiguration"]["schedule"] = "0 * * * *"  # type: ignore[index]


async def test_a_tick_queues_every_installations_syncs_in_one_insert_and_a_second_tick_none(
    tmp_path: Path, pg_url: str
) -> None:
    stores = Sandbox(SandboxConfig(products=5, customers=5, orders=5, carts=0, tenants=12))
    await stores.start()
    pg_stack = await open_stack("procrastinate", tmp_path, stores, pg_url)
    try:
        await _tick_queues_all(pg_stack, stores)
    finally:
        await pg_stack.queue.close()
        pg_stack.runtime.close()
        await stores.stop()


async def _tick_queues_all(pg_stack: Stack, stores: Sandbox) -> None:
    queue = pg_stack.queue
    assert isinstance(queue, ProcrastinateQueue)
    for n in range(1, 12):  # 12 installations with acme (store 0), 2 resources each
        await pg_stack.runtime.installations.install(
            pg_stack.app.definition, f"tenant-{n}", credentials={"accessToken": stores.config.tokens(n)[0]}
        )
    # A sync one installation's operator asked for is queued already: the tick refuses only its twin.
    assert not (await queue.sync("salla", pg_stack.installation.id, "products"))[0].duplicate
    inserts: list[int] = []
    defer = queue.app.job_manager.batch_defer_jobs_async

    async def counted(jobs: list[pq_jobs.Job], connection: object = None) -> list[pq_jobs.Job]:
        inserts.append(len(jobs))
        return await defer(jobs, connection)

    queue.app.job_manager.batch_defer_jobs_async = counted  # type: ignore[method-assign]
    tick = queue.app.tasks[SCHEDULE_TASK]
    assert await tick(timestamp=1_700_000_000, ns="salla") == "scheduled syncs of salla: 23 enqueued, 1 already queued"
    assert inserts == [23]
    assert await tick(timestamp=1_700_003_600, ns="salla") == "scheduled syncs of salla: 0 enqueued, 24 already queued"
    assert inserts == [23]
    rows = await queue.app.connector.execute_query_all_async(
        "SELECT queue_name, queueing_lock, lock FROM procrastinate_jobs WHERE status = 'todo'"
    )
    assert len(rows) == 24
    assert {r["queue_name"] for r in rows} == {"salla"}
    assert all(r["queueing_lock"] == r["lock"] for r in rows)
    assert len({r["lock"] for r in rows}) == 24


async def test_a_batch_that_meets_a_key_queued_meanwhile_queues_the_others(pg_stack: Stack) -> None:
    queue = pg_stack.queue
    assert isinstance(queue, ProcrastinateQueue)
    jobs = [Job("drain", "salla", f"inst-{n}") for n in range(3)]
    lookup = queue.app.connector.execute_query_all_async
    raced: list[str] = []

    async def racing(query: str, **arguments: object) -> list[dict[str, object]]:
        rows = await lookup(query, **arguments)
        if not raced and "queueing_lock = ANY" in query:  # another process queues inst-1 after the look-up
            raced.append((await queue.enqueue(jobs[1])).id or "")
        return rows

    queue.app.connector.execute_query_all_async = racing  # type: ignore[method-assign]
    receipts = await queue.enqueue_many([*jobs, jobs[0]])
    assert [r.duplicate for r in receipts] == [False, True, False, True]
    assert raced[0]  # the race happened, and the batch still queued the two others


async def test_a_drain_runs_while_every_sync_slot_is_busy(pg_stack: Stack) -> None:
    syncing = asyncio.Event()
    release = asyncio.Event()
    drained: list[str] = []

    async def sync(job: Job, job_id: str | None = None) -> Outcome:
        syncing.set()
        await release.wait()
        return Outcome("done")

    async def drain(ns: str, installation_id: str) -> float | None:
        drained.append(installation_id)
        return None

    pg_stack.work.sync = sync  # type: ignore[method-assign]
    pg_stack.work.drain = drain
    await pg_stack.queue.sync("salla", "inst-a", "products")
    pg_stack.start(concurrency=1)
    async with asyncio.timeout(20):
        await syncing.wait()
        await pg_stack.queue.drain_inbox("salla", "inst-b")
        await until(lambda: drained == ["inst-b"], timeout=20)
    assert not release.is_set()  # the one sync slot was still busy
    release.set()
    await pg_stack.settled()


def test_workers_take_their_miniapps_queues_and_the_common_one(tmp_path: Path, pg_url: str) -> None:
    with Runtime.open(pg_url, environ=KEY) as runtime:
        runtime.add(load_miniapp(write_definition(tmp_path)))
        queue = ProcrastinateQueue(Work(runtime))
        assert queue.queues == ["salla", "salla:short", COMMON_QUEUE]
        assert queue.short_queues == ["salla:short", COMMON_QUEUE]


def test_the_distributed_queue_refuses_a_sqlite_store_with_a_hint(tmp_path: Path) -> None:
    with (
        Runtime.open(str(tmp_path / "s.sqlite"), environ=KEY) as runtime,
        pytest.raises(StoreError, match=r"needs a PostgreSQL store, not sqlite.*`miniapp-sync serve` runs jobs"),
    ):
        ProcrastinateQueue(Work(runtime))


def test_liveness_checks_for_stalls_about_once_per_heartbeat() -> None:
    assert Liveness().stall_check_cron == "* * * * * */10"
    assert Liveness(heartbeat=1, stalled_after=3).stall_check_cron == "* * * * * *"
    assert Liveness(heartbeat=7, stalled_after=30).stall_check_cron == "* * * * * */6"
    with pytest.raises(ValueError, match="must be positive and shorter than stalled_after"):
        Liveness(heartbeat=30, stalled_after=10)


def test_a_stopping_worker_interrupts_its_jobs_before_its_last_heartbeat_is_stalled_after_old() -> None:
    assert Liveness().grace == 10  # one heartbeat: the last one is at most 20 s old then, of 30
    assert Liveness(heartbeat=1, stalled_after=3).grace == 1
    assert Liveness(heartbeat=10, stalled_after=15).grace == 2.5  # 12.5 s after the last heartbeat, of 15
