"""Benchmark: what a rate budget costs per grant, in one process, on the real clock (issue #17 item 5).

N installations at 4 requests/s, 3 callers each (a request takes 50 ms after its grant), for
``--seconds``: the in-process limiter (SQLite's) and the shared one (PostgreSQL's ``rate_budgets``
row, on a fresh database of ``--postgres``'s server, dropped after). Printed per kind: grants as a
share of the budgets (callers still waiting at the end finish after it: a little over 100% of
what the paced rate allows), CPU of this process per grant, and for the shared budget the SQL
statements and pool checkouts (a checkout of a connection idle over 2 s pings it first, as the
store's engine does: ``store.pg_ping``) per grant; and the smallest gap between two grants of one
installation, which must not be under the budget's interval (250 ms).

``--workers W`` (shared budget only) gives each installation W limiters on W engines of their
own, as W worker processes would have, its callers spread over them: their leases alternate, and
a lease's last slot, granted late by the loop, must survive the handover to the other worker.
``--busy MS`` makes the loop late as a busy worker's is: a task holds it for up to MS ms (uniform,
seeded) every 5 ms, as store calls and mapping on a worker's loop do.

Run: ``.venv/bin/python bench/budgets.py --n 50 --seconds 10 [--workers 2]``
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import random
import time
from typing import Any

from sqlalchemy import create_engine, event

from miniapp_sync.clock import SystemClock
from miniapp_sync.jobs.schema import upgrade_database
from miniapp_sync.provider.ratelimit import RateLimiter
from miniapp_sync.provider.shared_budget import SharedRateLimiter
from miniapp_sync.store import Store
from miniapp_sync.store.pg_ping import ping_when_idle
from miniapp_sync.testing import temporary_database

RATE = 4.0
CALLERS = 3
LATENCY = 0.05


async def hog(busy: float, end: float) -> None:
    """Hold the event loop for up to ``busy`` seconds every 5 ms until ``end``: a busy worker's lateness."""
    rng = random.Random(17)
    while time.monotonic() < end:
        until = time.monotonic() + rng.uniform(0, busy)
        while time.monotonic() < until:
            pass
        await asyncio.sleep(0.005)


async def drive(groups: list[list[RateLimiter]], seconds: float, busy: float = 0.0) -> tuple[list[list[float]], float]:
    """Run the callers for ``seconds``; return each group's (installation's) grant times and the CPU seconds spent.

    An installation's callers take its limiters (one a worker) in turn.
    """
    granted: list[list[float]] = [[] for _ in groups]
    end = time.monotonic() + seconds

    async def caller(limiter: RateLimiter, times: list[float]) -> None:
        while time.monotonic() < end:
            times.append(await limiter.acquire())
            await asyncio.sleep(LATENCY)

    cpu = time.process_time()
    await asyncio.gather(
        hog(busy, end),
        *(
            caller(group[k % len(group)], times)
            for group, times in zip(groups, granted, strict=True)
            for k in range(CALLERS)
        ),
    )
    return [sorted(times) for times in granted], time.process_time() - cpu


def summary(kind: str, granted: list[list[float]], cpu: float, seconds: float, extra: str = "") -> None:
    grants = sum(len(times) for times in granted)
    gaps = [b - a for times in granted for a, b in itertools.pairwise(times)]
    print(
        f"{kind}: {grants:,} grants, {grants / (len(granted) * RATE * seconds):.1%} of the budgets; "
        f"{cpu / grants * 1e6:.0f} µs CPU a grant{extra}; smallest gap {min(gaps) * 1000:.1f} ms"
    )


async def in_process(n: int, seconds: float, busy: float) -> None:
    clock = SystemClock()
    limiters = [[RateLimiter(RATE, clock=clock)] for _ in range(n)]
    granted, cpu = await drive(limiters, seconds, busy)
    summary("in-process", granted, cpu, seconds)


async def shared(url: str, n: int, seconds: float, workers: int, busy: float) -> None:
    with Store.open(url) as store:
        keys = [
            store.save_installation(f"t{k}", "salla", credentials=b"x", metadata={}, user_input={}).id for k in range(n)
        ]
    engines = [create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1)) for _ in range(workers)]
    for engine in engines:
        ping_when_idle(engine)
    counts = {"statements": 0, "checkouts": 0}

    def counted(name: str) -> Any:
        def count(*_: Any) -> None:
            counts[name] += 1

        return count

    for engine in engines:
        event.listen(engine, "before_cursor_execute", counted("statements"))
        event.listen(engine.pool, "checkout", counted("checkouts"))
    clock = SystemClock()
    limiters: list[list[RateLimiter]] = [
        [SharedRateLimiter(engine, key, RATE, clock=clock) for engine in engines] for key in keys
    ]
    for limiter in limiters:  # each budget's row made, outside the figures
        await limiter[0].acquire()
    counts.update(statements=0, checkouts=0)
    granted, cpu = await drive(limiters, seconds, busy)
    grants = sum(len(times) for times in granted)
    dropped = sum(limiter.dropped for group in limiters for limiter in group if isinstance(limiter, SharedRateLimiter))
    extra = (
        f", {counts['statements'] / grants:.2f} statements + {counts['checkouts'] / grants:.2f} checkouts a grant"
        f", {dropped} leased slots dropped"
    )
    summary("shared (PostgreSQL)", granted, cpu, seconds, f", {workers} worker(s) a budget{extra}")
    for engine in engines:
        engine.dispose()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=50, help="installations")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=1, help="limiters (workers) per installation, shared budget")
    parser.add_argument("--busy", type=float, default=0.0, help="ms the loop is held at most every 5 ms")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args(argv)
    asyncio.run(in_process(args.n, args.seconds, args.busy / 1000))
    with temporary_database(args.postgres, "miniapp_sync_bench_budgets") as url:
        for _ in upgrade_database(url, environ={"MINIAPP_SYNC_SECRET_KEY": "bench-key-not-a-secret"}):
            pass
        asyncio.run(shared(url, args.n, args.seconds, args.workers, args.busy / 1000))


if __name__ == "__main__":
    main()
