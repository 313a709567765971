"""bench/tenants.py at a tiny scale (2 installations, a few records, seconds), so the benchmark cannot rot."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from croniter import croniter
from tenants import Result, Setup, run_case, sublinear, tick_cron


def test_the_tick_cron_fires_at_the_tick_and_only_then() -> None:
    tick = datetime(2026, 12, 3, 13, 45, 7, tzinfo=UTC)
    cron = tick_cron(tick)
    assert croniter.is_valid(cron)
    assert croniter(cron, tick.timestamp() - 30).get_next(float) == tick.timestamp()
    assert croniter(cron, tick.timestamp()).get_next(float) - tick.timestamp() > 300 * 86400  # a year on


def result(n: int, rss_kb: int) -> Result:
    return Result(Setup("sqlite", n), [1.0] * n, 0, 0, 0, {"serve": rss_kb}, {}, [1.0], 0, 0, n)


def test_rss_growth_is_judged_between_consecutive_n() -> None:
    growth = sublinear([result(200, 300_000), result(50, 100_000), result(500, 900_000)])
    assert growth == {(50, 200): True, (200, 500): False}  # 3× for 4× N; then 3× for 2.5× N


def test_a_case_that_misses_a_target_says_what_limited_it() -> None:
    cpu = {"serve": 0.2, "worker 0": 0.95, "worker 1": 0.3, "sandbox": 0.1}
    missed = Result(
        Setup("postgres", 50), [0.5] * 50, 0, 0, 3, {}, cpu, [80.0], 0, 10, 14, connections=(95, 100), load=0.5
    )
    limits = missed.limits()
    assert limits[0] == (
        "missed: every installation ≥ 90% of its budget; zero 429s; webhook ack p99 ≤ 50 ms, every delivery 2xx"
    )
    assert "worker 0's event loop: 0.95 of the one core a Python process can use" in limits
    assert "the fan-out: 14 of 50 installations syncing by the window" in limits
    assert "inbox processing: 10 deliveries still waiting at the end" in limits
    assert "PostgreSQL connections: 95 of max_connections 100" in limits
    assert not any("other work on the machine" in limit for limit in limits)
    busy = Result(
        Setup("sqlite", 50), [0.5] * 50, 0, 0, 0, {}, {"serve": 0.03, "sandbox": 0.03}, [1.0], 0, 0, 50, load=19
    )
    assert any(limit.startswith("other work on the machine: load average 19.0 on") for limit in busy.limits())
    assert result(50, 100_000).limits() == []


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> tuple[str, str]:
    """(backend, PostgreSQL server URL); the PostgreSQL case skips (fails under CI=true) without a server."""
    if request.param == "postgres":
        return "postgres", str(request.getfixturevalue("postgres_admin_url"))
    return "sqlite", Setup.postgres


def test_a_tiny_run_syncs_every_installation_from_the_tick_within_its_budget(backend: tuple[str, str]) -> None:
    kind, server = backend
    setup = Setup(kind, 2, seconds=3, warmup=2, lead=10, products=20, orders=20, webhook_rate=20, postgres=server)
    found = run_case(setup)
    assert len(found.shares) == 2
    # 4 requests/s each, 50 ms latency: nothing but the budget holds a sync back at this size.
    assert all(0.7 <= share <= 1.1 for share in found.shares), found.shares
    assert found.started == 2  # both started by the tick's scheduler, before the window
    assert found.throttled == 0
    assert found.fetched > 0
    assert len(found.acks_ms) == 20 * 5
    assert found.ack_failed == 0
    # On SQLite serve's processor child runs the syncs: its CPU and RSS are counted too.
    expected = {"serve", "serve's processor"} if kind == "sqlite" else {"serve", "worker 0", "worker 1"}
    assert set(found.rss_kb) == expected
    assert all(kb > 10_000 for kb in found.rss_kb.values())
    # On PostgreSQL the CPU of the database connections serving the case is counted too.
    database = {"PostgreSQL backends"} if kind == "postgres" else set()
    assert set(found.cpu) == expected | {"sandbox"} | database
    if kind == "postgres":  # every sync job (2 installations × 2 resources) deferred at the tick and started
        assert len(found.deferred) == 4
        assert len(found.job_starts) == 4
        assert found.transactions_per_request > 0  # at this size mostly the queue's own polling and the webhooks


def test_stores_spread_over_several_sandbox_processes_each_keep_their_budget() -> None:
    setup = Setup("sqlite", 4, seconds=3, warmup=2, lead=10, products=20, orders=20, webhook_rate=20, sandboxes=2)
    found = run_case(setup)
    assert {"sandbox 0", "sandbox 1"} <= set(found.cpu)
    assert len(found.sandbox_requests) == 2
    assert all(served > 0 for served in found.sandbox_requests)  # stores 0, 2 on one; 1, 3 on the other
    assert all(0.7 <= share <= 1.1 for share in found.shares), found.shares
    assert found.throttled == 0
