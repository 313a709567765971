"""Trigger deliveries verify with a Standard Webhooks library, over real HTTP; tampering fails."""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from miniapp_sync.testing import FakeClock, post_endpoint
from miniapp_sync.webhooks.delivery import seal
from miniapp_sync.webhooks.signing import SecretError, new_secret, signing_key, verification_secret

from .conftest import Harness


@pytest.fixture
def clock() -> FakeClock:
    # The library checks the timestamp against the real time (±5 minutes): start the fake clock there.
    return FakeClock(start=time.time())


class VerifyingSubscriber:
    """A subscriber on 127.0.0.1 that answers 204 only to deliveries its library verifies, else 400."""

    def __init__(self) -> None:
        self.secret = ""
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.verified: list[object] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        headers = dict(request.headers)
        self.received.append((headers, raw))
        try:
            self.verified.append(Webhook(self.secret).verify(raw, headers))
        except WebhookVerificationError:
            return web.Response(status=400)
        return web.Response(status=204)


@pytest.fixture
async def subscriber() -> AsyncIterator[VerifyingSubscriber]:
    found = VerifyingSubscriber()
    async with post_endpoint(found.handle) as found.url:
        yield found


async def deliver_one(harness: Harness, subscriber: VerifyingSubscriber, secret: str) -> None:
    harness.install()
    harness.service.outbox.subscribe("acme", "salla", subscriber.url, seal(harness.runtime.installations.vault, secret))
    await harness.send("order.created")
    await harness.process()
    await harness.deliver()


async def test_a_subscriber_library_verifies_deliveries_signed_with_a_whsec_secret(
    harness: Harness, subscriber: VerifyingSubscriber
) -> None:
    subscriber.secret = new_secret()
    await deliver_one(harness, subscriber, subscriber.secret)
    ((headers, _),) = subscriber.received
    assert {"webhook-id", "webhook-timestamp", "webhook-signature"} <= {k.lower() for k in headers}
    (body,) = subscriber.verified
    assert isinstance(body, dict)
    assert body["event"] == "order.created"
    (state,) = harness.service.outbox.deliveries()
    assert state.status == "delivered"


async def test_a_subscription_secret_from_before_standard_webhooks_verifies_as_whsec_of_its_bytes(
    harness: Harness, subscriber: VerifyingSubscriber
) -> None:
    legacy = "subscriber-signing-secret"
    subscriber.secret = "whsec_" + base64.b64encode(legacy.encode()).decode()
    assert verification_secret(legacy) == subscriber.secret
    await deliver_one(harness, subscriber, legacy)
    assert len(subscriber.verified) == 1
    (state,) = harness.service.outbox.deliveries()
    assert state.status == "delivered"


async def test_a_tampered_delivery_body_fails_verification(harness: Harness, subscriber: VerifyingSubscriber) -> None:
    subscriber.secret = new_secret()
    await deliver_one(harness, subscriber, subscriber.secret)
    ((headers, raw),) = subscriber.received
    tampered = raw.replace(b'"acme"', b'"evil"')
    assert tampered != raw
    with pytest.raises(WebhookVerificationError):
        Webhook(subscriber.secret).verify(tampered, headers)


async def test_a_delivery_signed_with_another_secret_is_refused_then_given_up(
    harness: Harness, subscriber: VerifyingSubscriber
) -> None:
    subscriber.secret = new_secret()
    await deliver_one(harness, subscriber, new_secret())
    assert subscriber.verified == []
    (state,) = harness.service.outbox.deliveries()
    assert state.status == "failed"
    assert state.error is not None
    assert state.error.endswith("the subscriber answered 400")


def test_a_whsec_secret_that_is_not_base64_is_refused() -> None:
    with pytest.raises(SecretError, match="base64"):
        signing_key("whsec_not*base64!")
    with pytest.raises(SecretError, match="empty"):
        signing_key("")
