"""BatchWriter on SQLite: each batch's commit runs on the store's committer thread, and counts once committed."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from miniapp_sync.mapping.plan import ResourcePlan
from miniapp_sync.mapping.records import MappedRecord
from miniapp_sync.store import RecordWrite, Store
from miniapp_sync.sync.batches import BatchWriter, record_write
from miniapp_sync.sync.reports import ResourceReport
from miniapp_sync.testing import FakeClock


def _unused_mapper(record: object) -> MappedRecord:
    raise AssertionError("the writer maps nothing")


async def test_a_batch_committing_while_the_run_is_cancelled_is_still_counted(tmp_path: Path) -> None:
    with Store.open(tmp_path / "store.sqlite", clock=FakeClock()) as store:
        installation = store.save_installation("tenant-1", "salla", credentials=b"", metadata={}, user_input={})
        run = store.start_run(installation.id, "products")
        report = ResourceReport("products", "core:product")
        plan = ResourcePlan("products", "core:product", _unused_mapper)
        writer = BatchWriter(store, installation.id, plan, run.id, report, inline=True)
        # batchSize 1: two transactions, the second one's commit still on the committer thread.
        await writer.write([RecordWrite("a", {"v": 1}), RecordWrite("b", {"v": 1})], 1, {"page": 1})
        waiting = asyncio.ensure_future(writer.wait())
        await asyncio.sleep(0)
        waiting.cancel()  # as Ctrl-C reaches a run waiting for its last batch
        with pytest.raises(asyncio.CancelledError):
            await waiting
        await writer.wait()  # the engine's, on its way out
        assert (report.created, store.count_records(installation.id)) == (2, 2)
        assert store.get_checkpoint(installation.id, "products") == {"page": 1}


@pytest.mark.parametrize(
    ("data", "version"),
    [
        ({"code": "a", "updatedAt": "2024-01-02T03:04:05Z"}, "2024-01-02T03:04:05Z"),
        ({"code": 7, "updatedAt": 1704164645}, None),  # a number is no version (D21)
        ({"code": "b", "updatedAt": None}, None),
        ({"code": "c"}, None),
    ],
)
def test_record_write_is_the_write_a_caller_would_build(data: dict[str, object], version: str | None) -> None:
    write = record_write(MappedRecord(data), 12.5)
    assert write == RecordWrite(str(data["code"]), data, version, 12.5)
    assert (write.code, write.version, write.fetched_at, write.partial, write.merge, write.origin) == (
        str(data["code"]),
        version,
        12.5,
        False,
        False,
        None,
    )
    assert write.data is data  # the mapped dict itself: nothing copied per record
    assert type(write) is RecordWrite
