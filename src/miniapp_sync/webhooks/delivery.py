"""Trigger delivery: POST each outbox event to its subscribers, signed, with retries (D27).

Signatures follow Standard Webhooks (``webhooks/signing.py``); the POSTs go through ``posting``'s
kept-alive connections (not aiohttp: it cost most of the processor's CPU, see there).

A 2xx delivers; anything else (another status, a connection error, a timeout) is retried with
exponential backoff on the injected clock, up to ``delivery_attempts``, then given up (the event
stays in the outbox, readable through the pull API). Redirects are not followed. Errors recorded
name the status or the exception type only: a subscriber URL may carry a token.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter

from miniapp_sync.clock import Clock
from miniapp_sync.installations import Vault
from miniapp_sync.store import Attempt, DueDelivery, Outbox, Subscription
from miniapp_sync.webhooks.concurrency import Call
from miniapp_sync.webhooks.metrics import WebhookMetrics
from miniapp_sync.webhooks.posting import Poster, PostFailed
from miniapp_sync.webhooks.settings import WebhookSettings
from miniapp_sync.webhooks.signing import signed_headers, signing_key
from miniapp_sync.webhooks.triggers import event_json

log = logging.getLogger("miniapp_sync.webhooks")
BATCH = 100


def seal(vault: Vault, secret: str) -> bytes:
    """Encrypt a subscription's signing secret for the store."""
    return vault.encrypt({"secret": secret})


class TriggerDelivery:
    """Send due trigger deliveries: ``deliver_due`` is the body of a deliver job, ``settle`` serves tests."""

    def __init__(
        self,
        outbox: Outbox,
        vault: Vault,
        clock: Clock,
        *,
        settings: WebhookSettings | None = None,
        poster: Poster | None = None,
        metrics: WebhookMetrics | None = None,
        call: Call = asyncio.to_thread,
    ) -> None:
        self.outbox = outbox
        self.vault = vault
        self.clock = clock
        self.settings = settings or WebhookSettings()
        self.metrics = metrics
        self._call = call
        self._poster = poster or Poster()
        self._secrets: dict[bytes, bytes] = {}

    async def settle(self) -> None:
        """Deliver until nothing is pending, waiting out retries on the clock (instantly, with a FakeClock)."""
        while (next_due := await self.deliver_due()) is not None:
            await self.clock.sleep(max(0.0, next_due - self.clock.now()))

    async def close(self) -> None:
        """Close the idle connections to subscribers."""
        self._poster.close()

    async def deliver_due(self) -> float | None:
        """Attempt every delivery that is due; return when the next pending one comes due (None: none)."""
        slots = asyncio.Semaphore(self.settings.delivery_concurrency)

        async def one(delivery: DueDelivery) -> Attempt:
            async with slots:
                return await self._attempt(delivery)

        while True:
            due = await self._call(self.outbox.due, BATCH)
            outcomes = await asyncio.gather(*(one(d) for d in due), return_exceptions=True)
            attempts = [(d, a) for d, a in zip(due, outcomes, strict=True) if isinstance(a, Attempt)]
            # One transaction for the batch: a commit (an fsync on SQLite) per POST cost more than the POST.
            # A crash before it only means those events are POSTed again, which subscribers dedupe by id.
            await self._call(self.outbox.settle_all, [a for _, a in attempts])
            self._count(attempts)
            for outcome in outcomes:
                if isinstance(outcome, BaseException):  # unforeseen (the session closed under it): the job fails
                    raise outcome
            await asyncio.sleep(0)  # store calls may run inline: let waiting requests in between batches
            if len(due) < BATCH:
                return await self._call(self.outbox.next_due)

    async def _attempt(self, delivery: DueDelivery) -> Attempt:
        """POST one delivery; return its outcome, to record."""
        event, subscription = delivery.event, delivery.subscription
        raw = event_json(event, delivery.payload_json)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "miniapp-sync",
            **signed_headers(self._secret(subscription), str(event.id), self.clock.now(), raw),
        }
        error: str | None = None
        try:
            status = await self._poster.post(subscription.url, raw, headers, self.settings.delivery_timeout)
            if not 200 <= status < 300:  # a redirect too: it is not followed
                error = f"the subscriber answered {status}"
        except PostFailed as exc:
            error = f"the POST failed: {exc}"
        attempts = delivery.attempts + 1
        if error is None:
            return Attempt(event.id, subscription.id, "delivered")
        if attempts >= self.settings.delivery_attempts:
            text = f"gave up after {attempts} attempts; last: {error}"
            log.warning("trigger event %d to subscription %s: %s", event.id, subscription.id, text)
            return Attempt(event.id, subscription.id, "failed", text)
        retry_at = self.clock.now() + self.settings.delay(attempts)
        return Attempt(event.id, subscription.id, "pending", error, retry_at)

    def _count(self, attempts: list[tuple[DueDelivery, Attempt]]) -> None:
        if self.metrics is not None:
            names = {"delivered": "delivered", "failed": "failed", "pending": "retried"}
            # Counted per label set, once a batch: a label lookup costs more than the increment.
            counts = Counter((delivery.event.ns, names[attempt.status]) for delivery, attempt in attempts)
            for (ns, outcome), count in counts.items():
                self.metrics.trigger(ns, outcome, count)

    def _secret(self, subscription: Subscription) -> bytes:
        # Keyed by the ciphertext: subscribing the same URL again with a new secret changes it.
        secret = self._secrets.get(subscription.secret)
        if secret is None:
            secret = signing_key(str(self.vault.decrypt(subscription.secret)["secret"]))
            self._secrets[subscription.secret] = secret
        return secret
