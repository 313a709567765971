"""Webhook deliveries: Salla's body shape per event, Arabic labels, and the X-Salla-Signature."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import AsyncIterator
from datetime import datetime

import aiohttp
import orjson
import pytest
from aiohttp import web

from miniapp_sync.sandbox import Sandbox, SandboxConfig
from miniapp_sync.sandbox.catalog import RIYADH
from miniapp_sync.testing import FakeClock

from .conftest import SMALL, sample, shape_diff

EVENTS = ("order.created", "order.status.updated", "abandoned.cart", "customer.created", "product.updated")


def test_sign_is_the_hex_hmac_sha256_of_the_body_with_the_webhook_secret() -> None:
    sandbox = Sandbox(SandboxConfig(products=1, customers=1, orders=0, carts=0, webhook_secret="s3cret"))
    body = b'{"event":"order.created"}'
    assert sandbox.sign(body) == hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()


@pytest.mark.parametrize("event", EVENTS)
def test_deliveries_have_the_sample_shape_and_a_valid_signature(event: str) -> None:
    sandbox = Sandbox(SMALL)
    raw, headers = sandbox.webhook(event)
    expected = hmac.new(sandbox.config.webhook_secret.encode(), raw, hashlib.sha256).hexdigest()
    assert headers["X-Salla-Signature"] == expected
    assert headers["X-Salla-Security-Strategy"] == "Signature"
    assert headers["Content-Type"] == "application/json"
    body = orjson.loads(raw)
    assert body["event"] == event
    assert body["merchant"] == sandbox.config.merchant_id
    assert shape_diff(sample(f"{event}.json"), body) == []


@pytest.mark.parametrize("event", EVENTS)
def test_every_record_s_delivery_has_the_sample_shape(event: str) -> None:
    sandbox = Sandbox(SandboxConfig(seed=9))
    resource = {"order": "orders", "abandoned": "abandonedCarts", "customer": "customers", "product": "products"}
    problems = []
    for record in sandbox.data[resource[event.split(".")[0]]]:
        raw, _ = sandbox.webhook(event, record)
        problems += shape_diff(sample(f"{event}.json"), orjson.loads(raw), f"{event} {record['id']}")
    assert problems == []


def test_without_a_record_the_newest_one_is_sent(clock: FakeClock) -> None:
    sandbox = Sandbox(SMALL, clock=clock)
    (added,) = sandbox.add("orders")
    body = orjson.loads(sandbox.webhook("order.created")[0])
    assert body["data"]["id"] == added["id"]


def test_a_mutated_record_is_sent_with_its_change_in_the_store_s_language(clock: FakeClock) -> None:
    sandbox = Sandbox(SMALL, clock=clock)
    order = sandbox.mutate("orders", sandbox.data["orders"][0]["id"], status="in_progress")
    body = orjson.loads(sandbox.webhook("order.status.updated", order)[0])
    assert body["data"]["status"]["slug"] == "in_progress"
    assert body["data"]["status"]["name"] == "قيد التنفيذ"
    assert body["data"]["updated_at"] == order["updated_at"]
    assert sandbox.data["orders"][0]["status"]["name"] == "In Progress"  # the stored record is untouched


def test_cart_deliveries_follow_the_current_webhook_model(clock: FakeClock) -> None:
    sandbox = Sandbox(SMALL, clock=clock)
    cart = sandbox.data["abandonedCarts"][0]
    data = orjson.loads(sandbox.webhook("abandoned.cart", cart)[0])["data"]
    assert "status" not in data
    assert [set(item) for item in data["items"]] == [{"id", "product_id", "quantity"}] * len(cart["items"])
    assert data["customer"]["country"] == "السعودية"


def test_created_at_is_a_js_date_string_in_store_time(clock: FakeClock) -> None:
    sandbox = Sandbox(SMALL, clock=clock)
    clock.advance(datetime(2024, 5, 2, 14, 3, 14, tzinfo=RIYADH).timestamp() - clock.now())
    body = orjson.loads(sandbox.webhook("customer.created")[0])
    assert body["created_at"] == "Thu May 02 2024 14:03:14 GMT+0300"
    js_date = r"\w{3} \w{3} \d{2} \d{4} \d{2}:\d{2}:\d{2} GMT\+0300"
    assert re.fullmatch(js_date, sample("order.created.json")["created_at"])


def test_unknown_events_and_empty_resources_are_refused() -> None:
    sandbox = Sandbox(SandboxConfig(products=1, customers=1, orders=0, carts=0))
    with pytest.raises(ValueError, match=r"no 'invoice\.paid' webhooks"):
        sandbox.webhook("invoice.paid")
    with pytest.raises(ValueError, match="no orders record"):
        sandbox.webhook("order.created")


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[str, list[tuple[bytes, dict[str, str]]]]]:
    """A receiver on 127.0.0.1 that keeps what it gets and answers 202."""
    got: list[tuple[bytes, dict[str, str]]] = []

    async def keep(request: web.Request) -> web.Response:
        got.append((await request.read(), dict(request.headers)))
        return web.json_response({"kept": len(got)}, status=202)

    app = web.Application()
    app.router.add_post("/hook", keep)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/hook", got
    finally:
        await runner.cleanup()


async def test_the_control_route_sends_a_signed_delivery_of_a_new_order(
    sandbox: Sandbox, receiver: tuple[str, list[tuple[bytes, dict[str, str]]]]
) -> None:
    url, got = receiver
    before = len(sandbox.data["orders"])
    async with aiohttp.ClientSession() as http:
        ask = {"event": "order.created", "to": url}
        async with http.post(f"{sandbox.base_url}/sandbox/webhooks", json=ask) as response:
            said = await response.json()
    assert len(sandbox.data["orders"]) == before + 1  # the store took a new order
    assert said == {
        "event": "order.created",
        "id": sandbox.data["orders"][-1]["id"],
        "status": 202,
        "answer": '{"kept": 1}',
    }
    ((raw, headers),) = got
    assert headers["X-Salla-Signature"] == sandbox.sign(raw)
    assert orjson.loads(raw)["data"]["id"] == said["id"]


async def test_the_control_route_applies_changes_before_sending(
    sandbox: Sandbox, receiver: tuple[str, list[tuple[bytes, dict[str, str]]]]
) -> None:
    url, got = receiver
    order = sandbox.data["orders"][0]
    ask = {"event": "order.status.updated", "to": url, "id": order["id"], "changes": {"status": "shipped"}}
    async with aiohttp.ClientSession() as http, http.post(f"{sandbox.base_url}/sandbox/webhooks", json=ask) as response:
        assert response.status == 200
    ((raw, _),) = got
    assert orjson.loads(raw)["data"]["status"]["slug"] == "shipped"


@pytest.mark.parametrize(
    ("ask", "message"),
    [
        ({"event": "order.created"}, "expected JSON"),
        ({"event": "order.created", "to": "ftp://example.org/x"}, "must be an http(s) URL"),
        ({"event": "coupon.applied", "to": "http://127.0.0.1:9/x"}, "sends no 'coupon.applied' webhooks"),
        ({"event": "order.updated", "to": "http://127.0.0.1:9/x", "id": 999_999}, "no orders record with id 999999"),
    ],
)
async def test_the_control_route_refuses_bad_requests_saying_why(
    sandbox: Sandbox, ask: dict[str, object], message: str
) -> None:
    async with aiohttp.ClientSession() as http, http.post(f"{sandbox.base_url}/sandbox/webhooks", json=ask) as response:
        assert response.status == 400
        assert message in await response.text()
