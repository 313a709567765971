"""The limiter never grants two requests closer than 1/rate, paced a margin under it (D5).

Concurrent callers run on a ``SteppedClock`` (each sleeper wakes at its own deadline); a stall is
``clock.advance`` while callers sleep.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import random
from collections.abc import Callable

import pytest

from miniapp_sync.provider import RateLimiter, limiter_for
from miniapp_sync.provider.ratelimit import MARGIN
from miniapp_sync.sandbox.ratelimit import RateLimiter as SandboxLimiter
from miniapp_sync.testing import FakeClock

from .conftest import SteppedClock


class TokenBucket:
    """A provider's meter: ``capacity`` tokens, refilled at ``rate`` per second; no token → 429."""

    def __init__(self, rate: float, capacity: float, now: float) -> None:
        self.rate = rate
        self.capacity = capacity
        self.tokens = capacity
        self.last = now
        self.served = 0
        self.throttled = 0

    def take(self, now: float) -> bool:
        assert now >= self.last, "requests must reach the provider in time order"
        self.tokens = min(self.capacity, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens >= 1:
            self.tokens -= 1
            self.served += 1
            return True
        self.throttled += 1
        return False


async def test_sequential_acquires_are_paced_the_margin_under_the_budget() -> None:
    clock = FakeClock()
    limiter = RateLimiter(4, clock=clock)
    assert limiter.spacing == pytest.approx(0.25 / (1 - MARGIN))
    assert limiter.paced == pytest.approx(4 * (1 - MARGIN))
    slots = [await limiter.acquire() for _ in range(9)]
    assert slots[1] == pytest.approx(0.25)  # the first after an idle limiter: one interval, no credit
    assert [b - a for a, b in itertools.pairwise(slots[1:])] == pytest.approx([limiter.spacing] * 7)


async def test_without_a_margin_grants_are_exactly_one_interval_apart() -> None:
    clock = FakeClock()
    limiter = RateLimiter(4, clock=clock, margin=0.0)
    slots = [await limiter.acquire() for _ in range(9)]
    assert slots == pytest.approx([i * 0.25 for i in range(9)])
    assert clock.sleeps == pytest.approx([0.25] * 8)


async def test_concurrent_acquirers_each_get_a_distinct_grant_and_only_the_first_sleeps() -> None:
    clock = SteppedClock()
    limiter = RateLimiter(5, clock=clock, margin=0.0)
    slots = await asyncio.gather(*(limiter.acquire() for _ in range(10)))
    assert sorted(slots) == pytest.approx([i * 0.2 for i in range(10)])
    assert len(clock.sleeps) == 9  # one timer a grant, not one per waiting caller


async def test_an_idle_limiter_gives_no_burst_credit() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10, clock=clock, margin=0.0)
    await limiter.acquire()
    clock.advance(60)
    slots = [await limiter.acquire() for _ in range(3)]
    assert slots == pytest.approx([60.0, 60.1, 60.2])


async def test_pause_until_pushes_the_next_grant_back() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10, clock=clock, margin=0.0)
    await limiter.acquire()
    limiter.pause_until(5.0)
    assert await limiter.acquire() == pytest.approx(5.0)
    assert clock.sleeps == pytest.approx([5.0])
    assert await limiter.acquire() == pytest.approx(5.1)


async def test_a_pause_that_arrives_while_a_caller_waits_requeues_that_caller() -> None:
    clock = FakeClock()
    limiter = RateLimiter(5, clock=clock)
    await limiter.acquire()
    waiting = asyncio.create_task(limiter.acquire())  # its turn is at 0.2, it sleeps towards it
    await asyncio.sleep(0)
    limiter.pause_until(3.0)
    assert await waiting == pytest.approx(3.0)


async def test_a_pause_in_the_past_changes_nothing() -> None:
    clock = FakeClock()
    limiter = RateLimiter(2, clock=clock)
    clock.advance(10)
    limiter.pause_until(4.0)
    assert await limiter.acquire() == pytest.approx(10.0)


@pytest.mark.parametrize("rate", [1, 2, 10, 40])
async def test_a_provider_token_bucket_never_throttles_a_waiting_caller(rate: int) -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate, clock=clock)
    bucket = TokenBucket(rate, capacity=1, now=clock.monotonic())  # the strictest meter: no burst at all
    latency = random.Random(3)
    first = clock.monotonic()
    for _ in range(1_000):
        await limiter.acquire()
        assert bucket.take(clock.monotonic())
        clock.advance(latency.uniform(0, 0.9 / rate))  # the request itself takes time
    assert bucket.throttled == 0
    achieved = (bucket.served - 1) / (bucket.last - first)
    assert achieved >= (1 - MARGIN) * rate - 1e-6


async def test_concurrent_workers_sharing_the_budget_neither_burst_nor_idle() -> None:
    clock = SteppedClock()
    rate = 10
    limiter = RateLimiter(rate, clock=clock)
    slots: list[float] = []

    async def worker() -> None:
        for _ in range(125):
            slots.append(await limiter.acquire())

    await asyncio.gather(*(worker() for _ in range(8)))
    slots.sort()
    bucket = TokenBucket(rate, capacity=1, now=slots[0] - 1 / rate)
    assert all(bucket.take(slot) for slot in slots)
    assert min(b - a for a, b in itertools.pairwise(slots)) >= 1 / rate - 1e-9
    assert (len(slots) - 1) / (slots[-1] - slots[0]) >= (1 - MARGIN) * rate - 1e-6


class LateClock(SteppedClock):
    """A SteppedClock whose sleepers wake late, as on a busy event loop: each by a random lateness."""

    def __init__(self, lateness: Callable[[], float]) -> None:
        super().__init__()
        self.lateness = lateness
        self.limiter_lateness = 0.0  # the lateness dealt to the limiter's own sleeps

    async def sleep(self, seconds: float, *, limiter: bool = True) -> None:
        late = self.lateness()
        self.limiter_lateness += late if limiter else 0.0
        await super().sleep(seconds + late)


def most_in_any_window(times: list[float], width: float) -> int:
    """Return the most of ``times`` (sorted) that any half-open window ``[t, t + width)`` holds."""
    most, first = 0, 0
    for last, at in enumerate(times):
        while times[first] <= at - width + 1e-9:
            first += 1
        most = max(most, last - first + 1)
    return most


@pytest.mark.parametrize("seed", range(4))
async def test_no_window_sees_more_than_the_budget_while_the_loop_lags_and_stalls(seed: int) -> None:
    rng = random.Random(seed)
    # Mostly the ordinary lateness of a loaded loop (up to 20 ms), and now and then a stall of a
    # quarter to two seconds (a long synchronous step, a GC pause, no CPU for this process).
    clock = LateClock(lambda: rng.uniform(0, 0.02) if rng.random() > 0.03 else rng.uniform(0.25, 2.0))
    rate = 4
    limiter = RateLimiter(rate, clock=clock)
    start = clock.monotonic()
    sent: list[float] = []

    async def worker() -> None:  # a sync's detail fetches: each request, then its answer 50-300 ms on
        for _ in range(60):
            await limiter.acquire()
            sent.append(clock.monotonic())
            await clock.sleep(rng.uniform(0.05, 0.3), limiter=False)

    stalled = 0.0

    async def stalls() -> None:  # the process is busy elsewhere: no sleeper wakes during the stall
        nonlocal stalled
        for _ in range(5):
            await clock.sleep(rng.uniform(2, 8), limiter=False)
            stalled += (stall := rng.uniform(0.5, 3))
            clock.advance(stall)

    await asyncio.gather(stalls(), *(worker() for _ in range(8)))
    assert len(sent) == 480
    assert sent == sorted(sent)
    for width in (0.25, 1.0, 2.5, 10.0):
        assert most_in_any_window(sent, width) <= math.ceil(width * rate - 1e-9), width
    # The sandbox's own meter (Salla's shape: a bucket of max(1, rate) refilled at rate) and the
    # strictest one (a bucket of one) both let every request through.
    meter = FakeClock()
    sandbox = SandboxLimiter(rate, meter)
    for at in sent:
        meter.advance(at - meter.monotonic())
        assert sandbox.check("token").allowed
    strict = TokenBucket(rate, capacity=1, now=start)
    assert all(strict.take(at) for at in sent)
    # What the lag costs: the time it swallowed, and no more.
    assert sent[-1] - sent[0] <= (len(sent) - 1) * limiter.spacing + clock.limiter_lateness + stalled + 1e-6


@pytest.mark.parametrize("stall", [0.3, 2.0, 7.5])
async def test_after_a_stall_the_callers_it_bunched_are_paced_not_sent_at_once(stall: float) -> None:
    clock = SteppedClock()
    rate = 4
    limiter = RateLimiter(rate, clock=clock)
    start = clock.monotonic()
    granted: list[float] = []

    async def worker() -> None:  # a sync's page and detail requests: callers queued on one budget
        for _ in range(30):
            granted.append(await limiter.acquire())

    async def busy() -> None:  # the process is busy elsewhere: no sleeper wakes during ``stall`` s
        await clock.sleep(3.1)
        clock.advance(stall)

    await asyncio.gather(busy(), *(worker() for _ in range(8)))
    assert granted == sorted(granted)
    bucket = TokenBucket(rate, capacity=1, now=start)
    assert [bucket.take(at) for at in granted].count(False) == 0
    gaps = [b - a for a, b in itertools.pairwise(granted)]
    assert min(gaps) >= 1 / rate - 1e-9
    # Paced from the stall's end: the slots it swallowed are lost, not made up in a burst.
    after = [at for at in granted if at >= start + 3.1 + stall]
    assert len(after) - 1 <= round((after[-1] - after[0]) * rate, 6)
    assert len(granted) == 240


async def test_a_late_caller_goes_at_once_and_the_next_one_interval_after_it() -> None:
    clock = FakeClock()
    limiter = RateLimiter(4, clock=clock, margin=0.0)
    assert await limiter.acquire() == 0.0
    waiting = asyncio.create_task(limiter.acquire())  # due at 0.25: sleeps, and wakes 2 s late
    await asyncio.sleep(0)
    clock.advance(2.0)
    assert await waiting == pytest.approx(2.25)
    assert await limiter.acquire() == pytest.approx(2.5)  # one interval after, not behind the lost slots


async def test_lateness_within_the_margin_costs_nothing() -> None:
    late = [0.0]
    clock = LateClock(lambda: late[0])
    limiter = RateLimiter(4, clock=clock)
    room = limiter.spacing - limiter.interval
    first = await limiter.acquire()
    second = await limiter.acquire()
    late[0] = room / 2  # the next caller resumes half the room late
    assert await limiter.acquire() == pytest.approx(second + limiter.spacing + room / 2)
    late[0] = 0.0
    assert await limiter.acquire() == pytest.approx(second + 2 * limiter.spacing)  # back on plan
    assert second - first == pytest.approx(limiter.interval)


def test_a_rate_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        RateLimiter(0, clock=FakeClock())


async def test_limiter_for_shares_one_budget_per_installation() -> None:
    clock = FakeClock()
    first = limiter_for("tenant-a:salla", 10, clock)
    assert limiter_for("tenant-a:salla", 10, clock) is first
    assert limiter_for("tenant-b:salla", 10, clock) is not first


async def test_limiter_for_replaces_the_limiter_when_the_rate_changes_without_a_burst() -> None:
    clock = FakeClock()
    old = limiter_for("tenant-c:salla", 1, clock)
    assert await old.acquire() == 0.0
    new = limiter_for("tenant-c:salla", 2, clock)
    assert new is not old
    assert new.rate == 2
    assert await new.acquire() == pytest.approx(1.0)  # the old limiter's next grant still holds
    assert await new.acquire() == pytest.approx(1.0 + new.spacing)
