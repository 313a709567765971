"""Runs, dead letters and OAuth states."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from miniapp_sync.errors import StoreError
from miniapp_sync.store import OAuthState, Store
from miniapp_sync.testing import FakeClock


def test_a_run_goes_from_running_to_its_final_status(store: Store, installation_id: str, clock: FakeClock) -> None:
    run = store.start_run(installation_id, "products")
    assert (run.status, run.resource, run.finished_at, run.stats) == ("running", "products", None, {})
    assert store.get_run(run.id) == run
    clock.advance(3)
    done = store.finish_run(run.id, status="partial", stats={"created": 4, "rejected": 1}, error="1 rejected")
    assert (done.status, done.finished_at, done.stats, done.error) == (
        "partial",
        run.started_at + 3,
        {"created": 4, "rejected": 1},
        "1 rejected",
    )
    assert store.get_run(run.id) == done
    assert store.get_run("missing") is None


def test_runs_are_listed_newest_first(store: Store, installation_id: str, clock: FakeClock) -> None:
    other = store.save_installation("tenant-2", "salla", credentials=b"", metadata={}, user_input={}).id
    runs = []
    for owner in (installation_id, other, installation_id):
        runs.append(store.start_run(owner, None))
        clock.advance(1)
    assert [r.id for r in store.list_runs()] == [r.id for r in reversed(runs)]
    assert [r.id for r in store.list_runs(installation_id)] == [runs[2].id, runs[0].id]
    assert [r.id for r in store.list_runs(limit=1)] == [runs[2].id]


def test_finishing_a_run_needs_a_known_run_and_a_final_status(store: Store, installation_id: str) -> None:
    with pytest.raises(StoreError, match="no such run"):
        store.finish_run("missing", status="failed", stats={})
    run = store.start_run(installation_id, None)
    with pytest.raises(StoreError, match="unknown final run status 'running'"):
        store.finish_run(run.id, status="running", stats={})


def test_dead_letters_are_kept_until_replayed(store: Store, installation_id: str, clock: FakeClock) -> None:
    run = store.start_run(installation_id, "orders")
    record = store.add_dead_letter(
        installation_id, kind="record", source="orders", payload={"id": 1}, reason="code: missing", run_id=run.id
    )
    webhook = store.add_dead_letter(
        installation_id, kind="webhook", source="order.created", payload=["raw", 1], reason="handler failed"
    )
    assert webhook > record
    letter = store.get_dead_letter(record)
    assert letter is not None
    assert (letter.kind, letter.source, letter.payload, letter.reason, letter.run_id, letter.replayed_at) == (
        "record",
        "orders",
        {"id": 1},
        "code: missing",
        run.id,
        None,
    )
    assert [d.id for d in store.list_dead_letters(installation_id)] == [record, webhook]
    assert [d.id for d in store.list_dead_letters(kind="webhook")] == [webhook]
    clock.advance(7)
    store.mark_replayed(record)
    assert [d.id for d in store.list_dead_letters(installation_id)] == [webhook]
    replayed = store.list_dead_letters(installation_id, include_replayed=True, limit=1)
    assert [(d.id, d.replayed_at) for d in replayed] == [(record, letter.created_at + 7)]
    assert store.get_dead_letter(99_999) is None
    with pytest.raises(StoreError, match="no such dead letter"):
        store.mark_replayed(99_999)


def test_an_unknown_dead_letter_kind_is_refused(store: Store, installation_id: str) -> None:
    with pytest.raises(StoreError, match="unknown dead letter kind 'job'"):
        store.add_dead_letter(installation_id, kind="job", source="x", payload={}, reason="r")  # type: ignore[arg-type]


def test_an_oauth_state_is_taken_once(store: Store, clock: FakeClock) -> None:
    store.put_oauth_state("s1", tenant="t1", ns="salla", expires_at=clock.now() + 600)
    assert store.take_oauth_state("s1") == OAuthState("t1", "salla", None, False, {})
    assert store.take_oauth_state("s1") is None
    assert store.take_oauth_state("unknown") is None


def test_an_oauth_state_expires(store: Store, clock: FakeClock) -> None:
    store.put_oauth_state("s1", tenant="t1", ns="salla", expires_at=clock.now() + 600)
    clock.advance(600)
    assert store.take_oauth_state("s1") is None
    store.put_oauth_state("s1", tenant="t1", ns="salla", expires_at=clock.now() + 600)  # the expired one was purged
    assert store.take_oauth_state("s1") == OAuthState("t1", "salla", None, False, {})


def test_an_oauth_state_keeps_what_its_start_link_bound_it_to(store: Store, clock: FakeClock) -> None:
    store.put_oauth_state(
        "s1",
        tenant="t1",
        ns="salla",
        expires_at=clock.now() + 600,
        redirect_uri="https://app.example.com/miniapps/salla/oauth2",
        reconnect=True,
        user_input={"subdomain": "shop-1"},
    )
    taken = store.take_oauth_state("s1")
    assert taken == OAuthState(
        "t1", "salla", "https://app.example.com/miniapps/salla/oauth2", True, {"subdomain": "shop-1"}
    )


def test_a_live_oauth_state_cannot_be_put_twice(store: Store, clock: FakeClock) -> None:
    store.put_oauth_state("s1", tenant="t1", ns="salla", expires_at=clock.now() + 600)
    with pytest.raises(StoreError, match="cannot save an OAuth state"):
        store.put_oauth_state("s1", tenant="t2", ns="salla", expires_at=clock.now() + 600)


def test_concurrent_callbacks_with_one_state_succeed_once(store: Store, clock: FakeClock) -> None:
    states = [f"s{i}" for i in range(20)]
    for state in states:
        store.put_oauth_state(state, tenant="t1", ns="salla", expires_at=clock.now() + 600)
    with ThreadPoolExecutor(4) as pool:
        taken = list(pool.map(store.take_oauth_state, states * 4))
    assert sum(t is not None for t in taken) == len(states)
