"""The inbox and outbox tables on both backends: dedupe, claims, one event per row, deliveries, purge.

PostgreSQL is found at $MINIAPP_SYNC_TEST_POSTGRES (default postgresql://postgres@127.0.0.1:5432/test);
each run gets a database of its own, dropped afterwards. Without a server the PostgreSQL cases
skip, unless CI=true, where they fail.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from miniapp_sync.errors import StoreError
from miniapp_sync.store import Attempt, Inbox, InboxEntry, Outbox, RecordWrite, Store
from miniapp_sync.store.processing import Processing, _by_field
from miniapp_sync.store.tables import metadata
from miniapp_sync.testing import FakeClock, temporary_database


@pytest.fixture(scope="module")
def postgres_url(postgres_admin_url: str) -> Iterator[str]:
    with temporary_database(postgres_admin_url, "miniapp_sync_webhooks") as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    url = str(tmp_path / "store.sqlite") if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    with Store.open(url, clock=FakeClock()) as opened:
        if request.param == "postgresql":  # one database per module: each test starts empty
            tables = sql.SQL(", ").join(sql.Identifier(t.name) for t in metadata.sorted_tables)
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(sql.SQL("TRUNCATE {} RESTART IDENTITY CASCADE").format(tables))
        yield opened


def installation(store: Store, tenant: str = "acme") -> str:
    return store.save_installation(tenant, "salla", credentials=b"", metadata={}, user_input={}).id


def entry(
    installation_id: str | None, key: str | None, body: bytes = b"{}", event: str = "order.created"
) -> InboxEntry:
    return InboxEntry("salla", installation_id, event, key, "pending", body)


def test_resends_are_left_out_per_installation(store: Store) -> None:
    first, second = installation(store, "acme"), installation(store, "globex")
    inbox = Inbox(store)
    assert inbox.add([entry(first, "k1"), entry(first, "k1"), entry(second, "k1"), entry(first, None)]) == [
        "new",
        "duplicate",
        "new",
        "new",
    ]
    assert inbox.add([entry(first, "k1"), entry(first, None), entry(None, "k1")]) == ["duplicate", "new", "new"]
    assert len(inbox.list()) == 5


def test_a_key_reused_with_another_body_or_event_is_stored_and_flagged(store: Store) -> None:
    owner = installation(store)
    inbox = Inbox(store)
    created = entry(owner, "42", b'{"status": "new"}')
    shipped = entry(owner, "42", b'{"status": "shipped"}', "order.status.updated")
    delivered = entry(owner, "42", b'{"status": "delivered"}', "order.status.updated")
    customer = entry(owner, "42", b'{"status": "new"}', "customer.created")
    assert inbox.add([created, shipped]) == ["new", "new"]  # another event: another key (D26)
    assert inbox.add([delivered, customer, shipped]) == ["reused", "new", "duplicate"]
    assert inbox.add([delivered]) == ["duplicate"]  # the same body again: a resend
    rows = inbox.list()
    assert [(r.event, r.reused) for r in rows] == [
        ("order.created", False),
        ("order.status.updated", False),
        ("order.status.updated", True),
        ("customer.created", False),
    ]


def test_a_batch_larger_than_one_statement_is_stored_whole_in_order(store: Store) -> None:
    # SQLite inserts at most 83 rows a statement (999 bound variables): 250 take four statements.
    owner = installation(store)
    inbox = Inbox(store)
    batch = [entry(owner, f"k{n}", b'{"n": %d}' % n) for n in range(250)]
    batch += [entry(owner, "k7", b'{"n": 7}'), entry(owner, "k9", b'{"n": "other"}'), entry(owner, None)]
    assert inbox.add(batch) == ["new"] * 250 + ["duplicate", "reused", "new"]
    rows = inbox.list(limit=1000)
    assert [(r.transaction_id, r.body, r.reused) for r in rows] == [
        *((f"k{n}", b'{"n": %d}' % n, False) for n in range(250)),
        ("k9", b'{"n": "other"}', True),
        (None, b"{}", False),
    ]
    assert all(r.digest == hashlib.sha256(r.body).digest() and r.status == "pending" for r in rows)
    assert inbox.add(batch[100:101] + batch[240:241]) == ["duplicate", "duplicate"]


def test_a_batch_with_a_row_the_database_refuses_is_not_stored_at_all(store: Store) -> None:
    owner = installation(store)
    inbox = Inbox(store)
    bad = InboxEntry("salla", owner, "order.created", "k-bad", "no such status", b"{}")  # type: ignore[arg-type]
    batch = [entry(owner, f"k{n}") for n in range(200)] + [bad]  # the refused row in the last statement
    with pytest.raises(StoreError, match="cannot store 201 webhook deliveries"):
        inbox.add(batch)
    assert inbox.list() == []
    assert inbox.add(batch[:2]) == ["new", "new"]


def test_an_unprocessable_delivery_is_kept_failed_with_its_dead_letter(store: Store) -> None:
    owner = installation(store)
    inbox = Inbox(store)
    inbox.add([InboxEntry("salla", owner, None, None, "failed", b"\xff not json", "the body is not JSON")])
    (row,) = inbox.list()
    assert row.status == "failed"
    (letter,) = store.list_dead_letters(owner, kind="webhook")
    assert letter.reason == "the body is not JSON"
    assert letter.payload["inboxId"] == row.id
    assert letter.payload["body"].endswith("not json")


def test_claims_count_attempts_and_recovery_puts_rows_back(store: Store) -> None:
    owner = installation(store)
    inbox = Inbox(store)
    inbox.add([entry(owner, f"k{i}") for i in range(3)])
    first, second, third = inbox.list()
    assert inbox.pending_heads() == [(owner, "salla", None)]
    inbox.claim([first.id, second.id])
    inbox.release([second.id])
    assert [(r.status, r.attempts) for r in inbox.list()] == [("processing", 1), ("pending", 0), ("pending", 0)]
    assert inbox.recover() == 1
    inbox.retry_at(first.id, 123.0, "later")
    assert inbox.pending_heads() == [(owner, "salla", 123.0)]
    assert [r.id for r in inbox.pending(owner, 10)] == [first.id, second.id, third.id]


def test_claim_due_claims_in_arrival_order_up_to_a_row_that_waits(store: Store) -> None:
    owner = installation(store)
    inbox = Inbox(store)
    inbox.add([entry(owner, f"k{i}") for i in range(4)])
    first, second, third, fourth = inbox.list()
    inbox.retry_at(third.id, store.clock.now() + 60, "later")
    claimed, waiting = inbox.claim_due(owner, 10)
    assert [(r.id, r.status, r.attempts) for r in claimed] == [
        (first.id, "processing", 1),
        (second.id, "processing", 1),
    ]
    assert waiting is None
    assert [(r.status, r.attempts) for r in inbox.list()] == [
        ("processing", 1), ("processing", 1), ("pending", 0), ("pending", 0)
    ]  # fmt: skip
    assert inbox.claim_due(owner, 10) == ([], store.clock.now() + 60)  # nothing passes the waiting row
    assert inbox.claim_due(installation(store, "globex"), 10) == ([], None)
    store.clock.advance(60)  # type: ignore[attr-defined]
    claimed, _ = inbox.claim_due(owner, 1)
    assert [r.id for r in claimed] == [third.id]
    assert [r.id for r in inbox.list() if r.status == "pending"] == [fourth.id]


def test_a_batch_of_attempts_is_recorded_at_once(store: Store) -> None:
    owner = installation(store)
    inbox, outbox = Inbox(store), Outbox(store)
    subscription = outbox.subscribe("acme", "salla", "https://a.example/hook", b"sealed")
    inbox.add([entry(owner, f"k{i}") for i in range(3)])
    with inbox.transaction() as tx:
        tx.emit("acme", [(row, {"record": None, "customer": None}) for row in inbox.list()])
    one, two, three = (event.id for event in outbox.events("acme"))
    later = store.clock.now() + 60
    outbox.settle_all(
        [
            Attempt(one, subscription.id, "delivered"),
            Attempt(two, subscription.id, "pending", "the subscriber answered 503", retry_at=later),
            Attempt(three, subscription.id, "failed", "gave up after 8 attempts"),
        ]
    )
    states = {d.event_id: d for d in outbox.deliveries()}
    assert [(states[e].status, states[e].attempts, states[e].error) for e in (one, two, three)] == [
        ("delivered", 1, None), ("pending", 1, "the subscriber answered 503"), ("failed", 1, "gave up after 8 attempts")
    ]  # fmt: skip
    assert [states[e].delivered_at for e in (one, two, three)] == [store.clock.now(), None, None]
    assert [states[e].next_attempt_at for e in (one, two, three)] == [None, later, None]
    assert [d.event.id for d in outbox.due()] == []  # the retry is not due yet
    outbox.settle_all([])  # nothing to record: no transaction


def test_a_row_emits_its_event_once_with_a_delivery_per_subscriber(store: Store) -> None:
    owner = installation(store)
    inbox, outbox = Inbox(store), Outbox(store)
    for url in ("https://a.example/hook", "https://b.example/hook"):
        outbox.subscribe("acme", "salla", url, b"sealed")
    inbox.add([entry(owner, "k1")])
    (row,) = inbox.list()
    for _ in range(2):  # a second processing of the same row (after a crash) emits nothing more
        with inbox.transaction() as tx:
            tx.emit("acme", [(row, {"record": None, "customer": None})])
            tx.done(row)
    (event,) = outbox.events("acme")
    assert (event.inbox_id, event.event, event.tenant) == (row.id, "order.created", "acme")
    assert [d.status for d in outbox.deliveries(event.id)] == ["pending", "pending"]
    assert inbox.list()[0].status == "done"


def test_finished_rows_are_purged_and_their_ids_never_reused(store: Store) -> None:
    owner = installation(store)
    inbox = Inbox(store)
    inbox.add([entry(owner, "k1"), entry(owner, "k2")])
    last = inbox.list()[-1].id
    with inbox.transaction() as tx:
        for row in inbox.list():
            tx.done(row)
    assert inbox.purge(store.clock.now() + 1) == 2
    inbox.add([entry(owner, "k1")])  # its key is free again once purged
    assert inbox.list()[0].id > last


def test_events_are_purged_once_old_and_no_delivery_waits(store: Store) -> None:
    owner = installation(store)
    inbox, outbox = Inbox(store), Outbox(store)
    subscription = outbox.subscribe("acme", "salla", "https://a.example/hook", b"sealed")
    inbox.add([entry(owner, "k1"), entry(owner, "k2")])
    with inbox.transaction() as tx:
        tx.emit("acme", [(row, {"record": None, "customer": None}) for row in inbox.list()])
    delivered, waiting = outbox.events("acme")
    outbox.settle(delivered.id, subscription.id, status="delivered")
    later = store.clock.now() + 1
    assert outbox.purge(store.clock.now()) == 0  # not old enough
    assert outbox.purge(later) == 1
    assert [e.id for e in outbox.events("acme")] == [waiting.id]  # its delivery is still pending
    assert [(d.event_id, d.status) for d in outbox.deliveries()] == [(waiting.id, "pending")]


def test_a_resend_another_server_stores_meanwhile_does_not_fail_the_commit(store: Store) -> None:
    if store.dialect != "postgresql":
        pytest.skip("SQLite writers take turns: the second one finds the first one's row")
    acme = installation(store)
    url = store.database.url.set(drivername="postgresql").render_as_string(hide_password=False)
    entries = [InboxEntry("salla", acme, "order.created", key, "pending", b"{}") for key in ("tx-1", "tx-2")]
    with psycopg.connect(url) as other, ThreadPoolExecutor(1) as pool:  # another server, mid-commit
        other.execute(
            "INSERT INTO webhook_inbox (ns, installation_id, event, transaction_id, status, body, attempts, "
            "received_at, digest) VALUES ('salla', %s, 'order.created', 'tx-1', 'pending', '{}', 0, 0, %s)",
            (acme, hashlib.sha256(b"{}").digest()),
        )
        ours = pool.submit(Inbox(store).add, entries)  # finds no tx-1, then waits on the other's insert
        with psycopg.connect(url, autocommit=True) as watch:
            while (
                not ours.done()
                and not watch.execute(
                    "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
                ).fetchone()
            ):
                time.sleep(0.01)  # watching the other connection block, not testing time
        other.commit()
        ours.result(timeout=10)
    assert sorted(r.transaction_id for r in Inbox(store).list()) == ["tx-1", "tx-2"]


def test_inbox_bodies_are_compressed_with_lz4_on_postgresql(store: Store) -> None:
    if store.dialect != "postgresql":
        pytest.skip("SQLite does not compress")
    query = "SELECT attcompression FROM pg_attribute WHERE attrelid = 'webhook_inbox'::regclass AND attname = 'body'"
    with store.database.read("read the body column's compression") as conn:
        assert conn.exec_driver_sql(query).scalar_one() == "l"


@pytest.mark.parametrize("field", ["primaryEmail", "primaryPhone"])
def test_a_customer_is_found_by_email_or_phone_through_an_index(store: Store, field: str) -> None:
    owner = installation(store)
    customers = [
        RecordWrite(str(n), {"code": str(n), "primaryEmail": f"Buyer{n}@Example.com", "primaryPhone": f"+9665{n:08d}"})
        for n in range(2000)
    ]
    store.write_records(owner, "core:customer", customers, source="bulk")
    wanted = customers[1234].data[field]
    with store.database.write("analyze") as conn:
        conn.exec_driver_sql("ANALYZE")  # what the planner knows of a store in use
        found = Processing(conn, 0.0).find_by_field(owner, "core:customer", field, wanted.upper())
        assert found is not None
        assert found.code == "1234"
        query = _by_field(store.dialect, "core:customer", field).compile(conn)
        values = query.construct_params({"p_installation_id": owner, "p_value": wanted.lower()})
        if query.positiontup is None:  # PostgreSQL: named parameters
            plan = conn.exec_driver_sql(f"EXPLAIN {query}", values).all()
        else:
            plan = conn.exec_driver_sql(
                f"EXPLAIN QUERY PLAN {query}", tuple(values[k] for k in query.positiontup)
            ).all()
    index = "ix_records_customer_" + ("email" if field == "primaryEmail" else "phone")
    assert index in str(plan), plan
