"""What jobs do (Work) and the in-process queue's timing, on a FakeClock: schedules, backoff, dead runs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from miniapp_sync.errors import InstallationError, StoreError, UsageError
from miniapp_sync.jobs import Job, JobRetry, LocalQueue, Work
from miniapp_sync.jobs.schedules import cron_for
from miniapp_sync.jobs.work import ABANDONED
from miniapp_sync.network import Rewrites
from miniapp_sync.runtime import Runtime, load_miniapp
from miniapp_sync.sandbox import Sandbox
from miniapp_sync.store import Installation
from miniapp_sync.testing import FakeClock

from .conftest import KEY, until, write_definition

QUARTER_HOUR = 15 * 60


def every_quarter_hour(document: dict[str, Any]) -> None:
    document["sync"]["syncConfiguration"]["schedule"] = "*/15 * * * *"


class Embedded:
    """A runtime on SQLite and a FakeClock, with the example installed for tenant acme."""

    def __init__(self, runtime: Runtime, clock: FakeClock, installation: Installation) -> None:
        self.runtime = runtime
        self.clock = clock
        self.installation = installation
        self.work = Work(runtime)


@pytest.fixture
async def embedded(tmp_path: Path, sandbox: Sandbox) -> AsyncIterator[Embedded]:
    clock = FakeClock()
    base = sandbox.base_url
    runtime = Runtime.open(
        str(tmp_path / "store.sqlite"),
        clock=clock,
        rewrites=Rewrites({"https://accounts.salla.sa": base, "https://api.salla.dev": base}),
        environ=KEY,
    )
    app = runtime.add(load_miniapp(write_definition(tmp_path, every_quarter_hour)))
    installation = await runtime.installations.install(
        app.definition, "acme", credentials={"accessToken": sandbox.config.access_token}
    )
    try:
        yield Embedded(runtime, clock, installation)
    finally:
        runtime.close()


def test_job_keys_lock_a_resource_an_inbox_or_the_deliveries() -> None:
    assert Job("sync", "salla", "i1", "products").key == "sync:i1:products"
    assert Job("drain", "salla", "i1").key == "drain:i1"
    assert Job("deliver").key == "deliver"
    retried = Job("sync", "salla", "i1", "products").again(failed=True)
    assert retried.attempt == 1
    assert retried.key == "sync:i1:products"
    assert str(retried) == "sync salla i1 products (attempt 2)"


def test_retries_back_off_exponentially_up_to_a_cap_then_give_up() -> None:
    policy = JobRetry(attempts=5, base=5.0, cap=30.0)
    assert [policy.delay(n) for n in range(5)] == [5.0, 10.0, 20.0, 30.0, None]


async def test_due_syncs_are_those_whose_cron_fires_in_the_window(embedded: Embedded) -> None:
    work, slot = embedded.work, (embedded.clock.now() // QUARTER_HOUR + 1) * QUARTER_HOUR
    due = work.due_syncs(slot - 60, slot)
    assert {(j.kind, j.installation_id, j.resource) for j in due} == {
        ("sync", embedded.installation.id, "products"),
        ("sync", embedded.installation.id, "customers"),
    }
    assert work.due_syncs(slot, slot + 60) == []
    assert work.next_schedule(slot - 1) == slot
    embedded.runtime.store.update_installation(embedded.installation.id, status="error", error="reconnect")
    assert work.due_syncs(slot - 60, slot) == []


async def test_resources_of_a_sync_are_the_enabled_ones_or_the_one_named(embedded: Embedded) -> None:
    assert embedded.work.resources("salla", None) == ["products", "customers"]
    assert embedded.work.resources("salla", "orders") == ["orders"]  # named: run even though disabled
    with pytest.raises(UsageError, match=r"no resource 'nope' in sync.resources of 'salla' \(known: "):
        embedded.work.resources("salla", "nope")
    with pytest.raises(UsageError, match=r"did you mean 'products'\?"):
        embedded.work.resources("salla", "prodcts")
    with pytest.raises(InstallationError, match=r"does not serve the MiniApp 'zid' \(serving: salla\)"):
        embedded.work.resources("zid", None)


async def test_a_run_left_running_by_a_dead_worker_is_closed_before_the_next(embedded: Embedded) -> None:
    store = embedded.runtime.store
    dead = store.start_run(embedded.installation.id, "products")
    other = store.start_run(embedded.installation.id, "customers")
    embedded.clock.advance(60)
    outcome = await embedded.work.run(Job("sync", "salla", embedded.installation.id, "products"))
    assert outcome.status == "done"
    closed = store.get_run(dead.id)
    assert closed is not None
    assert closed.status == "abandoned"
    assert closed.error == ABANDONED
    (latest,) = [r for r in store.list_runs(embedded.installation.id) if r.status == "succeeded"]
    assert closed.finished_at is not None
    assert closed.finished_at <= latest.started_at  # the runs of one resource never overlap
    still = store.get_run(other.id)
    assert still is not None
    assert still.status == "running"  # another resource's run is none of this job's business


async def test_a_job_leaves_a_live_processs_run_of_its_resource_running(embedded: Embedded) -> None:
    store = embedded.runtime.store
    owner = str(embedded.runtime.engine.processes.current())  # e.g. a `miniapp-sync sync` still going
    live = store.start_run(embedded.installation.id, "products", owner=owner)
    outcome = await embedded.work.run(Job("sync", "salla", embedded.installation.id, "products"))
    assert outcome.status == "done"
    still = store.get_run(live.id)
    assert still is not None
    assert still.status == "running"


async def test_jobs_that_cannot_succeed_are_dropped_with_the_reason(embedded: Embedded) -> None:
    gone = await embedded.work.run(Job("sync", "salla", "no-such-installation", "products"))
    assert (gone.status, gone.detail) == ("dropped", "installation no-such-installation no longer exists")
    embedded.runtime.store.update_installation(embedded.installation.id, status="error", error="reconnect")
    disconnected = await embedded.work.run(Job("sync", "salla", embedded.installation.id, "products"))
    assert disconnected.status == "dropped"
    assert "reconnect it before syncing" in disconnected.detail
    no_processor = await embedded.work.run(Job("drain", "salla", embedded.installation.id))
    assert (no_processor.status, no_processor.detail) == (
        "dropped",
        "this process has no inbox processor; drain jobs need one",
    )


async def test_the_local_queue_waits_out_backoff_on_its_clock(embedded: Embedded) -> None:
    calls: list[float] = []

    async def drain(ns: str, installation_id: str) -> float | None:
        calls.append(embedded.clock.now())
        if len(calls) < 3:
            raise StoreError("the store is away for a moment")
        return None

    embedded.work.drain = drain
    queue = LocalQueue(embedded.work, retry=JobRetry(attempts=4, base=5.0, cap=60.0), clock=embedded.clock)
    worker = asyncio.create_task(queue.run_worker(concurrency=1, schedule=False))
    try:
        await queue.drain_inbox("salla", embedded.installation.id)
        await until(lambda: len(calls) == 3)
        await queue.join()
    finally:
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
    assert [round(b - a, 6) for a, b in pairwise(calls)] == [5.0, 10.0]
    assert [f.outcome.status for f in queue.finished] == ["failed", "failed", "done"]


async def test_the_local_queue_enqueues_scheduled_syncs_at_their_cron_slot(embedded: Embedded) -> None:
    queue = LocalQueue(embedded.work, clock=embedded.clock)
    first_slot = (embedded.clock.now() // QUARTER_HOUR + 1) * QUARTER_HOUR
    worker = asyncio.create_task(queue.run_worker(concurrency=2))
    try:
        await until(lambda: len(queue.finished) >= 2, timeout=20)
    finally:
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
    first = list(queue.finished)[:2]
    assert {f.job.resource for f in first} == {"products", "customers"}
    assert all(f.started_at >= first_slot for f in first)  # nothing ran before the first slot
    assert all(f.outcome.status == "done" for f in first)
    store = embedded.runtime.store
    assert store.count_records(embedded.installation.id, "core:product") == 75


async def test_a_default_schedule_covers_the_definitions_without_their_own(embedded: Embedded) -> None:
    app = embedded.runtime.apps["salla"]
    assert app.definition.sync is not None
    own = app.definition.sync.sync_configuration.schedule
    assert Work(embedded.runtime, default_schedule="0 */6 * * *").schedules() == {"salla": own}  # its own wins
    folder = embedded.runtime.store.sqlite_path
    assert folder is not None
    embedded.runtime.add(load_miniapp(write_definition(folder.parent)))  # the same MiniApp, without a schedule
    unscheduled = Work(embedded.runtime, default_schedule=cron_for("6h"))
    assert unscheduled.schedules() == {"salla": "0 */6 * * *"}
    assert Work(embedded.runtime).schedules() == {}  # off unless set


def test_a_default_schedule_is_an_interval_on_cron_ticks_or_a_cron_expression() -> None:
    assert [cron_for(text) for text in ("30m", "1h", "6h", "1d", "15 3 * * *")] == [
        "*/30 * * * *",
        "0 * * * *",
        "0 */6 * * *",
        "0 0 * * *",
        "15 3 * * *",
    ]
    with pytest.raises(ValueError, match=r"the interval '7m' does not fall on cron ticks"):
        cron_for("7m")
    with pytest.raises(ValueError, match=r"expected an interval \(30m, 6h, 1d\) or a cron expression, found 'hourly'"):
        cron_for("hourly")


async def test_the_local_queue_keeps_its_schedules_when_a_sweep_fails(embedded: Embedded) -> None:
    class Flaky(Work):  # the store is away for the first sweep
        sweeps = 0

        def sweep(self) -> list[Job]:
            self.sweeps += 1
            if self.sweeps == 1:
                raise StoreError("cannot find pending webhook deliveries: database is locked")
            return super().sweep()

    work = Flaky(embedded.runtime)
    queue = LocalQueue(work, clock=embedded.clock)
    worker = asyncio.create_task(queue.run_worker(concurrency=2))
    try:
        await until(lambda: len(queue.finished) >= 2, timeout=20)
    finally:
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
    assert work.sweeps >= 2  # tried again, not given up
    assert {f.job.resource for f in queue.finished} == {"products", "customers"}  # the cron slot still fired
    assert embedded.clock.sleeps[0] > 0  # waited before trying again: no spinning
