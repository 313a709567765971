"""Record writes (D20-D23): upsert by code, unchanged content, stale writes, merges, deletions, checkpoints."""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from pathlib import Path
from typing import Any

import orjson
import pytest

from miniapp_sync.errors import StoreError
from miniapp_sync.store import Inbox, RecordWrite, Store, StoredRecord, WriteResult, content_hash, normalise_version
from miniapp_sync.testing import FakeClock

PRODUCT = "core:product"


def _write(store: Store, installation_id: str, *writes: RecordWrite, source: str = "bulk", **kw: Any) -> WriteResult:
    return store.write_records(installation_id, PRODUCT, writes, source=source, **kw)  # type: ignore[arg-type]


def _data(store: Store, installation_id: str, code: str) -> dict[str, Any] | None:
    record = store.get_record(installation_id, PRODUCT, code)
    return None if record is None else record.data


def test_writes_count_created_updated_and_unchanged(store: Store, installation_id: str) -> None:
    first = _write(store, installation_id, RecordWrite("a", {"name": "A"}), RecordWrite("b", {"name": "B"}))
    assert first == WriteResult(created=2, updated=0, unchanged=0, stale=0, written=["a", "b"])
    second = _write(
        store,
        installation_id,
        RecordWrite("c", {"name": "C"}),
        RecordWrite("b", {"name": "B2"}),
        RecordWrite("a", {"name": "A"}),
    )
    assert second == WriteResult(created=1, updated=1, unchanged=1, stale=0, written=["c", "b"])
    assert store.count_records(installation_id) == 3
    assert store.count_records(installation_id, "core:customer") == 0
    assert _data(store, installation_id, "b") == {"name": "B2"}


def test_unchanged_content_is_not_rewritten_but_is_marked_seen(
    store: Store, installation_id: str, clock: FakeClock
) -> None:
    data = {"name": "A", "price": 9.5, "tags": ["x", "y"], "nested": {"b": 1, "a": None}}
    _write(store, installation_id, RecordWrite("a", data))
    before = store.get_record(installation_id, PRODUCT, "a")
    assert before is not None
    assert before.content_hash == content_hash(data)
    clock.advance(5)
    run = store.start_run(installation_id, "products")
    reordered = {"nested": {"a": None, "b": 1}, "tags": ["x", "y"], "price": 9.5, "name": "A"}
    result = _write(store, installation_id, RecordWrite("a", reordered), run_id=run.id)
    assert (result.unchanged, result.written) == (1, [])
    after = store.get_record(installation_id, PRODUCT, "a")
    assert after is not None
    assert (after.updated_at, after.content_hash) == (before.updated_at, before.content_hash)
    assert (after.seen_at, after.run_id) == (before.seen_at + 5, run.id)


def test_a_write_with_an_older_version_is_stale(store: Store, installation_id: str) -> None:
    _write(store, installation_id, RecordWrite("a", {"v": 2}, version="2024-05-01T12:00:00+03:00"))
    older = _write(store, installation_id, RecordWrite("a", {"v": 1}, version="2024-05-01T08:59:59Z"))
    assert (older.stale, older.written) == (1, [])
    assert _data(store, installation_id, "a") == {"v": 2}
    newer = _write(store, installation_id, RecordWrite("a", {"v": 3}, version="2024-05-01T09:00:01Z"), source="webhook")
    assert newer.updated == 1
    record = store.get_record(installation_id, PRODUCT, "a")
    assert record is not None
    assert (record.data, record.version, record.source) == ({"v": 3}, "2024-05-01T09:00:01.000000Z", "webhook")


def test_a_write_without_a_version_keeps_the_known_version(store: Store, installation_id: str) -> None:
    _write(store, installation_id, RecordWrite("a", {"v": 1}, version="2024-05-02"))
    _write(store, installation_id, RecordWrite("a", {"v": 2}), source="webhook")
    assert _write(store, installation_id, RecordWrite("a", {"v": 0}, version="2024-05-01")).stale == 1
    assert _data(store, installation_id, "a") == {"v": 2}


def test_versions_compare_after_normalisation() -> None:
    assert normalise_version("2024-05-01T12:00:00+03:00") == normalise_version("2024-05-01T09:00:00Z")
    assert normalise_version("2024-05-01 09:00:00") == "2024-05-01T09:00:00.000000Z"
    assert normalise_version("2024-05-01T09:00:00.5Z") > normalise_version("2024-05-01T09:00:00Z")
    assert normalise_version("not a date") == "not a date"


@pytest.mark.parametrize(
    ("version", "normal"),
    [
        ("2022-06-26T09:21:48Z", "2022-06-26T09:21:48.000000Z"),  # toISODate's form
        ("0001-01-01T00:00:00Z", "0001-01-01T00:00:00.000000Z"),
        ("2024-02-29T23:59:59Z", "2024-02-29T23:59:59.000000Z"),
        ("2023-02-29T12:00:00Z", "2023-02-29T12:00:00Z"),  # no such day: kept as text, as any non-date
        ("2024-01-01T24:00:00Z", "2024-01-01T24:00:00Z"),
        ("٢٠٢٤-01-01T00:00:00Z", "٢٠٢٤-01-01T00:00:00Z"),  # not ISO 8601's digits
        ("2022-W26-1T09:21:48Z", "2022-06-27T09:21:48.000000Z"),  # an ISO week date, converted
    ],
)
def test_a_utc_version_to_the_second_is_normalised_like_any_other(version: str, normal: str) -> None:
    assert normalise_version(version) == normal


def test_a_bulk_page_fetched_before_a_webhook_write_is_stale(
    store: Store, installation_id: str, clock: FakeClock
) -> None:
    fetched_at = clock.now()
    clock.advance(1)
    _write(store, installation_id, RecordWrite("a", {"status": "paid"}), source="webhook")
    clock.advance(1)
    late_page = _write(store, installation_id, RecordWrite("a", {"status": "pending"}, fetched_at=fetched_at))
    assert late_page.stale == 1
    assert _data(store, installation_id, "a") == {"status": "paid"}
    fresh_page = _write(store, installation_id, RecordWrite("a", {"status": "shipped"}, fetched_at=clock.now()))
    assert fresh_page.updated == 1
    assert _data(store, installation_id, "a") == {"status": "shipped"}


def test_an_unchanged_webhook_write_still_guards_against_older_pages(
    store: Store, installation_id: str, clock: FakeClock
) -> None:
    _write(store, installation_id, RecordWrite("a", {"status": "paid"}))
    fetched_at = clock.now()
    clock.advance(1)
    assert _write(store, installation_id, RecordWrite("a", {"status": "paid"}), source="webhook").unchanged == 1
    clock.advance(1)
    assert _write(store, installation_id, RecordWrite("a", {"status": "new"}, fetched_at=fetched_at)).stale == 1


def test_update_merges_into_the_stored_record(store: Store, installation_id: str) -> None:
    _write(store, installation_id, RecordWrite("a", {"name": "A", "status": "new", "total": 10}))
    result = _write(store, installation_id, RecordWrite("a", {"status": "paid"}, merge=True), source="webhook")
    assert result.updated == 1
    record = store.get_record(installation_id, PRODUCT, "a")
    assert record is not None
    assert (record.data, record.partial) == ({"name": "A", "status": "paid", "total": 10}, False)


def test_update_for_unknown_record_is_kept_partial_until_a_full_write(store: Store, installation_id: str) -> None:
    assert _write(store, installation_id, RecordWrite("a", {"status": "paid"}, merge=True)).created == 1
    record = store.get_record(installation_id, PRODUCT, "a")
    assert record is not None
    assert (record.data, record.partial) == ({"status": "paid"}, True)
    _write(store, installation_id, RecordWrite("a", {"total": 5}, merge=True))
    merged = store.get_record(installation_id, PRODUCT, "a")
    assert merged is not None
    assert (merged.data, merged.partial) == ({"status": "paid", "total": 5}, True)
    full = _write(store, installation_id, RecordWrite("a", {"status": "paid", "total": 5}))
    assert full.updated == 1  # same content, but no longer partial
    completed = store.get_record(installation_id, PRODUCT, "a")
    assert completed is not None
    assert completed.partial is False


def test_an_older_full_record_still_completes_a_partial_one(store: Store, installation_id: str) -> None:
    # A webhook's update arrives before the record was ever synced; the next bulk page is older.
    update = RecordWrite("a", {"status": "shipped", "updatedAt": "T2"}, version="2024-05-02T10:00:00Z", merge=True)
    _write(store, installation_id, update, source="webhook")
    older = RecordWrite("a", {"name": "A", "status": "paid", "updatedAt": "T1"}, version="2024-05-01T10:00:00Z")
    assert _write(store, installation_id, older).updated == 1
    record = store.get_record(installation_id, PRODUCT, "a")
    assert record is not None
    assert (record.data, record.partial) == ({"name": "A", "status": "shipped", "updatedAt": "T2"}, False)
    assert record.version == "2024-05-02T10:00:00.000000Z"  # the update's, newer, stays
    assert _write(store, installation_id, older).stale == 1  # complete now: an older record is stale again


def test_a_full_record_of_unknown_age_completes_a_partial_one_keeping_the_updates(
    store: Store, installation_id: str
) -> None:
    # D22, one rule for webhooks and bulk: nothing says the full record is newer, so the fields
    # the updates brought are kept over it (the webhook path's rule; the store used to replace).
    _write(store, installation_id, RecordWrite("a", {"status": "shipped"}, merge=True), source="webhook")
    result = _write(store, installation_id, RecordWrite("a", {"name": "A", "status": "new"}), source="webhook")
    assert result.written == ["a"]
    assert result.records["a"] == ({"name": "A", "status": "shipped"}, False)  # what was written, not re-read
    record = store.get_record(installation_id, PRODUCT, "a")
    assert record is not None
    assert (record.data, record.partial) == ({"name": "A", "status": "shipped"}, False)


def test_a_full_record_of_the_same_version_completes_a_partial_one_keeping_the_updates(
    store: Store, installation_id: str
) -> None:
    version = "2024-05-01T10:00:00Z"
    _write(store, installation_id, RecordWrite("a", {"status": "shipped"}, version=version, merge=True))
    _write(store, installation_id, RecordWrite("a", {"name": "A", "status": "new"}, version=version))
    record = store.get_record(installation_id, PRODUCT, "a")
    assert record is not None
    assert (record.data, record.partial) == ({"name": "A", "status": "shipped"}, False)


def test_a_newer_full_record_supersedes_a_partial_one(store: Store, installation_id: str) -> None:
    update = RecordWrite("a", {"status": "shipped"}, version="2024-05-01T10:00:00Z", merge=True)
    _write(store, installation_id, update, source="webhook")
    newer = RecordWrite("a", {"name": "A", "status": "delivered"}, version="2024-05-02T10:00:00Z")
    _write(store, installation_id, newer, source="webhook")
    record = store.get_record(installation_id, PRODUCT, "a")
    assert record is not None
    assert (record.data, record.partial, record.version) == (
        {"name": "A", "status": "delivered"},
        False,
        "2024-05-02T10:00:00.000000Z",
    )


def test_a_bulk_page_fetched_after_the_partial_write_supersedes_it(
    store: Store, clock: FakeClock, installation_id: str
) -> None:
    # Without versions, D21's fetch time says which is newer: a page fetched after the update.
    _write(store, installation_id, RecordWrite("a", {"status": "shipped"}, merge=True), source="webhook")
    clock.advance(1)
    page = RecordWrite("a", {"name": "A", "status": "delivered"}, fetched_at=clock.now())
    _write(store, installation_id, page)
    assert _data(store, installation_id, "a") == {"name": "A", "status": "delivered"}


def test_the_records_a_write_returns_are_what_it_stored(store: Store, installation_id: str) -> None:
    _write(store, installation_id, RecordWrite("a", {"name": "A", "total": 1}))
    result = _write(
        store,
        installation_id,
        RecordWrite("a", {"total": 2}, merge=True),
        RecordWrite("b", {"total": 3}, merge=True),
        RecordWrite("c", {"name": "C"}),
        source="webhook",
    )
    assert result.records == {
        "a": ({"name": "A", "total": 2}, False),
        "b": ({"total": 3}, True),
        "c": ({"name": "C"}, False),
    }
    unchanged = _write(store, installation_id, RecordWrite("c", {"name": "C"}))
    assert unchanged.records == {}


def test_later_writes_of_a_code_in_one_batch_win(store: Store, installation_id: str) -> None:
    result = _write(
        store,
        installation_id,
        RecordWrite("a", {"v": 1, "x": 1}),
        RecordWrite("b", {"v": 1}),
        RecordWrite("a", {"v": 2}, merge=True),
        RecordWrite("a", {"v": 2, "x": 1}),
    )
    assert result == WriteResult(created=2, updated=1, unchanged=1, stale=0, written=["a", "b"])
    assert _data(store, installation_id, "a") == {"v": 2, "x": 1}
    assert store.count_records(installation_id) == 2


def test_records_not_seen_since_a_run_began_are_soft_deleted(
    store: Store, installation_id: str, clock: FakeClock
) -> None:
    _write(store, installation_id, *(RecordWrite(code, {"code": code}) for code in "abcd"))
    clock.advance(60)
    run = store.start_run(installation_id, "products")
    _write(store, installation_id, RecordWrite("a", {"code": "a"}), RecordWrite("b", {"code": "b2"}), run_id=run.id)
    _write(store, installation_id, RecordWrite("c", {"code": "c"}, merge=True), source="webhook")
    assert store.soft_delete_unseen(installation_id, PRODUCT, since=run.started_at) == 1
    assert store.soft_delete_unseen(installation_id, PRODUCT, since=run.started_at) == 0
    gone = store.get_record(installation_id, PRODUCT, "d")
    assert gone is not None
    assert gone.deleted
    assert [r.code for r in store.list_records(installation_id, PRODUCT)] == ["a", "b", "c"]
    assert [r.code for r in store.list_records(installation_id, include_deleted=True)] == ["a", "b", "c", "d"]
    assert store.count_records(installation_id) == 3
    assert store.count_records(installation_id, include_deleted=True) == 4
    revived = _write(store, installation_id, RecordWrite("d", {"code": "d"}))
    assert (revived.updated, revived.written) == (1, ["d"])
    assert store.count_records(installation_id) == 4


def test_records_are_listed_by_content_type_and_code_in_pages(store: Store, installation_id: str) -> None:
    _write(store, installation_id, *(RecordWrite(f"p{i:02}", {"i": i}) for i in range(12)))
    store.write_records(installation_id, "core:customer", [RecordWrite("c1", {})], source="bulk")
    page = store.list_records(installation_id, PRODUCT, limit=5, offset=5)
    assert [r.code for r in page] == [f"p{i:02}" for i in range(5, 10)]
    assert [(r.content_type, r.code) for r in store.list_records(installation_id, limit=2)] == [
        ("core:customer", "c1"),
        (PRODUCT, "p00"),
    ]
    assert store.get_record(installation_id, "core:customer", "p00") is None


def test_a_batch_of_thousands_is_read_in_chunks(store: Store, installation_id: str) -> None:
    writes = [RecordWrite(str(i), {"i": i}) for i in range(1_200)]
    assert _write(store, installation_id, *writes).created == 1_200
    assert _write(store, installation_id, *writes).unchanged == 1_200


def test_checkpoint_is_saved_with_the_records_it_covers(store: Store, installation_id: str) -> None:
    run = store.start_run(installation_id, "products")
    _write(store, installation_id, RecordWrite("a", {"v": 1}), run_id=run.id, checkpoint=("products", {"page": 1}))
    assert store.get_checkpoint(installation_id, "products") == {"page": 1}
    _write(store, installation_id, run_id=run.id, checkpoint=("products", {"cursor": "abc"}))
    assert store.get_checkpoint(installation_id, "products") == {"cursor": "abc"}
    store.clear_checkpoint(installation_id, "products")
    assert store.get_checkpoint(installation_id, "products") is None


def test_a_failure_mid_batch_leaves_neither_records_nor_checkpoint(store: Store, installation_id: str) -> None:
    _write(store, installation_id, RecordWrite("a", {"v": 1}), checkpoint=("products", {"page": 1}))
    # The records are upserted before the checkpoint, whose state cannot be serialised.
    with pytest.raises(StoreError, match="cannot write core:product records"):
        _write(
            store,
            installation_id,
            RecordWrite("a", {"v": 2}),
            RecordWrite("b", {"v": 2}),
            checkpoint=("products", {"page": object()}),
        )
    assert _data(store, installation_id, "a") == {"v": 1}
    assert store.get_record(installation_id, PRODUCT, "b") is None
    assert store.get_checkpoint(installation_id, "products") == {"page": 1}


def test_sqlite_stores_the_canonical_json_its_hash_is_taken_of(tmp_path: Path) -> None:
    # One serialisation a record: the stored text is the sorted-key JSON the content hash covers.
    data = {"name": "A", "nested": {"b": 1, "a": None}, "tags": ["x"]}
    with Store.open(tmp_path / "s.sqlite") as store:
        installation_id = store.save_installation("t", "ns", credentials=b"", metadata={}, user_input={}).id
        _write(store, installation_id, RecordWrite("a", data))
        with store.database.read("read the stored text") as conn:
            text, digest = conn.exec_driver_sql("SELECT data, content_hash FROM records").one()
    assert hashlib.sha256(text.encode()).hexdigest() == digest == content_hash(data)
    assert orjson.loads(text) == data


def test_an_integer_past_64_bits_is_stored_and_hashed_exactly(tmp_path: Path) -> None:
    # orjson refuses it: the plan falls back to canonical(), whose standard-library encoding keeps it exact.
    data = {"id": 2**70 + 1, "nested": {"b": [-(2**65)], "a": "x"}}
    with Store.open(tmp_path / "s.sqlite") as store:
        installation_id = store.save_installation("t", "ns", credentials=b"", metadata={}, user_input={}).id
        _write(store, installation_id, RecordWrite("a", data))
        with store.database.read("read the stored text") as conn:
            text, digest = conn.exec_driver_sql("SELECT data, content_hash FROM records").one()
        assert store.get_record(installation_id, PRODUCT, "a").data == data  # type: ignore[union-attr]
    assert text == '{"id":1180591620717411303425,"nested":{"a":"x","b":[-36893488147419103232]}}'
    assert hashlib.sha256(text.encode()).hexdigest() == digest == content_hash(data)


def test_data_that_is_not_json_is_refused_with_the_code(store: Store, installation_id: str) -> None:
    with pytest.raises(StoreError, match=r"record 'b': its data is not JSON-serialisable"):
        _write(store, installation_id, RecordWrite("a", {"v": 1}), RecordWrite("b", {"v": {1, 2}}))
    assert store.count_records(installation_id) == 0


@pytest.mark.parametrize("code", ["", None, 7])
def test_a_code_must_be_a_non_empty_string(store: Store, installation_id: str, code: Any) -> None:
    with pytest.raises(StoreError, match="code must be a non-empty string"):
        _write(store, installation_id, RecordWrite(code, {}))


def test_an_unknown_source_is_refused(store: Store, installation_id: str) -> None:
    with pytest.raises(StoreError, match="unknown record source 'api'"):
        _write(store, installation_id, RecordWrite("a", {}), source="api")


def test_records_of_an_unknown_installation_are_refused(store: Store) -> None:
    with pytest.raises(StoreError, match="cannot write core:product records of installation 'ghost'"):
        _write(store, "ghost", RecordWrite("a", {}))


# Text that escaping gets wrong: COPY's own markers (tab, newline, backslash, \N, \.), quotes,
# JSON escapes, control characters, non-ASCII text in and beyond the BMP, a combining mark and
# right-to-left text.
AWKWARD = [
    "tab\there",
    "line\nbreak\r\nand carriage return",
    "back\\slash \\N \\. \\\\",
    "\\N",
    "quotes \" ' ` and \\u0041",
    "سلة — ﷺ e\u0301 😀 \u200f",
    "",
    "\x01\x1f\x7f",
]


def test_data_and_every_column_round_trip_exactly(store: Store, installation_id: str, clock: FakeClock) -> None:
    clock.advance(0.123456789)
    data = [
        {"text": text, "nested": {"list": [text, None, True, False, 0, -1.5e-7, 2**63 - 1]}, "null": None}
        for text in AWKWARD
    ]
    writes = [
        RecordWrite(f"c{i}", d, version=None if i % 2 else "2024-05-01T09:00:00Z", merge=i == 3)
        for i, d in enumerate(data)
    ]
    run = store.start_run(installation_id, "products")
    assert _write(store, installation_id, *writes, run_id=run.id).created == len(writes)
    now = clock.now()
    for i, d in enumerate(data):
        assert store.get_record(installation_id, PRODUCT, f"c{i}") == StoredRecord(
            installation_id=installation_id,
            content_type=PRODUCT,
            code=f"c{i}",
            data=d,
            content_hash=content_hash(d),
            version=None if i % 2 else "2024-05-01T09:00:00.000000Z",
            source="bulk",
            partial=i == 3,
            deleted=False,
            created_at=now,
            updated_at=now,
            seen_at=now,
            webhook_at=None,
            run_id=run.id,
        )
    clock.advance(1.5)
    changed = [RecordWrite(f"c{i}", {**d, "text": d["text"][::-1] + "!"}) for i, d in enumerate(data)]
    assert _write(store, installation_id, *changed, source="webhook").updated == len(writes)
    for i, write in enumerate(changed):
        record = store.get_record(installation_id, PRODUCT, f"c{i}")
        assert record is not None
        # c3 was partial: the full write completes it, and the updates' fields win (D22).
        expected = data[i] if i == 3 else write.data
        assert (record.data, record.source, record.partial, record.run_id) == (expected, "webhook", False, run.id)
        assert (record.created_at, record.updated_at, record.webhook_at) == (now, now + 1.5, now + 1.5)
        assert record.version == (None if i % 2 else "2024-05-01T09:00:00.000000Z")


def test_one_transaction_writes_batch_after_batch(store: Store, installation_id: str) -> None:
    # The webhook processor writes several batches in one transaction, the same code among them.
    with Inbox(store).transaction() as tx:
        assert tx.write(installation_id, PRODUCT, [RecordWrite("a", {"v": 1}), RecordWrite("b", {"v": 1})]).created == 2
        assert tx.write(installation_id, PRODUCT, [RecordWrite("a", {"v": 2}), RecordWrite("c", {"v": 2})]) == (
            WriteResult(created=1, updated=1, unchanged=0, stale=0, written=["a", "c"])
        )
        assert tx.write(installation_id, "core:customer", [RecordWrite("a", {"v": 3})]).created == 1
    assert [(r.content_type, r.code, r.data) for r in store.list_records(installation_id)] == [
        ("core:customer", "a", {"v": 3}),
        (PRODUCT, "a", {"v": 2}),
        (PRODUCT, "b", {"v": 1}),
        (PRODUCT, "c", {"v": 2}),
    ]


def test_a_rolled_back_batch_leaves_nothing_behind(store: Store, installation_id: str) -> None:
    def abandon() -> None:
        with Inbox(store).transaction() as tx:
            tx.write(installation_id, PRODUCT, [RecordWrite(code, {"v": 1}) for code in "abc"])
            raise RuntimeError("abandoned")

    with pytest.raises(RuntimeError, match="abandoned"):
        abandon()
    assert store.count_records(installation_id) == 0
    # The next batches (on the same connection, whichever the pool gives) start clean.
    assert _write(store, installation_id, RecordWrite("d", {"v": 2})).written == ["d"]
    assert _write(store, installation_id, RecordWrite("a", {"v": 3})).created == 1
    assert [(r.code, r.data) for r in store.list_records(installation_id)] == [("a", {"v": 3}), ("d", {"v": 2})]


def test_a_nul_character_is_kept_on_sqlite_and_refused_by_postgresql(store: Store, installation_id: str) -> None:
    writes = [RecordWrite("a", {"v": 1}), RecordWrite("b", {"text": "nul \x00 inside"})]
    if store.dialect == "sqlite":
        assert _write(store, installation_id, *writes).created == 2
        assert _data(store, installation_id, "b") == {"text": "nul \x00 inside"}
        return
    # JSONB cannot hold U+0000; the batch fails as a whole, as a StoreError that names it.
    with pytest.raises(StoreError, match=r"cannot write core:product records .*unsupported Unicode escape"):
        _write(store, installation_id, *writes)
    assert store.count_records(installation_id) == 0


def test_a_staged_batch_is_stored_with_its_checkpoint_once_its_commit_is_done(
    store: Store, installation_id: str
) -> None:
    _write(store, installation_id, RecordWrite("a", {"v": 1}))
    writes = (RecordWrite("a", {"v": 2}), RecordWrite("b", {"v": 1}))
    result, commit = store.stage_records(
        installation_id, PRODUCT, writes, source="bulk", checkpoint=("products", {"page": 2})
    )
    assert (result.created, result.updated, result.written) == (1, 1, ["a", "b"])
    commit.result(timeout=60)
    assert (_data(store, installation_id, "a"), _data(store, installation_id, "b")) == ({"v": 2}, {"v": 1})
    assert store.get_checkpoint(installation_id, "products") == {"page": 2}


def test_a_staged_batch_that_fails_is_rolled_back_and_leaves_the_store_writable(
    store: Store, installation_id: str
) -> None:
    with pytest.raises(StoreError, match="cannot write core:product records"):
        store.stage_records(
            installation_id,
            PRODUCT,
            [RecordWrite("a", {"v": 1})],
            source="bulk",
            checkpoint=("products", {"page": object()}),
        )
    done = threading.Event()

    def write() -> None:  # in a thread: a writer lock left held would hang it, not the test
        _write(store, installation_id, RecordWrite("b", {"v": 1}))
        done.set()

    threading.Thread(target=write, daemon=True).start()
    assert done.wait(timeout=60), "the failed staged batch left the store locked"
    assert (_data(store, installation_id, "a"), _data(store, installation_id, "b")) == (None, {"v": 1})
    assert store.get_checkpoint(installation_id, "products") is None


def test_on_sqlite_a_staged_batch_refused_on_the_committer_thread_is_rolled_back_with_its_checkpoint(
    tmp_path: Path,
) -> None:
    # On SQLite a staged batch's statements run on the committer thread, after its checkpoint was
    # saved: a refusal there (a trigger stands in for any database error) must take both back.
    path = tmp_path / "store.sqlite"
    with Store.open(path, clock=FakeClock()) as store:
        installation = store.save_installation("tenant-1", "salla", credentials=b"", metadata={}, user_input={})
        with sqlite3.connect(path) as raw:
            raw.execute(
                "CREATE TRIGGER refuse_bad BEFORE INSERT ON records WHEN NEW.code = 'bad' "
                "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
            )
        writes = [RecordWrite("a", {"v": 1}), RecordWrite("bad", {"v": 1})]
        result, commit = store.stage_records(
            installation.id, PRODUCT, writes, source="bulk", checkpoint=("products", {"page": 2})
        )
        assert result.created == 2  # decided: what it would have done
        with pytest.raises(StoreError, match="cannot write core:product records"):
            commit.result(timeout=60)
        assert store.count_records(installation.id) == 0
        assert store.get_checkpoint(installation.id, "products") is None
        assert _write(store, installation.id, RecordWrite("b", {"v": 1})).created == 1  # not left locked
        assert _data(store, installation.id, "b") == {"v": 1}


def test_on_sqlite_a_write_waits_for_the_staged_commit_before_it(tmp_path: Path) -> None:
    with Store.open(tmp_path / "store.sqlite", clock=FakeClock()) as store:
        installation = store.save_installation("tenant-1", "salla", credentials=b"", metadata={}, user_input={})
        _, commit = store.stage_records(installation.id, PRODUCT, [RecordWrite("a", {"v": 1})], source="bulk")
        _write(store, installation.id, RecordWrite("b", {"v": 1}))
        assert commit.done()
        assert commit.exception() is None
        assert store.count_records(installation.id) == 2
