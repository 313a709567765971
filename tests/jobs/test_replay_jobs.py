"""A bulk replay of deliveries is a job like any other (D36): the same on the in-process queue and on Procrastinate."""

from __future__ import annotations

from miniapp_sync.sandbox import Sandbox
from miniapp_sync.store import Inbox, InboxEntry, Outbox
from miniapp_sync.store.replays import Replays
from miniapp_sync.webhooks import bulk_replay

from .conftest import Stack


async def test_a_replay_job_processes_a_dead_delivery_once_on_either_queue(stack: Stack, sandbox: Sandbox) -> None:
    runtime = stack.runtime
    raw, _ = sandbox.webhook("order.created", sandbox.data["orders"][0])
    inbox = Inbox(runtime.store)
    # Kept and dead-lettered at once, as the processor leaves a delivery whose record was rejected.
    entry = InboxEntry("salla", stack.installation.id, "order.created", "tx-1", "failed", raw, "mapping rejected it")
    inbox.add([entry])
    (row,) = inbox.list()
    (letter,) = runtime.store.list_dead_letters()

    queued = await bulk_replay.queue(runtime, stack.queue, {"filter": {"status": "dead"}})
    assert queued.job_id is not None
    stack.start()
    await stack.settled()

    replay = Replays(runtime.store).get(queued.id)
    assert replay is not None
    assert replay.report is not None
    assert (replay.status, replay.report["processed"], replay.report["failed"]) == ("done", 1, 0)
    assert Replays(runtime.store).of_job(queued.job_id) == replay  # what GET /api/jobs/{id} shows
    done = inbox.get(row.id)
    assert done is not None
    assert done.status == "done"
    assert runtime.store.list_dead_letters() == []  # replayed
    replayed = runtime.store.get_dead_letter(letter.id)
    assert replayed is not None
    assert replayed.replayed_at is not None
    assert Outbox(runtime.store).count_events("acme") == 1
    assert runtime.store.get_record(stack.installation.id, "ecommerce:orders", str(sandbox.data["orders"][0]["id"]))


async def test_the_delivery_list_filters_and_searches_bodies_on_either_store(stack: Stack, sandbox: Sandbox) -> None:
    from miniapp_sync.store.deliveries import Deliveries, DeliveryFilter
    from miniapp_sync.store.rejections import Rejection, Rejections

    first, second = sandbox.data["orders"][:2]
    entries = [
        InboxEntry("salla", stack.installation.id, "order.created", str(o["id"]), "pending", sandbox.webhook(
            "order.created", o)[0])
        for o in (first, second)
    ]  # fmt: skip
    Inbox(stack.runtime.store).add(entries)
    refused = Rejection("salla", "/miniapps/salla/webhooks", None, 401, "stale: too old", 3, None, {}, 1.0)
    Rejections(stack.runtime.store).add(refused)
    deliveries = Deliveries(stack.runtime.store)
    assert [d.state for d in deliveries.find(DeliveryFilter())] == ["pending", "pending", "rejected"]
    found = deliveries.find(DeliveryFilter(q=f'"id":{second["id"]}'))
    assert [d.transaction_id for d in found] == [str(second["id"])]
    assert deliveries.find(DeliveryFilter(q="nowhere at all")) == []
    (stale,) = deliveries.find(DeliveryFilter(status=("rejected",), reason="stale"))
    assert (stale.id, stale.reason) == ("r1", "stale")
    assert deliveries.find(DeliveryFilter(tenant="acme", event="order.created", since=0.0))[1].size > 0
