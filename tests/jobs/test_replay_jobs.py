"""A bulk replay of deliveries is a job like any other (D36): the same on the in-process queue and on Procrastinate."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from miniapp_sync.errors import UsageError
from miniapp_sync.sandbox import Sandbox
from miniapp_sync.store import Inbox, InboxEntry, Outbox
from miniapp_sync.store.deliveries import Deliveries, DeliveryFilter
from miniapp_sync.store.replays import Replays
from miniapp_sync.webhooks import bulk_replay
from miniapp_sync.webhooks.processor import Processor

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


async def test_a_replay_interrupted_midway_runs_again_without_processing_anything_twice(
    stack: Stack, sandbox: Sandbox
) -> None:
    runtime = stack.runtime
    inbox = Inbox(runtime.store)
    orders = sandbox.data["orders"][:2]
    for n, order in enumerate(orders):
        raw, _ = sandbox.webhook("order.created", order)
        inbox.add([InboxEntry("salla", stack.installation.id, "order.created", f"tx-{n}", "failed", raw, "rejected")])
    replay = Replays(runtime.store).create("salla", {"filter": {"status": "dead"}})

    class Stopped(Processor):
        """A worker stopped (its task cancelled) while the second delivery is being processed."""

        calls = 0

        async def replay(self, app: Any, row: Any) -> str | None:
            Stopped.calls += 1
            if Stopped.calls == 2:
                raise asyncio.CancelledError
            return await super().replay(app, row)

    with pytest.raises(asyncio.CancelledError):
        await bulk_replay.run(runtime, replay, Stopped(runtime))
    assert Outbox(runtime.store).count_events("acme") == 1
    stopped = Replays(runtime.store).get(replay.id)
    assert stopped is not None
    assert stopped.status == "running"  # as the job left it

    def states() -> dict[str | None, str]:
        return {d.transaction_id: d.state for d in Deliveries(runtime.store).find(DeliveryFilter())}

    assert states() == {"tx-0": "processed", "tx-1": "dead"}  # the one stopped midway is put back
    assert len(runtime.store.list_dead_letters()) == 1
    # Meanwhile the filter matches more: the run that comes again (a stopped worker's job is
    # requeued, and reads its replay row) takes the deliveries it resolved, not these.
    raw, _ = sandbox.webhook("order.created", sandbox.data["orders"][2])
    inbox.add([InboxEntry("salla", stack.installation.id, "order.created", "tx-2", "failed", raw, "rejected")])

    report = await bulk_replay.run(runtime, stopped, Processor(runtime))
    assert (report["processed"], report["failed"], report["skipped"]) == (1, 0, 1)
    assert "processed already" in next(i["detail"] for i in report["items"] if i["outcome"] == "skipped")
    assert states() == {"tx-0": "processed", "tx-1": "processed", "tx-2": "dead"}
    assert Outbox(runtime.store).count_events("acme") == 2  # one trigger event each, never two
    for order in orders:
        assert runtime.store.get_record(stack.installation.id, "ecommerce:orders", str(order["id"]))
    assert len(runtime.store.list_dead_letters()) == 1  # the newcomer's alone


async def test_a_replay_claim_that_a_hard_stop_left_behind_is_finished_by_the_next_run(
    stack: Stack, sandbox: Sandbox
) -> None:
    runtime = stack.runtime
    inbox = Inbox(runtime.store)
    raw, _ = sandbox.webhook("order.created", sandbox.data["orders"][0])
    inbox.add([InboxEntry("salla", stack.installation.id, "order.created", "tx-1", "failed", raw, "rejected")])
    (row,) = inbox.list()
    replay = Replays(runtime.store).create("salla", {"filter": {"status": "dead"}})
    (planned,) = bulk_replay.plan(runtime, bulk_replay.select(runtime, replay.selection))
    Replays(runtime.store).start(replay.id, {**replay.selection, "ids": [planned.delivery.id]})
    # A worker killed outright after claiming the row: nothing put it back; a restart's recovery
    # makes it an ordinary delivery waiting for its retry.
    assert inbox.reopen(row.id)
    assert inbox.recover() == 1
    stopped = Replays(runtime.store).get(replay.id)
    assert stopped is not None

    report = await bulk_replay.run(runtime, stopped)
    assert (report["processed"], report["failed"]) == (1, 0)
    assert [d.state for d in Deliveries(runtime.store).find(DeliveryFilter())] == ["processed"]
    assert Outbox(runtime.store).count_events("acme") == 1
    assert runtime.store.list_dead_letters() == []  # its dead letter is marked replayed too


async def test_a_filter_of_refusals_alone_selects_no_inbox_row_to_replay(stack: Stack, sandbox: Sandbox) -> None:
    raw, _ = sandbox.webhook("order.created", sandbox.data["orders"][0])
    entry = InboxEntry("salla", stack.installation.id, "order.created", "tx", "failed", raw, "x")
    Inbox(stack.runtime.store).add([entry])
    deliveries = Deliveries(stack.runtime.store)
    for status in (("rejected",), ("rejected", "rejected")):
        assert deliveries.replayable(DeliveryFilter(status=status), limit=10) == []
        assert deliveries.find(DeliveryFilter(status=status)) == []
    assert len(deliveries.replayable(DeliveryFilter(status=("rejected", "dead")), limit=10)) == 1


async def test_a_replay_whose_selected_delivery_was_purged_meanwhile_says_so_and_replays_the_rest(
    stack: Stack, sandbox: Sandbox
) -> None:
    runtime = stack.runtime
    raw, _ = sandbox.webhook("order.created", sandbox.data["orders"][0])
    Inbox(runtime.store).add([InboxEntry("salla", stack.installation.id, "order.created", "tx", "failed", raw, "x")])
    (row,) = Inbox(runtime.store).list()
    # Checked when queued (the API refuses an unknown id); purged before the job ran.
    replay = Replays(runtime.store).create("salla", {"ids": [str(row.id), "999999"]})

    report = await bulk_replay.run(runtime, replay)
    assert (report["processed"], report["gone"]) == (1, ["999999"])
    finished = Replays(runtime.store).get(replay.id)
    assert finished is not None
    assert finished.selection["ids"] == [str(row.id)]  # what a rerun would take
    with pytest.raises(UsageError, match="no delivery '999999'"):
        bulk_replay.preview(runtime, {"ids": ["999999"]})  # asked for now, it is an error
