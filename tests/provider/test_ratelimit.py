"""The limiter grants slots exactly 1/rate apart: no burst, no 429s, full use of the budget (D5).

Concurrent callers run on a ``SteppedClock`` (each sleeper wakes at its own deadline); a stall is
``clock.advance`` while callers sleep.
"""

from __future__ import annotations

import asyncio
import itertools
import random

import pytest

from miniapp_sync.provider import RateLimiter, limiter_for
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


async def test_sequential_acquires_are_spaced_exactly_one_interval_apart() -> None:
    clock = FakeClock()
    limiter = RateLimiter(4, clock=clock)
    slots = [await limiter.acquire() for _ in range(9)]
    assert sum(clock.sleeps) == pytest.approx(8 / 4)
    assert clock.sleeps == pytest.approx([0.25] * 8)
    assert slots == pytest.approx([i * 0.25 for i in range(9)])


async def test_concurrent_acquirers_each_get_a_distinct_slot() -> None:
    clock = SteppedClock()
    limiter = RateLimiter(5, clock=clock)
    slots = await asyncio.gather(*(limiter.acquire() for _ in range(10)))
    assert sorted(slots) == pytest.approx([i * 0.2 for i in range(10)])
    assert len(set(slots)) == 10


async def test_an_idle_limiter_gives_no_burst_credit() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10, clock=clock)
    await limiter.acquire()
    clock.advance(60)
    slots = [await limiter.acquire() for _ in range(3)]
    assert slots == pytest.approx([60.0, 60.1, 60.2])


async def test_pause_until_pushes_the_next_grant_back() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10, clock=clock)
    await limiter.acquire()
    limiter.pause_until(5.0)
    assert await limiter.acquire() == pytest.approx(5.0)
    assert clock.sleeps == pytest.approx([5.0])
    assert await limiter.acquire() == pytest.approx(5.1)


async def test_a_pause_that_arrives_while_a_caller_waits_requeues_that_caller() -> None:
    clock = FakeClock()
    limiter = RateLimiter(5, clock=clock)
    await limiter.acquire()
    waiting = asyncio.create_task(limiter.acquire())  # reserves slot 0.2, then sleeps
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
    bucket = TokenBucket(rate, capacity=rate, now=clock.monotonic())
    latency = random.Random(3)
    first = clock.monotonic()
    for _ in range(1_000):
        await limiter.acquire()
        assert bucket.take(clock.monotonic())
        clock.advance(latency.uniform(0, 0.9 / rate))  # the request itself takes time
    assert bucket.throttled == 0
    achieved = (bucket.served - 1) / (bucket.last - first)
    assert achieved >= 0.95 * rate


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
    bucket = TokenBucket(rate, capacity=rate, now=slots[0])
    assert all(bucket.take(slot) for slot in slots)
    assert min(b - a for a, b in itertools.pairwise(slots)) >= 1 / rate - 1e-9
    assert (len(slots) - 1) / (slots[-1] - slots[0]) >= 0.95 * rate


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
    # The sandbox's meter: a bucket of max(1, rate) tokens refilled at ``rate``, as Salla's.
    bucket = TokenBucket(rate, capacity=rate, now=start)
    assert [bucket.take(at) for at in granted].count(False) == 0
    gaps = [b - a for a, b in itertools.pairwise(granted)]
    assert min(gaps) >= 1 / rate - limiter.slack
    # Paced from the stall's end: the slots it swallowed are lost, not made up in a burst.
    after = [at for at in granted if at >= start + 3.1 + stall]
    assert len(after) - 1 <= round((after[-1] - after[0]) * rate, 6)
    assert len(granted) == 240


async def test_a_late_caller_with_nobody_granted_recently_goes_at_once() -> None:
    clock = FakeClock()
    limiter = RateLimiter(4, clock=clock)
    assert await limiter.acquire() == 0.0
    waiting = asyncio.create_task(limiter.acquire())  # slot 0.25: sleeps, and wakes 2 s late
    await asyncio.sleep(0)
    clock.advance(2.0)
    assert await waiting == pytest.approx(2.25)
    assert await limiter.acquire() == pytest.approx(2.5)  # one interval after, not behind the lost slots


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
    assert await new.acquire() == pytest.approx(1.0)  # the old reservation still holds
    assert await new.acquire() == pytest.approx(1.5)
