"""The rate budget shared through PostgreSQL (D34): workers with their own connections share one GCRA row.

Each "worker" here is a limiter on its own SQLAlchemy engine, as separate processes would be. Time
is a FakeClock passed as the budget's time source, so slots are exact and nothing sleeps for real.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from itertools import pairwise

import pytest
from sqlalchemy import Engine, create_engine, text

from miniapp_sync.provider.ratelimit import limiter_for
from miniapp_sync.provider.shared_budget import SharedRateLimiter, shared_limiters
from miniapp_sync.store import Store
from miniapp_sync.testing import FakeClock


@pytest.fixture
def installations(pg_url: str) -> list[str]:
    with Store.open(pg_url) as store:
        return [
            store.save_installation(tenant, "salla", credentials=b"x", metadata={}, user_input={}).id
            for tenant in ("t1", "t2")
        ]


@pytest.fixture
def engines(pg_url: str, installations: list[str]) -> Iterator[list[Engine]]:
    made = [create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://", 1)) for _ in range(2)]
    yield made
    for engine in made:
        engine.dispose()


def test_two_workers_take_distinct_slots_exactly_one_interval_apart(
    engines: list[Engine], installations: list[str]
) -> None:
    clock = FakeClock()
    a, b = (SharedRateLimiter(e, installations[0], 10, clock=clock, time_source=clock.now) for e in engines)
    slots = [limiter.reserve()[0] for _ in range(5) for limiter in (a, b)]
    start = clock.now()
    assert slots == [pytest.approx(start + n / 10) for n in range(10)]


def test_installations_have_budgets_of_their_own(engines: list[Engine], installations: list[str]) -> None:
    clock = FakeClock()
    first, second = (SharedRateLimiter(engines[0], key, 5, clock=clock, time_source=clock.now) for key in installations)
    assert [first.reserve()[0], first.reserve()[0]] == [clock.now(), pytest.approx(clock.now() + 0.2)]
    assert second.reserve()[0] == clock.now()  # untouched by the first installation's requests


async def test_acquire_sleeps_until_each_slot_on_the_injected_clock(
    engines: list[Engine], installations: list[str]
) -> None:
    clock = FakeClock()
    workers = [SharedRateLimiter(e, installations[0], 4, clock=clock, time_source=clock.now) for e in engines]
    granted = [await workers[n % 2].acquire() for n in range(6)]
    # Each grant waits one interval (0.25 s) after the one before, whichever worker asked.
    assert [round(b - a, 6) for a, b in pairwise(granted)] == [0.25] * 5
    assert sum(clock.sleeps) == pytest.approx(1.25)


async def test_concurrent_callers_in_two_workers_never_share_a_slot(
    engines: list[Engine], installations: list[str]
) -> None:
    clock = FakeClock()
    workers = [SharedRateLimiter(e, installations[0], 50, clock=clock, time_source=clock.now) for e in engines]
    reserved = await asyncio.gather(*(asyncio.to_thread(workers[n % 2].reserve) for n in range(40)))
    slots = sorted(slot for slot, _ in reserved)
    assert [round(b - a, 6) for a, b in pairwise(slots)] == [0.02] * 39


async def test_a_pause_set_by_one_worker_holds_back_the_other(engines: list[Engine], installations: list[str]) -> None:
    clock = FakeClock()
    a, b = (SharedRateLimiter(e, installations[0], 10, clock=clock, time_source=clock.now) for e in engines)
    await a.acquire()
    a.pause_until(clock.monotonic() + 3.0)  # a 429 with Retry-After: 3 seen by worker a
    before = clock.monotonic()
    await b.acquire()
    assert clock.monotonic() - before == pytest.approx(3.0)


class PausingClock(FakeClock):
    """A FakeClock that runs ``during_sleep`` once, inside the first sleep (as another worker would meanwhile)."""

    def __init__(self) -> None:
        super().__init__()
        self.during_sleep: Callable[[], None] | None = None

    async def sleep(self, seconds: float) -> None:
        if self.during_sleep is not None:
            action, self.during_sleep = self.during_sleep, None
            action()
        await super().sleep(seconds)


async def test_a_pause_arriving_while_a_caller_sleeps_sends_it_behind_the_pause(
    engines: list[Engine], installations: list[str]
) -> None:
    clock = PausingClock()
    a, b = (SharedRateLimiter(e, installations[0], 1, clock=clock, time_source=clock.now) for e in engines)
    await a.acquire()
    start = clock.monotonic()
    # b takes the next slot (1 s away) and sleeps towards it, while a learns the provider wants 5 s of quiet.
    clock.during_sleep = lambda: a.pause_until(clock.monotonic() + 5.0)
    await b.acquire()
    assert clock.monotonic() - start == pytest.approx(5.0)
    assert clock.sleeps == [pytest.approx(1.0), pytest.approx(4.0)]  # slept to its slot, found it paused, waited


async def test_a_slot_that_passed_while_the_worker_stalled_is_abandoned_not_caught_up(
    engines: list[Engine], installations: list[str]
) -> None:
    clock = PausingClock()
    limiter = SharedRateLimiter(engines[0], installations[0], 4, clock=clock, time_source=clock.now)
    first = await limiter.acquire()
    clock.during_sleep = lambda: clock.advance(2.0)  # sleeping towards slot 0.25, the process stalls 2 s
    second = await limiter.acquire()
    assert second - first == pytest.approx(2.25)  # reserved again at the stall's end, not sent 2 s late
    assert await limiter.acquire() - second == pytest.approx(0.25)


async def test_held_slots_a_stall_passed_are_dropped_and_the_budget_reserved_again(
    engines: list[Engine], installations: list[str]
) -> None:
    clock = FakeClock()
    fast = SharedRateLimiter(engines[0], installations[0], 1000, clock=clock, time_source=clock.now)
    first = await fast.acquire()  # reserves 32 slots, holds 31
    clock.advance(1.0)  # a stall: the 31 held slots pass
    granted = [await fast.acquire() for _ in range(3)]
    assert granted == [pytest.approx(first + 1.0 + n / 1000) for n in range(3)]


async def test_at_high_rates_one_reservation_covers_the_next_requests(
    engines: list[Engine], installations: list[str]
) -> None:
    clock = FakeClock()
    fast, slow = (
        SharedRateLimiter(e, installations[0], rate, clock=clock, time_source=clock.now)
        for e, rate in zip(engines, (1000, 10), strict=True)
    )
    assert (fast.ahead, slow.ahead) == (32, 1)  # at most 50 ms of budget, at most 32 slots
    start = clock.now()
    granted = [await fast.acquire() for _ in range(40)]
    with engines[0].connect() as conn:
        tat = conn.execute(text("SELECT tat FROM rate_budgets WHERE installation_id = :k"), {"k": installations[0]})
        reserved = round((tat.scalar_one() - start) * 1000)
    assert [round(b - a, 6) for a, b in pairwise(granted)] == [0.001] * 39  # still exactly one interval apart
    assert reserved == 64  # two reservations of 32 slots for 40 requests: 24 held, none handed out twice
    assert slow.reserve()[0] == pytest.approx(start + 0.064)  # another worker queues behind every slot held


def test_the_database_clock_is_the_default_time_source(engines: list[Engine], installations: list[str]) -> None:
    limiter = SharedRateLimiter(engines[0], installations[0], 1000, clock=FakeClock())
    slot, now = limiter.reserve()
    with engines[0].connect() as conn:
        database_now = conn.execute(text("SELECT extract(epoch FROM clock_timestamp())")).scalar_one()
    assert slot == now
    assert 0 <= float(database_now) - now < 5


def test_the_factory_keeps_a_limiter_per_installation_and_replaces_it_when_the_rate_changes(
    engines: list[Engine], installations: list[str]
) -> None:
    clock = FakeClock()
    limiters = shared_limiters(engines[0], time_source=clock.now)
    first = limiters(installations[0], 10, clock)
    assert limiters(installations[0], 10, clock) is first
    assert limiters(installations[1], 10, clock) is not first
    faster = limiters(installations[0], 20, clock)
    assert isinstance(faster, SharedRateLimiter)
    assert faster is not first
    assert faster.interval == pytest.approx(0.05)
    with pytest.raises(ValueError, match="positive number of requests per second"):
        limiters(installations[0], 0, clock)
    assert limiter_for(installations[0], 10, clock) is not first  # the in-process registry is separate
