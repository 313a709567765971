"""Benchmark: webhook deliveries verified and durably committed by ``miniapp-sync serve``.

Setup: every server runs in a child process on 127.0.0.1 with uvicorn's defaults (as ``serve``
runs it: uvloop and httptools when installed, one process); the load generator is an aiohttp
client in this process. Deliveries are Salla-shaped ``order.created`` bodies (~5 kB) built
from the sandbox's orders, each with a unique ``data.id`` (so none is a duplicate), signed with
X-Salla-Signature before the clock starts. ``serve`` gets the example definition and a fresh
SQLite store (WAL, synchronous=FULL) with one installation whose storeId is the deliveries'
``merchant``; its inbox processor and trigger delivery run as in production.

(a) ceiling: a bare uvicorn ASGI endpoint that reads the body and answers 200 ``{"ok":true}``,
    driven by the same closed-loop generator (``--concurrency`` connections, ``--seconds``).
(b) ours: ``serve`` on the same load: each 2xx means verified, identified and committed to the
    inbox (group commit). Afterwards the server is stopped and the inbox is counted: it must hold
    exactly one row per 2xx. Targets: ≥ 5,000 deliveries/s, and ≥ 30% of (a).
(c) latency: a fresh ``serve`` gets an open-loop 1,000 deliveries/s for ``--rate-seconds``;
    p50/p99 of the time to the answer as the sender sees it, and as the server's histogram does
    (target p99 ≤ 50 ms), the inbox backlog sampled every 0.25 s, and the lag from arrival to
    processed (processed_at - received_at): the processor keeps up when the backlog stays small
    and drains right after the phase.

(d) the same load as (b) on ``serve --store postgresql://…`` (a fresh database on ``--postgres``'s
    server, dropped afterwards): the scale-out receiver, which commits to PostgreSQL and defers
    drain jobs for the workers instead of processing (none runs here). Target: ≥ 50% of (b).
    ``--skip-postgres`` leaves it out.

(e) (c)'s paced load again, while the same ``serve`` runs a bulk sync of ``--sync-products``
    products (started through ``POST /api/installations/{id}/sync``) from a ``miniapp-sync
    sandbox`` process: on SQLite the sync writes its batches in the event loop that answers the
    webhooks, so this is what a scheduled sync costs the acknowledgements. Target: p99 ≤ 50 ms.
    The sandbox serves the products as fast as it can (no details, no rate limit: the sync takes
    about a second of the phase), so three busy processes share the 2 CPUs meanwhile: a worst
    case, far above what a provider's rate limit lets a sync do.
    ``--skip-sync`` leaves it out.

Figures depend on the machine being otherwise idle (the run prints the load average): on the
project's 2-CPU machine the generator and the server each need most of a core.

Run: ``.venv/bin/python bench/webhook_ingest.py`` (about a minute; ``--seconds``, ``--concurrency``,
``--rate``, ``--rate-seconds`` to change the phases; ``--postgres URL`` to choose the server;
``--skip-postgres``, ``--skip-sync`` to leave (d) or (e) out).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import aiohttp
import harness
import uvicorn
from harness import free_port, machine, percentile

from miniapp_sync.definition.loader import load_file
from miniapp_sync.runtime import Runtime
from miniapp_sync.sandbox import Sandbox, SandboxConfig
from miniapp_sync.store import Inbox, Store
from miniapp_sync.testing import temporary_database

ROOT = Path(__file__).resolve().parents[1]
DEFINITION = ROOT / "examples" / "salla" / "definition.json5"
CLI = str(Path(sys.executable).with_name("miniapp-sync"))
KEY = {"MINIAPP_SYNC_SECRET_KEY": "webhook benchmark"}
Delivery = tuple[bytes, dict[str, str]]


async def bare(scope: dict, receive, send) -> None:  # type: ignore[no-untyped-def, type-arg]
    """The ceiling: read the body, answer 200 {"ok":true}."""
    if scope["type"] != "http":
        return
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": b'{"ok":true}'})


def server(args: list[str], port: int) -> contextlib.AbstractContextManager[subprocess.Popen[bytes]]:
    """A server process with the benchmark's key (see harness.server)."""
    return harness.server(args, port, {**os.environ, **KEY})


def serve_args(store: Path | str, port: int, sandbox: Sandbox, definition: Path = DEFINITION) -> list[str]:
    secret = f"webhookSecret={sandbox.config.webhook_secret}"
    return [CLI, "serve", "-d", str(definition), "--store", str(store), "--port", str(port), "--config", secret]


def prepare_store(store: Path | str, sandbox: Sandbox, credentials: dict[str, str] | None = None) -> None:
    with Runtime.open(str(store), environ=KEY) as runtime:
        runtime.store.save_installation(
            "bench",
            "salla",
            credentials=runtime.installations.vault.encrypt(credentials or {}),
            metadata={"storeId": str(sandbox.config.merchant_id)},
            user_input={},
            status="connected",
        )


def deliveries(sandbox: Sandbox, count: int, start: int) -> list[Delivery]:
    """Build ``count`` signed order.created deliveries with unique order ids from ``start``, from its stores in turn."""
    orders, stores = sandbox.data["orders"], sandbox.config.tenants
    return [
        sandbox.webhook("order.created", {**orders[i % len(orders)], "id": start + i}, tenant=i % stores)
        for i in range(count)
    ]


async def closed_loop(
    url: str, items: list[Delivery], seconds: float, concurrency: int, *, unique: bool = True
) -> tuple[int, float, int]:
    """Send as fast as ``concurrency`` connections allow for ``seconds``; return (2xx, elapsed, other).

    ``unique``: never send a delivery twice (a resend would be a duplicate, cheaper than a delivery).
    """
    sent = 0
    ok = other = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as http:
        # Warm up the connections and the server's caches outside the clock.
        for raw, headers in items[:concurrency]:
            async with http.post(url, data=raw, headers=headers) as response:
                await response.read()
        sent = concurrency
        stop = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal sent, ok, other
            while time.perf_counter() < stop and (sent < len(items) or not unique):
                raw, headers = items[sent % len(items)]
                sent += 1
                async with http.post(url, data=raw, headers=headers) as response:
                    await response.read()
                    if 200 <= response.status < 300:
                        ok += 1
                    else:
                        other += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    if unique and sent >= len(items):
        print("    (ran out of prepared deliveries before the time was up: raise --max-deliveries)")
    return ok, elapsed, other


async def open_loop(
    url: str, items: list[Delivery], rate: float, store: Path | None, *, grace: float | None = None
) -> tuple[list[float], list[int], int]:
    """Send ``rate`` deliveries/s on a schedule; return latencies (s), backlog samples and non-2xx count.

    The backlog is sampled from a SQLite ``store``; without one, nothing is sampled. With ``grace``,
    answers still missing that many seconds after the last send are given up and counted as
    non-2xx (so is a failed connection): the phase ends on time however slow the server.
    """
    latencies: list[float] = []
    backlog: list[int] = []
    failed = 0
    connector = aiohttp.TCPConnector(limit=512)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def send(raw: bytes, headers: dict[str, str]) -> None:
            nonlocal failed
            started = time.perf_counter()
            async with http.post(url, data=raw, headers=headers) as response:
                await response.read()
                failed += not 200 <= response.status < 300
            latencies.append(time.perf_counter() - started)

        async def sample() -> None:
            while store is not None:
                backlog.append(pending(store))
                await asyncio.sleep(0.25)

        sampler = asyncio.create_task(sample())
        tasks = []
        begin = time.perf_counter()
        for index, (raw, headers) in enumerate(items):
            due = begin + index / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(send(raw, headers)))
        if grace is None:
            await asyncio.gather(*tasks)
        elif tasks:
            answered, late = await asyncio.wait(tasks, timeout=grace)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
            failed += len(late) + sum(task.exception() is not None for task in answered)
        sampler.cancel()
    return latencies, backlog, failed


def pending(store: Path) -> int:
    with contextlib.closing(sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=5)) as conn:
        return int(
            conn.execute("SELECT count(*) FROM webhook_inbox WHERE status IN ('pending', 'processing')").fetchone()[0]
        )


def inbox_rows(store: Path) -> int:
    with contextlib.closing(sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=5)) as conn:
        return int(conn.execute("SELECT count(*) FROM webhook_inbox").fetchone()[0])


def lags(store: Path, after: int = 0) -> list[float]:
    """Return the processing lag (s) of each done inbox row whose id is above ``after``."""
    with contextlib.closing(sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=5)) as conn:
        query = "SELECT processed_at - received_at FROM webhook_inbox WHERE status = 'done' AND id > ?"
        return [float(row[0]) for row in conn.execute(query, (after,))]


def served_quantile(metrics: str, q: float) -> float:
    """Return the upper bound (ms) of the ack-latency bucket that holds quantile ``q``, from /metrics."""
    buckets = []
    for line in metrics.splitlines():
        if line.startswith("miniapp_sync_webhook_ack_seconds_bucket{"):
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            buckets.append((float(bound), float(line.rsplit(" ", 1)[1])))
    total = buckets[-1][1]
    return next(bound for bound, count in buckets if count >= q * total) * 1000


def phase_ceiling(load: list[Delivery], args: argparse.Namespace) -> float:
    port = free_port()
    with server([sys.executable, __file__, "--bare-server", str(port)], port):
        url = f"http://127.0.0.1:{port}/"
        ok, elapsed, _ = asyncio.run(closed_loop(url, load, args.seconds, args.concurrency, unique=False))
    print(f"(a) bare uvicorn endpoint:               {ok / elapsed:10,.0f} requests/s")
    return ok / elapsed


def phase_throughput(load: list[Delivery], args: argparse.Namespace, tmp: Path, sandbox: Sandbox) -> float:
    store, port = tmp / "load.sqlite", free_port()
    prepare_store(store, sandbox)
    with server(serve_args(store, port, sandbox), port):
        url = f"http://127.0.0.1:{port}/miniapps/salla/webhooks"
        ok, elapsed, refused = asyncio.run(closed_loop(url, load, args.seconds, args.concurrency))
    stored = inbox_rows(store)
    print(f"(b) serve, verified + durably committed: {ok / elapsed:10,.0f} deliveries/s")
    print(
        f"    inbox after stop: {stored:,} rows for {ok + args.concurrency:,} 2xx answers (warm-up included); "
        f"{refused} non-2xx"
    )
    return ok / elapsed


def phase_postgres(load: list[Delivery], args: argparse.Namespace, sandbox: Sandbox) -> float:
    with temporary_database(args.postgres, "miniapp_sync_bench_webhooks") as url:
        subprocess.run([CLI, "db", "upgrade", "--store", url], check=True, stdout=subprocess.DEVNULL)
        prepare_store(url, sandbox)
        port = free_port()
        with server(serve_args(url, port, sandbox), port):
            url_in = f"http://127.0.0.1:{port}/miniapps/salla/webhooks"
            ok, elapsed, refused = asyncio.run(closed_loop(url_in, load, args.seconds, args.concurrency))
        with Store.open(url) as store:
            stored = sum(Inbox(store).counts().values())
    print(f"(d) serve on PostgreSQL, committed + drain job deferred: {ok / elapsed:,.0f} deliveries/s")
    print(f"    inbox after stop: {stored:,} rows for {ok + args.concurrency:,} 2xx answers; {refused} non-2xx")
    return ok / elapsed


def phase_during_sync(paced: list[Delivery], args: argparse.Namespace, tmp: Path, sandbox: Sandbox) -> None:
    store, port, provider = tmp / "syncing.sqlite", free_port(), free_port()
    prepare_store(store, sandbox, {"accessToken": sandbox.config.access_token})
    # As fast a sync as the sandbox allows (no details, a budget that never binds): the worst case.
    document, _ = load_file(DEFINITION)
    document["sync"]["syncConfiguration"]["rateLimitPerSecond"] = 100_000
    document["sync"]["resources"]["products"]["expandDetails"] = False
    definition = tmp / "syncing.json"
    definition.write_text(json.dumps(document))
    origin = f"http://127.0.0.1:{provider}"
    rewrites = ["--rewrite", f"https://api.salla.dev={origin}", "--rewrite", f"https://accounts.salla.sa={origin}"]
    provider_args = [CLI, "sandbox", "--port", str(provider), "--products", str(args.sync_products)]
    serving = [*serve_args(store, port, sandbox, definition), *rewrites, "--admin-token", "bench-admin"]
    admin = {"Authorization": "Bearer bench-admin"}
    with server(provider_args, provider), server(serving, port):
        base = f"http://127.0.0.1:{port}"
        (installation,) = json.loads(urllib.request.urlopen(_request(f"{base}/api/installations", admin)).read())[
            "items"
        ]
        start = _request(f"{base}/api/installations/{installation['id']}/sync?resource=products", admin, "POST")
        (job,) = json.loads(urllib.request.urlopen(start).read())["items"]  # a job of the server's own queue
        latencies, _, failed = asyncio.run(open_loop(f"{base}/miniapps/salla/webhooks", paced, args.rate, store))
        ran = json.loads(urllib.request.urlopen(_request(f"{base}/api/jobs/{job['jobId']}", admin)).read())["run"]
        run = ran or {"status": "not started", "stats": {}}
    ms = [x * 1000 for x in latencies]
    stats = run["stats"].get("products", {})
    p50, p99 = percentile(ms, 0.5), percentile(ms, 0.99)
    print(f"(e) ack latency at {args.rate:,.0f}/s while the server syncs: p50 {p50:.1f} ms, p99 {p99:.1f} ms, "
          f"max {max(ms):.1f} ms; {failed} non-2xx   [target p99 ≤ 50 ms]")  # fmt: skip
    print(f"    the sync meanwhile: {run['status']}, {stats.get('fetched', 0):,} of {args.sync_products:,} products "
          f"fetched during the {len(paced) / args.rate:.0f} s phase")  # fmt: skip


def _request(url: str, headers: dict[str, str], method: str = "GET") -> urllib.request.Request:
    return urllib.request.Request(url, headers=headers, method=method)


def phase_latency(paced: list[Delivery], args: argparse.Namespace, tmp: Path, sandbox: Sandbox) -> None:
    store, port = tmp / "paced.sqlite", free_port()
    prepare_store(store, sandbox)
    with server(serve_args(store, port, sandbox), port):
        url = f"http://127.0.0.1:{port}/miniapps/salla/webhooks"
        latencies, backlog, failed = asyncio.run(open_loop(url, paced, args.rate, store))
        drain_started = time.perf_counter()
        while pending(store) and time.perf_counter() - drain_started < 30:
            time.sleep(0.05)
        drained = time.perf_counter() - drain_started
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics") as response:
            metrics = response.read().decode()
    ms = [x * 1000 for x in latencies]
    lag = [x * 1000 for x in lags(store)]
    p50, p99 = percentile(ms, 0.5), percentile(ms, 0.99)
    print(f"(c) ack latency at {args.rate:,.0f}/s, as the sender sees it: p50 {p50:.1f} ms, p99 {p99:.1f} ms, "
          f"max {max(ms):.1f} ms; {failed} non-2xx   [target p99 ≤ 50 ms]")  # fmt: skip
    print(f"    in the server (histogram bucket bounds): p50 ≤ {served_quantile(metrics, 0.5):g} ms, "
          f"p99 ≤ {served_quantile(metrics, 0.99):g} ms")  # fmt: skip
    print(f"    inbox lag, arrival → processed: p50 {percentile(lag, 0.5):.0f} ms, p99 {percentile(lag, 0.99):.0f} ms; "
          f"backlog sampled every 0.25 s: max {max(backlog)} rows, mean {statistics.mean(backlog):.0f}; "
          f"{len(lag):,} of {len(paced):,} processed, the rest {drained:.2f} s after the phase")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="duration of each closed-loop phase")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rate", type=float, default=1000.0, help="deliveries/s of the latency phase")
    parser.add_argument("--rate-seconds", type=float, default=10.0)
    parser.add_argument("--max-deliveries", type=int, default=60_000)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test", help="for (d)")
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--sync-products", type=int, default=20_000, help="for (e)")
    parser.add_argument("--skip-sync", action="store_true")
    parser.add_argument("--bare-server", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_server:
        uvicorn.run(bare, host="127.0.0.1", port=args.bare_server, log_level="warning")
        return
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    print(machine())
    sandbox = Sandbox(SandboxConfig(products=40, customers=40, orders=200, carts=0))
    load = deliveries(sandbox, args.max_deliveries, 10_000_000)
    paced = deliveries(sandbox, int(args.rate * args.rate_seconds), 50_000_000)
    size = statistics.mean(len(raw) for raw, _ in load[:100]) / 1000
    # They live for the whole run: keep the generator's collector from walking them (its own pauses).
    gc.collect()
    gc.freeze()
    print(
        f"{len(load) + len(paced):,} signed order.created deliveries of ~{size:.1f} kB, {args.concurrency} connections"
    )
    with tempfile.TemporaryDirectory() as folder:
        ceiling = phase_ceiling(load, args)
        ours = phase_throughput(load, args, Path(folder), sandbox)
        print(f"    {ours / ceiling:.0%} of (a)   [targets ≥ 5,000/s and ≥ 30%]")
        phase_latency(paced, args, Path(folder), sandbox)
        if not args.skip_sync:
            phase_during_sync(paced, args, Path(folder), sandbox)
    if not args.skip_postgres:
        on_postgres = phase_postgres(load, args, sandbox)
        print(f"    {on_postgres / ours:.0%} of (b)   [target ≥ 50%]")


if __name__ == "__main__":
    main()
