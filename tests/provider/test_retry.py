"""Retry policy: full-jitter backoff, provider hints (Retry-After, X-RateLimit-*), what is retried (D11)."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import format_datetime

import aiohttp
import pytest

from miniapp_sync.provider import RetryPolicy

NOW = 1_700_000_000.0


@pytest.mark.parametrize("attempt", range(10))
def test_backoff_is_full_jitter_under_the_capped_exponential(attempt: int) -> None:
    policy = RetryPolicy(base=0.5, cap=8.0, random=random.Random(attempt))
    bound = min(8.0, 0.5 * 2**attempt)
    delays = [policy.delay(attempt, now=NOW) for _ in range(200)]
    assert all(0 <= d <= bound for d in delays)
    assert max(delays) > bound / 2  # jitter spreads over the whole range, not a sliver of it


def test_a_seeded_random_makes_backoff_deterministic() -> None:
    first = RetryPolicy(random=random.Random(42))
    second = RetryPolicy(random=random.Random(42))
    assert [first.delay(i, now=NOW) for i in range(6)] == [second.delay(i, now=NOW) for i in range(6)]
    assert RetryPolicy(random=random.Random(42)).delay(0, now=NOW) == random.Random(42).uniform(0, 0.5)


def test_a_huge_attempt_number_stays_at_the_cap() -> None:
    assert RetryPolicy(cap=30.0, random=random.Random(1)).delay(10_000, now=NOW) <= 30.0


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "7"}, 7.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"Retry-After": "0"}, 0.0),
        ({"Retry-After": format_datetime(datetime.fromtimestamp(NOW + 30, UTC), usegmt=True)}, 30.0),
        ({"Retry-After": "Tue, 14 Nov 2023 22:13:50 -0000"}, 30.0),  # the same instant, naive spelling
        ({"Retry-After": format_datetime(datetime.fromtimestamp(NOW - 30, UTC), usegmt=True)}, 0.0),
        ({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(NOW) + 12)}, 12.0),
        ({"x-ratelimit-remaining": "0", "x-ratelimit-reset": "9"}, 9.0),  # seconds from now
        ({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(NOW) - 5)}, 0.0),
        ({"Retry-After": "4", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "60"}, 4.0),
    ],
)
def test_provider_hints_override_the_backoff(headers: dict[str, str], expected: float) -> None:
    policy = RetryPolicy(random=random.Random(1))
    assert policy.delay(3, response_headers=headers, now=NOW) == pytest.approx(expected)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Retry-After": "soon"},
        {"X-RateLimit-Remaining": "3", "X-RateLimit-Reset": str(int(NOW) + 100)},
        {"X-RateLimit-Remaining": "0"},
    ],
)
def test_without_a_usable_hint_the_backoff_applies(headers: dict[str, str]) -> None:
    delay = RetryPolicy(base=0.5, random=random.Random(1)).delay(2, response_headers=headers, now=NOW)
    assert 0 <= delay <= 2.0


@pytest.mark.parametrize(
    ("outcome", "retryable"),
    [
        (429, True),
        (500, True),
        (502, True),
        (503, True),
        (504, True),
        (400, False),
        (401, False),
        (403, False),
        (404, False),
        (422, False),
        (501, False),
        (aiohttp.ServerDisconnectedError(), True),
        (aiohttp.ClientConnectionError("reset"), True),
        (aiohttp.ServerTimeoutError("read"), True),
        (TimeoutError(), True),
        (aiohttp.ClientPayloadError("cut"), True),
        (aiohttp.InvalidURL("x"), False),
        (ValueError("bug"), False),
    ],
)
def test_what_is_retried(outcome: int | BaseException, retryable: bool) -> None:
    assert RetryPolicy().retryable(outcome) is retryable


def test_at_least_one_attempt_is_required() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
