"""Record history (D39): a change row per changed record, with its source and the fields it changed."""

from __future__ import annotations

from typing import Any

import pytest

from miniapp_sync.errors import StoreError
from miniapp_sync.store import RecordWrite, Store
from miniapp_sync.store.history import History, RecordChange, diff
from miniapp_sync.testing import FakeClock

PRODUCT = "core:product"


def _write(store: Store, installation_id: str, *writes: RecordWrite, source: str = "bulk", **kw: Any) -> None:
    store.write_records(installation_id, PRODUCT, writes, source=source, **kw)  # type: ignore[arg-type]


def _timeline(store: Store, installation_id: str, code: str) -> list[RecordChange]:
    return History(store).timeline(installation_id, PRODUCT, code)


def test_a_created_record_gets_a_creation_with_the_whole_record_and_its_run(store: Store, installation_id: str) -> None:
    _write(
        store, installation_id, RecordWrite("a", {"name": "A", "price": 5}, version="2026-01-01T00:00:00Z"), run_id="r1"
    )
    [change] = _timeline(store, installation_id, "a")
    assert (change.kind, change.source, change.source_id) == ("created", "bulk", "r1")
    assert change.old is None
    assert change.new == {"name": "A", "price": 5}
    assert change.version == "2026-01-01T00:00:00.000000Z"


def test_an_unchanged_record_writes_no_history_row(store: Store, installation_id: str) -> None:
    _write(store, installation_id, RecordWrite("a", {"name": "A"}), run_id="r1")
    _write(store, installation_id, RecordWrite("a", {"name": "A"}), run_id="r2")
    assert [c.source_id for c in _timeline(store, installation_id, "a")] == ["r1"]


def test_an_update_keeps_only_the_changed_fields_old_and_new(store: Store, installation_id: str) -> None:
    _write(store, installation_id, RecordWrite("a", {"name": "A", "price": 5, "gone": "x", "tags": [1]}), run_id="r1")
    _write(store, installation_id, RecordWrite("a", {"name": "A", "price": 6, "added": 1, "tags": [2]}), run_id="r2")
    latest, first = _timeline(store, installation_id, "a")
    assert (latest.kind, latest.source_id, first.kind) == ("updated", "r2", "created")
    assert latest.old == {"price": 5, "gone": "x", "tags": [1]}
    assert latest.new == {"price": 6, "added": 1, "tags": [2]}


def test_a_change_only_json_sees_is_still_recorded(store: Store, installation_id: str) -> None:
    _write(store, installation_id, RecordWrite("a", {"on": 1, "deep": {"x": 1}}), run_id="r1")
    _write(store, installation_id, RecordWrite("a", {"on": 1, "deep": {"x": True}}), run_id="r2")
    latest = _timeline(store, installation_id, "a")[0]
    assert (latest.old, latest.new) == ({"deep": {"x": 1}}, {"deep": {"x": True}})


def test_a_partial_update_records_only_the_fields_it_changed_and_its_delivery(
    store: Store, installation_id: str
) -> None:
    _write(store, installation_id, RecordWrite("a", {"code": "a", "name": "A", "status": "new"}), run_id="r1")
    merge = RecordWrite("a", {"code": "a", "status": "paid"}, merge=True, origin="42")
    _write(store, installation_id, merge, source="webhook")
    latest = _timeline(store, installation_id, "a")[0]
    assert (latest.kind, latest.source, latest.source_id) == ("updated", "webhook", "42")
    assert (latest.old, latest.new) == ({"status": "new"}, {"status": "paid"})


def test_a_code_written_twice_in_one_batch_gets_one_change_from_before_to_after(
    store: Store, installation_id: str
) -> None:
    _write(store, installation_id, RecordWrite("a", {"n": 1}), run_id="r1")
    _write(store, installation_id, RecordWrite("a", {"n": 2}), RecordWrite("a", {"n": 3}), run_id="r2")
    latest = _timeline(store, installation_id, "a")[0]
    assert (latest.old, latest.new) == ({"n": 1}, {"n": 3})


def test_a_stale_write_appends_nothing(store: Store, installation_id: str) -> None:
    _write(store, installation_id, RecordWrite("a", {"n": 2}, version="2026-02-01T00:00:00Z"), run_id="r1")
    _write(store, installation_id, RecordWrite("a", {"n": 1}, version="2026-01-01T00:00:00Z"), run_id="r2")
    assert len(_timeline(store, installation_id, "a")) == 1


def test_a_big_batch_gets_a_change_per_record(store: Store, installation_id: str) -> None:
    writes = [RecordWrite(f"p{i:03}", {"i": i, "name": "ü" * (i % 3)}) for i in range(700)]
    _write(store, installation_id, *writes, run_id="r1")
    _write(store, installation_id, *[RecordWrite(w.code, {**w.data, "i": -1}) for w in writes[:300]], run_id="r2")
    assert [c.kind for c in _timeline(store, installation_id, "p005")] == ["updated", "created"]
    assert _timeline(store, installation_id, "p699")[0].new == {"i": 699, "name": ""}
    assert _timeline(store, installation_id, "p100")[0].old == {"i": 100}


def test_a_detected_deletion_appends_a_deletion_by_its_run(
    store: Store, installation_id: str, clock: FakeClock
) -> None:
    _write(store, installation_id, RecordWrite("a", {"n": 1}), RecordWrite("b", {"n": 1}), run_id="r1")
    clock.advance(10)
    since = clock.now()
    _write(store, installation_id, RecordWrite("a", {"n": 1}), run_id="r2")
    assert store.soft_delete_unseen(installation_id, PRODUCT, since=since, run_id="r2") == 1
    latest = _timeline(store, installation_id, "b")[0]
    assert (latest.kind, latest.source_id, latest.old, latest.new) == ("deleted", "r2", None, None)
    assert len(_timeline(store, installation_id, "a")) == 1


def test_the_timeline_is_newest_first_and_pages(store: Store, installation_id: str) -> None:
    for n in range(5):
        _write(store, installation_id, RecordWrite("a", {"n": n}), run_id=f"r{n}")
    history = History(store)
    assert [c.source_id for c in history.timeline(installation_id, PRODUCT, "a", limit=2)] == ["r4", "r3"]
    assert [c.source_id for c in history.timeline(installation_id, PRODUCT, "a", limit=2, offset=4)] == ["r0"]


def test_purge_forgets_changes_past_the_retention(store_url: str, clock: FakeClock) -> None:
    with Store.open(store_url, clock=clock, history_days=2) as store:
        installation_id = store.save_installation("t", "salla", credentials=b"c", metadata={}, user_input={}).id
        _write(store, installation_id, RecordWrite("a", {"n": 1}), run_id="old")
        clock.advance(86_400 * 2 + 1)
        _write(store, installation_id, RecordWrite("a", {"n": 2}), run_id="new")
        assert History(store).purge() == 1
        assert [c.source_id for c in _timeline(store, installation_id, "a")] == ["new"]


def test_with_history_off_no_change_is_kept(store_url: str, clock: FakeClock) -> None:
    with Store.open(store_url, clock=clock, history_days=0) as store:
        installation_id = store.save_installation("t", "salla", credentials=b"c", metadata={}, user_input={}).id
        _write(store, installation_id, RecordWrite("a", {"n": 1}), run_id="r1")
        assert store.history_retention is None
        assert _timeline(store, installation_id, "a") == []


def test_a_negative_retention_is_refused_naming_it(tmp_path: Any) -> None:
    with pytest.raises(StoreError, match="history_days: expected 0"):
        Store.open(tmp_path / "s.sqlite", history_days=-1)


def test_diff_tells_removed_added_and_changed_fields_apart() -> None:
    assert diff({"a": 1, "b": {"x": 1}, "c": 0, "e": [1]}, {"a": 2, "b": {"x": 1}, "d": None, "e": [1]}) == (
        {"a": 1, "c": 0},
        {"a": 2, "d": None},
    )
    assert diff({"a": 1, "b": "s"}, {"a": 1.0, "b": "s"}) == ({"a": 1}, {"a": 1.0})  # all JSON told apart
