"""The processor: customer extraction, handler operations, triggers, retries, dead letters, restarts (D21-D28)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import orjson

from miniapp_sync.errors import StoreError
from miniapp_sync.jobs import LocalQueue, Work
from miniapp_sync.store import Inbox, InboxEntry, RecordWrite, Store
from miniapp_sync.store.processing import Processing
from miniapp_sync.testing import FakeClock
from miniapp_sync.webhooks.processor import Processor
from miniapp_sync.webhooks.settings import WebhookSettings

from .conftest import Harness


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait (polling the loop) until ``condition()`` holds: the queue's workers run on their own tasks."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


class FlakyInbox(Inbox):
    """An inbox whose processing transactions fail ``failures`` times before they work."""

    def __init__(self, store: Store, failures: int) -> None:
        super().__init__(store)
        self.failures = failures

    @contextmanager
    def transaction(self) -> Iterator[Processing]:
        if self.failures > 0:
            self.failures -= 1
            raise StoreError("cannot process webhook deliveries: database is locked")
        with super().transaction() as tx:
            yield tx


def order(harness: Harness, index: int = -1) -> dict[str, Any]:
    return dict(harness.sandbox.data["orders"][index])


def events(harness: Harness, tenant: str = "acme") -> list[tuple[str, dict[str, Any]]]:
    return [(e.event, e.payload) for e in harness.service.outbox.events(tenant)]


async def test_an_order_is_written_linked_to_its_customer_then_its_trigger_fires(harness: Harness) -> None:
    installation = harness.install()
    placed = order(harness)
    await harness.send("order.created", placed)
    await harness.process()
    stored = harness.record(installation, "ecommerce:orders", placed["id"])
    assert stored is not None
    assert stored.source == "webhook"
    assert not stored.partial
    customer_code = str(placed["customer"]["id"])
    assert stored.data["customerCode"] == customer_code
    customer = harness.record(installation, "core:customer", customer_code)
    assert customer is not None
    assert customer.data["primaryEmail"] == placed["customer"]["email"].lower()
    ((event, payload),) = events(harness)
    assert event == "order.created"
    assert payload["record"]["code"] == str(placed["id"])
    assert payload["record"]["data"]["orderNumber"] == str(placed["reference_id"])
    assert payload["customer"]["code"] == customer_code
    assert harness.rows()[0].status == "done"


async def test_an_update_that_arrives_before_its_create_is_kept_partial_then_completed(harness: Harness) -> None:
    installation = harness.install()
    placed = order(harness)
    created = harness.sandbox.webhook("order.created", placed)  # the older snapshot, delivered late
    harness.clock.advance(60)
    changed = harness.sandbox.mutate("orders", placed["id"], status="completed")
    await harness.send("order.status.updated", changed)
    await harness.process()
    early = harness.record(installation, "ecommerce:orders", placed["id"])
    assert early is not None
    assert early.partial
    assert early.data["status"] == "completed"
    assert "orderNumber" not in early.data
    await harness.post(*created)
    await harness.process()
    complete = harness.record(installation, "ecommerce:orders", placed["id"])
    assert complete is not None
    assert not complete.partial
    assert complete.data["orderNumber"] == str(placed["reference_id"])
    assert complete.data["status"] == "completed"  # the update happened later: it is kept
    assert complete.version == early.version
    assert [event for event, _ in events(harness)] == ["order.status.updated", "order.created"]


async def test_of_two_updates_out_of_order_the_older_is_stale_and_fires_nothing(harness: Harness) -> None:
    installation = harness.install()
    placed = order(harness)
    await harness.send("order.created", placed)
    harness.clock.advance(60)
    sandbox = harness.sandbox
    first = sandbox.webhook("order.status.updated", sandbox.mutate("orders", placed["id"], status="in_progress"))
    harness.clock.advance(60)
    second = sandbox.webhook("order.status.updated", sandbox.mutate("orders", placed["id"], status="completed"))
    await harness.post(*second)
    await harness.post(*first)
    await harness.process()
    stored = harness.record(installation, "ecommerce:orders", placed["id"])
    assert stored is not None
    assert stored.data["status"] == "completed"
    assert [event for event, _ in events(harness)] == ["order.created", "order.status.updated"]
    assert [r.status for r in harness.rows()] == ["done", "done", "done"]


async def test_an_unchanged_record_fires_nothing(harness: Harness) -> None:
    harness.install()
    placed = order(harness)
    await harness.send("order.created", placed)
    await harness.send("order.status.updated", placed)  # the same status again
    await harness.process()
    assert [event for event, _ in events(harness)] == ["order.created"]


async def test_the_customer_is_matched_by_email_before_phone_and_never_duplicated(harness: Harness) -> None:
    installation = harness.install()
    first, second = order(harness, 0), order(harness, 1)
    by_email = RecordWrite("crm-1", {"code": "crm-1", "primaryEmail": first["customer"]["email"].upper()})
    phone = "+966" + str(second["customer"]["mobile"])
    by_phone = RecordWrite("crm-2", {"code": "crm-2", "primaryEmail": "x@example.com", "primaryPhone": phone})
    harness.runtime.store.write_records(installation.id, "core:customer", [by_email, by_phone], source="bulk")
    for placed in (first, second):
        await harness.send("order.created", placed)
    await harness.process()
    for placed, code in ((first, "crm-1"), (second, "crm-2")):
        stored = harness.record(installation, "ecommerce:orders", placed["id"])
        assert stored is not None
        assert stored.data["customerCode"] == code
    assert harness.runtime.store.count_records(installation.id, "core:customer") == 2


async def test_customers_a_batch_creates_are_matched_as_if_each_was_stored_at_once(harness: Harness) -> None:
    # The batch's new customers are written together after it is linked; until then its later
    # deliveries match them by email and phone as the store would (SQLite folds ASCII case only).
    one_by_one, batched = harness.install("acme"), harness.install("globex")
    base = order(harness, 0)
    people = [  # (customer id, email, mobile)
        (9001, "Mixed.Case@Example.com", 500000001),
        (9002, "mixed.case@example.com", 500000002),  # a's email: a's customer
        (9003, "ÉLODIE@example.com", 500000003),
        (9004, "élodie@example.com", 500000004),  # c's: the definition maps emails lower-cased
        (9005, "", 500000001),  # no email, a's phone: a's customer
        (9006, "new@example.com", 500000006),
    ]
    placed = [
        {**base, "id": 70_000 + n, "customer": {**base["customer"], "id": cid, "email": email, "mobile": mobile}}
        for n, (cid, email, mobile) in enumerate(people)
    ]
    for installation in (one_by_one, batched):
        for item in placed:
            await harness.send("order.created", item, installation=installation.id)
    inbox = Inbox(harness.runtime.store)
    await Processor(harness.runtime, inbox, settings=WebhookSettings(batch=1), clock=harness.clock).drain_installation(
        "salla", one_by_one.id
    )
    await Processor(harness.runtime, inbox, clock=harness.clock).drain_installation("salla", batched.id)
    assert {r.status for r in harness.rows()} == {"done"}

    def linked(installation: Any) -> list[Any]:
        return [harness.record(installation, "ecommerce:orders", p["id"]).data["customerCode"] for p in placed]  # type: ignore[union-attr]

    def customers(installation: Any) -> list[tuple[str, Any]]:
        stored = harness.runtime.store.list_records(installation.id, "core:customer", limit=100)
        return [(c.code, c.data) for c in stored]

    assert linked(one_by_one) == ["9001", "9001", "9003", "9003", "9001", "9006"]
    assert linked(batched) == linked(one_by_one)
    assert customers(batched) == customers(one_by_one)
    assert [code for code, _ in customers(batched)] == ["9001", "9003", "9006"]


async def test_shape_b_writes_through_the_resource_mapping(harness: Harness) -> None:
    installation = harness.install()
    person = dict(harness.sandbox.data["customers"][0])
    await harness.send("customer.created", person)
    await harness.process()
    stored = harness.record(installation, "core:customer", person["id"])
    assert stored is not None
    assert stored.data["state"] == "customer"  # a literal only the resource's apiMapping has
    ((event, payload),) = events(harness)
    assert event == "customer.created"
    assert payload["record"]["code"] == payload["customer"]["code"] == str(person["id"])


async def test_a_trigger_without_a_handler_fires_with_no_record(harness: Harness) -> None:
    harness.serve(lambda d: d["sync"]["webhooks"]["handlers"].pop("product.updated"))
    installation = harness.install()
    await harness.send("product.updated")
    await harness.process()
    ((event, payload),) = events(harness)
    assert (event, payload["record"]) == ("product.updated", None)
    assert harness.runtime.store.count_records(installation.id, "core:product") == 0


async def test_a_rejected_record_is_dead_lettered_at_once_with_the_field_that_failed(harness: Harness) -> None:
    harness.serve(lambda d: d["sync"]["webhooks"]["handlers"]["order.created"]["mapping"].update(code="$.data.nope"))
    installation = harness.install()
    await harness.send("order.created")
    await harness.process()
    assert harness.clock.sleeps == []  # no retry: it could never succeed
    assert harness.rows()[0].status == "failed"
    (letter,) = harness.runtime.store.list_dead_letters(installation.id, kind="webhook")
    assert letter.source == "order.created"
    assert "code" in letter.reason
    assert "$.data.nope" in letter.reason
    assert letter.payload["body"]["event"] == "order.created"
    assert events(harness) == []


async def test_a_failing_transaction_is_retried_with_backoff_then_succeeds(harness: Harness) -> None:
    harness.install()
    await harness.send("order.created")
    settings = WebhookSettings(max_attempts=4, backoff=1.0)
    inbox = FlakyInbox(harness.runtime.store, failures=4)  # the batch, then the row alone, twice over
    await Processor(harness.runtime, inbox, settings=settings, clock=harness.clock).settle()
    assert harness.clock.sleeps == [1.0, 2.0]
    (row,) = harness.rows()
    assert (row.status, row.attempts) == ("done", 3)
    assert len(events(harness)) == 1


async def test_what_keeps_failing_is_dead_lettered_after_the_last_attempt(harness: Harness) -> None:
    installation = harness.install()
    await harness.send("order.created")
    await harness.send("customer.created")
    settings = WebhookSettings(max_attempts=3, backoff=2.0)
    inbox = FlakyInbox(harness.runtime.store, failures=6)
    await Processor(harness.runtime, inbox, settings=settings, clock=harness.clock).settle()
    assert harness.clock.sleeps == [2.0, 4.0]
    first, second = harness.rows()
    assert first.status == "failed"
    assert second.status == "done"  # held back while the first was retried, then processed
    (letter,) = harness.runtime.store.list_dead_letters(installation.id, kind="webhook")
    assert letter.reason.startswith("failed 3 times; last: ")
    assert "database is locked" in letter.reason


async def test_rows_a_crash_left_in_processing_are_processed_exactly_once_after_a_restart(harness: Harness) -> None:
    installation = harness.install()
    for placed in harness.sandbox.data["orders"][:3]:
        await harness.send("order.created", placed)
    harness.service.inbox.claim([r.id for r in harness.rows()])  # then the process died
    assert {r.status for r in harness.rows()} == {"processing"}
    restarted = Processor(harness.runtime, Inbox(harness.runtime.store), clock=harness.clock)
    # The restarted server's queue adopts the rows (it owns the store) and its sweep queues their drain.
    queue = LocalQueue(Work(harness.runtime, drain=restarted.drain_installation), clock=harness.clock)
    worker = asyncio.create_task(queue.run_worker(concurrency=1))
    try:
        await until(lambda: [r.status for r in harness.rows()] == ["done"] * 3)
    finally:
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
    assert [(r.status, r.attempts) for r in harness.rows()] == [("done", 2)] * 3
    assert harness.service.outbox.count_events("acme") == 3
    assert harness.runtime.store.count_records(installation.id, "ecommerce:orders") == 3


async def test_a_drain_job_puts_back_its_own_installation_s_interrupted_rows_only(harness: Harness) -> None:
    acme, globex = harness.install("acme"), harness.install("globex")  # one store, two workspaces
    for installation in (acme, globex):
        for placed in harness.sandbox.data["orders"][:2]:
            await harness.send("order.created", placed, installation=installation.id)
    harness.service.inbox.claim([r.id for r in harness.rows()])  # then the worker draining them died
    worker = Processor(harness.runtime, Inbox(harness.runtime.store), clock=harness.clock)
    assert await worker.drain_installation("salla", acme.id) is None
    states = {(r.installation_id, r.status, r.attempts) for r in harness.rows()}
    # globex's rows may belong to a drain running elsewhere: only its own drain job may put them back.
    assert states == {(acme.id, "done", 2), (globex.id, "processing", 1)}
    assert harness.runtime.store.count_records(acme.id, "ecommerce:orders") == 2
    assert harness.runtime.store.count_records(globex.id, "ecommerce:orders") == 0


class Killed(BaseException):
    """The process dying mid-batch (past every ``except Exception``)."""


class CrashingProcessor(Processor):
    """A processor whose process dies while it maps the row of ``crash_on``."""

    crash_on = 0

    def _prepare(self, app: Any, row: Any, country: str, *, replaying: bool = False) -> Any:
        if row.id == self.crash_on:
            raise Killed
        return super()._prepare(app, row, country, replaying=replaying)


async def test_a_batch_s_transaction_claims_the_next_batch_so_a_crash_mapping_it_still_counts(harness: Harness) -> None:
    installation = harness.install()
    for placed in harness.sandbox.data["orders"][:3]:
        await harness.send("order.created", placed)
    first, second, third = harness.rows()
    worker = CrashingProcessor(
        harness.runtime, Inbox(harness.runtime.store), settings=WebhookSettings(batch=1), clock=harness.clock
    )
    worker.crash_on = second.id
    try:
        await worker.settle()
    except Killed:
        pass
    else:
        raise AssertionError("the processor did not reach the second row")
    states = [(r.status, r.attempts) for r in harness.rows()]
    # The first batch committed with the claim of the second: its attempt is counted before it is mapped.
    assert states == [("done", 1), ("processing", 1), ("pending", 0)]
    assert harness.runtime.store.count_records(installation.id, "ecommerce:orders") == 1
    assert [r.id for r in harness.rows()] == [first.id, second.id, third.id]


async def test_after_a_batch_is_retried_row_by_row_the_next_batch_is_still_claimed(harness: Harness) -> None:
    installation = harness.install()
    for placed in harness.sandbox.data["orders"][:3]:
        await harness.send("order.created", placed)
    inbox = FlakyInbox(harness.runtime.store, failures=1)  # the first batch's transaction (and its claim) fails
    await Processor(harness.runtime, inbox, settings=WebhookSettings(batch=2), clock=harness.clock).settle()
    assert [(r.status, r.attempts) for r in harness.rows()] == [("done", 1)] * 3
    assert harness.clock.sleeps == []
    assert harness.service.outbox.count_events("acme") == 3
    assert harness.runtime.store.count_records(installation.id, "ecommerce:orders") == 3


class ArrivalsDuringBatches(Processor):
    """A processor during whose first batch ``arrivals`` more deliveries are stored (the receiver, meanwhile)."""

    arrivals: tuple[InboxEntry, ...] = ()

    async def _process(self, app: Any, rows: Any) -> Any:
        if self.arrivals:
            self.inbox.add(self.arrivals)
            self.arrivals = ()
        return await super()._process(app, rows)


async def test_once_caught_up_the_processor_gathers_before_processing_what_its_batch_claimed(harness: Harness) -> None:
    installation = harness.install()
    for placed in harness.sandbox.data["orders"][:2]:
        await harness.send("order.created", placed)
    first, _ = harness.rows()
    body = orjson.loads(first.body)
    late = [
        InboxEntry("salla", installation.id, "order.created", f"late-{n}", "pending", orjson.dumps(other))
        for n in (1, 2)
        if (other := {**body, "data": {**body["data"], "id": 990_000 + n}})
    ]
    settings = WebhookSettings(gather=0.05)
    inbox = Inbox(harness.runtime.store)
    worker = ArrivalsDuringBatches(harness.runtime, inbox, settings=settings, clock=harness.clock)
    worker.arrivals = tuple(late)
    await worker.settle()
    assert [r.status for r in harness.rows()] == ["done"] * 4
    # The first batch's transaction claimed the two that arrived during it: fewer than a batch, so
    # the processor waited for company once; the second batch claimed nothing and the drain ended.
    assert harness.clock.sleeps == [0.05]
    assert harness.service.outbox.count_events("acme") == 4


class StuckClock(FakeClock):
    """A clock whose sleeps never end (until the sleeper is cancelled): a stop arrives mid-wait."""

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        await asyncio.Event().wait()


async def test_a_stop_while_gathering_puts_the_rows_claimed_ahead_back_uncounted(harness: Harness) -> None:
    installation = harness.install()
    for placed in harness.sandbox.data["orders"][:2]:
        await harness.send("order.created", placed)
    body = orjson.loads(harness.rows()[0].body)
    late = tuple(
        InboxEntry("salla", installation.id, "order.created", f"late-{n}", "pending", orjson.dumps(other))
        for n in (1, 2)
        if (other := {**body, "data": {**body["data"], "id": 990_000 + n}})
    )
    clock = StuckClock()
    worker = ArrivalsDuringBatches(harness.runtime, Inbox(harness.runtime.store), clock=clock)
    worker.arrivals = late
    draining = asyncio.create_task(worker.settle())
    await until(lambda: clock.sleeps == [WebhookSettings().gather])  # the late two are claimed, waiting
    assert [(r.status, r.attempts) for r in harness.rows()] == [("done", 1)] * 2 + [("processing", 1)] * 2
    draining.cancel()
    await asyncio.gather(draining, return_exceptions=True)
    assert [(r.status, r.attempts) for r in harness.rows()] == [("done", 1)] * 2 + [("pending", 0)] * 2
    await Processor(harness.runtime, Inbox(harness.runtime.store), clock=harness.clock).settle()
    assert [(r.status, r.attempts) for r in harness.rows()] == [("done", 1)] * 4


async def test_a_row_that_crashed_the_processor_every_time_is_given_up(harness: Harness) -> None:
    installation = harness.install()
    await harness.send("order.created")
    inbox = harness.service.inbox
    for _ in range(WebhookSettings().max_attempts):
        inbox.claim([harness.rows()[0].id])
        inbox.recover()
    await harness.process()
    assert harness.rows()[0].status == "failed"
    (letter,) = harness.runtime.store.list_dead_letters(installation.id, kind="webhook")
    assert "gave up after 5 attempts" in letter.reason


async def test_records_go_to_the_delivery_s_installation_only(harness: Harness) -> None:
    acme = harness.install("acme")
    globex = harness.install("globex", metadata={"storeId": "777"})
    raw, _ = harness.sandbox.webhook("order.created")
    body = orjson.loads(raw)
    from .test_receiver import signed

    await harness.post(*signed({**body, "merchant": 777}))
    await harness.process()
    assert harness.runtime.store.count_records(acme.id) == 0
    assert harness.runtime.store.count_records(globex.id, "ecommerce:orders") == 1
    assert [e.tenant for e in harness.service.outbox.events("globex")] == ["globex"]


async def test_finished_rows_are_purged_after_the_retention(harness: Harness) -> None:
    harness.install()
    await harness.send("order.created")
    await harness.process()
    harness.clock.advance(WebhookSettings().retention + 1)
    await harness.send("customer.created")
    assert harness.service.inbox.purge(harness.clock.now() - WebhookSettings().retention) == 1
    assert [r.event for r in harness.rows()] == ["customer.created"]


async def test_a_commit_queues_the_drain_that_the_embedded_queue_runs(harness: Harness) -> None:
    harness.install()
    service = harness.service
    queue = LocalQueue(
        Work(harness.runtime, drain=service.processor.drain_installation, deliver=service.delivery.deliver_due)
    )
    service.connect(queue)
    worker = asyncio.create_task(queue.run_worker(concurrency=2, schedule=False))
    try:
        await harness.send("order.created")
        await until(lambda: len(queue.finished) == 2)
    finally:
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
    assert harness.rows()[0].status == "done"
    assert [f.job.kind for f in queue.finished] == ["drain", "deliver"]  # the drain, then its trigger events


async def test_during_a_burst_the_processor_lets_the_receiver_go_first_but_still_moves(harness: Harness) -> None:
    harness.install()
    for placed in harness.sandbox.data["orders"][:3]:
        await harness.send("order.created", placed)
    burst_clock = FakeClock()
    settings = WebhookSettings(batch=1, yield_wait=0.02)
    burst = Processor(harness.runtime, settings=settings, clock=burst_clock, busy=lambda: True)
    await burst.settle()
    assert burst_clock.sleeps == [0.005] * 4 * 3  # held up to yield_wait after each of the 3 batches
    assert {r.status for r in harness.rows()} == {"done"}
    calm_clock = FakeClock()
    calm = Processor(harness.runtime, settings=settings, clock=calm_clock, busy=lambda: False)
    await harness.send("customer.created")
    await calm.settle()
    assert calm_clock.sleeps == []
