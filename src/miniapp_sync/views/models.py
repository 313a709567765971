"""The view models (D37): one JSON shape per thing for the CLI's ``--format json``, the API and the console.

Each view is a frozen dataclass built from a domain object with ``of``; ``to_json`` renders any
view (or page of views) with camelCase names. Times are ISO 8601 UTC with a ``Z``, ids are
strings, and a value that is absent is ``null`` rather than a missing key. Secrets never reach
a view: installations leave out their credentials, dead letters are redacted with the
installation's credential values (D30).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import orjson

from miniapp_sync.installations.oauth import StartLink
from miniapp_sync.provider.redaction import Redactor
from miniapp_sync.store import (
    DeadLetter,
    DeadLetterKind,
    Installation,
    InstallationStatus,
    RecordSource,
    Run,
    RunStatus,
    StoredRecord,
)
from miniapp_sync.store.history import ChangeKind, RecordChange
from miniapp_sync.store.outbox import Subscription, TriggerEvent
from miniapp_sync.views.ids import record_id
from miniapp_sync.views.schema import Timestamp, camel
from miniapp_sync.webhooks.triggers import event_body, iso


def timestamp(seconds: float) -> Timestamp:
    """Render epoch seconds as ISO 8601 UTC with milliseconds and a ``Z`` (as trigger events always were)."""
    return Timestamp(iso(seconds))


def maybe_timestamp(seconds: float | None) -> Timestamp | None:
    """Render epoch seconds, or None, as ``timestamp`` does."""
    return None if seconds is None else timestamp(seconds)


def to_json(value: Any) -> Any:
    """Return a view (a page, a list of views) as JSON-ready data with camelCase names."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {camel(f.name): to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list):
        return [to_json(v) for v in value]
    return value  # data held for others (record data, metadata, payloads) keeps its own names


@dataclass(frozen=True, slots=True)
class LastRunView:
    """The last run of one resource of an installation: what the console's installation list shows."""

    resource: str
    run_id: str
    status: RunStatus
    started_at: Timestamp
    finished_at: Timestamp | None
    error: str | None

    @classmethod
    def of(cls, r: Run) -> LastRunView:
        """Return the view of a run of one resource."""
        return cls(r.resource or "", r.id, r.status, timestamp(r.started_at), maybe_timestamp(r.finished_at), r.error)


@dataclass(frozen=True, slots=True)
class InstallationView:
    """A MiniApp installed for a tenant (credentials are never shown), its last runs and its next scheduled one."""

    id: str
    tenant: str
    ns: str
    status: InstallationStatus
    error: str | None
    metadata: dict[str, Any]
    created_at: Timestamp
    updated_at: Timestamp
    paused: bool  # its schedules are paused: the scheduler skips it; webhooks and asked-for syncs go on
    paused_at: Timestamp | None
    last_runs: list[LastRunView]  # per resource, by resource name
    next_sync_at: Timestamp | None  # null: no schedule applies, it is paused, or this process knows no schedule

    @classmethod
    def of(
        cls, i: Installation, last_runs: list[Run] | None = None, next_sync_at: float | None = None
    ) -> InstallationView:
        """Return the view of an installation (with its last run per resource and next scheduled sync, if known)."""
        return cls(
            i.id, i.tenant, i.ns, i.status, i.error, i.metadata, timestamp(i.created_at), timestamp(i.updated_at),
            i.paused, maybe_timestamp(i.paused_at), [LastRunView.of(r) for r in last_runs or ()],
            maybe_timestamp(next_sync_at),
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class OAuthLinkView:
    """A signed OAuth start link (D31a): the tenant's admin opens ``url`` before ``expires_at``."""

    url: str
    tenant: str
    ns: str
    reconnect: bool
    expires_at: Timestamp

    @classmethod
    def of(cls, link: StartLink) -> OAuthLinkView:
        """Return the view of a start link."""
        return cls(link.url, link.tenant, link.ns, link.reconnect, timestamp(link.expires_at))


@dataclass(frozen=True, slots=True)
class RecordView:
    """A stored record: its id, content type, code, mapped data and where it last came from."""

    id: str
    installation_id: str
    content_type: str
    code: str
    data: dict[str, Any]
    version: str | None
    source: RecordSource
    partial: bool
    deleted: bool
    created_at: Timestamp
    updated_at: Timestamp
    run_id: str | None

    @classmethod
    def of(cls, r: StoredRecord) -> RecordView:
        """Return the view of a record."""
        return cls(
            record_id(r.installation_id, r.content_type, r.code), r.installation_id, r.content_type, r.code, r.data,
            r.version, r.source, r.partial, r.deleted,
            timestamp(r.created_at), timestamp(r.updated_at), r.run_id,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class FieldChangeView:
    """One field a change touched: its value before and after (null where the field was absent)."""

    field: str
    old: Any
    new: Any


@dataclass(frozen=True, slots=True)
class RecordChangeView:
    """A change of a record: created, updated or deleted, by which bulk run or webhook delivery, which fields."""

    id: str
    record_id: str
    kind: ChangeKind
    version: str | None
    source: RecordSource
    source_id: str | None  # the bulk run's id, or the inbox delivery's id
    changed_at: Timestamp
    fields: list[FieldChangeView]

    @classmethod
    def of(cls, c: RecordChange) -> RecordChangeView:
        """Return the view of a change: its fields by name (a creation's are the whole record)."""
        old, new = c.old or {}, c.new or {}
        fields = [FieldChangeView(name, old.get(name), new.get(name)) for name in sorted(old.keys() | new.keys())]
        return cls(
            str(c.id), record_id(c.installation_id, c.content_type, c.code), c.kind, c.version, c.source,
            c.source_id, timestamp(c.changed_at), fields,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class DeadLetterView:
    """A record or webhook delivery that failed: the reason and the payload, secrets masked."""

    id: str
    kind: DeadLetterKind
    installation_id: str
    tenant: str | None
    source: str
    reason: str
    run_id: str | None
    created_at: Timestamp
    replayed_at: Timestamp | None
    payload: Any

    @classmethod
    def of(cls, letter: DeadLetter, installation: Installation | None, credentials: dict[str, Any]) -> DeadLetterView:
        """Return the view of a dead letter, its installation's ``credentials`` values masked (D30)."""
        redactor = Redactor(str(v) for v in credentials.values() if isinstance(v, str | int) and str(v))
        payload = orjson.loads(redactor.values(orjson.dumps(letter.payload).decode()))
        return cls(
            str(letter.id), letter.kind, letter.installation_id, installation.tenant if installation else None,
            letter.source, redactor.values(letter.reason), letter.run_id, timestamp(letter.created_at),
            maybe_timestamp(letter.replayed_at), payload,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class TriggerEventView:
    """A trigger event fired after a webhook write: what happened, to which record and customer."""

    id: str
    event: str
    tenant: str
    ns: str
    occurred_at: Timestamp
    record: dict[str, Any] | None
    customer: dict[str, Any] | None

    @classmethod
    def of(cls, e: TriggerEvent) -> TriggerEventView:
        """Return the view of a trigger event: the body subscribers receive, which ``event_body`` writes."""
        body = event_body(e)
        return cls(
            body["id"], body["event"], body["tenant"], body["ns"], Timestamp(body["occurredAt"]), body["record"],
            body["customer"],
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class SubscriptionView:
    """Where a tenant's trigger events of one MiniApp are sent (the signing secret is never shown)."""

    id: str
    tenant: str
    ns: str
    url: str
    created_at: Timestamp

    @classmethod
    def of(cls, s: Subscription) -> SubscriptionView:
        """Return the view of a subscription."""
        return cls(s.id, s.tenant, s.ns, s.url, timestamp(s.created_at))


@dataclass(frozen=True, slots=True)
class NewSubscriptionView:
    """A subscription just made; ``secret`` is the generated signing secret, shown this once (else null)."""

    id: str
    tenant: str
    ns: str
    url: str
    created_at: Timestamp
    secret: str | None

    @classmethod
    def of(cls, s: Subscription, secret: str | None) -> NewSubscriptionView:
        """Return the view of a new subscription, with its generated secret (None: the operator chose it)."""
        return cls(s.id, s.tenant, s.ns, s.url, timestamp(s.created_at), secret)


@dataclass(frozen=True, slots=True)
class RemovedView:
    """What a removal did: the id, and whether there was such a thing to remove."""

    id: str
    removed: bool


@dataclass(frozen=True, slots=True)
class ReplayView:
    """How replaying a dead letter went."""

    id: str
    ok: bool
    detail: str


@dataclass(frozen=True, slots=True)
class NotesView:
    """What a maintenance command did, one line per step."""

    notes: list[str]


@dataclass(frozen=True, slots=True)
class PackageView:
    """A written submission package: where, the files in it, and whether the checklist passed (else --force)."""

    out: str
    files: list[str]
    passed: bool


@dataclass(frozen=True, slots=True)
class ErrorDetail:
    """What failed: a type, a message, a hint when one is known, and the field at fault when there is one."""

    type: str
    message: str
    hint: str | None
    field: str | None


@dataclass(frozen=True, slots=True)
class ErrorView:
    """The one error shape of the API and of the CLI under ``--format json`` (on stderr)."""

    error: ErrorDetail

    @classmethod
    def of(cls, type: str, message: str, hint: str | None = None, field: str | None = None) -> ErrorView:
        """Return an error view."""
        return cls(ErrorDetail(type, message, hint, field))
