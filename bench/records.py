"""Benchmark: the CPU a bulk sync spends per record, stage by stage, after the pages have arrived.

Setup: the bundled sandbox serves from a child process; this script fetches every page of a
resource once (100 records a page, as ``bench/process.py``), keeps the raw bodies, and then
replays them through the engine's own stages in this process, with no network in between, so
each stage's CPU can be read alone (``time.process_time``, best of ``--repeat``; the machine is
shared, so the best run is the one least disturbed):

- decode: ``exactjson.loads`` of each page body and the records read out of it (what the
  fetch-only floor does too);
- map: the resource's compiled ``apiMapping`` on each record (``Mapper.__call__``);
- prepare: the ``RecordWrite`` of each mapped record (``sync.batches.record_write``);
- plan: ``store.record_plan.plan_writes`` on batches of ``batchSize`` against an empty store:
  canonical JSON, SHA-256 and the row of each record (all creations, the initial import);
- store: ``Store.write_records`` of the same batches into a fresh SQLite file with record history
  on (the default): the lookup, the plan above, the upserts, the change rows and each batch's
  commit (its fsync's CPU only: the wait is not CPU), so store minus plan is SQLite's part.

Cases: 20,000 products (examples/salla's products.apiMapping), and 20,000 orders with 1-4 line
items each, whole on the list pages (``full_lists``, as bench/process.py's case 2).
Instructions a record of the whole replay (callgrind, the difference of 1,000 and 3,000 records,
so start-up cancels out; fetch, decode, map, prepare, plan and store, without the kernel's part of
the commits), before and after the records branch of issue 17: products 323.9k -> 302.7k, orders
621.7k -> 572.4k; on a quiet machine the CPU figures below were about decode 8 / map 4.4 /
prepare 1.1 / plan 3.6 / store 20.6 µs a product, and 32 / 15 / 1.2 / 5.7 / 25 an order, before.

Run: ``.venv/bin/python bench/records.py [--records N] [--repeat 5] [--only products,orders]``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from harness import EXAMPLE, provider

from miniapp_sync import exactjson
from miniapp_sync.runtime import load_miniapp
from miniapp_sync.store import RecordWrite, Store
from miniapp_sync.store.record_plan import plan_writes
from miniapp_sync.sync.batches import record_write
from miniapp_sync.sync.collector import GC

PAGE_SIZE = 100
TOKEN = "sandbox-access-token"


async def fetch_pages(base_url: str, resource: str, records: int, bodies: list[bytes]) -> None:
    """Append the raw body of every page of ``resource`` to ``bodies``.

    Not returned: on Python 3.11 ``asyncio.run`` ends by testing its SIGINT handler against the
    ``signal.Handlers`` enum, whose refusal formats the handler, a partial holding the main task,
    and so the task's result: the whole repr of the first pages (reprlib truncates only after),
    ~280 million instructions under callgrind for orders, which the stages' figures do not need.
    """
    url = f"{base_url}/admin/v2/{resource}"
    headers = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/json"}
    async with aiohttp.ClientSession() as session:
        for page in range(1, -(-records // PAGE_SIZE) + 1):
            params = {"page": page, "per_page": PAGE_SIZE}
            async with session.get(url, params=params, headers=headers) as answer:
                bodies.append(await answer.read())


class Stages:
    """CPU seconds spent in each stage, added up over a run."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = dict.fromkeys(("decode", "map", "prepare", "plan", "store"), 0.0)
        self._stage = ""
        self._started = 0.0

    def __call__(self, stage: str) -> Stages:
        self._stage = stage
        return self

    def __enter__(self) -> None:
        self._started = time.process_time()

    def __exit__(self, *exc: object) -> None:
        self.seconds[self._stage] += time.process_time() - self._started


def run(resource: str, bodies: list[bytes]) -> dict[str, float]:
    """Replay the pages through the stages as the engine streams them; return the CPU seconds of each."""
    app = load_miniapp(EXAMPLE)
    assert app.definition.sync is not None
    batch_size = app.definition.sync.sync_configuration.batch_size
    plan = app.plan.resources[resource]
    mapper = plan.mapper
    stages = Stages()
    with tempfile.TemporaryDirectory() as folder, Store.open(Path(folder) / "store.sqlite") as store:
        installation = store.save_installation("bench", "salla", credentials=b"", metadata={}, user_input={})
        buffer: list[RecordWrite] = []
        gc.collect()
        with GC.relaxed():  # the collector as a run leaves it
            for number, body in enumerate(bodies, 1):
                now = time.time()
                with stages("decode"):
                    records = exactjson.loads(body)["data"]
                with stages("map"):
                    mapped = [mapper(record) for record in records]
                if any(m.rejected for m in mapped):
                    raise RuntimeError(next(m.reason() for m in mapped if m.rejected))
                with stages("prepare"):
                    buffer += [record_write(m, now) for m in mapped]
                if len(buffer) < batch_size and number < len(bodies):
                    continue
                with stages("plan"):  # pure: what write_records decides again below
                    plan_writes(
                        {},
                        buffer,
                        installation_id=installation.id,
                        content_type=plan.content_type,
                        source="bulk",
                        run_id=None,
                        now=now,
                        repeats=False,
                    )
                with stages("store"):
                    result = store.write_records(
                        installation.id,
                        plan.content_type,
                        buffer,
                        source="bulk",
                        checkpoint=(resource, {"page": number}),
                    )
                if result.created != len(buffer):
                    raise RuntimeError(f"created {result.created} of {len(buffer)}")
                buffer = []
    return stages.seconds


def case(resource: str, bodies: list[bytes], records: int, repeat: int) -> dict[str, float]:
    """Return the least µs of CPU a record of each stage over ``repeat`` runs."""
    runs = [run(resource, bodies) for _ in range(repeat)]
    return {stage: min(r[stage] for r in runs) * 1e6 / records for stage in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--only", default="products,orders")
    args = parser.parse_args()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"Python {sys.version.split()[0]}, load average {load}; µs of CPU a record, best of {args.repeat}")
    n = args.records
    for resource in args.only.split(","):
        if resource == "products":
            counts = {"products": n, "customers": 0, "orders": 0, "carts": 0}
        else:
            counts = {"products": 200, "customers": 500, "orders": n, "carts": 0, "full_lists": True}
        with provider(**counts, per_page_max=PAGE_SIZE) as serving:
            bodies: list[bytes] = []
            asyncio.run(fetch_pages(serving.base_url, resource, n, bodies))
        figures = case(resource, bodies, n, args.repeat)
        stages = "  ".join(f"{stage} {us:5.2f}" for stage, us in figures.items())
        beyond = figures["map"] + figures["prepare"] + figures["store"]
        print(f"{resource:<9} {stages}  | beyond decode (map+prepare+store) {beyond:5.2f}")


if __name__ == "__main__":
    main()
