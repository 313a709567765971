"""Deliveries (issue 15): the webhook inbox and the rejection trail (D24a) read as one list, and one delivery's detail.

An inbox row's id is its number (``42``, as record history, dead letters and ``inbox assign``
name it); a rejection's is ``r`` and its number (``r7``). A delivery's state refines the inbox's
status with what an operator asks about: ``processed`` or ``reused_id`` (done), ``failed`` (tried,
waiting for its next attempt), ``dead`` (given up on: dead-lettered), ``duplicate`` (an assigned
resend), ``rejected`` (refused at the door, with its reason). The list is newest first; the two
tables are each read newest first by id (ids grow with arrival) and merged by arrival time.

Text search (``q``) looks for the exact bytes in the body. It is bounded: it reads the bodies of
at most ``SEARCH_SCAN`` newest deliveries that pass the other filters, so a search costs the same
however big the inbox grows; narrow it with a tenant, event or time range to reach further back.
Rejections keep no body, so a search never finds one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Final, Literal, get_args

from sqlalchemy import ColumnElement, Select, Table, and_, case, false, func, not_, or_, select, text

from miniapp_sync.store.history import RecordChange
from miniapp_sync.store.outbox import DeliveryState, TriggerEvent
from miniapp_sync.store.store import Store
from miniapp_sync.store.tables import dead_letters, installations, record_history
from miniapp_sync.store.webhook_tables import (
    subscriptions,
    trigger_deliveries,
    trigger_outbox,
    webhook_inbox,
    webhook_rejections,
)

State = Literal[
    "pending", "processing", "processed", "reused_id", "duplicate", "ignored", "unmatched", "ping", "failed",
    "dead", "rejected",
]  # fmt: skip
Reason = Literal["bad_signature", "stale", "too_large", "unknown_tenant"]
STATES: Final[tuple[str, ...]] = get_args(State)
REASONS: Final[tuple[str, ...]] = get_args(Reason)
SEARCH_SCAN: Final = 5000  # bodies a text search reads at most
MAX_QUERY: Final = 200  # characters of a text search
RESEND: Final = "a resend of delivery "  # how Inbox.assign words a resend it keeps as ignored

i = webhook_inbox.c
w = webhook_rejections.c


@dataclass(frozen=True, slots=True)
class DeliveryFilter:
    """Which deliveries: by tenant, MiniApp, event, states (any of them), rejection reason, arrival time, body text.

    The same object selects a list page and a replay; stored with a replay as its ``as_dict``
    (one state as a string, as before several were allowed; several as a list).
    """

    tenant: str | None = None
    ns: str | None = None
    event: str | None = None
    status: tuple[State, ...] | None = None  # any of these; the overview's backlog is three states
    reason: Reason | None = None
    since: float | None = None  # epoch seconds, inclusive
    until: float | None = None  # epoch seconds, exclusive
    q: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """Return the filter as JSON-ready data (only the fields set)."""
        found = {k: v for k, v in asdict(self).items() if v is not None}
        if self.status is not None:
            found["status"] = self.status[0] if len(self.status) == 1 else list(self.status)
        return found

    @property
    def inbox(self) -> bool:
        """Return whether inbox rows can match."""
        return (self.status is None or any(s != "rejected" for s in self.status)) and self.reason is None

    @property
    def rejections(self) -> bool:
        """Return whether rejections can match: no body, no event."""
        wanted = self.status is None or "rejected" in self.status
        return wanted and self.q is None and self.event is None


FILTER_FIELDS: Final = tuple(f.name for f in fields(DeliveryFilter))


@dataclass(frozen=True, slots=True)
class Delivery:
    """One entry of the list: an inbox row (``kind`` inbox) or a refusal (``kind`` rejection)."""

    id: str
    kind: Literal["inbox", "rejection"]
    ns: str
    installation_id: str | None
    event: str | None
    transaction_id: str | None
    state: State
    reason: Reason | None
    error: str | None
    attempts: int
    size: int
    received_at: float
    processed_at: float | None
    next_attempt_at: float | None

    @property
    def inbox_id(self) -> int | None:
        """Return the inbox row's id (None for a rejection)."""
        return int(self.id) if self.kind == "inbox" else None


@dataclass(frozen=True, slots=True)
class FiredEvent:
    """A trigger event a delivery fired, and how its POST to each subscriber went."""

    event: TriggerEvent
    deliveries: list[tuple[DeliveryState, str]]  # (state, subscription URL)


@dataclass(frozen=True, slots=True)
class DeliveryDetail:
    """A delivery whole: its body (inbox) or redacted headers and route (rejection), what it wrote and fired."""

    delivery: Delivery
    body: bytes | None
    headers: dict[str, str] | None
    route: str | None
    digest: str | None
    changes: list[RecordChange] = field(default_factory=list)
    events: list[FiredEvent] = field(default_factory=list)
    dead_letter_id: int | None = None


def parse_id(id: str) -> tuple[Literal["inbox", "rejection"], int] | None:
    """Return which table and row a delivery id names, or None when it is not a delivery id."""
    kind: Literal["inbox", "rejection"] = "rejection" if id.startswith("r") else "inbox"
    digits = id[1:] if kind == "rejection" else id
    if not digits.isascii() or not digits.isdigit() or len(digits) > 18:
        return None
    return kind, int(digits)


def state_of(status: str, error: str | None, reused: bool) -> State:
    """Return an inbox row's delivery state (the refinement the module docstring describes)."""
    if status == "done":
        return "reused_id" if reused else "processed"
    if status == "pending":
        return "failed" if error else "pending"
    if status == "failed":
        return "dead"
    if status == "ignored" and error and error.startswith(RESEND):
        return "duplicate"
    return status  # type: ignore[return-value]  # processing, ignored, unmatched, ping


def reason_of(status: int, reason: str) -> Reason:
    """Return a refusal's reason from the answer and its text (401 stale or bad signature, 404, 413)."""
    if status == 413:
        return "too_large"
    if status == 404:
        return "unknown_tenant"
    return "stale" if reason.startswith("stale") else "bad_signature"


def _state_condition(state: State) -> ColumnElement[bool]:
    resend = i.error.like(RESEND + "%")
    conditions: dict[str, ColumnElement[bool]] = {
        "processed": and_(i.status == "done", not_(i.reused)),
        "reused_id": and_(i.status == "done", i.reused),
        "pending": and_(i.status == "pending", i.error.is_(None)),
        "failed": and_(i.status == "pending", i.error.is_not(None)),
        "dead": i.status == "failed",
        "duplicate": and_(i.status == "ignored", resend),
        "ignored": and_(i.status == "ignored", or_(i.error.is_(None), not_(resend))),
    }
    return conditions.get(state, i.status == state)


# A refusal's reason code in SQL, as ``reason_of`` reads it: the list's filter and the overview group by it.
REASON_CODE: Final = case(
    (w.status == 413, "too_large"),
    (w.status == 404, "unknown_tenant"),
    (w.reason.like("stale%"), "stale"),
    else_="bad_signature",
)


def _tenant_ids(tenant: str) -> Select[Any]:
    return select(installations.c.id).where(installations.c.tenant == tenant)


def _conditions(f: DeliveryFilter, table: Table) -> list[ColumnElement[bool]]:
    """Return the conditions both tables share: tenant, MiniApp, arrival time."""
    c = table.c
    found: list[ColumnElement[bool]] = []
    if f.tenant is not None:
        found.append(c.installation_id.in_(_tenant_ids(f.tenant)))
    if f.ns is not None:
        found.append(c.ns == f.ns)
    if f.since is not None:
        found.append(c.received_at >= f.since)
    if f.until is not None:
        found.append(c.received_at < f.until)
    return found


def _inbox_conditions(f: DeliveryFilter) -> list[ColumnElement[bool]]:
    found = _conditions(f, webhook_inbox)
    if f.event is not None:
        found.append(i.event == f.event)
    if f.status is not None:  # no inbox state asked for (only "rejected"): no inbox row matches
        found.append(or_(false(), *(_state_condition(state) for state in f.status if state != "rejected")))
    return found


def _rejection_conditions(f: DeliveryFilter) -> list[ColumnElement[bool]]:
    found = _conditions(f, webhook_rejections)
    if f.reason is not None:
        found.append(REASON_CODE == f.reason)  # noqa: SIM300  # an SQL expression, not a comparison
    return found


def _body_contains(dialect: str, needle: bytes) -> ColumnElement[bool]:
    # Bytes, not text: a body need not be valid UTF-8, and neither database decodes it to look.
    if dialect == "postgresql":
        return func.position(text("CAST(:needle AS bytea) IN webhook_inbox.body").bindparams(needle=needle)) > 0
    return func.instr(i.body, needle) > 0


_LISTED = (
    i.id, i.ns, i.installation_id, i.event, i.transaction_id, i.status, i.error, i.reused, i.attempts,
    func.length(i.body).label("size"), i.received_at, i.processed_at, i.next_attempt_at,
)  # fmt: skip


def _inbox_entry(row: Any) -> Delivery:
    return Delivery(
        str(row.id), "inbox", row.ns, row.installation_id, row.event, row.transaction_id,
        state_of(row.status, row.error, bool(row.reused)), None, row.error, row.attempts, int(row.size or 0),
        row.received_at, row.processed_at, row.next_attempt_at,
    )  # fmt: skip


def _rejection_entry(row: Any) -> Delivery:
    return Delivery(
        f"r{row.id}", "rejection", row.ns, row.installation_id, None, None, "rejected",
        reason_of(row.status, row.reason), row.reason, 0, row.size, row.received_at, None, None,
    )  # fmt: skip


class Deliveries:
    """The inbox and the rejection trail, read together, on the store's database."""

    def __init__(self, store: Store) -> None:
        self._db = store.database

    def _inbox_query(self, f: DeliveryFilter, dialect: str) -> Select[Any]:
        conditions = _inbox_conditions(f)
        if f.q is None:
            return select(*_LISTED).where(*conditions)
        window = select(i.id).where(*conditions).order_by(i.id.desc()).limit(SEARCH_SCAN)
        return select(*_LISTED).where(i.id.in_(window), _body_contains(dialect, f.q.encode()))

    def find(self, f: DeliveryFilter, *, limit: int = 100, offset: int = 0) -> list[Delivery]:
        """Return deliveries newest first, ``offset`` in."""
        wanted = offset + limit
        found: list[Delivery] = []
        with self._db.read("list webhook deliveries") as conn:
            if f.inbox:
                query = self._inbox_query(f, conn.dialect.name).order_by(i.id.desc()).limit(wanted)
                found += [_inbox_entry(row) for row in conn.execute(query)]
            if f.rejections:
                query = select(webhook_rejections).where(*_rejection_conditions(f))
                found += [_rejection_entry(row) for row in conn.execute(query.order_by(w.id.desc()).limit(wanted))]
        found.sort(key=lambda d: (d.received_at, d.kind == "inbox", int(d.id.lstrip("r"))), reverse=True)
        return found[offset:wanted]

    def replayable(self, f: DeliveryFilter, *, limit: int) -> list[int]:
        """Return the ids of inbox rows matching ``f`` (rejections have no body to replay), oldest first."""
        with self._db.read("select webhook deliveries to replay") as conn:
            query = self._inbox_query(f, conn.dialect.name).with_only_columns(i.id).order_by(i.id).limit(limit)
            return [int(row[0]) for row in conn.execute(query)]

    def get(self, id: str) -> Delivery | None:
        """Return one delivery by its id, or None."""
        detail = self.detail(id, whole=False)
        return None if detail is None else detail.delivery

    def detail(self, id: str, *, whole: bool = True) -> DeliveryDetail | None:
        """Return one delivery with its body, what it wrote and what it fired (``whole``), or None."""
        parsed = parse_id(id)
        if parsed is None:
            return None
        kind, number = parsed
        with self._db.read("read a webhook delivery") as conn:
            if kind == "rejection":
                row = conn.execute(select(webhook_rejections).where(w.id == number)).first()
                if row is None:
                    return None
                return DeliveryDetail(_rejection_entry(row), None, dict(row.headers), row.route, row.digest)
            row = conn.execute(select(*_LISTED, i.body).where(i.id == number)).first()
            if row is None:
                return None
            delivery = _inbox_entry(row)
            if not whole:
                return DeliveryDetail(delivery, None, None, None, None)
            return DeliveryDetail(
                delivery,
                bytes(row.body),
                None,
                None,
                None,
                changes=self._changes(conn, number),
                events=self._events(conn, number),
                dead_letter_id=self._dead_letter(conn, row.installation_id, number),
            )

    @staticmethod
    def _changes(conn: Any, inbox_id: int) -> list[RecordChange]:
        h = record_history.c
        query = select(record_history).where(h.source == "webhook", h.source_id == str(inbox_id)).order_by(h.id)
        return [RecordChange(**row._mapping) for row in conn.execute(query)]

    @staticmethod
    def _events(conn: Any, inbox_id: int) -> list[FiredEvent]:
        events = [
            TriggerEvent(**{c.name: row._mapping[c] for c in trigger_outbox.c})
            for row in conn.execute(select(trigger_outbox).where(trigger_outbox.c.inbox_id == inbox_id))
        ]
        fired = []
        for event in events:
            query = (
                select(trigger_deliveries, subscriptions.c.url)
                .join(subscriptions, subscriptions.c.id == trigger_deliveries.c.subscription_id)
                .where(trigger_deliveries.c.event_id == event.id)
                .order_by(trigger_deliveries.c.subscription_id)
            )
            states = [
                (DeliveryState(**{c.name: row._mapping[c] for c in trigger_deliveries.c}), row.url)
                for row in conn.execute(query)
            ]
            fired.append(FiredEvent(event, states))
        return fired

    @staticmethod
    def _dead_letter(conn: Any, installation_id: str | None, inbox_id: int) -> int | None:
        """Return the id of the webhook dead letter of an inbox row not yet replayed (its payload names the row)."""
        if installation_id is None:
            return None
        d = dead_letters.c
        query = (
            select(d.id, d.payload)
            .where(d.installation_id == installation_id, d.kind == "webhook", d.replayed_at.is_(None))
            .order_by(d.id.desc())
        )
        for row in conn.execute(query):
            payload = row.payload
            if isinstance(payload, dict) and payload.get("inboxId") == inbox_id:
                return int(row.id)
        return None
