"""Benchmark: whole ``miniapp-sync sync`` processes beside a fetch-only floor, as a user sees them.

Setup: the bundled sandbox serves from a child process started beforehand (bench/startup.py's
harness), 100 records a page; a tenant is installed once and every sync runs, as its own process
(the console script), on a fresh copy of that store. The floor is this file run as a process
(``--floor``): aiohttp + orjson only, fetching and decoding the same pages (and details) from the
same sandbox, nothing else. Floor and sync run interleaved, ``--repeat`` times; the best of each
is compared. Cases (definition: examples/salla's, the resource changed as said):

(1) 20,000 products, no details, no latency, budget never binding. Floor: 4 pages in flight,
    as the engine. Target: sync wall ≤ 2× the floor's wall, both whole processes.
(2) 20,000 orders with their line items (1–4 each; ``full_lists``: whole orders on the list
    pages, no detail call), otherwise as (1). Target: ≤ 2.5× the floor.
(3) 2,000 products with a detail call each, 20 ms latency, budget never binding. Floor: the pages,
    then every detail with 32 in flight. Compared as request rates from the sandbox's first to
    last request (start-up is (1)'s business). Target: ≥ 80% of the floor's rate.
(4) 4,000 products, 50 a page (80 pages), the sandbox answering 429 above 20 requests/s and the
    definition's rateLimitPerSecond 20. Target: ≥ 98% of the budget between the first and last
    request, and zero 429s.

Run: ``.venv/bin/python bench/process.py [--repeat 3] [--only 1,2,3,4]`` (about two minutes).
``bench/startup.py --profile`` shows what a sync process spends before its first request.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from harness import Provider, command, provider
from startup import Ran, derived_definition, install, run, timed_sync

TOKEN = "sandbox-access-token"
PAGE_FLIGHT = 4  # pages in flight, as the engine's PAGE_CONCURRENCY


# ----------------------------------------------------------------------------- the floor (a process)


async def fetch_only(
    base_url: str, resource: str, pages: int, per_page: int, page_flight: int, detail_flight: int
) -> int:
    """Fetch and decode every page (and, with ``detail_flight``, every record's details); return the records seen."""
    import aiohttp
    import orjson

    url = f"{base_url}/admin/v2/{resource}"
    headers = {"Authorization": f"Bearer {TOKEN}", "Accept-Language": "en", "Accept": "application/json"}
    numbers = iter(range(1, pages + 1))
    ids: list[int] = []
    async with aiohttp.ClientSession() as session:

        async def page_worker() -> None:
            for number in numbers:
                params = {"page": number, "per_page": per_page}
                async with session.get(url, params=params, headers=headers) as answer:
                    ids.extend(record["id"] for record in orjson.loads(await answer.read())["data"])

        await asyncio.gather(*(page_worker() for _ in range(page_flight)))
        todo = iter(ids)

        async def detail_worker() -> None:
            for record_id in todo:
                async with session.get(f"{url}/{record_id}", headers=headers) as answer:
                    orjson.loads(await answer.read())

        if detail_flight:
            await asyncio.gather(*(detail_worker() for _ in range(detail_flight)))
    return len(ids)


def floor(serving: Provider, resource: str, records: int, per_page: int, page_flight: int, detail_flight: int) -> Ran:
    """Run the fetch-only floor as a whole process; return its timing."""
    pages = -(-records // per_page)
    spec = json.dumps([serving.base_url, resource, pages, per_page, page_flight, detail_flight])
    serving.reset()
    done = run([sys.executable, __file__, "--floor", spec])
    seen = serving.stats()["apiRequests"]
    expected = pages + (records if detail_flight else 0)
    if seen != expected:
        raise RuntimeError(f"the floor made {seen} requests, expected {expected}")
    return done


def floor_child(spec: str) -> None:
    base_url, resource, pages, per_page, page_flight, detail_flight = json.loads(spec)
    asyncio.run(fetch_only(base_url, resource, pages, per_page, page_flight, detail_flight))


# ----------------------------------------------------------------------------- the cases


def _rate(stats: dict[str, Any]) -> float:
    """Requests per second between the sandbox's first and last request."""
    return (stats["apiRequests"] - 1) / (stats["last"] - stats["first"])


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def case_bulk(args: argparse.Namespace, label: str, resource: str, target: float, **sandbox: Any) -> None:
    n = args.records
    counts = {"products": n, "customers": 0, "orders": 0, "carts": 0} if resource == "products" else {}
    if resource == "orders":
        counts = {"products": 200, "customers": 500, "orders": n, "carts": 0}
    with tempfile.TemporaryDirectory() as scratch, provider(**counts, per_page_max=100, **sandbox) as serving:
        folder = Path(scratch)
        definition = derived_definition(folder, resources={resource: {"expandDetails": False}}, rate=100_000)
        tenant = install(folder, serving, definition)
        floors, syncs = [], []
        for _ in range(args.repeat):
            floors.append(floor(serving, resource, n, 100, PAGE_FLIGHT, 0).seconds)
            ran, stats = timed_sync(tenant, serving, resource, n)
            syncs.append((ran.seconds, stats["first"] - ran.started))
    best_floor = min(floors)
    best, to_first = min(syncs)
    ratio = best / best_floor
    print(f"{label}")
    print(f"    fetch-only floor (whole process): {best_floor:6.2f} s   ({n / best_floor:9,.0f} records/s)")
    print(f"    miniapp-sync sync (whole process):{best:6.2f} s   ({n / best:9,.0f} records/s)")
    print(f"    of which start-up (to the first request): {to_first:.2f} s")
    print(f"    sync / floor: {ratio:.2f}×   target ≤ {target}×: {_met(ratio <= target)}")


def case_details(args: argparse.Namespace) -> None:
    n = args.detail_records
    config = {"products": n, "customers": 0, "orders": 0, "carts": 0, "per_page_max": 100, "latency": 0.020}
    with tempfile.TemporaryDirectory() as scratch, provider(**config) as serving:
        folder = Path(scratch)
        definition = derived_definition(folder, resources={"products": {"expandDetails": True}}, rate=100_000)
        tenant = install(folder, serving, definition)
        floors, syncs = [], []
        for _ in range(args.repeat):
            floor(serving, "products", n, 100, PAGE_FLIGHT, 32)
            floors.append(_rate(serving.stats()))
            ran, stats = timed_sync(tenant, serving, "products", n)
            syncs.append((_rate(stats), ran.seconds))
    best_floor = max(floors)
    rate, wall = max(syncs)
    print(f"(3) {n:,} products + a detail call each, 20 ms latency, no binding budget")
    print(f"    fetch-only floor, 32 in flight:   {best_floor:8,.0f} requests/s")
    print(f"    miniapp-sync sync:                {rate:8,.0f} requests/s  (whole process {wall:.2f} s)")
    print(f"    sync / floor: {rate / best_floor:.0%}   target ≥ 80%: {_met(rate >= 0.8 * best_floor)}")


def case_binding(args: argparse.Namespace) -> None:
    n, budget, per_page = 4_000, 20.0, 50
    config = {"products": n, "customers": 0, "orders": 0, "carts": 0, "per_page_max": per_page, "rate_limit": budget}
    with tempfile.TemporaryDirectory() as scratch, provider(**config) as serving:
        folder = Path(scratch)
        document_changes = {"products": {"expandDetails": False}}
        definition = derived_definition(folder, resources=document_changes, rate=budget, page_size=per_page)
        tenant = install(folder, serving, definition)
        _, stats = timed_sync(tenant, serving, "products", n)
    rate = _rate(stats)
    throttled = int(stats["responses"].get("429", 0))
    print(f"(4) {n:,} products, {per_page} a page, budget {budget:.0f} req/s enforced by the sandbox")
    used = f"{rate:.2f} req/s ({rate / budget:.1%} of the budget)"
    print(f"    {stats['apiRequests']} requests at {used}, 429s: {throttled}")
    print(f"    target ≥ 98% of the budget and zero 429s: {_met(rate >= 0.98 * budget and throttled == 0)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs of each floor and sync (the best is compared)")
    parser.add_argument("--records", type=int, default=20_000, help="products / orders for (1) and (2)")
    parser.add_argument("--detail-records", type=int, default=2_000, help="products for (3)")
    parser.add_argument("--only", default="1,2,3,4", help="which cases to run, e.g. 1,3")
    parser.add_argument("--floor", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.floor:
        floor_child(args.floor)
        return
    cases = set(args.only.split(","))
    print(f"Whole processes ({' '.join(command())} …), best of {args.repeat}, interleaved with the floor")
    if "1" in cases:
        case_bulk(args, f"(1) {args.records:,} products, 100 a page, no latency", "products", 2.0)
    if "2" in cases:
        case_bulk(args, f"(2) {args.records:,} orders with 1-4 line items, 100 a page", "orders", 2.5, full_lists=True)
    if "3" in cases:
        case_details(args)
    if "4" in cases:
        case_binding(args)


if __name__ == "__main__":
    main()
