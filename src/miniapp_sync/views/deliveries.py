"""Deliveries (issue 15) as views (D37): the list of inbox rows and refusals, one delivery whole, replays.

A delivery's body is shown parsed (raw text when it is not JSON), with its installation's
credential values masked, as dead letters are (D30); a refusal shows only its redacted headers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from miniapp_sync import exactjson
from miniapp_sync.provider.redaction import Redactor
from miniapp_sync.runtime import Runtime
from miniapp_sync.store.deliveries import (
    MAX_QUERY,
    REASONS,
    STATES,
    Deliveries,
    Delivery,
    DeliveryDetail,
    DeliveryFilter,
    FiredEvent,
    Reason,
    State,
)
from miniapp_sync.store.outbox import DeliveryStatus
from miniapp_sync.store.replays import Replay, ReplayStatus
from miniapp_sync.views.models import RecordChangeView, TriggerEventView, maybe_timestamp, timestamp
from miniapp_sync.views.pages import Page, ParameterError, Window
from miniapp_sync.views.runs import moment
from miniapp_sync.views.schema import Timestamp


def delivery_filter(
    *,
    tenant: str | None = None,
    ns: str | None = None,
    event: str | None = None,
    status: str | Sequence[str] | None = None,
    reason: str | None = None,
    since: str | None = None,
    until: str | None = None,
    q: str | None = None,
    now: float,
) -> DeliveryFilter:
    """Return the filter of the list's parameters (CLI options, API query, replay body); raise ParameterError.

    ``status`` is one state or several (any of them: ``?status=pending&status=failed``).
    ``since`` and ``until`` read as a run search's do (``moment``): ISO 8601, ``24h``, ``today``…, before ``now``.
    """
    states = [status] if isinstance(status, str) else list(status or [])
    for state in states:
        if state not in STATES:
            raise ParameterError("status", f"expected one of {', '.join(STATES)}, found {str(state)[:40]!r}")
    if reason is not None and reason not in REASONS:
        raise ParameterError("reason", f"expected one of {', '.join(REASONS)}, found {reason[:40]!r}")
    if q is not None and not 1 <= len(q) <= MAX_QUERY:
        raise ParameterError("q", f"expected 1 to {MAX_QUERY} characters, found {len(q)}")
    return DeliveryFilter(
        tenant, ns, event, tuple(dict.fromkeys(states)) or None, reason,  # type: ignore[arg-type]  # checked above
        None if since is None else moment(since, now, field="since"),
        None if until is None else moment(until, now, field="until"), q,
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class DeliveryView:
    """A webhook delivery: an inbox row (id ``42``) or a refusal at the door (id ``r7``), and what became of it."""

    id: str
    kind: str  # inbox or rejection
    ns: str
    installation_id: str | None
    tenant: str | None
    event: str | None
    transaction_id: str | None
    status: State
    reason: Reason | None  # why it was refused (status rejected)
    error: str | None
    attempts: int
    size: int  # bytes of the body
    received_at: Timestamp
    processed_at: Timestamp | None
    next_attempt_at: Timestamp | None

    @classmethod
    def of(cls, d: Delivery, tenant: str | None, redactor: Redactor | None = None) -> DeliveryView:
        """Return the view of a delivery (``redactor``: its installation's credential values, masked in the error)."""
        error = redactor.values(d.error) if redactor is not None and d.error else d.error
        return cls(
            d.id, d.kind, d.ns, d.installation_id, tenant, d.event, d.transaction_id, d.state, d.reason, error,
            d.attempts, d.size, timestamp(d.received_at), maybe_timestamp(d.processed_at),
            maybe_timestamp(d.next_attempt_at),
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class EventDeliveryView:
    """How a trigger event's POST to one subscriber went."""

    subscription_id: str
    url: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: Timestamp | None
    delivered_at: Timestamp | None
    error: str | None


@dataclass(frozen=True, slots=True)
class FiredEventView:
    """A trigger event a delivery fired, and its POSTs to subscribers."""

    event: TriggerEventView
    deliveries: list[EventDeliveryView]

    @classmethod
    def of(cls, fired: FiredEvent) -> FiredEventView:
        """Return the view of a fired event."""
        posts = [
            EventDeliveryView(
                s.subscription_id,
                url,
                s.status,
                s.attempts,
                maybe_timestamp(s.next_attempt_at),
                maybe_timestamp(s.delivered_at),
                s.error,
            )
            for s, url in fired.deliveries
        ]
        return cls(TriggerEventView.of(fired.event), posts)


@dataclass(frozen=True, slots=True)
class DeliveryDetailView:
    """One delivery whole: its body (JSON, else text) or a refusal's redacted headers; what it wrote and fired."""

    delivery: DeliveryView
    body: Any  # null for a refusal: its body was never kept
    headers: dict[str, str] | None  # a refusal's, values masked but for a few harmless ones
    route: str | None
    digest: str | None  # a refusal's body SHA-256 (hex)
    dead_letter_id: str | None  # the dead letter a replay would go through
    records: list[RecordChangeView]  # the record changes it made (D39)
    events: list[FiredEventView]


@dataclass(frozen=True, slots=True)
class DefinitionVersionView:
    """The definition a replay runs against: its MiniApp, declared version and a digest of the loaded document."""

    ns: str
    version: str | None
    digest: str | None


@dataclass(frozen=True, slots=True)
class ReplayItemView:
    """One selected delivery in a replay: ``replay``/``refused``/``skipped`` (preview) or what became of it."""

    id: str
    ns: str
    installation_id: str | None
    event: str | None
    state: str
    outcome: str
    detail: str


@dataclass(frozen=True, slots=True)
class InstallationCountView:
    """How many selected deliveries of one installation a replay would process."""

    installation_id: str
    tenant: str | None
    count: int


@dataclass(frozen=True, slots=True)
class ReplayPreviewView:
    """What a replay would do, changing nothing: what it would process (per event, installation), and why not others."""

    count: int
    refused: int
    skipped: int
    by_event: dict[str, int]
    by_installation: list[InstallationCountView]
    definitions: list[DefinitionVersionView]
    items: list[ReplayItemView]

    @classmethod
    def of(cls, p: dict[str, Any]) -> ReplayPreviewView:
        """Return the view of ``bulk_replay.preview``'s answer."""
        return cls(
            p["count"], p["refused"], p["skipped"], p["byEvent"],
            [InstallationCountView(b["installationId"], b["tenant"], b["count"]) for b in p["byInstallation"]],
            [DefinitionVersionView(ns, v["version"], v["digest"]) for ns, v in p["definitions"].items()],
            [_item(i) for i in p["items"]],
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class ReplayReportView:
    """How a replay went: processed, failed again (of which still dead letters), refused, skipped, item by item."""

    processed: int
    failed: int
    still_dead: int
    refused: int
    skipped: int
    definition: DefinitionVersionView
    items: list[ReplayItemView]
    gone: list[str]  # selected delivery ids purged before the job ran (reports kept before this field: none)


@dataclass(frozen=True, slots=True)
class DeliveryReplayView:
    """A bulk replay of deliveries: what it selected, its job, its state and (once run) its report."""

    id: str
    ns: str
    status: ReplayStatus
    selection: dict[str, Any]
    job_id: str | None
    created_at: Timestamp
    finished_at: Timestamp | None
    report: ReplayReportView | None

    @classmethod
    def of(cls, r: Replay) -> DeliveryReplayView:
        """Return the view of a replay."""
        report = None
        if r.report is not None:
            p = r.report
            definition = DefinitionVersionView(r.ns, p["definition"]["version"], p["definition"]["digest"])
            items = [_item(i) for i in p["items"]]
            report = ReplayReportView(
                p["processed"],
                p["failed"],
                p["stillDead"],
                p["refused"],
                p["skipped"],
                definition,
                items,
                p.get("gone", []),
            )
        return cls(
            r.id, r.ns, r.status, r.selection, r.job_id, timestamp(r.created_at), maybe_timestamp(r.finished_at),
            report,
        )  # fmt: skip


def _item(i: dict[str, Any]) -> ReplayItemView:
    return ReplayItemView(i["id"], i["ns"], i["installationId"], i["event"], i["state"], i["outcome"], i["detail"])


def _redactors(runtime: Runtime, installation_ids: set[str]) -> dict[str, Redactor]:
    found = {}
    for iid in installation_ids:
        installation = runtime.store.get_installation(iid)
        credentials = runtime.installations.credentials(installation) if installation else {}
        found[iid] = Redactor(str(v) for v in credentials.values() if isinstance(v, str | int) and str(v))
    return found


def deliveries(runtime: Runtime, window: Window, f: DeliveryFilter) -> Page[DeliveryView]:
    """Return a page of deliveries, newest first, error texts with credential values masked."""
    found = Deliveries(runtime.store).find(f, limit=window.fetch, offset=window.offset)
    tenants = {i.id: i.tenant for i in runtime.store.list_installations()}
    redactors = _redactors(runtime, {d.installation_id for d in found if d.installation_id and d.error})
    views = [
        DeliveryView.of(d, tenants.get(d.installation_id or ""), redactors.get(d.installation_id or "")) for d in found
    ]
    return window.page(views)


def delivery(runtime: Runtime, id: str) -> DeliveryDetailView | None:
    """Return one delivery whole, or None when there is no such delivery."""
    found = Deliveries(runtime.store).detail(id)
    return None if found is None else _detail(runtime, found)


def _detail(runtime: Runtime, d: DeliveryDetail) -> DeliveryDetailView:
    iid = d.delivery.installation_id
    redactor = _redactors(runtime, {iid}).get(iid) if iid else None
    installation = runtime.store.get_installation(iid) if iid else None
    body: Any = None
    if d.body is not None:
        text = d.body.decode("utf-8", errors="replace")
        text = redactor.values(text) if redactor is not None else text
        try:
            body = exactjson.loads(text)  # a 20-digit id shows exactly
        except exactjson.JSONDecodeError:
            body = text
    return DeliveryDetailView(
        DeliveryView.of(d.delivery, installation.tenant if installation else None, redactor),
        body,
        d.headers,
        d.route,
        d.digest,
        None if d.dead_letter_id is None else str(d.dead_letter_id),
        [RecordChangeView.of(c) for c in d.changes],
        [FiredEventView.of(e) for e in d.events],
    )
