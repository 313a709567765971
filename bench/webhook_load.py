"""Benchmark: webhooks under steady load, acknowledged **and** processed, on SQLite (issue #17 item 4).

Setup: as ``bench/webhook_ingest.py`` (whose helpers this shares): ``miniapp-sync serve`` in a child
process on 127.0.0.1 with the example Salla definition and a fresh SQLite store (WAL,
synchronous=FULL) per rate, one installation, and its processor and trigger delivery run by serve
in each of its modes: ``--processor inline`` (in the server's own process) and ``--processor
separate`` (the default: a child process runs the queue, the server only receives). Deliveries
are signed ``order.created`` bodies with line items and a customer (~5 kB), each with a unique
order id, built before the clock starts. The installation's tenant has one trigger subscription:
a bare uvicorn endpoint in another child process that answers 200, so every processed delivery
also costs a customer upsert, an order upsert, a trigger event and its signed POST.

(a) ceiling: the bare uvicorn endpoint under the closed-loop generator of ``bench/webhook_ingest.py``
    (``--concurrency`` connections, ``--ceiling-seconds``), measured in the same run.
(b) for each rate of ``--rates`` (ascending), once serve answers and a few warm-up deliveries are
    processed (so that its start-up is not counted): an open-loop generator sends at that rate on a fixed
    schedule for ``--seconds`` (a late answer does not slow the schedule, so latency includes
    queueing), then waits up to ``--drain-seconds`` for the inbox to empty. Printed: ack latency
    p50/p99 as the sender sees it; processing lag p50/p99 (processed_at - received_at of the inbox
    rows); the backlog (rows pending or processing) when sending stopped and its largest sample;
    the rows processed and the trigger POSTs delivered; CPU seconds per delivery of each serve
    process (user + system, from /proc: the figure that survives a busy machine; separate: the
    server, which acknowledges, apart from the processor) and the generator's. A rate passes when
    ack p99 ≤ 50 ms, lag p99 ≤ 1 s, every delivery got a 2xx and every one was processed. The
    search stops at the first rate that fails.

The result, per mode: the highest passing rate, as a share of (a) (target ≥ 25%) — a wall-clock
figure, to be judged against the load average printed before and after each phase.

Run: ``.venv/bin/python bench/webhook_load.py`` (30 s per rate as the issue asks, so a few minutes;
``--rates 1000 --seconds 10`` for one short look; ``--modes separate`` for one mode).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import resource
import sqlite3
import statistics
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from webhook_ingest import (
    Delivery,
    deliveries,
    free_port,
    lags,
    machine,
    open_loop,
    pending,
    percentile,
    phase_ceiling,
    prepare_store,
    serve_args,
    server,
)

from miniapp_sync.runtime import Runtime
from miniapp_sync.sandbox import Sandbox, SandboxConfig
from miniapp_sync.store import Outbox
from miniapp_sync.webhooks.delivery import seal

BENCH = Path(__file__).resolve().parent
ACK_P99 = 0.050  # seconds
LAG_P99 = 1.0
TICKS = os.sysconf("SC_CLK_TCK")
WARM_UP = 5  # deliveries acknowledged and processed before each rate's clock and CPU counters start


@dataclass(frozen=True)
class Outcome:
    """One rate's figures."""

    rate: float
    sent: int
    failed: int
    ack: list[float]  # seconds
    lag: list[float]
    backlog_end: int
    backlog_max: int
    processed: int
    delivered: int
    mode: str
    cpu: dict[str, tuple[float, float]]  # user and system CPU seconds of each serve process, phase and drain
    generator_cpu: float

    @property
    def passed(self) -> bool:
        return (
            not self.failed
            and self.processed == self.sent
            and percentile(self.ack, 0.99) <= ACK_P99
            and percentile(self.lag, 0.99) <= LAG_P99
        )


def cpu_seconds(pid: int) -> tuple[float, float]:
    """Return a process's user and system CPU seconds so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / TICKS, int(fields[12]) / TICKS  # utime, stime (fields 14 and 15 of stat)


def serve_pids(pid: int, mode: str) -> dict[str, int]:
    """Return serve's processes by role: the server, and with ``--processor separate`` its processor child.

    serve listens before it forks: the child may come a moment after the port answers.
    """
    deadline = time.monotonic() + 30
    while True:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        if mode != "separate" or children:
            return {"server": pid, **({"processor": int(children[0])} if children else {})}
        if time.monotonic() > deadline:
            raise SystemExit("serve --processor separate started no processor within 30 s")
        time.sleep(0.05)


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def subscribe(store: Path, url: str) -> None:
    """Subscribe ``url`` to the bench installation's trigger events."""
    with Runtime.open(str(store), environ={"MINIAPP_SYNC_SECRET_KEY": "webhook benchmark"}) as runtime:
        Outbox(runtime.store).subscribe("bench", "salla", url, seal(runtime.installations.vault, "bench-subscriber"))


def delivered(store: Path) -> int:
    with contextlib.closing(sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=5)) as conn:
        query = "SELECT count(*) FROM trigger_deliveries WHERE status = 'delivered'"
        return int(conn.execute(query).fetchone()[0])


def wait_delivered(store: Path, count: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while delivered(store) < count and time.monotonic() < deadline:
        time.sleep(0.05)


def phase_rate(
    rate: float,
    mode: str,
    load: list[Delivery],
    args: argparse.Namespace,
    folder: Path,
    sandbox: Sandbox,
    subscriber: str,
) -> Outcome:
    store, port = folder / f"{mode}-{rate:g}.sqlite", free_port()
    prepare_store(store, sandbox)
    subscribe(store, subscriber)
    items = load[: int(rate * args.seconds)]
    with server([*serve_args(store, port, sandbox), "--processor", mode], port) as process:
        url = f"http://127.0.0.1:{port}/miniapps/salla/webhooks"
        pids = serve_pids(process.pid, mode)
        warm, warm_posts = warm_up(port, url, store, sandbox)
        cpu, mine = {role: cpu_seconds(pid) for role, pid in pids.items()}, own_cpu()
        latencies, backlog, failed = asyncio.run(open_loop(url, items, rate, store, grace=args.drain_seconds))
        mine = own_cpu() - mine
        left = pending(store)
        deadline = time.monotonic() + args.drain_seconds
        while pending(store) and time.monotonic() < deadline:
            time.sleep(0.05)
        processed = len(lags(store, warm))
        wait_delivered(store, warm_posts + processed, args.drain_seconds)
        used = {role: _minus(cpu_seconds(pid), cpu[role]) for role, pid in pids.items()}
    return Outcome(
        rate, len(items), failed, latencies, lags(store, warm), left, max(backlog), processed,
        delivered(store) - warm_posts, mode, used, mine,
    )  # fmt: skip


def warm_up(port: int, url: str, store: Path, sandbox: Sandbox) -> tuple[int, int]:
    """Wait until serve answers HTTP, then until a few deliveries are acknowledged, processed and POSTed.

    serve's port accepts connections (the kernel queues them) from before it opens its store and
    starts its app: without this, that start-up (~0.3 s, more under load) and the first delivery's
    imports in both processes counted as the first deliveries' latency and CPU. Return the inbox
    id the warm-up reached (the figures count rows above it) and the trigger POSTs it made.
    """
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
                if response.status == 200:
                    break
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit("serve did not answer /healthz within 30 s") from None
        time.sleep(0.02)
    _, _, failed = asyncio.run(open_loop(url, deliveries(sandbox, WARM_UP, 9_000_000), 50.0, None))
    if failed:
        raise SystemExit(f"{failed} warm-up deliveries were refused")
    while len(lags(store)) < WARM_UP or pending(store):
        if time.monotonic() > deadline:
            raise SystemExit("the warm-up deliveries were not processed within 30 s")
        time.sleep(0.02)
    wait_delivered(store, WARM_UP, 30)
    with contextlib.closing(sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=5)) as conn:
        last = int(conn.execute("SELECT max(id) FROM webhook_inbox").fetchone()[0])
    return last, delivered(store)


def _minus(now: tuple[float, float], before: tuple[float, float]) -> tuple[float, float]:
    return now[0] - before[0], now[1] - before[1]


def report(outcome: Outcome) -> None:
    ack = [x * 1000 for x in outcome.ack]
    lag = [x * 1000 for x in outcome.lag] or [float("nan")]
    verdict = "meets both targets" if outcome.passed else "MISSES"
    print(f"  {outcome.rate:6,.0f}/s  ack p50 {percentile(ack, 0.5):5.1f} ms  p99 {percentile(ack, 0.99):6.1f} ms  "
          f"│ lag p50 {percentile(lag, 0.5):6.0f} ms  p99 {percentile(lag, 0.99):6.0f} ms  │ {verdict}")  # fmt: skip
    print(f"           {outcome.sent:,} sent, {outcome.failed} non-2xx; backlog {outcome.backlog_end} rows when "
          f"sending stopped (max sampled {outcome.backlog_max}); {outcome.processed:,} processed, "
          f"{outcome.delivered:,} trigger POSTs delivered")  # fmt: skip
    shares = []
    for role, (user, system) in outcome.cpu.items():
        user, system = user / outcome.sent * 1e6, system / outcome.sent * 1e6
        shares.append(f"{role} {user + system:,.0f} µs ({user:,.0f} user + {system:,.0f} system)")
    total = sum(u + s for u, s in outcome.cpu.values()) / outcome.sent * 1e6
    print(f"           CPU per delivery: {', '.join(shares)}; serve in all {total:,.0f} µs; "
          f"generator {outcome.generator_cpu / outcome.sent * 1e6:,.0f} µs; "
          f"load average {os.getloadavg()[0]:.2f} after")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="250,500,750,1000,1250,1500,2000", help="deliveries/s, ascending")
    parser.add_argument("--seconds", type=float, default=30.0, help="duration of each rate")
    parser.add_argument("--drain-seconds", type=float, default=30.0, help="wait for the backlog after a rate")
    parser.add_argument("--ceiling-seconds", type=float, default=8.0)
    parser.add_argument("--concurrency", type=int, default=32, help="connections of the ceiling's generator")
    parser.add_argument("--all", action="store_true", help="run every rate, even past the first that misses")
    parser.add_argument("--modes", default="inline,separate", help="serve --processor modes to run, in order")
    args = parser.parse_args()
    rates = sorted(float(r) for r in args.rates.split(","))
    modes = args.modes.split(",")
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    print(machine())
    sandbox = Sandbox(SandboxConfig(products=40, customers=40, orders=200, carts=0))
    load = deliveries(sandbox, int(max(rates) * args.seconds), 10_000_000)
    size = statistics.mean(len(raw) for raw, _ in load[:100]) / 1000
    gc.collect()
    gc.freeze()  # they live for the whole run: keep the generator's collector from walking them
    print(f"{len(load):,} signed order.created deliveries of ~{size:.1f} kB; {args.seconds:g} s per rate")
    bare = [sys.executable, str(BENCH / "webhook_ingest.py"), "--bare-server"]
    with tempfile.TemporaryDirectory() as tmp:
        ceiling = phase_ceiling(load, argparse.Namespace(seconds=args.ceiling_seconds, concurrency=args.concurrency))
        best: dict[str, float | None] = dict.fromkeys(modes)
        port = free_port()
        with server([*bare, str(port)], port):
            for mode in modes:
                print(f"(b) steady rates, serve --processor {mode}   [targets: ack p99 ≤ 50 ms, lag p99 ≤ 1 s]")
                for rate in rates:
                    outcome = phase_rate(rate, mode, load, args, Path(tmp), sandbox, f"http://127.0.0.1:{port}/")
                    report(outcome)
                    if outcome.passed:
                        best[mode] = rate
                    elif not args.all:
                        break
    for mode, rate in best.items():
        if rate is None:
            print(f"--processor {mode}: no rate met both targets")
        else:
            print(f"--processor {mode}: highest steady rate meeting both: {rate:,.0f}/s = {rate / ceiling:.0%} of (a)"
                  "   [target ≥ 25%]")  # fmt: skip


if __name__ == "__main__":
    main()
