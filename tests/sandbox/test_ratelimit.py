"""The rate limit: a token bucket per access token on the injected clock, 429 with Salla's headers."""

from __future__ import annotations

import math

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st

from miniapp_sync.sandbox import Sandbox, SandboxConfig
from miniapp_sync.sandbox.ratelimit import RateLimiter
from miniapp_sync.sandbox.stats import SandboxStats
from miniapp_sync.testing import FakeClock


def limited(rate: float, clock: FakeClock) -> Sandbox:
    return Sandbox(SandboxConfig(products=5, customers=2, orders=2, carts=1, rate_limit=rate), clock=clock)


async def get(session: aiohttp.ClientSession, sandbox: Sandbox, token: str | None = None) -> aiohttp.ClientResponse:
    token = token or sandbox.config.access_token
    async with session.get(sandbox.api_url + "/products", headers={"Authorization": f"Bearer {token}"}) as response:
        await response.read()
        return response


@given(rate=st.floats(min_value=0.05, max_value=200), requests=st.integers(min_value=1, max_value=400))
def test_requests_spaced_exactly_one_over_rate_apart_are_never_refused(rate: float, requests: int) -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate, clock)
    for _ in range(requests):
        assert limiter.check("token").allowed
        clock.advance(1 / rate)


@given(rate=st.floats(min_value=0.05, max_value=200))
def test_a_burst_gets_capacity_requests_then_a_retry_after_that_is_enough(rate: float) -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate, clock)
    burst = 0
    while (decision := limiter.check("token")).allowed:
        burst += 1
    assert burst == math.floor(max(1.0, rate) + 1e-9)  # the limiter forgives float dust of 1e-9 token
    assert decision.remaining == 0
    assert decision.retry_after >= 1
    clock.advance(decision.retry_after)
    assert limiter.check("token").allowed


def test_a_request_metered_after_a_later_one_refills_nothing_and_counts_no_second_twice() -> None:
    clock = FakeClock()
    limiter = RateLimiter(1, clock)  # a bucket of one token, refilled every second
    clock.advance(10)
    assert limiter.check("token", at=10.0).allowed
    # Arrived at 10.5, metered only now (after the one that arrived at 11): still half a token short.
    assert limiter.check("token", at=11.0).allowed
    assert not limiter.check("token", at=10.5).allowed
    assert not limiter.check("token", at=11.5).allowed  # half a second since 11: the earlier time gave nothing
    assert limiter.check("token", at=12.0).allowed


async def test_over_the_limit_answers_429_with_retry_after_and_rate_limit_headers(clock: FakeClock) -> None:
    async with limited(2, clock) as sandbox, aiohttp.ClientSession() as session:
        assert [(await get(session, sandbox)).status for _ in range(2)] == [200, 200]
        refused = await get(session, sandbox)
        assert refused.status == 429
        assert refused.headers["Retry-After"] == "1"
        assert refused.headers["X-RateLimit-Remaining"] == "0"
        assert refused.headers["X-RateLimit-Limit"] == "2"
        assert refused.headers["X-RateLimit-Reset"] == str(math.ceil(clock.now() + 1))
        assert sandbox.stats.rate_limited == 1
        assert sandbox.stats.too_many_requests == 1
        clock.advance(0.5)  # half a second refills one token at 2/s
        recovered = await get(session, sandbox)
        assert recovered.status == 200
        assert recovered.headers["X-RateLimit-Remaining"] == "0"


async def test_the_429_body_is_salla_s_error_envelope(clock: FakeClock) -> None:
    async with limited(1, clock) as sandbox, aiohttp.ClientSession() as session:
        await get(session, sandbox)
        headers = {"Authorization": f"Bearer {sandbox.config.access_token}"}
        async with session.get(sandbox.api_url + "/orders", headers=headers) as response:
            body = await response.json()
    assert body == {
        "status": 429,
        "success": False,
        "error": {"code": "too_many_requests", "message": body["error"]["message"]},
    }


async def test_each_access_token_has_its_own_budget(clock: FakeClock) -> None:
    async with limited(1, clock) as sandbox, aiohttp.ClientSession() as session:
        assert (await get(session, sandbox)).status == 200
        fields = {
            "grant_type": "refresh_token",
            "refresh_token": sandbox.config.refresh_token,
            "client_id": sandbox.config.client_id,
            "client_secret": sandbox.config.client_secret,
        }
        async with session.post(sandbox.base_url + "/oauth2/token", json=fields) as response:
            fresh = (await response.json())["access_token"]
        assert (await get(session, sandbox, fresh)).status == 200


@pytest.mark.parametrize("rate", [1, 4, 10])
async def test_a_client_at_exactly_the_rate_is_never_refused_and_stats_see_that_rate(
    clock: FakeClock, rate: int
) -> None:
    async with limited(rate, clock) as sandbox, aiohttp.ClientSession() as session:
        statuses = []
        for _ in range(3 * rate + 1):
            statuses.append((await get(session, sandbox)).status)
            clock.advance(1 / rate)
        assert set(statuses) == {200}
        assert sandbox.stats.rate_limited == 0
        assert sandbox.stats.max_per_second == rate
        assert len(sandbox.stats.timeline) == 3 * rate + 1


def test_max_per_second_counts_the_busiest_one_second_window() -> None:
    stats = SandboxStats()
    for at in (0.0, 0.2, 0.9, 1.0, 1.05, 1.1, 3.0):
        stats.record("GET /admin/v2/products", at, api=True)
    stats.record("POST /oauth2/token", 1.1, api=False)
    assert stats.max_per_second == 5  # 0.2 … 1.1
    assert stats.requests == 8
    assert len(stats.timeline) == 7
    stats.reset()
    assert (stats.requests, stats.max_per_second, stats.timeline) == (0, 0, [])
