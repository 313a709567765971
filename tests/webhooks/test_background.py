"""The loop behind the inbox processor and trigger delivery: steps, wakes, due times and backoff."""

from __future__ import annotations

import asyncio

import pytest

from miniapp_sync.errors import StoreError
from miniapp_sync.testing import FakeClock
from miniapp_sync.webhooks.concurrency import run_until_stopped


async def test_a_failing_step_is_retried_after_the_backoff_and_the_loop_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock, wake, stop = FakeClock(), asyncio.Event(), asyncio.Event()
    outcomes: list[object] = [StoreError("the store is unreachable"), RuntimeError("a bug"), 30.0, None]

    async def step() -> float | None:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        if outcome is None:
            stop.set()  # nothing more is due: end the test
            return None
        return clock.now() + float(outcome)  # type: ignore[arg-type]

    await run_until_stopped(step, wake=wake, stop=stop, clock=clock, backoff=2.0, what="test work")
    assert outcomes == []
    assert clock.sleeps == [2.0, 2.0, 30.0]  # backoff after each failure, then the step's own due time
    messages = [r.getMessage() for r in caplog.records]
    assert "test work paused: the store is unreachable" in messages
    assert "test work failed unexpectedly; retrying" in messages


async def test_a_wake_runs_the_step_before_its_due_time() -> None:
    clock, wake, stop = FakeClock(), asyncio.Event(), asyncio.Event()
    steps = 0
    blocked = asyncio.Event()

    async def never(seconds: float) -> None:  # a due time far away: only a wake can end the wait
        blocked.set()
        await asyncio.Event().wait()

    clock.sleep = never  # type: ignore[method-assign]

    async def step() -> float | None:
        nonlocal steps
        steps += 1
        if steps == 2:
            stop.set()
        return clock.now() + 3600

    loop = asyncio.create_task(run_until_stopped(step, wake=wake, stop=stop, clock=clock, backoff=1.0, what="x"))
    await blocked.wait()
    wake.set()
    await asyncio.wait_for(loop, 5)
    assert steps == 2
