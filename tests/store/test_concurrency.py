"""Threads share a Store, and two Stores share a file: writers take turns, none sees "database is locked"."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from miniapp_sync.store import RecordWrite, Store

THREADS = 4
BATCHES = 15


def test_concurrent_writers_and_readers_do_not_error(
    store: Store, open_store: Callable[[], Store], installation_id: str
) -> None:
    # Two handles behave like two processes: only the database arbitrates between them.
    handles = [store, open_store()]

    def work(worker: int) -> int:
        mine = handles[worker % 2]
        written = 0
        for batch in range(BATCHES):
            shared = [RecordWrite(f"shared-{i}", {"worker": worker, "batch": batch}) for i in range(20)]
            own = [RecordWrite(f"w{worker}-{batch}-{i}", {"i": i}) for i in range(10)]
            result = mine.write_records(
                installation_id,
                "core:product",
                shared + own,
                source="webhook" if batch % 2 else "bulk",
                checkpoint=(f"resource-{worker}", {"page": batch}),
            )
            written += result.created + result.updated + result.unchanged + result.stale
            mine.count_records(installation_id)
            mine.list_records(installation_id, limit=5)
        return written

    with ThreadPoolExecutor(THREADS) as pool:
        totals = list(pool.map(work, range(THREADS)))

    assert totals == [BATCHES * 30] * THREADS
    assert store.count_records(installation_id) == 20 + THREADS * BATCHES * 10
    for worker in range(THREADS):
        assert store.get_checkpoint(installation_id, f"resource-{worker}") == {"page": BATCHES - 1}
