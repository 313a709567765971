"""Webhooks at scale-out (D33): the receiver stores deliveries and defers drain jobs; workers process them."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
import uvicorn

from miniapp_sync.jobs import Enqueued, Job, LocalQueue
from miniapp_sync.sandbox import Sandbox
from miniapp_sync.server import create_app
from miniapp_sync.store import Inbox, InboxEntry
from miniapp_sync.testing import FakeClock
from miniapp_sync.webhooks.delivery import seal
from miniapp_sync.webhooks.service import DrainRequests, WebhookService
from miniapp_sync.webhooks.settings import WebhookSettings

from .conftest import Stack, until


@dataclass
class Receiving:
    """A server that enqueues through the stack's queue, and the webhook runtime its workers run."""

    server: WebhookService
    worker: WebhookService
    url: str
    http: aiohttp.ClientSession


@pytest.fixture
async def receiving(stack: Stack, sandbox: Sandbox) -> AsyncIterator[Receiving]:
    runtime = stack.runtime
    runtime.installations.configure("salla", {"webhookSecret": sandbox.config.webhook_secret})
    server = WebhookService(runtime, settings=WebhookSettings(commit_max_delay=0), queue=stack.queue)
    worker = WebhookService(runtime)  # in production, another process's
    stack.work.drain, stack.work.deliver = worker.processor.drain_installation, worker.delivery.deliver_due
    app = create_app(runtime, webhooks=server, queue=stack.queue)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    uv = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="warning"))
    task = asyncio.create_task(uv.serve(sockets=[sock]))
    while not uv.started:
        await asyncio.sleep(0.01)  # waiting for the server to listen, not testing time
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/miniapps/salla/webhooks/{stack.installation.id}"
    try:
        async with aiohttp.ClientSession() as http:
            yield Receiving(server, worker, url, http)
    finally:
        await server.stop()
        await worker.stop()
        uv.should_exit = True
        await task


async def post(receiving: Receiving, sandbox: Sandbox, orders: list[dict[str, Any]]) -> None:
    """POST signed order.created deliveries to the server, each acknowledged."""
    for order in orders:
        raw, headers = sandbox.webhook("order.created", order)
        async with receiving.http.post(receiving.url, data=raw, headers=headers) as response:
            assert response.status == 200, await response.text()


async def test_a_server_with_a_queue_stores_deliveries_and_a_worker_drains_them(
    stack: Stack, sandbox: Sandbox, receiving: Receiving
) -> None:
    await post(receiving, sandbox, sandbox.data["orders"][:3])
    assert receiving.server.drains is not None
    await receiving.server.drains.close()  # the enqueues in flight
    inbox, installation_id = receiving.server.inbox, stack.installation.id
    assert [r.status for r in inbox.list()] == ["pending"] * 3  # the server processes nothing itself
    assert (await stack.queue.drain_inbox("salla", installation_id)).duplicate  # a drain waits already
    stack.start()
    await stack.settled()
    assert [r.status for r in inbox.list()] == ["done"] * 3
    assert stack.runtime.store.count_records(installation_id, "ecommerce:orders") == 3
    assert receiving.server.outbox.count_events("acme") == 3


def store_unqueued(stack: Stack, sandbox: Sandbox, orders: list[dict[str, Any]]) -> Inbox:
    """Store deliveries as the receiver does, with no drain enqueued (as when the enqueue failed)."""
    inbox = Inbox(stack.runtime.store)
    entries = []
    for order in orders:
        raw, _ = sandbox.webhook("order.created", order)
        entries.append(InboxEntry("salla", stack.installation.id, "order.created", str(order["id"]), "pending", raw))
    inbox.add(entries)
    return inbox


async def test_the_sweep_names_the_drains_and_the_delivery_that_are_due(
    stack: Stack, sandbox: Sandbox, receiving: Receiving
) -> None:
    installation_id, clock = stack.installation.id, stack.runtime.clock
    inbox = store_unqueued(stack, sandbox, sandbox.data["orders"][:2])
    assert stack.work.sweep() == [Job("drain", "salla", installation_id)]
    head = inbox.list()[0]
    inbox.retry_at(head.id, clock.now() + 60, "provider down")
    assert stack.work.sweep() == []  # in arrival order, nothing passes a row that waits for its retry
    inbox.retry_at(head.id, clock.now() - 1, "provider down")
    secret = seal(stack.runtime.installations.vault, "subscriber secret")
    receiving.worker.outbox.subscribe("acme", "salla", "http://127.0.0.1:9/automations", secret)
    await receiving.worker.processor.drain_installation("salla", installation_id)
    assert stack.work.sweep() == [Job("deliver")]  # the events of the orders, for the subscriber


async def test_workers_sweep_periodically_so_no_stored_delivery_waits_for_the_next(
    stack: Stack, sandbox: Sandbox, receiving: Receiving
) -> None:
    inbox = store_unqueued(stack, sandbox, sandbox.data["orders"][:2])
    stack.start(periodic=True)
    await until(lambda: [r.status for r in inbox.list()] == ["done"] * 2)


async def test_workers_purge_what_is_past_its_retention(stack: Stack, sandbox: Sandbox, receiving: Receiving) -> None:
    store_unqueued(stack, sandbox, sandbox.data["orders"][:2])
    await receiving.worker.processor.drain_installation("salla", stack.installation.id)
    assert stack.work.purge() == "purged 0 finished inbox rows, 0 trigger events and 0 record changes"
    stack.runtime.clock = FakeClock(stack.runtime.clock.now() + WebhookSettings().retention + 1)
    assert stack.work.purge() == "purged 2 finished inbox rows, 2 trigger events and 0 record changes"
    assert Inbox(stack.runtime.store).list() == []


async def test_deliveries_during_an_enqueue_ask_for_one_more_drain_not_one_each(stack: Stack) -> None:
    calls: list[list[str]] = []
    release = asyncio.Event()

    class Paused(LocalQueue):  # an enqueue that takes a while (the queue's database is busy)
        async def drain_inboxes(self, installations: list[tuple[str, str]]) -> list[Enqueued]:
            calls.append([installation_id for _, installation_id in installations])
            await release.wait()
            return await super().drain_inboxes(installations)

    drains = DrainRequests(Paused(stack.work))
    drains.request("salla", "inst-a")
    await asyncio.sleep(0)  # the first enqueue is in flight
    for _ in range(3):
        drains.request("salla", "inst-a")  # committed meanwhile: the job in flight may have started already
    drains.request("salla", "inst-b")
    await asyncio.sleep(0)
    release.set()
    await drains.close()
    # One enqueue of the first, then one of everything asked for while it was in flight.
    assert calls == [["inst-a"], ["inst-a", "inst-b"]]
