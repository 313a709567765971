"""The queue contract (D32), run against both queues: the in-process pool and Procrastinate on PostgreSQL."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

from miniapp_sync.errors import StoreError
from miniapp_sync.jobs.model import Job
from miniapp_sync.jobs.procrastinate_queue import SCHEDULE_TASK, ProcrastinateQueue
from miniapp_sync.sandbox import Sandbox
from miniapp_sync.testing import FakeClock

from .conftest import Stack, open_stack, until


async def test_a_second_enqueue_of_a_waiting_job_is_refused_and_reported(stack: Stack) -> None:
    first = await stack.queue.drain_inbox("salla", "inst-a")
    second = await stack.queue.drain_inbox("salla", "inst-a")
    other = await stack.queue.drain_inbox("salla", "inst-b")
    assert first.id is not None
    assert not first.duplicate
    assert second.duplicate
    assert second.id is None
    assert not other.duplicate
    assert second.as_dict() == {
        "jobId": None,
        "kind": "drain",
        "key": "drain:inst-a",
        "resource": None,
        "duplicate": True,
    }


async def test_jobs_with_one_key_never_run_at_once_while_other_keys_do(stack: Stack) -> None:
    gates = {"inst-a": asyncio.Event(), "inst-b": asyncio.Event()}
    running: Counter[str] = Counter()
    most: Counter[str] = Counter()
    calls: list[str] = []

    async def drain(ns: str, installation_id: str) -> float | None:
        running[installation_id] += 1
        most[installation_id] = max(most[installation_id], running[installation_id])
        most["all"] = max(most["all"], sum(running.values()) - running["all"])
        calls.append(installation_id)
        await gates[installation_id].wait()
        running[installation_id] -= 1
        return None

    stack.work.drain = drain
    await stack.queue.drain_inbox("salla", "inst-a")
    stack.start(concurrency=3)
    await until(lambda: calls == ["inst-a"])
    # One may wait while its twin runs; it starts only once the twin is done.
    assert not (await stack.queue.drain_inbox("salla", "inst-a")).duplicate
    await stack.queue.drain_inbox("salla", "inst-b")
    await until(lambda: "inst-b" in calls)
    assert calls.count("inst-a") == 1
    gates["inst-a"].set()
    gates["inst-b"].set()
    await stack.settled()
    assert calls.count("inst-a") == 2
    assert most["inst-a"] == 1
    assert most["all"] == 2  # two keys ran side by side


async def test_a_failed_job_is_retried_with_backoff_until_it_succeeds(stack: Stack) -> None:
    attempts: list[int] = []

    async def drain(ns: str, installation_id: str) -> float | None:
        attempts.append(len(attempts))
        if len(attempts) < 3:
            raise StoreError("the store is away for a moment")
        return None

    stack.work.drain = drain
    stack.start()
    await stack.queue.drain_inbox("salla", "inst-a")
    await until(lambda: len(attempts) == 3)
    await stack.settled()
    assert attempts == [0, 1, 2]


async def test_a_job_that_keeps_failing_is_given_up_after_its_attempts(stack: Stack) -> None:
    calls: list[str] = []

    async def drain(ns: str, installation_id: str) -> float | None:
        calls.append(installation_id)
        raise RuntimeError("a bug, not bad input")

    stack.work.drain = drain
    stack.start()
    await stack.queue.drain_inbox("salla", "inst-a")
    await until(lambda: len(calls) == stack.queue.retry.attempts)
    await stack.settled()
    assert len(calls) == stack.queue.retry.attempts


async def test_a_drain_with_more_due_runs_again_and_is_followed_by_a_delivery(stack: Stack) -> None:
    drains: list[str] = []
    deliveries: list[float] = []

    async def drain(ns: str, installation_id: str) -> float | None:
        drains.append(installation_id)
        # A delivery waits for its retry: drain again when it comes due.
        return stack.runtime.clock.now() + 0.05 if len(drains) == 1 else None

    async def deliver() -> float | None:
        deliveries.append(stack.runtime.clock.now())
        return None

    stack.work.drain, stack.work.deliver = drain, deliver
    stack.start()
    await stack.queue.drain_inbox("salla", "inst-a")
    await until(lambda: len(drains) == 2 and len(deliveries) >= 1)
    await stack.settled()
    assert drains == ["inst-a", "inst-a"]


async def test_a_sync_through_the_queue_stores_every_record_once(stack: Stack) -> None:
    receipts = await stack.queue.sync("salla", stack.installation.id)
    assert [r.job.resource for r in receipts] == ["products", "customers"]
    assert all(r.id is not None for r in receipts)
    stack.start()
    await stack.settled(timeout=30)
    store, installation_id = stack.runtime.store, stack.installation.id
    assert store.count_records(installation_id, "core:product") == 75
    assert store.count_records(installation_id, "core:customer") == 30
    runs = store.list_runs(installation_id)
    assert sorted((r.resource, r.status) for r in runs) == [("customers", "succeeded"), ("products", "succeeded")]


async def test_a_sync_asked_now_brings_a_waiting_twin_forward_as_asked(stack: Stack) -> None:
    installation_id = stack.installation.id
    waiting = await stack.queue.enqueue(Job("sync", "salla", installation_id, "products", attempt=2), delay=3600)
    assert waiting.id is not None  # a failed sync's retry, an hour away
    (later,) = await stack.queue.sync("salla", installation_id, "products")
    assert later.duplicate  # a schedule's tick: the waiting twin covers it
    (asked,) = await stack.queue.sync("salla", installation_id, "products", full=True, now=True)
    assert (asked.id, asked.duplicate) == (waiting.id, False)  # an operator's: that twin, now
    stack.start()
    await stack.settled(timeout=30)
    (run,) = stack.runtime.store.list_runs(installation_id)
    assert (run.resource, run.status, run.job_id) == ("products", "succeeded", waiting.id)
    assert stack.runtime.store.count_records(installation_id, "core:product") == 75
    assert await stack.queue.hasten(Job("sync", "salla", installation_id, "products")) is None  # nothing waits


def summary(stack: Stack) -> list[tuple[Any, ...]]:
    """What a schedule's runs did, without the timings: per run, the resource, status and counts."""
    store = stack.runtime.store
    runs = store.list_runs(stack.installation.id)
    for run in runs:
        assert run.job_id is not None
        assert store.runs_of_job(run.job_id) == [run]  # the job id leads to its run
    counted = ("fetched", "pages", "created", "updated", "unchanged", "rejected")
    return sorted((r.resource, r.status, *(r.stats[r.resource or ""][k] for k in counted)) for r in runs)


async def test_the_embedded_default_and_procrastinate_make_the_same_runs_of_one_schedule(
    tmp_path: Path, sandbox: Sandbox, pg_url: str
) -> None:
    results = {}
    for kind, url in (("local", str(tmp_path / "store.sqlite")), ("procrastinate", pg_url)):
        clock = FakeClock()  # the in-process queue's cron runs on it: its slot comes without waiting
        stack = await open_stack(kind, tmp_path, sandbox, url, clock=clock)
        try:
            stack.work.default_schedule = "*/15 * * * *"  # serve/worker --default-schedule 15m
            if kind == "local":
                stack.start(periodic=True)  # the queue's own loop fires the cron at its next slot
            else:
                # What Procrastinate's periodic deferrer does at a tick: defer the schedule task once.
                assert isinstance(stack.queue, ProcrastinateQueue)
                task = stack.queue.app.configure_task(SCHEDULE_TASK, queue="salla")
                await task.defer_async(timestamp=int(clock.now()), ns="salla")
                stack.start()
            store, installation_id = stack.runtime.store, stack.installation.id
            await until(lambda: len(store.list_runs(installation_id)) == 2, timeout=30)  # noqa: B023
            await stack.settled(timeout=30)
            results[kind] = summary(stack)
            assert stack.runtime.store.count_records(stack.installation.id, "core:product") == 75
        finally:
            await stack.stop()
            await stack.queue.close()
            stack.runtime.close()
    assert results["local"] == results["procrastinate"]
    assert [(resource, status) for resource, status, *_ in results["local"]] == [
        ("customers", "succeeded"),
        ("products", "succeeded"),
    ]


def _two_tenants(document: dict[str, Any]) -> None:
    # Two tenants of the sandbox's one merchant: without the storeId the second install is not refused.
    document["auth"]["userDetails"]["mapping"].pop("storeId")


async def test_a_paused_installation_is_skipped_by_a_scheduled_tick_on_both_backends(
    tmp_path: Path, sandbox: Sandbox, pg_url: str
) -> None:
    for kind, url in (("local", str(tmp_path / "paused.sqlite")), ("procrastinate", pg_url)):
        clock = FakeClock()  # the in-process queue's cron runs on it: its slot comes without waiting
        stack = await open_stack(kind, tmp_path, sandbox, url, clock=clock, change=_two_tenants)
        try:
            store, installations = stack.runtime.store, stack.runtime.installations
            credentials = {"accessToken": sandbox.config.access_token}
            other = await installations.install(stack.app.definition, "globex", credentials=credentials)
            paused = installations.pause(stack.installation.id)
            assert paused.paused
            stack.work.default_schedule = "*/15 * * * *"
            if kind == "local":
                stack.start(periodic=True)
            else:
                assert isinstance(stack.queue, ProcrastinateQueue)
                task = stack.queue.app.configure_task(SCHEDULE_TASK, queue="salla")
                await task.defer_async(timestamp=int(clock.now()), ns="salla")
                stack.start()
            # The tick syncs the other tenant; once its runs are done, the paused one has none.
            await until(lambda: len(store.list_runs(other.id)) == 2, timeout=30)  # noqa: B023
            await stack.settled(timeout=30)
            assert store.list_runs(stack.installation.id) == [], kind
            assert stack.work.next_sync_at(paused) is None
            assert stack.work.next_sync_at(other) is not None
        finally:
            await stack.stop()
            await stack.queue.close()
            stack.runtime.close()
