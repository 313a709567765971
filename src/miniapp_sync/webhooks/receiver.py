"""The receiver: one delivery's way from raw bytes to a durable inbox row and an answer (D24-D26).

Order of work: (size limit, in the server) → WooCommerce ping → tenant → verification →
challenge → body → event → transaction id → group commit → ``webhook.response``.

The tenant (D24): the installation in the URL; else ``webhook.tenantExtraction``; else, as a
definition written from the guide has none, the provider's well-known place (``providers``), then
the one installation whose own secret verifies, then the only installation of the ns.

Answers, and why:
- 401 ``{"error": "unauthorized"}`` when the signature or token does not verify, whatever the
  reason (missing header, wrong length, wrong secret, no secret configured), or the timestamp is
  stale (D42): it never says which; the rejection trail does, for the operator.
- 404 when no installation is found and the MiniApp's own secret does not vouch for the delivery
  (D24a): its body is not stored.
- The configured 2xx for everything else that reaches us in good faith, so that no sender retries
  forever or disables the webhook: accepted deliveries and resends (same key, same body, D26),
  events with neither handler nor trigger (kept as ``ignored``), verified deliveries for no
  known installation (kept as ``unmatched`` until ``inbox assign``), WooCommerce's unsigned
  form-encoded ping (kept as ``ping``), and a verified body that is not JSON: it can never
  succeed, so it is kept and dead-lettered with the reason, not refused.
- 404 for a MiniApp this server does not serve; 503 when the inbox cannot commit (the sender
  should retry: nothing was stored).
401, 404 (unknown tenant) and 413 leave a metadata-only row in the rejection trail.
Logs name the MiniApp, installation and outcome only: never a secret, signature or header value.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from functools import partial
from typing import Any, Final

import orjson

from miniapp_sync import exactjson
from miniapp_sync.clock import Clock
from miniapp_sync.definition.rules import MISSING
from miniapp_sync.definition.webhook_model import Verification, Webhook
from miniapp_sync.errors import MiniAppSyncError
from miniapp_sync.mapping.paths import compile_path
from miniapp_sync.runtime import MiniApp, Runtime
from miniapp_sync.store import InboxEntry, InboxStatus, Installation
from miniapp_sync.webhooks.commit import GroupCommit
from miniapp_sync.webhooks.identify import Delivery, as_text, extract_event, read, transaction_id
from miniapp_sync.webhooks.metrics import WebhookMetrics
from miniapp_sync.webhooks.providers import well_known_place
from miniapp_sync.webhooks.rejections import RejectionTrail
from miniapp_sync.webhooks.samples import SampleRecorder
from miniapp_sync.webhooks.tenancy import Directory
from miniapp_sync.webhooks.verification import verify

log = logging.getLogger("miniapp_sync.webhooks")

_PING: Final = re.compile(rb"webhook_id=[0-9]{1,20}")
_NOT_JSON: Final = object()
TIMESTAMP_TOLERANCE: Final = 300.0  # seconds either way (D42, as Standard Webhooks)
MAX_SECRET_CANDIDATES: Final = 32  # installations tried by their own secret at most (D24 rule 2)


@dataclass(frozen=True, slots=True)
class Reply:
    """What to answer a delivery: status, body, content type and extra headers; ``outcome`` is for metrics."""

    status: int
    body: bytes
    outcome: str
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()


UNAUTHORIZED: Final = Reply(401, b'{"error":"unauthorized"}', "unauthorized")
UNKNOWN_TENANT: Final = Reply(404, b'{"error":"no installation for this delivery"}', "unknown_tenant")
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


def _declares(installation: Installation, keys: tuple[str, ...]) -> bool:
    return any(as_text(installation.metadata.get(key)) is not None for key in keys)


def _unverified(verification: Verification | None, secrets: tuple[bytes, ...], delivery: Delivery) -> str:
    """Return why a delivery did not verify, for the rejection trail (the answer never says)."""
    if not secrets:
        return "no secret is configured to verify it"
    header = (verification.header_name or "") if verification is not None else ""
    if not delivery.headers.get(header.lower()):
        return f"no {header} header"
    return f"the {header} signature does not verify"


class Receiver:
    """Verify, identify and durably store deliveries; answer each as the MiniApp says."""

    def __init__(
        self,
        runtime: Runtime,
        directory: Directory,
        commit: GroupCommit,
        metrics: WebhookMetrics | None = None,
        samples: SampleRecorder | None = None,
        *,
        rejections: RejectionTrail | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.runtime = runtime
        self.directory = directory
        self.commit = commit
        self.metrics = metrics
        self.samples = samples
        self.clock = clock or runtime.clock
        self.rejections = rejections
        # Per MiniApp, rebuilt when the MiniApp served under an ns is replaced.
        self._acks: dict[str, tuple[MiniApp, dict[str, Reply]]] = {}
        self._triggers: dict[str, tuple[MiniApp, frozenset[str]]] = {}
        self._warned: set[tuple[str, str]] = set()

    def _ack(self, app: MiniApp, outcome: str) -> Reply:
        cached = self._acks.get(app.ns)
        if cached is None or cached[0] is not app:
            base = _acknowledgement(app.definition.webhook)
            outcomes = ("accepted", "duplicate", "reused_id", "ignored", "unmatched", "ping", "invalid")
            cached = self._acks[app.ns] = (app, {name: _with(base, name) for name in outcomes})
        return cached[1][outcome]

    def _wanted(self, app: MiniApp, event: str) -> bool:
        """Return whether an event has a handler or a trigger (else it is only recorded, D25)."""
        cached = self._triggers.get(app.ns)
        if cached is None or cached[0] is not app:
            cached = self._triggers[app.ns] = (app, frozenset(app.definition.trigger_events()))
        return event in app.plan.handlers or event in cached[1]

    async def refuse(
        self,
        reply: Reply,
        ns: str,
        installation_id: str | None,
        reason: str,
        *,
        size: int,
        body: bytes | None,
        headers: dict[str, str],
    ) -> Reply:
        """Leave a rejection row (D24a) for a refused delivery, and return the refusal."""
        log.warning(
            "refused a %s delivery (%d): %s", ns, reply.status, reason,
            extra={"status": reply.status, "installation": installation_id},
        )  # fmt: skip
        if self.rejections is not None:
            try:
                await self.rejections.record(
                    ns, installation_id, reply.status, reason, size=size, body=body, headers=headers
                )
            except MiniAppSyncError as exc:  # the trail is best effort: the refusal stands all the same
                log.error("could not record a refused %s delivery: %s", ns, exc)
        return reply

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
            body: Any = exactjson.loads(raw)  # ids past 64 bits stay exact (D26)
        except exactjson.JSONDecodeError:
            body = _NOT_JSON
        delivery = Delivery.lowercased(None if body is _NOT_JSON else body, raw, headers, query)
        installation, mismatch, position = await self._tenant(app, installation_id, delivery)
        verification = webhook.verification if webhook else None
        refuse = partial(self.refuse, ns=ns, installation_id=installation_id, size=len(raw), body=raw, headers=headers)
        if installation is None:
            # D24a: kept for a later `inbox assign` only when the MiniApp's own secret vouches for it.
            secrets = self.directory.app_secrets(app)
            signed = verify(verification, secrets, raw, delivery.headers) if secrets else None
            if signed is None:
                return await refuse(UNKNOWN_TENANT, reason=f"{mismatch}; not verified, so not kept")
            if stale := self._stale(verification, delivery):
                return await refuse(UNAUTHORIZED, reason=stale)
            log.warning("kept an unmatched %s delivery: %s", ns, mismatch)
            await self.commit.add(InboxEntry(ns, None, None, None, "unmatched", raw, mismatch))
            return self._ack(app, "unmatched")
        if position is None:
            secrets = self.directory.secrets(app, installation)
            position = verify(verification, secrets, raw, delivery.headers)
            if position is None:
                if not secrets:
                    self._warn_no_secret(app, installation)
                return await refuse(UNAUTHORIZED, reason=_unverified(verification, secrets, delivery))
        if stale := self._stale(verification, delivery):
            return await refuse(UNAUTHORIZED, reason=stale)
        if mismatch is not None:
            log.warning("kept an unmatched %s delivery: %s", ns, mismatch)
            await self.commit.add(InboxEntry(ns, None, None, None, "unmatched", raw, mismatch))
            return self._ack(app, "unmatched")
        if self.metrics is not None and verification is not None and verification.type != "none":
            self.metrics.secret_matched(ns, position)
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
        sample = body if self.samples is not None else None
        # The parsed body (~50 containers) is let go before the commit is awaited, not after: a young
        # collection meanwhile would walk every waiting delivery's (thousands when acks run late).
        del body, delivery
        added = await self.commit.add(InboxEntry(ns, installation.id, event, key, status, raw, why))
        if self.samples is not None and event is not None:
            # Verified, identified and stored first: recording can skip a body, never lose a delivery.
            self.samples.record(event, sample)
        if added == "duplicate":
            return self._ack(app, "duplicate")
        if status != "pending":
            return self._ack(app, "ignored")
        return self._ack(app, "reused_id" if added == "reused" else "accepted")

    def _stale(self, verification: Verification | None, delivery: Delivery) -> str | None:
        """Return why a delivery's timestamp is refused (D42: outside ±300 s, or missing), or None."""
        name = verification.timestamp_header if verification is not None else None
        if not name:
            return None
        given = delivery.headers.get(name.lower(), "").strip()
        try:
            sent = float(given)
        except ValueError:
            return f"stale: header {name} holds no Unix time (found {given[:32]!r})"
        skew = self.clock.now() - sent
        if abs(skew) > TIMESTAMP_TOLERANCE:
            way = "old" if skew > 0 else "ahead"
            return f"stale: header {name} is {abs(skew):.0f} s {way} (at most {TIMESTAMP_TOLERANCE:.0f} s)"
        return None

    async def _tenant(
        self, app: MiniApp, installation_id: str | None, delivery: Delivery
    ) -> tuple[Installation | None, str | None, int | None]:
        """Return the delivery's installation (None: unknown), why it is not (or not only) for it, and
        the position of the secret that verified it when finding it took verifying it (rule 2 of D24)."""
        webhook = app.definition.webhook
        extraction = webhook.tenant_extraction if webhook else None
        named = read(delivery, extraction.source, extraction.path) if extraction else None
        if installation_id is not None:
            installation = await self.directory.by_id(app.ns, installation_id)
            if installation is None:
                return None, f"no installation {installation_id!r} of {app.ns!r}", None
            # A per-tenant URL and a body naming a store must agree: a valid delivery for one store
            # must never write into another's installation.
            own = as_text(installation.metadata.get(extraction.match_key)) if extraction is not None else None
            if extraction is not None and named is not None and own != named:
                return installation, f"the delivery names another {extraction.match_key} than its installation's", None
            return installation, None, None
        if extraction is not None:
            if named is None:
                return None, f"no {extraction.source} value at {extraction.path!r} names the tenant", None
            found = await self.directory.match(app.ns, extraction.match_key, named)
            return found, None if found else f"no installation has {extraction.match_key} {named!r}", None
        return await self._tenant_without_extraction(app, delivery)

    async def _tenant_without_extraction(
        self, app: MiniApp, delivery: Delivery
    ) -> tuple[Installation | None, str | None, int | None]:
        """D24's rules when the definition has no tenantExtraction (the guide never shows one)."""
        place = well_known_place(app.definition)
        named = read(delivery, place.source, place.path) if place is not None else None
        if place is not None and named is not None:  # (1) the provider's well-known place
            found = await self.directory.match_any(app.ns, place.match_keys, named)
            if found is not None:
                return found, None, None
        live = await self.directory.of_ns(app.ns)
        # An installation that declares another store than the delivery names is never its tenant.
        candidates = [i for i in live if place is None or named is None or not _declares(i, place.match_keys)]
        verification = app.definition.webhook.verification if app.definition.webhook else None
        if verification is not None and verification.type != "none" and len(candidates) <= MAX_SECRET_CANDIDATES:
            signed = [  # (2) the one installation whose own secret verifies
                (installation, position)
                for installation in candidates
                if (own := self.directory.own_secrets(app, installation))
                and (position := verify(verification, own, delivery.raw, delivery.headers)) is not None
            ]
            if len(signed) == 1:
                return signed[0][0], None, signed[0][1]
        if len(live) == 1 and candidates:  # (3) the only active installation of the ns
            return live[0], None, None
        if named is not None and place is not None:
            return None, f"no installation has {' or '.join(place.match_keys)} {named!r}", None
        return None, f"no rule of D24 finds the tenant among {len(live)} installations of {app.ns!r}", None

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
