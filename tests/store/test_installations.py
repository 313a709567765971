"""Installations: one per (tenant, ns), saved again on re-install, updated field by field."""

from __future__ import annotations

import pytest

from miniapp_sync.errors import StoreError
from miniapp_sync.store import Store
from miniapp_sync.testing import FakeClock


def test_saving_twice_for_the_same_tenant_and_ns_updates_one_installation(store: Store, clock: FakeClock) -> None:
    first = store.save_installation("t1", "salla", credentials=b"old", metadata={"storeId": 1}, user_input={})
    clock.advance(10)
    again = store.save_installation(
        "t1", "salla", credentials=b"new\xff", metadata={"storeId": 2}, user_input={"k": "v"}, status="connected"
    )
    assert again.id == first.id
    assert (again.credentials, again.metadata, again.user_input, again.status) == (
        b"new\xff",
        {"storeId": 2},
        {"k": "v"},
        "connected",
    )
    assert (again.created_at, again.updated_at) == (first.created_at, first.created_at + 10)
    assert store.list_installations() == [again]


def test_installations_are_found_by_id_and_by_tenant_and_ns(store: Store) -> None:
    salla = store.save_installation("t1", "salla", credentials=b"a", metadata={}, user_input={})
    zid = store.save_installation("t1", "zid", credentials=b"b", metadata={}, user_input={})
    other = store.save_installation("t2", "salla", credentials=b"c", metadata={}, user_input={})
    assert len({salla.id, zid.id, other.id}) == 3
    assert store.get_installation(zid.id) == zid
    assert store.find_installation("t2", "salla") == other
    assert store.find_installation("t2", "zid") is None
    assert store.get_installation("missing") is None
    assert store.list_installations("salla") == [salla, other]
    assert store.list_installations() == [salla, zid, other]


def test_update_changes_only_the_given_fields(store: Store, clock: FakeClock) -> None:
    saved = store.save_installation("t1", "salla", credentials=b"a", metadata={"m": 1}, user_input={"u": 1})
    clock.advance(1)
    failed = store.update_installation(saved.id, status="error", error="token revoked")
    assert (failed.status, failed.error, failed.credentials) == ("error", "token revoked", b"a")
    assert failed.metadata == {"m": 1}
    assert failed.updated_at == saved.updated_at + 1
    kept = store.update_installation(saved.id, credentials=b"b", metadata={"m": 2}, user_input={"u": 2})
    assert (kept.status, kept.error, kept.credentials, kept.metadata, kept.user_input) == (
        "error",
        "token revoked",
        b"b",
        {"m": 2},
        {"u": 2},
    )
    cleared = store.update_installation(saved.id, status="connected", error=None)
    assert (cleared.status, cleared.error) == ("connected", None)


def test_reinstalling_clears_the_previous_error(store: Store) -> None:
    saved = store.save_installation("t1", "salla", credentials=b"a", metadata={}, user_input={})
    store.update_installation(saved.id, status="error", error="boom")
    again = store.save_installation("t1", "salla", credentials=b"a", metadata={}, user_input={})
    assert (again.status, again.error) == ("pending", None)


def test_updating_an_unknown_installation_is_an_error(store: Store) -> None:
    with pytest.raises(StoreError, match="no such installation"):
        store.update_installation("nope", status="connected")


def test_an_unknown_status_is_refused(store: Store) -> None:
    with pytest.raises(StoreError, match="unknown installation status 'active'; expected one of connected"):
        store.save_installation("t", "ns", credentials=b"", metadata={}, user_input={}, status="active")  # type: ignore[arg-type]


def test_credentials_stay_out_of_the_repr(store: Store) -> None:
    saved = store.save_installation("t", "ns", credentials=b"ciphertext", metadata={}, user_input={})
    assert "ciphertext" not in repr(saved)
