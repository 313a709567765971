"""Trigger events: the outbox, signed POSTs to subscribers with retries, and the pull API (D27)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import replace
from typing import Any

import orjson
import pytest
from aiohttp import web

from miniapp_sync.testing import post_endpoint
from miniapp_sync.webhooks.delivery import TriggerDelivery, seal
from miniapp_sync.webhooks.posting import Poster
from miniapp_sync.webhooks.settings import WebhookSettings
from miniapp_sync.webhooks.triggers import event_body, event_json

from .conftest import ADMIN, Harness

SUBSCRIBER_SECRET = "subscriber-signing-secret"


class Subscriber:
    """An aiohttp server on 127.0.0.1 that records POSTs and answers with the statuses it is given."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.statuses: list[int] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append((dict(request.headers), await request.read()))
        return web.Response(status=self.statuses.pop(0) if self.statuses else 204)


@pytest.fixture
async def subscriber() -> AsyncIterator[Subscriber]:
    found = Subscriber()
    async with post_endpoint(found.handle) as found.url:
        yield found


def subscribe(harness: Harness, url: str, tenant: str = "acme") -> str:
    sealed = seal(harness.runtime.installations.vault, SUBSCRIBER_SECRET)
    return harness.service.outbox.subscribe(tenant, "salla", url, sealed).id


async def test_an_event_is_posted_signed_after_its_record_is_written(harness: Harness, subscriber: Subscriber) -> None:
    installation = harness.install()
    subscribe(harness, subscriber.url)
    placed = dict(harness.sandbox.data["orders"][0])
    await harness.send("order.created", placed)
    await harness.deliver()
    assert subscriber.received == []  # nothing fires before processing writes the record
    await harness.process()
    assert harness.record(installation, "ecommerce:orders", placed["id"]) is not None
    await harness.deliver()
    ((headers, raw),) = subscriber.received
    assert headers["webhook-signature"].startswith("v1,")  # verified with a library in test_trigger_signatures
    body = orjson.loads(raw)
    assert set(body) == {"id", "event", "tenant", "ns", "occurredAt", "record", "customer"}
    assert (body["event"], body["tenant"], body["ns"]) == ("order.created", "acme", "salla")
    assert headers["webhook-id"] == body["id"]
    assert headers["webhook-timestamp"] == str(int(harness.clock.now()))
    assert body["record"]["contentType"] == "ecommerce:orders"
    assert body["record"]["data"]["code"] == str(placed["id"])
    assert body["customer"]["code"] == str(placed["customer"]["id"])
    (state,) = harness.service.outbox.deliveries()
    assert (state.status, state.attempts) == ("delivered", 1)


async def test_a_failed_post_is_retried_with_backoff_and_the_same_delivery_id(
    harness: Harness, subscriber: Subscriber
) -> None:
    harness.install()
    subscribe(harness, subscriber.url)
    subscriber.statuses = [500, 503]
    await harness.send("order.created")
    await harness.process()
    await harness.deliver()
    assert harness.clock.sleeps == [1.0, 2.0]
    assert len(subscriber.received) == 3
    assert len({headers["webhook-id"] for headers, _ in subscriber.received}) == 1
    (state,) = harness.service.outbox.deliveries()
    assert (state.status, state.attempts) == ("delivered", 3)


async def test_a_subscriber_that_keeps_failing_is_given_up_on(harness: Harness, subscriber: Subscriber) -> None:
    harness.service.delivery.settings = WebhookSettings(delivery_attempts=3)
    harness.install()
    subscribe(harness, subscriber.url)
    subscriber.statuses = [500] * 10
    await harness.send("order.created")
    await harness.process()
    await harness.deliver()
    (state,) = harness.service.outbox.deliveries()
    assert (state.status, state.attempts) == ("failed", 3)
    assert state.error == "gave up after 3 attempts; last: the subscriber answered 500"
    assert harness.service.outbox.count_events("acme") == 1  # still readable through the pull API


async def test_an_unreachable_subscriber_is_retried(harness: Harness, subscriber: Subscriber) -> None:
    harness.service.delivery.settings = WebhookSettings(delivery_attempts=2)
    harness.install()
    subscribe(harness, "http://127.0.0.1:9/hooks")  # the discard port: nothing listens
    await harness.send("order.created")
    await harness.process()
    await harness.deliver()
    (state,) = harness.service.outbox.deliveries()
    assert state.status == "failed"
    assert state.error is not None
    assert state.error == "gave up after 2 attempts; last: the POST failed: ConnectionRefusedError"


class Breaking(Poster):
    """A poster that fails in an unforeseen way for one URL and POSTs for real to the others."""

    def __init__(self, broken: str) -> None:
        super().__init__()
        self.broken = broken

    async def post(self, url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> int:
        if url == self.broken:
            raise RuntimeError("Poster is closed")
        return await super().post(url, body, headers, timeout)


async def test_an_unforeseen_failure_fails_the_job_but_the_batch_s_other_posts_are_recorded(
    harness: Harness, subscriber: Subscriber
) -> None:
    harness.install()
    broken = "http://127.0.0.1:9/hooks"
    good, bad = subscribe(harness, subscriber.url), subscribe(harness, broken)
    await harness.send("order.created")
    await harness.process()
    service = harness.service
    delivery = TriggerDelivery(
        service.outbox, harness.runtime.installations.vault, harness.clock, poster=Breaking(broken)
    )
    with pytest.raises(RuntimeError, match="Poster is closed"):
        await delivery.deliver_due()
    await delivery.close()
    assert len(subscriber.received) == 1
    states = {state.subscription_id: (state.status, state.attempts) for state in service.outbox.deliveries()}
    assert states == {good: ("delivered", 1), bad: ("pending", 0)}  # POSTed once, never again


async def test_each_tenant_s_subscribers_get_only_its_events(harness: Harness, subscriber: Subscriber) -> None:
    harness.install("acme")
    harness.install("globex", metadata={"storeId": "1"})
    subscribe(harness, subscriber.url, tenant="globex")
    await harness.send("order.created")  # acme's store
    await harness.process()
    await harness.deliver()
    assert subscriber.received == []
    assert harness.service.outbox.deliveries() == []


async def get_events(harness: Harness, **query: Any) -> tuple[int, Any]:
    url = f"{harness.base_url}/api/events"
    headers = {"Authorization": f"Bearer {ADMIN}"}
    async with harness.http.get(url, params={k: str(v) for k, v in query.items()}, headers=headers) as response:
        return response.status, await response.json()


async def test_the_pull_api_pages_with_a_cursor(harness: Harness) -> None:
    harness.install()
    for placed in harness.sandbox.data["orders"][:3]:
        await harness.send("order.created", placed)
    await harness.process()
    seen: list[str] = []
    cursor = "0"
    for _ in range(3):
        status, page = await get_events(harness, tenant="acme", after=cursor, limit=2)
        assert status == 200
        seen += [e["record"]["code"] for e in page["items"]]
        cursor = page["next"]
    assert seen == [str(o["id"]) for o in harness.sandbox.data["orders"][:3]]
    assert await get_events(harness, tenant="acme", after=cursor) == (200, {"items": [], "next": cursor})
    assert (await get_events(harness, tenant="other"))[1]["items"] == []


async def test_the_pull_api_needs_the_admin_token_and_a_tenant(harness: Harness) -> None:
    async with harness.http.get(f"{harness.base_url}/api/events", params={"tenant": "acme"}) as response:
        assert response.status == 401
    assert (await get_events(harness))[0] == 400
    assert (await get_events(harness, tenant="acme", after="x"))[0] == 400


async def test_the_post_body_splices_the_stored_payload_as_event_body_writes_it(harness: Harness) -> None:
    harness.install()
    subscribe(harness, "http://127.0.0.1:9/hooks")
    await harness.send("order.created")
    await harness.process()
    (due,) = harness.service.outbox.due()
    assert due.payload_json is not None  # SQLite: read as stored, not parsed
    assert due.event.payload == {}
    parsed = replace(due.event, payload=orjson.loads(due.payload_json))
    assert orjson.loads(event_json(due.event, due.payload_json)) == event_body(parsed)
    assert event_json(due.event, due.payload_json) == event_json(parsed)  # the same bytes as writing it whole
    reordered = {"customer": parsed.payload["customer"], "record": parsed.payload["record"]}
    other = orjson.dumps(reordered).decode()  # not what ``payload`` writes: parsed, not spliced
    assert orjson.loads(event_json(due.event, other)) == event_body(parsed)


async def test_a_batch_s_posts_are_counted_by_outcome(harness: Harness, subscriber: Subscriber) -> None:
    harness.install()
    subscribe(harness, subscriber.url)
    subscribe(harness, "http://127.0.0.1:9/hooks")  # nothing listens: retried later
    for placed in harness.sandbox.data["orders"][:2]:
        await harness.send("order.created", placed)
    await harness.process()
    await harness.service.delivery.deliver_due()
    registry = harness.service.metrics.registry
    labels = {"ns": "salla"}
    delivered = registry.get_sample_value("miniapp_sync_trigger_deliveries_total", {**labels, "outcome": "delivered"})
    retried = registry.get_sample_value("miniapp_sync_trigger_deliveries_total", {**labels, "outcome": "retried"})
    assert (delivered, retried) == (2.0, 2.0)
