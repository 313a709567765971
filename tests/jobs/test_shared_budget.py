"""The rate budget shared through PostgreSQL (D34): workers with their own connections lease slots of one row.

Each "worker" here is a limiter on its own SQLAlchemy engine, as separate processes would be. Time
is a FakeClock passed as the budget's time source, so slots are exact and nothing sleeps for real.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Iterator
from itertools import pairwise

import pytest
from sqlalchemy import Engine, create_engine, text

from miniapp_sync.provider.ratelimit import limiter_for
from miniapp_sync.provider.shared_budget import HANDOVER, SHARED_MARGIN, SharedRateLimiter, shared_limiters
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


def test_two_workers_take_distinct_slots_one_spacing_apart_and_a_guard_at_each_handover(
    engines: list[Engine], installations: list[str]
) -> None:
    clock = FakeClock()
    a, b = (SharedRateLimiter(e, installations[0], 10, clock=clock, time_source=clock.now) for e in engines)
    slots = [limiter.reserve()[0] for limiter in (a, a, b, b, a) for _ in range(2)]
    start = clock.now()
    assert a.spacing == pytest.approx(0.1 / (1 - SHARED_MARGIN))  # the margin under the budget
    assert a.guard == min(HANDOVER, a.interval / 2) == 0.05  # at most half an interval
    # a's second reservation follows on from its first; b's first starts a guard after a's, and
    # so does a's after b's (the holder of the lease before may grant its last slot that late).
    handovers = [0] * 4 + [1] * 4 + [2] * 2
    assert slots == [pytest.approx(start + n * a.spacing + k * a.guard) for n, k in enumerate(handovers)]


def test_installations_have_budgets_of_their_own(engines: list[Engine], installations: list[str]) -> None:
    clock = FakeClock()
    first, second = (SharedRateLimiter(engines[0], key, 5, clock=clock, time_source=clock.now) for key in installations)
    assert [first.reserve()[0], first.reserve()[0]] == [clock.now(), pytest.approx(clock.now() + first.spacing)]
    assert second.reserve()[0] == clock.now()  # untouched by the first installation's requests


async def test_acquire_leases_a_second_of_slots_a_round_trip_and_sleeps_until_each(
    engines: list[Engine], installations: list[str]
) -> None:
    clock = FakeClock()
    limiter = SharedRateLimiter(engines[0], installations[0], 4, clock=clock, time_source=clock.now)
    granted = [await limiter.acquire() for _ in range(10)]
    assert limiter.lease == 4
    assert limiter.leases == 3  # 10 requests, 3 round trips
    assert [b - a for a, b in pairwise(granted)] == [pytest.approx(limiter.spacing)] * 9
    assert sum(clock.sleeps) == pytest.approx(9 * limiter.spacing)


async def test_two_workers_lease_in_turn_and_never_grant_closer_than_the_interval(
    engines: list[Engine], installations: list[str]
) -> None:
    clock = FakeClock()
    a, b = (SharedRateLimiter(e, installations[0], 4, clock=clock, time_source=clock.now) for e in engines)
    granted = [await worker.acquire() for _ in range(3) for worker in (a, b) for _ in range(4)]
    assert granted == sorted(granted)  # a's lease, then b's (leased after a's), then a's next, ...
    assert min(y - x for x, y in pairwise(granted)) >= a.interval
    assert (a.leases, b.leases) == (3, 3)


async def test_concurrent_callers_in_two_workers_never_share_a_slot(
    engines: list[Engine], installations: list[str]
) -> None:
    clock = FakeClock()
    workers = [SharedRateLimiter(e, installations[0], 50, clock=clock, time_source=clock.now) for e in engines]
    reserved = await asyncio.gather(*(asyncio.to_thread(workers[n % 2].reserve) for n in range(40)))
    slots = sorted(slot for slot, _ in reserved)
    spacing, guard = workers[0].spacing, workers[0].guard
    # One spacing apart, or a spacing and the guard where the other worker reserved last.
    assert all(
        b - a == pytest.approx(spacing, abs=1e-6) or b - a == pytest.approx(spacing + guard, abs=1e-6)
        for a, b in pairwise(slots)
    )


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


async def test_a_pause_set_by_one_worker_reaches_the_other_with_its_next_lease(
    engines: list[Engine], installations: list[str]
) -> None:
    clock = PausingClock()
    a, b = (SharedRateLimiter(e, installations[0], 2, clock=clock, time_source=clock.now) for e in engines)
    first = await b.acquire()  # b leases 2 slots: now and one spacing on
    # b sleeps towards its second slot while a learns the provider wants 5 s of quiet.
    clock.during_sleep = lambda: a.pause_until(clock.monotonic() + 5.0)
    second = await b.acquire()
    third = await b.acquire()
    assert second - first == pytest.approx(b.spacing)  # leased before the pause: at most one lease goes out
    assert third - first == pytest.approx(5.0)  # the next lease starts after the pause


async def test_a_pause_drops_the_pausing_workers_own_leased_slots(
    engines: list[Engine], installations: list[str]
) -> None:
    clock = FakeClock()
    limiter = SharedRateLimiter(engines[0], installations[0], 4, clock=clock, time_source=clock.now)
    start = await limiter.acquire()  # 3 more slots leased
    limiter.pause_until(clock.monotonic() + 3.0)
    assert await limiter.acquire() - start == pytest.approx(3.0)


async def test_a_slot_that_passed_while_the_worker_stalled_is_abandoned_not_caught_up(
    engines: list[Engine], installations: list[str]
) -> None:
    clock = PausingClock()
    limiter = SharedRateLimiter(engines[0], installations[0], 4, clock=clock, time_source=clock.now)
    first = await limiter.acquire()
    clock.during_sleep = lambda: clock.advance(2.0)  # sleeping towards its second slot, the process stalls 2 s
    second = await limiter.acquire()
    # The leased slots the stall passed are dropped, the budget leased again: paced from the stall's end.
    assert second - first == pytest.approx(2.0 + limiter.spacing)
    assert await limiter.acquire() - second == pytest.approx(limiter.spacing)
    assert limiter.leases == 2


async def test_held_slots_a_stall_passed_are_dropped_and_the_budget_reserved_again(
    engines: list[Engine], installations: list[str]
) -> None:
    clock = FakeClock()
    fast = SharedRateLimiter(engines[0], installations[0], 1000, clock=clock, time_source=clock.now)
    first = await fast.acquire()  # leases 32 slots, holds 31
    clock.advance(1.0)  # a stall: the 31 held slots pass
    granted = [await fast.acquire() for _ in range(3)]
    assert granted == [pytest.approx(first + 1.0 + n * fast.spacing) for n in range(3)]


async def test_at_high_rates_one_reservation_covers_the_next_requests(
    engines: list[Engine], installations: list[str]
) -> None:
    clock = FakeClock()
    fast, slow = (
        SharedRateLimiter(e, installations[0], rate, clock=clock, time_source=clock.now)
        for e, rate in zip(engines, (1000, 10), strict=True)
    )
    assert (fast.lease, slow.lease) == (32, 10)  # at most a second of budget, at most 32 slots
    start = clock.now()
    granted = [await fast.acquire() for _ in range(40)]
    with engines[0].connect() as conn:
        tat = conn.execute(text("SELECT tat FROM rate_budgets WHERE installation_id = :k"), {"k": installations[0]})
        reserved = round((tat.scalar_one() - start) / fast.spacing)
    # Within 10 µs: epoch-second floats (2.4e-7 apart at this magnitude) summed through a lease.
    assert [b - a for a, b in pairwise(granted)] == [pytest.approx(fast.spacing, abs=1e-5)] * 39
    assert reserved == 64  # two leases of 32 slots for 40 requests: 24 held, none handed out twice
    assert slow.reserve()[0] == pytest.approx(start + 64 * fast.spacing)  # another worker queues behind them


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


class LaggingClock(FakeClock):
    """A FakeClock on which every sleep ends late by a random lateness, now and then by a stall."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        self.rng = random.Random(seed)

    async def sleep(self, seconds: float) -> None:
        late = self.rng.uniform(0, 0.02) if self.rng.random() > 0.02 else self.rng.uniform(0.3, 1.5)
        await super().sleep(seconds + late)


@pytest.mark.parametrize("seed", range(2))
async def test_two_lagging_workers_never_grant_closer_than_the_interval(
    engines: list[Engine], installations: list[str], seed: int
) -> None:
    clock = LaggingClock(seed)
    workers = [SharedRateLimiter(e, installations[0], 4, clock=clock, time_source=clock.now) for e in engines]
    granted: list[float] = []

    async def caller(limiter: SharedRateLimiter) -> None:
        for _ in range(25):
            granted.append(await limiter.acquire())

    await asyncio.gather(*(caller(limiter) for limiter in workers for _ in range(3)))
    assert len(granted) == 150
    assert granted == sorted(granted)
    # Any two grants, whichever worker made them: at least one interval apart (the database keeps
    # times as double precision epoch seconds: a microsecond of rounding).
    assert min(b - a for a, b in pairwise(granted)) >= workers[0].interval - 1e-6


class LateClock(FakeClock):
    """A FakeClock on which every sleep ends ``late`` seconds late."""

    def __init__(self, late: float) -> None:
        super().__init__()
        self.late = late

    async def sleep(self, seconds: float) -> None:
        await super().sleep(seconds + self.late)


async def test_lateness_the_margin_absorbs_shifts_a_lease_instead_of_losing_it(
    engines: list[Engine], installations: list[str]
) -> None:
    # Late on every wake-up by most of the room the margin leaves (6 ms of 7.7 at 4/s): an event
    # loop's ordinary lateness.
    clock = LateClock(0.8 * (0.25 / (1 - SHARED_MARGIN) - 0.25))
    limiter = SharedRateLimiter(engines[0], installations[0], 4, clock=clock, time_source=clock.now)
    granted = [await limiter.acquire() for _ in range(12)]
    assert limiter.leases == 3  # every leased slot used
    assert min(b - a for a, b in pairwise(granted)) >= limiter.interval - 1e-6


async def test_lateness_past_the_room_carries_into_the_next_lease_when_nobody_leased_between(
    engines: list[Engine], installations: list[str]
) -> None:
    # Late by 10 ms on every wake-up (a busy worker's loop): four times the room a slot has, so
    # each lease's last slot no longer fits before its end. One worker leases alone: each next
    # lease follows on directly, and the lateness is lost, not a slot a lease (a quarter of the budget).
    late = 0.010
    clock = LateClock(late)
    limiter = SharedRateLimiter(engines[0], installations[0], 4, clock=clock, time_source=clock.now)
    granted = [await limiter.acquire() for _ in range(40)]
    assert min(b - a for a, b in pairwise(granted)) >= limiter.interval - 1e-6
    assert granted[-1] - granted[0] <= 39 * (limiter.spacing + late) + 1e-6
    assert limiter.leases <= 11  # 40 slots, 4 a lease: none dropped (one more lease for the drift)


async def test_a_lease_another_worker_took_in_between_is_never_granted_into(
    engines: list[Engine], installations: list[str]
) -> None:
    clock = LateClock(0.010)
    a, b = (SharedRateLimiter(e, installations[0], 4, clock=clock, time_source=clock.now) for e in engines)
    granted = [await a.acquire() for _ in range(3)]  # a's lease: its 4th slot no longer fits
    other = [await b.acquire()]  # b leases the next second of budget
    granted += [await a.acquire() for _ in range(2)]  # a's last slot is dropped: its next lease is after b's
    assert a.dropped == 1
    assert granted[3] >= other[0] + b.lease * b.spacing - 1e-6
    assert min(y - x for x, y in pairwise(sorted(granted + other))) >= a.interval - 1e-6


async def test_workers_alternating_leases_lose_no_slot_to_lateness_within_the_guard(
    engines: list[Engine], installations: list[str]
) -> None:
    # Late by 10 ms on every wake-up: a lease's last slot overruns the margin's room (2.3 ms a slot
    # over it: 37 ms through a stretched lease's 16) but not room and guard. Two workers lease in
    # turn, so no lease follows on from the holder's own: before the guard each lease's last slot
    # was dropped (a quarter of the budget).
    clock = LateClock(0.010)
    a, b = (SharedRateLimiter(e, installations[0], 4, clock=clock, time_source=clock.now) for e in engines)
    # Each worker uses its whole lease: 4 slots first, then 16 (a lease after a handover stretches).
    turns = [(a, 4), (b, 4), (a, 16), (b, 16), (a, 16), (b, 16)]
    granted = [await worker.acquire() for worker, slots in turns for _ in range(slots)]
    assert (a.leases, b.leases) == (3, 3)  # every leased slot granted
    assert a.dropped == b.dropped == 0
    assert granted == sorted(granted)
    assert min(y - x for x, y in pairwise(granted)) >= a.interval - 1e-6


async def test_a_lease_after_another_workers_stretches_and_one_after_its_own_does_not(
    engines: list[Engine], installations: list[str]
) -> None:
    clock = FakeClock()
    a, b = (SharedRateLimiter(e, installations[0], 4, clock=clock, time_source=clock.now) for e in engines)
    assert (a.lease, a.stretch) == (4, 16)  # one second of budget, four after a handover
    start = clock.now()
    first = [await a.acquire() for _ in range(8)]  # a alone: two leases of 4, the second following on
    assert a.leases == 2
    assert [y - x for x, y in pairwise(first)] == [pytest.approx(a.spacing)] * 7
    await b.acquire()  # b's first lease: 4 slots, a guard after a's
    granted = [await a.acquire() for _ in range(16)]  # a's next lease comes after b's: 16 slots, one round trip
    assert a.leases == 3
    assert granted[0] - first[0] == pytest.approx(12 * a.spacing + 2 * a.guard)  # after b's 4 slots and two guards
    with engines[0].connect() as conn:
        tat = conn.execute(text("SELECT tat FROM rate_budgets WHERE installation_id = :k"), {"k": installations[0]})
        assert tat.scalar_one() == pytest.approx(start + 28 * a.spacing + 2 * a.guard)
    assert min(y - x for x, y in pairwise([*first, *granted])) >= a.interval - 1e-6


async def test_a_lease_asked_for_long_after_one_left_unused_does_not_stretch(
    engines: list[Engine], installations: list[str]
) -> None:
    clock = FakeClock()
    a, b = (SharedRateLimiter(e, installations[0], 4, clock=clock, time_source=clock.now) for e in engines)
    await a.acquire()  # a's first lease: 4 slots, 3 left unused
    await b.acquire()  # b's, after it
    clock.advance(60.0)  # a minute later, a small sync on a: one page
    await a.acquire()
    with engines[0].connect() as conn:
        tat = conn.execute(text("SELECT tat FROM rate_budgets WHERE installation_id = :k"), {"k": installations[0]})
        assert tat.scalar_one() == pytest.approx(clock.now() + a.lease * a.spacing)  # one second leased, not four
