"""The receiver: one delivery's way from raw bytes to a durable inbox row and an answer (D24-D26).

Order of work: (size limit, in the server) → WooCommerce ping → tenant → verification →
challenge → body → event → transaction id → group commit → ``webhook.response``.

Answers, and why:
- 401 ``{"error": "unauthorized"}`` when the signature or token does not verify, whatever the
  reason (missing header, wrong length, wrong secret, no secret configured): it never says which.
- The configured 2xx for everything else that reaches us in good faith, so that no sender retries
  forever or disables the webhook: accepted and duplicate deliveries, events with neither handler
  nor trigger (kept as ``ignored``), deliveries for no known installation (kept as ``unmatched``;
  when the MiniApp has a global secret they must verify against it first), WooCommerce's
  unsigned form-encoded ping (kept as ``ping``), and a verified body that is not JSON: it can
  never succeed, so it is kept and dead-lettered with the reason, not refused.
- 404 for a MiniApp this server does not serve; 503 when the inbox cannot commit (the sender
  should retry: nothing was stored).
Logs name the MiniApp, installation and outcome only: never a secret, signature or header value.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any, Final

import orjson

from miniapp_sync.definition.model import Webhook
from miniapp_sync.definition.rules import MISSING
from miniapp_sync.mapping.paths import compile_path
from miniapp_sync.runtime import MiniApp, Runtime
from miniapp_sync.store import InboxEntry, InboxStatus, Installation
from miniapp_sync.webhooks.commit import GroupCommit
from miniapp_sync.webhooks.identify import Delivery, as_text, extract_event, read, transaction_id
from miniapp_sync.webhooks.metrics import WebhookMetrics
from miniapp_sync.webhooks.samples import SampleRecorder
from miniapp_sync.webhooks.tenancy import Directory
from miniapp_sync.webhooks.verification import verify

log = logging.getLogger("miniapp_sync.webhooks")

_PING: Final = re.compile(rb"webhook_id=[0-9]{1,20}")
_NOT_JSON: Final = object()


@dataclass(frozen=True, slots=True)
class Reply:
    """What to answer a delivery: status, body, content type and extra headers; ``outcome`` is for metrics."""

    status: int
    body: bytes
    outcome: str
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()


UNAUTHORIZED: Final = Reply(401, b'{"error":"unauthorized"}', "unauthorized")
TOO_LARGE: Final = Reply(413, b'{"error":"payload too large"}', "too_large")
UNKNOWN_MINIAPP: Final = Reply(404, b'{"error":"not found"}', "unknown_miniapp")
UNAVAILABLE: Final = Reply(503, b'{"error":"temporarily unavailable, retry later"}', "unavailable")


def _acknowledgement(webhook: Webhook | None) -> Reply:
    if webhook is None:
        return Reply(200, b'{"ok":true}', "accepted")
    response = webhook.response
    if isinstance(response.body, str):
        body, content_type = response.body.encode(), "text/plain; charset=utf-8"
    else:
        body, content_type = orjson.dumps(response.body), "application/json"
    return Reply(response.status_code, body, "accepted", content_type, tuple(response.headers.items()))


def _with(reply: Reply, outcome: str) -> Reply:
    return Reply(reply.status, reply.body, outcome, reply.content_type, reply.headers)


class Receiver:
    """Verify, identify and durably store deliveries; answer each as the MiniApp says."""

    def __init__(
        self,
        runtime: Runtime,
        directory: Directory,
        commit: GroupCommit,
        metrics: WebhookMetrics | None = None,
        samples: SampleRecorder | None = None,
    ) -> None:
        self.runtime = runtime
        self.directory = directory
        self.commit = commit
        self.metrics = metrics
        self.samples = samples
        # Per MiniApp, rebuilt when the MiniApp served under an ns is replaced.
        self._acks: dict[str, tuple[MiniApp, dict[str, Reply]]] = {}
        self._triggers: dict[str, tuple[MiniApp, frozenset[str]]] = {}
        self._warned: set[tuple[str, str]] = set()

    def _ack(self, app: MiniApp, outcome: str) -> Reply:
        cached = self._acks.get(app.ns)
        if cached is None or cached[0] is not app:
            base = _acknowledgement(app.definition.webhook)
            outcomes = ("accepted", "duplicate", "ignored", "unmatched", "ping", "invalid")
            cached = self._acks[app.ns] = (app, {name: _with(base, name) for name in outcomes})
        return cached[1][outcome]

    def _wanted(self, app: MiniApp, event: str) -> bool:
        """Return whether an event has a handler or a trigger (else it is only recorded, D25)."""
        cached = self._triggers.get(app.ns)
        if cached is None or cached[0] is not app:
            cached = self._triggers[app.ns] = (app, frozenset(app.definition.trigger_events()))
        return event in app.plan.handlers or event in cached[1]

    async def receive(
        self,
        ns: str,
        installation_id: str | None,
        raw: bytes,
        headers: dict[str, str],
        query: dict[str, str],
    ) -> Reply:
        """Handle one delivery of ``raw`` bytes (``headers`` with lowercase names) and return the answer."""
        app = self.runtime.apps.get(ns)
        if app is None:
            return UNKNOWN_MINIAPP
        webhook = app.definition.webhook
        if _PING.fullmatch(raw):
            # WooCommerce pings once when a webhook is saved, unsigned: it must get a 2xx or it is not saved.
            known = await self.directory.by_id(ns, installation_id) if installation_id else None
            await self.commit.add(InboxEntry(ns, known.id if known else None, None, None, "ping", raw))
            return self._ack(app, "ping")
        try:
            body: Any = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = _NOT_JSON
        delivery = Delivery.lowercased(None if body is _NOT_JSON else body, raw, headers, query)
        installation, mismatch = await self._tenant(app, installation_id, delivery)
        verification = webhook.verification if webhook else None
        secrets = self.directory.secrets(app, installation)
        position = verify(verification, secrets, raw, delivery.headers)
        if position is None and (installation is not None or secrets):
            if not secrets:
                self._warn_no_secret(app, installation)
            log.warning(
                "refused a %s delivery: it does not verify", ns,
                extra={"status": 401, "installation": installation.id if installation else None},
            )  # fmt: skip
            return UNAUTHORIZED
        if installation is None or mismatch is not None:
            reason = mismatch or "no installation matches this delivery"
            if position is None:
                reason += " (not verified: the MiniApp has no global secret)"
            log.warning("kept an unmatched %s delivery: %s", ns, reason)
            await self.commit.add(InboxEntry(ns, None, None, None, "unmatched", raw, reason))
            return self._ack(app, "unmatched")
        if self.metrics is not None and verification is not None and verification.type != "none":
            self.metrics.secret_matched(ns, position or 0)
        challenge = self._challenge(webhook, body)
        if challenge is not None:
            return challenge
        if body is _NOT_JSON:
            reason = "the body is not JSON, so no handler can read it"
            log.warning("dead-lettered a %s delivery for installation %s: %s", ns, installation.id, reason)
            await self.commit.add(InboxEntry(ns, installation.id, None, None, "failed", raw, reason))
            return self._ack(app, "invalid")
        event = extract_event(webhook, delivery)
        key = transaction_id(webhook, event, delivery)
        status: InboxStatus = "pending"
        why: str | None = None
        if event is None:
            status, why = "ignored", "no event name found in the delivery"
        elif not self._wanted(app, event):
            status, why = "ignored", f"no handler or trigger for {event!r}"
        fresh = await self.commit.add(InboxEntry(ns, installation.id, event, key, status, raw, why))
        if self.samples is not None and event is not None:
            # Verified, identified and stored first: recording can skip a body, never lose a delivery.
            self.samples.record(event, body)
        return self._ack(app, "accepted" if fresh and status == "pending" else "ignored" if fresh else "duplicate")

    async def _tenant(
        self, app: MiniApp, installation_id: str | None, delivery: Delivery
    ) -> tuple[Installation | None, str | None]:
        """Return the delivery's installation (None: unknown) and, if the delivery is not for it, why."""
        webhook = app.definition.webhook
        extraction = webhook.tenant_extraction if webhook else None
        named = read(delivery, extraction.source, extraction.path) if extraction else None
        if installation_id is not None:
            installation = await self.directory.by_id(app.ns, installation_id)
            if installation is None:
                return None, f"no installation {installation_id!r} of {app.ns!r}"
            # A per-tenant URL and a body naming a store must agree: a valid delivery for one store
            # must never write into another's installation.
            own = as_text(installation.metadata.get(extraction.match_key)) if extraction is not None else None
            if extraction is not None and named is not None and own != named:
                return installation, f"the delivery names another {extraction.match_key} than its installation's"
            return installation, None
        if extraction is None:
            return None, f"the shared URL needs webhook.tenantExtraction (or use /miniapps/{app.ns}/webhooks/<id>)"
        if named is None:
            return None, f"no {extraction.source} value at {extraction.path!r} names the tenant"
        found = await self.directory.match(app.ns, extraction.match_key, named)
        return found, None if found else f"no installation has {extraction.match_key} {named!r}"

    def _challenge(self, webhook: Webhook | None, body: Any) -> Reply | None:
        config = webhook.challenge_response if webhook else None
        if config is None or not isinstance(body, dict) or body.get(config.identify_field) != config.identify_value:
            return None
        token = compile_path(config.challenge_path).get(body)
        if token is MISSING:
            return Reply(400, b'{"error":"the challenge carries no token"}', "challenge")
        if config.response_field:
            return Reply(200, orjson.dumps({config.response_field: token}), "challenge")
        text = token if isinstance(token, str) else orjson.dumps(token).decode()
        return Reply(200, text.encode(), "challenge", "text/plain; charset=utf-8")

    def _warn_no_secret(self, app: MiniApp, installation: Installation | None) -> None:
        key = (app.ns, installation.id if installation else "")
        if key in self._warned:
            return
        self._warned.add(key)
        verification = app.definition.webhook.verification if app.definition.webhook else None
        name = verification.secret_key if verification else "?"
        log.warning(
            "no webhook secret %r for %s (installation %s, nor in auth.config): its deliveries are refused",
            name,
            app.ns,
            key[1] or "-",
        )
