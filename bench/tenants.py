"""Benchmark: many installations syncing at once, each under its own rate budget, while webhooks arrive.

Issue #17 item 5: an operator's real load. Setup, per backend and N:

- one sandbox child process (bench/harness.py) serving N stores (``SandboxConfig.tenants``), or
  ``--sandboxes K`` of them (store ``k`` synced from sandbox ``k mod K``; see below): each
  store its own token pair, merchant id and rate limit of ``RATE`` requests/s (429 above it),
  50 ms of latency on every API request, and the same catalogue of ``--products`` products and
  ``--orders`` orders (1,000 each by default; customers and carts exist but are not synced);
- the example definition (examples/salla) with ``rateLimitPerSecond`` 4, only ``products`` and
  ``orders`` enabled (both with a detail call per record, as the example has them) and a
  ``syncConfiguration.schedule`` that fires once, at one whole second ``--lead`` seconds after
  the set-up: the processes' own schedulers start every sync at that tick (the in-process
  queue's loop on SQLite; Procrastinate's periodic task on PostgreSQL, deferred once by
  whichever worker is first), exactly as a cron tick does in production;
- N installations (``tenant-0`` … ``tenant-N-1``), installed in-process through the runtime with
  their store's tokens (userDetails gives each its storeId), into a fresh store: a SQLite file
  in a temporary folder, or a fresh PostgreSQL database on ``--postgres``'s server (dropped);
- **sqlite**: one ``miniapp-sync serve`` (the embedded default) running the jobs itself with
  ``--concurrency 2N+4`` (one job per installation and resource, plus room for inbox drains);
  **postgres**: ``serve`` receiving webhooks plus 2 ``miniapp-sync worker`` processes with
  ``--concurrency N+4`` each;
- from the tick on, signed ``order.created`` deliveries for new orders, from the N stores in
  turn, sent open-loop at ``--webhook-rate`` (200/s) to the shared route
  ``/miniapps/salla/webhooks`` for ``--warmup`` + ``--seconds`` seconds (bounded: the deliveries
  are built before the tick; a late answer never delays the next send).

Measured over the window [tick + ``--warmup``, tick + ``--warmup`` + ``--seconds``] (the warm-up
is the schedulers' fan-out and the first requests; a full sync of 2,000 records at 4 requests/s
takes ~8.5 minutes, so the window sees syncs in their steady state):
- budget share per installation: its requests the sandbox authorised in the window / (4 × window);
  min and median over the installations, and how many reach 90%;
- records/s overall: records written by the syncs in the window (rows with a run id) / window;
- 429s the sandbox sent during the whole run; peak RSS (VmHWM) of serve and of each worker;
- webhook ack p99 as the sender sees it, and the inbox rows still waiting at the end;
- CPU of each process in the window (cores), which says what limits a run on this machine; on
  PostgreSQL also of the server's backends serving the case's database (the pids seen at the
  window's end: a backend that ended within the window is missed);
- each process's event loop lag in the window (p50, p99, max of a sleep every 10 ms waking late:
  bench/looplag), what a store call or CPU burst on the loop costs every other job there.

With ``--sandboxes K`` > 1 the definition's ``sync.baseUrl`` becomes ``{{sandboxUrl}}/admin/v2``
and each installation's user input names its sandbox (the tenant-built origin of D31: the
processes then run with ``--allow-private-network``, which takes the same unguarded client path
as a rewritten origin). Each sandbox still knows every store's tokens (OAuth and userDetails go to
the first); a store's API requests, and so its rate budget, all go to its own sandbox.

What an installation syncing costs serve's processor in memory is its two runs' state: the mapped
records of the batch being filled (up to batchSize 200, ~2-2.5 KB each), the list records of the
page whose details are out (left as each detail is mapped) and the requests in flight. A machine
too busy for the processes inflates the latency the detail fan-out observes (the processor's own
loop lag counts), so requests in flight rise toward the cap (64 a run): whole pages are held and
thousands of detail tasks wait in the rate limiters (tracemalloc at N=100, load ~13: 11,788).

Targets: every installation ≥ 90% of its budget with zero 429s, webhook ack p99 ≤ 50 ms, and
peak RSS growing sub-linearly in N (checked between the N values of one run). The verdict names
the largest N that met them per backend. Wall-clock figures: mind the load average printed.

Run: ``.venv/bin/python bench/tenants.py --n 50,200,500 --backend sqlite,postgres`` (each case
takes about --lead + --warmup + --seconds plus the installs: ~1.5 minutes at N=50, more at 500).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import harness
from harness import EXAMPLE, children, command, cpu_seconds, free_port, peak_rss_kb, percentile, provider
from sqlalchemy import create_engine, text
from webhook_ingest import deliveries, open_loop

from miniapp_sync.definition.loader import load_file
from miniapp_sync.network import Rewrites
from miniapp_sync.runtime import Runtime, load_miniapp
from miniapp_sync.sandbox import Sandbox, SandboxConfig
from miniapp_sync.testing import temporary_database

RATE = 4.0  # rateLimitPerSecond of every installation, and the sandbox's limit per store
LATENCY = 0.050
ENV = {**os.environ, "MINIAPP_SYNC_SECRET_KEY": "bench-key-not-a-secret"}
LOOP_LAG = Path(__file__).with_name("looplag")  # its sitecustomize samples a process's event loop lag
WEBHOOK_IDS = 90_000_000  # order ids of the deliveries: far above the catalogue's, so each is a new order
SYNCED = "SELECT count(*) FROM records WHERE run_id IS NOT NULL"
WAITING = "SELECT count(*) FROM webhook_inbox WHERE status IN ('pending', 'processing')"
WORKERS = "SELECT count(*) FROM procrastinate_workers"
CONNECTIONS = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
MAX_CONNECTIONS = "SELECT setting::int FROM pg_settings WHERE name = 'max_connections'"
TRANSACTIONS = "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()"
# The server processes serving this case's database (the processes' pooled connections): their CPU is the case's.
BACKENDS = "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
POSTGRES_CPU = "PostgreSQL backends"
# Which worker runs each installation's syncs: two workers share one budget through its leases.
SYNC_WORKERS = (
    "SELECT i.tenant, count(DISTINCT j.worker_id) FROM procrastinate_jobs j "
    "JOIN installations i ON i.id = j.args->>'installation_id' "
    "WHERE j.task_name = 'miniapp_sync.sync' AND j.status = 'doing' GROUP BY i.tenant"
)
# Each sync job's events (Procrastinate's trigger writes them): when it was deferred and when a worker started it.
JOB_EVENTS = (
    "SELECT e.type::text, extract(epoch FROM e.at) FROM procrastinate_events e "
    "JOIN procrastinate_jobs j ON j.id = e.job_id WHERE j.task_name = 'miniapp_sync.sync' "
    "AND e.type IN ('deferred', 'started')"
)


@dataclass(frozen=True)
class Setup:
    """One case: a backend, N installations, and the sizes and times of the run."""

    backend: str  # sqlite | postgres
    n: int
    seconds: float = 60.0
    warmup: float = 10.0
    lead: float = 15.0  # seconds from the set-up to the tick: the processes must be up by then
    products: int = 1_000
    orders: int = 1_000
    webhook_rate: float = 200.0
    workers: int = 2
    postgres: str = "postgresql://postgres@127.0.0.1:5432/test"
    sandboxes: int = 1


@dataclass
class Result:
    """What one case measured (see the module docstring)."""

    setup: Setup
    shares: list[float]
    fetched: int  # records fetched in the window (their detail calls)
    records: int  # records the syncs wrote in the window (batchSize 200 a transaction: lumpier)
    throttled: int
    rss_kb: dict[str, int]
    cpu: dict[str, float]  # process → cores used in the window
    acks_ms: list[float]
    ack_failed: int
    waiting: int
    started: int  # installations that had made a request by the window's start
    connections: tuple[int, int] = (0, 0)  # PostgreSQL: the most seen on the database (sampled), max_connections
    # PostgreSQL: seconds from the tick to each sync job's defer and start (by the window's end);
    # the database's transactions in the window per provider request (what the budget costs in round trips).
    deferred: list[float] = field(default_factory=list)
    job_starts: list[float] = field(default_factory=list)
    transactions_per_request: float = 0.0
    workers_of: dict[int, int] = field(default_factory=dict)  # PostgreSQL: installation → workers running its syncs
    sandbox_requests: list[int] = field(default_factory=list)  # API requests each sandbox process served in the window
    # process → its event loop's lag in the window, seconds: (p50, p99, max, samples); see bench/looplag.
    lags: dict[str, tuple[float, float, float, int]] = field(default_factory=dict)
    load: float = field(default_factory=lambda: os.getloadavg()[0])

    @property
    def records_per_second(self) -> float:
        return self.fetched / self.setup.seconds

    @property
    def ack_p99(self) -> float:
        return percentile(self.acks_ms, 0.99) if self.acks_ms else math.inf

    def verdicts(self) -> dict[str, bool]:
        """Return each per-case target and whether it was met."""
        return {
            "every installation ≥ 90% of its budget": min(self.shares) >= 0.9,
            "zero 429s": self.throttled == 0,
            "webhook ack p99 ≤ 50 ms, every delivery 2xx": self.ack_p99 <= 50 and self.ack_failed == 0,
        }

    def limits(self) -> list[str]:
        """Return what held this case back from its targets, most binding first (empty: nothing did)."""
        missed = [target for target, ok in self.verdicts().items() if not ok]
        if not missed:
            return []
        found = [f"missed: {'; '.join(missed)}"]
        cores = os.cpu_count() or 1
        busy = sum(self.cpu.values())
        if busy >= 0.85 * cores:
            found.append(f"the machine's CPU: {busy:.2f} of {cores} cores busy (load {self.load:.1f})")
        elif self.load > cores:
            found.append(
                f"other work on the machine: load average {self.load:.1f} on {cores} cores, and this case's "
                f"processes got {busy:.2f} cores (a starved sandbox meters bunched arrivals: 429s); run it quiet"
            )
        loops = {label: cores for label, cores in self.cpu.items() if label != POSTGRES_CPU}
        label, most = max(loops.items(), key=lambda item: item[1])
        if most >= 0.85:
            found.append(f"{label}'s event loop: {most:.2f} of the one core a Python process can use")
        if self.started < self.setup.n:
            found.append(f"the fan-out: {self.started} of {self.setup.n} installations syncing by the window")
        if self.waiting:
            found.append(f"inbox processing: {self.waiting:,} deliveries still waiting at the end")
        used, allowed = self.connections
        if allowed and used >= 0.9 * allowed:
            found.append(f"PostgreSQL connections: {used} of max_connections {allowed}")
        if len(found) == 1:
            found.append("no saturated resource seen: profile the processes (py-spy) at this N")
        return found


# ----------------------------------------------------------------------------- set-up


def tick_cron(at: datetime) -> str:
    """Return a cron expression (seconds in a sixth field) that fires at ``at`` (UTC, whole second) and only then."""
    return f"{at.minute} {at.hour} {at.day} {at.month} * {at.second}"


def write_definition(folder: Path, cron: str, *, per_tenant_sandbox: bool = False) -> Path:
    """Write the example with the budget, the synced resources and the schedule of the benchmark."""
    document, _ = load_file(EXAMPLE)
    sync = document["sync"]
    sync["syncConfiguration"].update(rateLimitPerSecond=RATE, schedule=cron)
    if per_tenant_sandbox:
        sync["baseUrl"] = "{{sandboxUrl}}/admin/v2"
    for key, resource in sync["resources"].items():
        resource["enabled"] = key in ("products", "orders")
    path = folder / "salla.json"
    path.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    return path


def rewrites(base_url: str) -> list[str]:
    return ["--rewrite", f"https://api.salla.dev={base_url}", "--rewrite", f"https://accounts.salla.sa={base_url}"]


async def install(store: str, base_urls: list[str], definition: Path, config: SandboxConfig) -> None:
    """Install one tenant per sandbox store, with that store's tokens (userDetails gives its storeId)."""
    base_url = base_urls[0]
    origins = Rewrites({"https://api.salla.dev": base_url, "https://accounts.salla.sa": base_url})
    several = len(base_urls) > 1
    with Runtime.open(store, rewrites=origins, environ=ENV, allow_private_network=several) as runtime:
        app = runtime.add(load_miniapp(definition))
        for tenant in range(config.tenants):
            access, refresh = config.tokens(tenant)
            credentials = {"accessToken": access, "refreshToken": refresh}
            chosen = {"sandboxUrl": base_urls[tenant % len(base_urls)]} if several else None
            await runtime.installations.install(
                app.definition, f"tenant-{tenant}", credentials=credentials, user_input=chosen
            )


class Sandboxes:
    """The sandbox child processes of a case, answering as one: their stats summed."""

    def __init__(self, providers: list[harness.Provider]) -> None:
        self.providers = providers
        self.base_urls = [p.base_url for p in providers]

    @property
    def pids(self) -> dict[str, int]:
        if len(self.providers) == 1:
            return {"sandbox": self.providers[0].pid}
        return {f"sandbox {k}": p.pid for k, p in enumerate(self.providers)}

    def stats(self) -> dict[str, Any]:
        summed: dict[str, Any] = {"apiRequests": 0, "responses": {}, "byRoute": {}, "byTenant": {}, "each": []}
        for child in self.providers:
            answer = child.stats()
            summed["apiRequests"] += int(answer["apiRequests"])
            summed["each"].append(int(answer["apiRequests"]))
            for counter in ("responses", "byRoute", "byTenant"):
                for key, value in answer[counter].items():
                    summed[counter][key] = summed[counter].get(key, 0) + int(value)
        return summed


@contextlib.contextmanager
def fresh_store(setup: Setup, folder: Path) -> Iterator[str]:
    """Yield a new store's URL: a SQLite file in ``folder``, or a fresh database (dropped afterwards), migrated."""
    if setup.backend == "sqlite":
        yield str(folder / "store.sqlite")
        return
    from miniapp_sync.jobs.schema import upgrade_database

    with temporary_database(setup.postgres, "miniapp_sync_bench_tenants") as url:
        for _ in upgrade_database(url, environ=ENV):
            pass  # migrated and the job queue's schema installed
        yield url


def count(store: str, query: str) -> int:
    return int(rows(store, query)[0][0])


def rows(store: str, query: str) -> list[tuple[Any, ...]]:
    url = f"sqlite:///{store}" if "://" not in store else store.replace("postgresql://", "postgresql+psycopg://", 1)
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(text(query))]
    finally:
        engine.dispose()


@contextlib.contextmanager
def processes(
    setup: Setup, store: str, definition: Path, base_url: str, log: IO[bytes], lags: Path
) -> Iterator[dict[str, Any]]:
    """Run serve (and the workers) until the block ends; yield {label: Popen} with serve's ``port``.

    Each process samples its event loop's lag into ``lags`` (bench/looplag/sitecustomize.py).
    """
    path = os.pathsep.join(p for p in (str(LOOP_LAG), ENV.get("PYTHONPATH", "")) if p)
    env = ENV | {"PYTHONPATH": path, "MINIAPP_SYNC_BENCH_LOOP_LAG": str(lags)}
    port = free_port()
    secret = f"webhookSecret={SandboxConfig().webhook_secret}"
    common = ["-d", str(definition), "--store", store, "--config", secret, *rewrites(base_url)]
    if setup.sandboxes > 1:  # the installations' own sandbox origins (see the module docstring)
        common.append("--allow-private-network")
    jobs = ["--concurrency", str(2 * setup.n + 4)] if setup.backend == "sqlite" else []
    started: dict[str, Any] = {}
    try:
        args = [*command(), "serve", *common, "--port", str(port), *jobs]
        serve = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=log)
        started["serve"] = serve
        if setup.backend == "postgres":
            each = -(-2 * setup.n // setup.workers) + 4
            for k in range(setup.workers):
                args = [*command(), "worker", *common, "--concurrency", str(each), "--name", f"bench-{k}"]
                started[f"worker {k}"] = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=log)
        harness.wait_listening(port, serve)
        if setup.backend == "postgres":
            deadline = time.monotonic() + 30
            while count(store, WORKERS) < setup.workers:
                if time.monotonic() > deadline or any(p.poll() is not None for p in started.values()):
                    raise SystemExit("the workers did not start")
                time.sleep(0.1)
        yield started | {"port": port}
    finally:
        for process in started.values():
            harness.stop(process)


# ----------------------------------------------------------------------------- a case


async def sleep_until(moment: float) -> None:
    await asyncio.sleep(max(0.0, moment - time.time()))


def run_case(setup: Setup) -> Result:
    """Set up, wait for the tick, measure the window, clean up; return what was measured."""
    config = SandboxConfig(
        products=setup.products,
        customers=min(200, setup.orders),
        orders=setup.orders,
        carts=0,
        latency=LATENCY,
        rate_limit=RATE,
        tenants=setup.n,
    )
    stores = Sandbox(SandboxConfig(products=5, customers=5, orders=20, carts=0, tenants=setup.n))
    paced = deliveries(stores, int(setup.webhook_rate * (setup.warmup + setup.seconds)), WEBHOOK_IDS)
    several = setup.sandboxes > 1
    with (
        tempfile.TemporaryDirectory() as scratch,
        contextlib.ExitStack() as children,
        fresh_store(setup, Path(scratch)) as store,
    ):
        sandbox = Sandboxes([children.enter_context(provider(**asdict(config))) for _ in range(setup.sandboxes)])
        folder = Path(scratch)
        started = time.time()
        first = write_definition(folder, "0 0 1 1 *", per_tenant_sandbox=several)
        asyncio.run(install(store, sandbox.base_urls, first, config))
        print(f"  {setup.n} installations in {time.time() - started:.1f} s", flush=True)
        lead = setup.lead
        for _ in range(3):  # a machine too busy to start the processes within the lead: again with twice the lead
            tick = math.ceil(time.time() + lead)
            cron = tick_cron(datetime.fromtimestamp(tick, UTC))
            definition = write_definition(folder, cron, per_tenant_sandbox=several)
            with (
                (folder / "processes.log").open("wb") as log,
                processes(setup, store, definition, sandbox.base_urls[0], log, folder) as running,
            ):
                if time.time() > tick - 1:
                    print(f"  the processes were not up 1 s before the tick: again with a lead of {2 * lead:.0f} s")
                    lead *= 2
                    continue
                print(f"  processes up; the tick in {tick - time.time():.1f} s", flush=True)
                result = asyncio.run(measure(setup, store, sandbox, running, paced, tick, folder))
            if min(result.shares) == 0:
                print("  log tail:", (folder / "processes.log").read_text(errors="replace")[-1500:], sep="\n")
            return result
        raise SystemExit(f"the processes did not start within {lead / 2:.0f} s")


async def measure(
    setup: Setup,
    store: str,
    sandbox: Sandboxes,
    running: dict[str, Any],
    paced: list[tuple[bytes, dict[str, str]]],
    tick: float,
    lags: Path,
) -> Result:
    url = f"http://127.0.0.1:{running['port']}/miniapps/salla/webhooks"
    pids = {label: p.pid for label, p in running.items() if label != "port"} | sandbox.pids
    await sleep_until(tick)
    # On SQLite serve forks its processor (--processor separate, the default) once it listens,
    # so it is looked for at the tick: the syncs and inbox drains run there, its CPU and RSS count.
    forked = children(running["serve"].pid)
    pids |= {("serve's processor" if len(forked) == 1 else f"serve's child {k}"): pid for k, pid in enumerate(forked)}
    # Answers missing 5 s after the last send count as failed: the case ends on time.
    sending = asyncio.create_task(open_loop(url, paced, setup.webhook_rate, None, grace=5.0))
    await sleep_until(tick + setup.warmup)
    postgres = setup.backend == "postgres"
    before, synced, cpu, transactions, backends = await asyncio.gather(
        asyncio.to_thread(sandbox.stats),
        asyncio.to_thread(count, store, SYNCED),
        asyncio.to_thread(lambda: {label: cpu_seconds(pid) for label, pid in pids.items()}),
        asyncio.to_thread(count, store, TRANSACTIONS) if postgres else asyncio.sleep(0, 0),
        asyncio.to_thread(backend_cpu, store) if postgres else asyncio.sleep(0, {}),
    )
    connections: list[int] = []
    end = tick + setup.warmup + setup.seconds
    while postgres and time.time() < end - 1:  # how many connections the processes hold: max_connections binds
        connections.append(await asyncio.to_thread(count, store, CONNECTIONS))
        await sleep_until(min(end - 1, time.time() + 5))
    await sleep_until(end)
    after, synced_after, cpu_after, transactions_after, backends_after = await asyncio.gather(
        asyncio.to_thread(sandbox.stats),
        asyncio.to_thread(count, store, SYNCED),
        asyncio.to_thread(lambda: {label: cpu_seconds(pid) for label, pid in pids.items()}),
        asyncio.to_thread(count, store, TRANSACTIONS) if postgres else asyncio.sleep(0, 0),
        asyncio.to_thread(backend_cpu, store) if postgres else asyncio.sleep(0, {}),
    )
    if postgres:  # a backend that started in the window counts whole; one that ended in it is missed
        cpu[POSTGRES_CPU] = sum(backends.get(pid, 0.0) for pid in backends_after)
        cpu_after[POSTGRES_CPU] = sum(backends_after.values())
    allowed = await asyncio.to_thread(count, store, MAX_CONNECTIONS) if postgres else 0
    events = await asyncio.to_thread(rows, store, JOB_EVENTS) if postgres else []
    split = await asyncio.to_thread(rows, store, SYNC_WORKERS) if postgres else []
    requests = int(after["apiRequests"]) - int(before["apiRequests"])
    rss = {label: peak_rss_kb(pid) for label, pid in pids.items() if not label.startswith("sandbox")}
    latencies, _, failed = await sending
    waiting = await asyncio.to_thread(count, store, WAITING)
    budget = RATE * setup.seconds
    shares = [_delta(before, after, "byTenant", str(k)) / budget for k in range(setup.n)]
    return Result(
        setup=setup,
        shares=shares,
        fetched=sum(_delta(before, after, "byRoute", f"GET /admin/v2/{r}/{{id}}") for r in ("products", "orders")),
        records=synced_after - synced,
        throttled=int(after["responses"].get("429", 0)),
        rss_kb=rss,
        cpu={label: (cpu_after[label] - cpu[label]) / setup.seconds for label in cpu},
        acks_ms=[x * 1000 for x in latencies],
        ack_failed=failed,
        waiting=waiting,
        started=len(before["byTenant"]),
        connections=(max(connections, default=0), allowed),
        deferred=sorted(float(at) - tick for kind, at in events if kind == "deferred"),
        job_starts=sorted(float(at) - tick for kind, at in events if kind == "started"),
        transactions_per_request=(transactions_after - transactions) / max(1, requests),
        workers_of={int(tenant.rsplit("-", 1)[1]): int(n) for tenant, n in split},
        sandbox_requests=[b - a for a, b in zip(before["each"], after["each"], strict=True)],
        lags={label: loop_lag(lags / f"lag-{pid}.txt", end - setup.seconds, end) for label, pid in pids.items()
              if (lags / f"lag-{pid}.txt").exists()},
    )  # fmt: skip


def backend_cpu(store: str) -> dict[int, float]:
    """Return the CPU seconds used so far by each PostgreSQL backend serving ``store``'s database (by pid)."""
    used = {}
    for (pid,) in rows(store, BACKENDS):
        with contextlib.suppress(OSError):  # a backend that ended meanwhile
            used[int(pid)] = cpu_seconds(int(pid))
    return used


def loop_lag(path: Path, start: float, end: float) -> tuple[float, float, float, int]:
    """Return a process's event loop lag samples in [start, end]: (p50, p99, max, samples), seconds."""
    lags = []
    for line in path.read_text().splitlines():
        at, _, lag = line.partition(" ")
        if lag and start <= float(at) <= end:
            lags.append(float(lag))
    if not lags:
        return (math.nan, math.nan, math.nan, 0)
    return (percentile(lags, 0.5), percentile(lags, 0.99), max(lags), len(lags))


def _delta(before: dict[str, Any], after: dict[str, Any], counter: str, key: str) -> int:
    return int(after[counter].get(key, 0)) - int(before[counter].get(key, 0))


# ----------------------------------------------------------------------------- report


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def report(result: Result) -> None:
    s = result.setup
    shares = result.shares
    full = sum(share >= 0.9 for share in shares)
    rss = ", ".join(f"{label} {kb / 1024:.0f} MiB" for label, kb in result.rss_kb.items())
    cpu = ", ".join(f"{label} {cores:.2f}" for label, cores in result.cpu.items())
    print(f"{s.backend} N={s.n}: load average {result.load:.2f} at the end")
    print(
        f"  budget used per installation: min {min(shares):.1%}, median {statistics.median(shares):.1%}, "
        f"max {max(shares):.1%}; {full} of {s.n} ≥ 90%; {result.started} syncing by the window's start"
    )
    print(
        f"  records/s overall: {result.records_per_second:,.0f} fetched with their details "
        f"({result.fetched:,} in {s.seconds:.0f} s; {result.records:,} written meanwhile, in batches of 200)"
    )
    print(f"  429s: {result.throttled}")
    if len(result.sandbox_requests) > 1:
        print(f"  API requests each sandbox process served in the window: {result.sandbox_requests}")
    print(f"  peak RSS: {rss}")
    print(
        f"  webhook ack at {s.webhook_rate:.0f}/s: p50 {percentile(result.acks_ms, 0.5):.1f} ms, "
        f"p99 {result.ack_p99:.1f} ms, {result.ack_failed} non-2xx; inbox rows waiting at the end {result.waiting:,}"
    )
    print(f"  CPU in the window (cores): {cpu}")
    for label, (p50, p99, most, samples) in result.lags.items():
        print(
            f"  {label}'s event loop lag in the window: p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, "
            f"max {most * 1000:.0f} ms ({samples:,} wake-ups every 10 ms)"
        )
    used, allowed = result.connections
    if allowed:
        print(f"  PostgreSQL connections: at most {used} seen (sampled every 5 s) of max_connections {allowed}")
        print(f"  PostgreSQL transactions in the window: {result.transactions_per_request:.1f} per provider request")
    if result.workers_of:
        for n in sorted(set(result.workers_of.values())):
            mine = [result.shares[k] for k, workers in result.workers_of.items() if workers == n]
            print(
                f"  installations whose running syncs were on {n} worker(s) at the window's end: {len(mine)}, "
                f"budget used median {statistics.median(mine):.1%}, min {min(mine):.1%}"
            )
    if result.deferred:
        starts = result.job_starts
        started = (
            f"started p50 {percentile(starts, 0.5):.1f} s, max {starts[-1]:.1f} s after the tick" if starts else "none"
        )
        print(
            f"  sync jobs: {len(result.deferred)} deferred by {result.deferred[-1]:.1f} s after the tick; "
            f"{len(starts)} started by the window's end ({started})"
        )
    for target, ok in result.verdicts().items():
        print(f"  target {target}: {_met(ok)}")
    for limit in result.limits():
        print(f"  limited by: {limit}")


def sublinear(results: list[Result]) -> dict[tuple[int, int], bool]:
    """Return, between consecutive N of one backend, whether the largest peak RSS grew less than N did."""
    ordered = sorted(results, key=lambda r: r.setup.n)
    return {
        (a.setup.n, b.setup.n): max(b.rss_kb.values()) / max(a.rss_kb.values()) < b.setup.n / a.setup.n
        for a, b in itertools.pairwise(ordered)
    }


def conclude(results: list[Result]) -> None:
    for backend in sorted({r.setup.backend for r in results}):
        mine = sorted((r for r in results if r.setup.backend == backend), key=lambda r: r.setup.n)
        growth = sublinear(mine)
        for (small, large), ok in growth.items():
            print(f"{backend}: peak RSS from N={small} to N={large} grows sub-linearly: {_met(ok)}")
        passing = [
            r.setup.n
            for r in mine
            if all(r.verdicts().values()) and all(ok for (_, large), ok in growth.items() if large == r.setup.n)
        ]
        largest = f"N={max(passing)}" if passing else "none of the N run"
        print(f"{backend}: the largest N that met every target: {largest}")
        failed = [r for r in mine if r.setup.n not in passing and r.setup.n > max(passing, default=0)]
        if not failed:
            print(f"{backend}: every N run met the targets: the limit lies beyond N={mine[-1].setup.n}")
            continue
        first = failed[0]
        limits = first.limits() or [f"peak RSS grew faster than N up to N={first.setup.n}"]
        print(f"{backend}: at N={first.setup.n}, limited by: " + " | ".join(limits))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", default="50", help="installations, comma-separated (e.g. 50,200,500)")
    parser.add_argument("--backend", default="sqlite,postgres", help="sqlite, postgres or both")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the measured window")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds from the tick to the window")
    parser.add_argument("--lead", type=float, default=15.0, help="seconds from the set-up to the tick")
    parser.add_argument("--products", type=int, default=1_000)
    parser.add_argument("--orders", type=int, default=1_000)
    parser.add_argument("--webhook-rate", type=float, default=200.0)
    parser.add_argument("--postgres", default=Setup.postgres, help="a server to create the database on")
    parser.add_argument("--sandboxes", type=int, default=1, help="sandbox processes the stores are spread over")
    args = parser.parse_args()
    ns = [int(n) for n in args.n.split(",")]
    backends = [b.strip() for b in args.backend.split(",")]
    if unknown := set(backends) - {"sqlite", "postgres"}:
        parser.error(f"unknown backend {', '.join(sorted(unknown))}: expected sqlite, postgres")
    print(harness.machine())
    print(
        f"each installation: {args.products:,} products + {args.orders:,} orders with details, "
        f"{RATE:.0f} requests/s, {LATENCY * 1000:.0f} ms latency; webhooks {args.webhook_rate:.0f}/s; "
        f"window {args.seconds:.0f} s after {args.warmup:.0f} s of warm-up",
        flush=True,
    )
    results = []
    for backend in backends:
        for n in ns:
            setup = Setup(
                backend,
                n,
                seconds=args.seconds,
                warmup=args.warmup,
                lead=args.lead,
                products=args.products,
                orders=args.orders,
                webhook_rate=args.webhook_rate,
                postgres=args.postgres,
                sandboxes=args.sandboxes,
            )
            print(f"{backend} N={n}: setting up", flush=True)
            results.append(run_case(setup))
            report(results[-1])
    conclude(results)


if __name__ == "__main__":
    sys.exit(main())
