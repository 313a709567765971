"""Procrastinate specifics: jobs of dead workers come back, schedules are periodic tasks, liveness settings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text

from miniapp_sync.errors import StoreError
from miniapp_sync.jobs import Work
from miniapp_sync.jobs.procrastinate_queue import COMMON_QUEUE, SCHEDULE_TASK, Liveness, ProcrastinateQueue
from miniapp_sync.runtime import Runtime, load_miniapp
from miniapp_sync.sandbox import Sandbox

from .conftest import KEY, Stack, open_stack, write_definition


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
    assert periodic["schedule:salla"].configure_kwargs["queue"] == "salla"
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


def test_workers_take_their_miniapps_queues_and_the_common_one(tmp_path: Path, pg_url: str) -> None:
    with Runtime.open(pg_url, environ=KEY) as runtime:
        runtime.add(load_miniapp(write_definition(tmp_path)))
        assert ProcrastinateQueue(Work(runtime)).queues == ["salla", COMMON_QUEUE]


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
