"""Benchmark: Store.write_records on SQLite beside plain sqlite3, and on PostgreSQL by executemany vs COPY.

Setup: 20,000 Salla products as the sandbox serves them, mapped with examples/salla's products
mapping (~600 bytes of JSON each), written in batches of 200 (the default batchSize), one
transaction per batch with its checkpoint, into a fresh SQLite file (WAL, synchronous=FULL) on
the same disk as the floor. Three passes: every record new, every record unchanged (a re-sync),
every record changed. The floor is the same upserts through the sqlite3 module alone, with the
rows already encoded and hashed: the database's own cost, without deciding or encoding anything.
Each figure is the best of ``--repeat`` runs.

PostgreSQL (D35): the same three passes at each of ``--postgres-batches``, once with every batch
upserted by executemany and once with every batch copied into a staging table (COPY) and
upserted from there, each run in a fresh database on ``--postgres``'s server (dropped after).
Runs alternate between the two, so load from elsewhere on the machine hits both alike; the
ratios compare runs of this invocation only. The all-unchanged pass upserts nothing: its ratio
shows the noise. ``--skip-postgres`` leaves this part out.

No target of its own: this isolates the store's share of bench/sync.py's (b).
Run: ``.venv/bin/python bench/store.py [--records N] [--batch N] [--postgres-batches 50,200]``
(about 2 minutes with the PostgreSQL part).
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import orjson

from miniapp_sync.runtime import load_miniapp
from miniapp_sync.sandbox.records import SandboxData, list_view
from miniapp_sync.store import RecordWrite, Store, content_hash
from miniapp_sync.store import records as store_records
from miniapp_sync.testing import temporary_database

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "salla" / "definition.json5"
COLUMNS = (
    "installation_id, content_type, code, data, content_hash, version, source, partial, deleted, "
    "created_at, updated_at, seen_at, webhook_at, run_id"
)
UPSERT = (
    f"INSERT INTO records ({COLUMNS}) VALUES ({', '.join('?' * 14)}) "
    "ON CONFLICT (installation_id, content_type, code) DO UPDATE SET data = excluded.data, "
    "content_hash = excluded.content_hash, updated_at = excluded.updated_at, seen_at = excluded.seen_at"
)


def writes(count: int) -> list[RecordWrite]:
    """Return ``count`` mapped products, as the engine hands them to the store."""
    mapper = load_miniapp(EXAMPLE).plan.resources["products"].mapper
    products = SandboxData({"products": count}, seed=1).records["products"]
    mapped = [mapper(list_view("products", product)).data for product in products]
    return [RecordWrite(str(data["code"]), data, fetched_at=1.0) for data in mapped]


def best(runs: int, once: Callable[[], float]) -> float:
    """Return the fewest seconds of ``runs`` calls of ``once``."""
    return min(once() for _ in range(runs))


def store_passes(records: list[RecordWrite], batch: int, url: str) -> tuple[float, float, float]:
    """Write every record new, then unchanged, then changed; return the seconds of each pass."""
    changed = [RecordWrite(w.code, {**w.data, "name": f"{w.data.get('name')} (2)"}, fetched_at=2.0) for w in records]
    with Store.open(url, environ={}) as store:
        installation = store.save_installation("bench", "salla", credentials=b"", metadata={}, user_input={})
        seconds = []
        for run_id, group in (("new", records), ("unchanged", records), ("changed", changed)):
            started = time.perf_counter()
            for start in range(0, len(group), batch):
                store.write_records(
                    installation.id,
                    "core:product",
                    group[start : start + batch],
                    source="bulk",
                    run_id=run_id,
                    checkpoint=("products", {"page": start // batch + 2}),
                )
            seconds.append(time.perf_counter() - started)
    return seconds[0], seconds[1], seconds[2]


def sqlite_passes(records: list[RecordWrite], batch: int) -> tuple[float, float, float]:
    """Run store_passes on a fresh SQLite file."""
    with tempfile.TemporaryDirectory() as folder:
        return store_passes(records, batch, str(Path(folder) / "store.sqlite"))


def postgres_passes(records: list[RecordWrite], batch: int, server: str, *, copy: bool) -> tuple[float, float, float]:
    """Run store_passes in a fresh PostgreSQL database, every batch upserted by COPY or by executemany."""
    # The store picks COPY from a batch size on; moving that threshold forces either path.
    store_records._COPY_ROWS = 1 if copy else batch + 1  # type: ignore[misc]
    with temporary_database(server, "miniapp_sync_bench_store") as url:
        return store_passes(records, batch, url)


def compare_postgres(records: list[RecordWrite], batches: list[int], server: str, repeat: int) -> None:
    """Print write_records' rates on PostgreSQL by executemany and by COPY, and their ratios."""
    n = len(records)
    print(f"PostgreSQL at {server.rsplit('@', 1)[-1]}: executemany vs COPY, best of {repeat} (runs alternate)")
    print(f"  {'batch':>5}  {'pass':<10} {'executemany':>13} {'COPY':>13}  COPY/executemany")
    for batch in batches:
        runs: dict[bool, list[tuple[float, float, float]]] = {False: [], True: []}
        for _ in range(repeat):
            for copy in (False, True):
                runs[copy].append(postgres_passes(records, batch, server, copy=copy))
        for i, label in enumerate(("new", "unchanged", "changed")):
            many, copied = (min(p[i] for p in runs[copy]) for copy in (False, True))
            print(f"  {batch:>5}  {label:<10} {n / many:>11,.0f}/s {n / copied:>11,.0f}/s  {many / copied:.2f}×")


def floor(records: list[RecordWrite], batch: int) -> float:
    """Insert the same rows, already encoded, with sqlite3 alone; return the seconds taken."""
    encoded = [(w.code, orjson.dumps(w.data).decode(), content_hash(w.data)) for w in records]
    rows = [
        ("i", "core:product", code, data, digest, None, "bulk", 0, 0, 1.0, 1.0, 1.0, None, "new")
        for code, data, digest in encoded
    ]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "store.sqlite"
        Store.open(path, environ={}).close()  # the same schema, built by the migrations
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=OFF")  # the floor has no installation row
        started = time.perf_counter()
        for start in range(0, len(rows), batch):
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(UPSERT, rows[start : start + batch])
            conn.commit()
        seconds = time.perf_counter() - started
        conn.close()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test", help="a server to use")
    parser.add_argument("--postgres-batches", default="20,50,100,200,500", help="batch sizes, comma-separated")
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args()

    records = writes(args.records)
    n = len(records)
    raw = best(args.repeat, lambda: floor(records, args.batch))
    passes = [sqlite_passes(records, args.batch) for _ in range(args.repeat)]
    new, unchanged, changed = (min(p[i] for p in passes) for i in range(3))
    print(f"records: {n:,} mapped Salla products, batches of {args.batch}, SQLite WAL + synchronous=FULL")
    print(f"floor (sqlite3 alone, pre-encoded): {n / raw:>9,.0f} records/s")
    for label, seconds in (("new", new), ("unchanged", unchanged), ("changed", changed)):
        rate = n / seconds
        print(f"write_records, all {label + ':':<11}    {rate:>9,.0f} records/s  ({rate / (n / raw):.2f} of the floor)")
    if not args.skip_postgres:
        batches = [int(size) for size in args.postgres_batches.split(",")]
        compare_postgres(records, batches, args.postgres, args.repeat)


if __name__ == "__main__":
    main()
