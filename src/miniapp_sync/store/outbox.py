"""Trigger events (the outbox), the subscriptions that receive them, and each delivery's state (D27).

An event is added in the transaction that wrote its record, with one pending delivery per
subscription of its tenant and MiniApp at that moment; the pull API reads the outbox by id,
which only grows, so an id is a cursor.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache, lru_cache
from typing import Any, Final, Literal

import orjson
from sqlalchemy import Connection, Row, bindparam, delete, func, select, update
from sqlalchemy.sql.dml import Insert

from miniapp_sync import exactjson
from miniapp_sync.errors import StoreError
from miniapp_sync.store import dialects
from miniapp_sync.store.driver import on_driver
from miniapp_sync.store.store import Store
from miniapp_sync.store.webhook_model import InboxRow
from miniapp_sync.store.webhook_tables import subscriptions, trigger_deliveries, trigger_outbox

DeliveryStatus = Literal["pending", "delivered", "failed"]

o = trigger_outbox.c
s = subscriptions.c
d = trigger_deliveries.c
_SETTLE = (
    update(trigger_deliveries)
    .where(d.event_id == bindparam("p_event"), d.subscription_id == bindparam("p_subscription"))
    .values(
        status=bindparam("p_status"),
        attempts=d.attempts + 1,
        error=bindparam("p_error"),
        delivered_at=func.coalesce(bindparam("p_delivered"), d.delivered_at),
        next_attempt_at=bindparam("p_next"),
    )
)


@dataclass(frozen=True, slots=True)
class Subscription:
    """Where a tenant's trigger events of one MiniApp are POSTed, and the key they are signed with."""

    id: str
    tenant: str
    ns: str
    url: str
    secret: bytes = field(repr=False)  # encrypted
    created_at: float


@dataclass(frozen=True, slots=True)
class Attempt:
    """The outcome of one POST of an event to a subscription, to record."""

    event_id: int
    subscription_id: str
    status: DeliveryStatus
    error: str | None = None
    retry_at: float | None = None  # when it is pending again


@dataclass(frozen=True, slots=True)
class TriggerEvent:
    """One fired trigger: the event name and what it concerns (``payload``: record and customer)."""

    id: int
    installation_id: str
    inbox_id: int
    tenant: str
    ns: str
    event: str
    payload: dict[str, Any]
    occurred_at: float
    created_at: float


@dataclass(frozen=True, slots=True)
class DeliveryState:
    """How far the delivery of one event to one subscription got."""

    event_id: int
    subscription_id: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: float | None
    delivered_at: float | None
    error: str | None


@dataclass(frozen=True, slots=True)
class DueDelivery:
    """A delivery to attempt now: the event, the subscription, and how many attempts came before.

    ``payload_json``: the event's payload as the store holds it, when it was read unparsed (SQLite):
    then ``event.payload`` is left empty, and the POST splices this text in (``webhooks/triggers``)
    instead of parsing it only to write it again (~20 µs an event of a 4 kB order).
    """

    event: TriggerEvent
    subscription: Subscription
    attempts: int
    payload_json: str | None = None


# Due deliveries on SQLite, read on the driver (store/driver.py): through SQLAlchemy, building
# each row's event and subscription by column name cost more than the query, ~90 µs an event in
# all. The columns are TriggerEvent's fields, then Subscription's, in their order, then attempts.
_SQLITE_DUE: Final = (
    f"SELECT {', '.join(f'o.{c.name}' for c in trigger_outbox.c)}, "
    f"{', '.join(f's.{c.name}' for c in subscriptions.c)}, d.attempts "
    "FROM trigger_deliveries AS d JOIN trigger_outbox AS o ON o.id = d.event_id "
    "JOIN subscriptions AS s ON s.id = d.subscription_id "
    "WHERE d.status = 'pending' AND d.next_attempt_at <= ? ORDER BY d.next_attempt_at, d.event_id LIMIT ?"
)
_SQLITE_SETTLE: Final = (
    "UPDATE trigger_deliveries SET status = ?, attempts = attempts + 1, error = ?, "
    "delivered_at = coalesce(?, delivered_at), next_attempt_at = ? WHERE event_id = ? AND subscription_id = ?"
)
_SQLITE_SETTLE_PARAMS: Final = ("p_status", "p_error", "p_delivered", "p_next", "p_event", "p_subscription")
_EVENT_FIELDS: Final = len(trigger_outbox.c)


def _sqlite_due(conn: Connection, now: float, limit: int) -> list[DueDelivery]:
    due: list[DueDelivery] = []
    known: dict[str, Subscription] = {}  # a batch's deliveries share a few subscriptions
    for row in on_driver(conn, _SQLITE_DUE, (now, limit)):
        id, installation_id, inbox_id, tenant, ns, event, payload, occurred_at, created_at = row[:_EVENT_FIELDS]
        subscription = known.get(row[_EVENT_FIELDS])
        if subscription is None:
            subscription = known[row[_EVENT_FIELDS]] = Subscription(*row[_EVENT_FIELDS:-1])
        text = payload if isinstance(payload, str) else None  # stored as TEXT (_SQLITE_EVENT_ROW): read as is
        loaded = {} if text is not None else exactjson.loads(payload)
        trigger = TriggerEvent(id, installation_id, inbox_id, tenant, ns, event, loaded, occurred_at, created_at)
        due.append(DueDelivery(trigger, subscription, int(row[-1]), text))
    return due


def _event(row: Row[Any]) -> TriggerEvent:
    return TriggerEvent(**{c.name: row._mapping[c] for c in trigger_outbox.c})


def _subscription(row: Row[Any]) -> Subscription:
    return Subscription(**{c.name: row._mapping[c] for c in subscriptions.c})


def emit(
    conn: Connection,
    tenant: str,
    events: Sequence[tuple[InboxRow, dict[str, Any]]],
    *,
    now: float,
    subscribers: Mapping[tuple[str, str], Sequence[str]],
) -> None:
    """Add events (inbox row, payload) and their deliveries inside the caller's transaction.

    An inbox row that has its event already keeps it: reprocessing a row never emits twice.
    ``subscribers`` holds the subscription ids of (tenant, ns) for every ns among the rows.
    """
    if not events:
        return
    if conn.dialect.name == "sqlite":
        _sqlite_emit(conn, tenant, events, now=now, subscribers=subscribers)
        return
    rows = [
        {
            "installation_id": row.installation_id,
            "inbox_id": row.id,
            "tenant": tenant,
            "ns": row.ns,
            "event": row.event,
            "payload": payload,
            "occurred_at": row.received_at,
            "created_at": now,
        }
        for row, payload in events
    ]
    conn.execute(_emit(conn.dialect.name), rows)
    if not any(subscribers.get((tenant, row.ns)) for row, _ in events):
        return
    ids = {
        inbox: (event_id, ns)
        for event_id, inbox, ns in conn.execute(_EVENTS, {"p_inbox": [r["inbox_id"] for r in rows]})
    }
    deliveries = [
        {"event_id": event_id, "subscription_id": sid, "status": "pending", "attempts": 0, "next_attempt_at": now}
        for event_id, ns in ids.values()
        for sid in subscribers.get((tenant, ns), ())
    ]
    if deliveries:
        conn.execute(_deliveries(conn.dialect.name), deliveries)


_EVENT_COLUMNS: Final = ("installation_id", "inbox_id", "tenant", "ns", "event", "payload", "occurred_at", "created_at")
_SQLITE_EVENT_ROW: Final = "(?, ?, ?, ?, ?, CAST(? AS TEXT), ?, ?)"  # the payload arrives as JSON bytes
_SQLITE_EVENTS: Final = "SELECT id, inbox_id, ns FROM trigger_outbox WHERE inbox_id IN (SELECT value FROM json_each(?))"
_SQLITE_ROWS: Final = 999 // len(_EVENT_COLUMNS)  # rows per statement within any SQLite's bound-variable limit


@lru_cache(maxsize=32)
def _sqlite_insert_events(count: int) -> str:
    return (
        f"INSERT INTO trigger_outbox ({', '.join(_EVENT_COLUMNS)}) VALUES {', '.join([_SQLITE_EVENT_ROW] * count)} "
        "ON CONFLICT (inbox_id) DO NOTHING"
    )


@lru_cache(maxsize=32)
def _sqlite_insert_deliveries(count: int) -> str:
    row = "(?, ?, 'pending', 0, ?)"
    return (
        "INSERT INTO trigger_deliveries (event_id, subscription_id, status, attempts, next_attempt_at) "
        f"VALUES {', '.join([row] * count)} ON CONFLICT (event_id, subscription_id) DO NOTHING"
    )


def _sqlite_emit(
    conn: Connection,
    tenant: str,
    events: Sequence[tuple[InboxRow, dict[str, Any]]],
    *,
    now: float,
    subscribers: Mapping[tuple[str, str], Sequence[str]],
) -> None:
    """``emit`` on the SQLite driver: multi-row statements, the payload encoded once (store/driver.py)."""
    # The same statements as emit's: SQLAlchemy's executemany cost ~10 µs a row in bind processing,
    # spent holding the writer lock that acknowledgements wait for.
    for start in range(0, len(events), _SQLITE_ROWS):
        chunk = events[start : start + _SQLITE_ROWS]
        values: list[Any] = []
        for row, payload in chunk:
            values += (row.installation_id, row.id, tenant, row.ns, row.event, _payload(payload), row.received_at, now)
        on_driver(conn, _sqlite_insert_events(len(chunk)), tuple(values))
    if not any(subscribers.get((tenant, row.ns)) for row, _ in events):
        return
    inbox_ids = orjson.dumps([row.id for row, _ in events]).decode()
    deliveries = [
        (event_id, sid, now)
        for event_id, _, ns in on_driver(conn, _SQLITE_EVENTS, (inbox_ids,)).fetchall()
        for sid in subscribers.get((tenant, ns), ())
    ]
    per_statement = 999 // 3
    for start in range(0, len(deliveries), per_statement):
        chunk_rows = deliveries[start : start + per_statement]
        on_driver(conn, _sqlite_insert_deliveries(len(chunk_rows)), tuple(itertools.chain.from_iterable(chunk_rows)))


def _payload(payload: dict[str, Any]) -> bytes:
    try:
        return exactjson.dumps(payload)
    except (TypeError, ValueError) as exc:  # as the engine's serialiser says it (store/database.py)
        raise StoreError(f"a value is not JSON-serialisable ({exc})") from None


@cache
def _emit(dialect: str) -> Insert:
    # Built once: building the statement cost more than running it.
    stmt = dialects.insert(dialect, trigger_outbox)
    return stmt.on_conflict_do_nothing(index_elements=[o.inbox_id])


@cache
def _deliveries(dialect: str) -> Insert:
    stmt = dialects.insert(dialect, trigger_deliveries)
    return stmt.on_conflict_do_nothing(index_elements=[d.event_id, d.subscription_id])


_EVENTS = select(o.id, o.inbox_id, o.ns).where(o.inbox_id.in_(bindparam("p_inbox", expanding=True)))
_SUBSCRIBERS = select(s.id).where(s.tenant == bindparam("p_tenant"), s.ns == bindparam("p_ns"))


def subscribers_of(conn: Connection, tenant: str, ns: str) -> list[str]:
    """Return the ids of a tenant's subscriptions to a MiniApp's events."""
    return list(conn.execute(_SUBSCRIBERS, {"p_tenant": tenant, "p_ns": ns}).scalars())


class Outbox:
    """Trigger events, subscriptions and deliveries, on the store's database."""

    def __init__(self, store: Store) -> None:
        self._db = store.database
        self._clock = store.clock
        self._dialect = store.dialect

    # -- subscriptions ---------------------------------------------------------------------------

    def subscribe(self, tenant: str, ns: str, url: str, secret: bytes) -> Subscription:
        """Add a subscription (or give an existing one for the same URL a new secret) and return it."""
        now = self._clock.now()
        stmt = dialects.insert(self._dialect, subscriptions).values(
            id=uuid.uuid4().hex, tenant=tenant, ns=ns, url=url, secret=secret, created_at=now
        )
        stmt = stmt.on_conflict_do_update(index_elements=[s.tenant, s.ns, s.url], set_={"secret": secret})
        with self._db.write(f"subscribe {url!r} to {ns!r} events of {tenant!r}") as conn:
            conn.execute(stmt)
            row = conn.execute(select(subscriptions).where(s.tenant == tenant, s.ns == ns, s.url == url)).one()
        return _subscription(row)

    def unsubscribe(self, id: str) -> bool:
        """Remove a subscription and its pending deliveries; False when there is none."""
        with self._db.write(f"remove subscription {id!r}") as conn:
            conn.execute(delete(trigger_deliveries).where(d.subscription_id == id))
            return bool(conn.execute(delete(subscriptions).where(s.id == id)).rowcount)

    def subscriptions(self, tenant: str | None = None, ns: str | None = None) -> list[Subscription]:
        """Return subscriptions, of one tenant (and MiniApp) when given."""
        query = select(subscriptions).order_by(s.tenant, s.ns, s.created_at)
        if tenant is not None:
            query = query.where(s.tenant == tenant)
        if ns is not None:
            query = query.where(s.ns == ns)
        with self._db.read("list subscriptions") as conn:
            return [_subscription(r) for r in conn.execute(query)]

    # -- events ------------------------------------------------------------------------------------

    def events(self, tenant: str, *, ns: str | None = None, after: int = 0, limit: int = 100) -> list[TriggerEvent]:
        """Return a tenant's events with an id above ``after``, oldest first."""
        query = select(trigger_outbox).where(o.tenant == tenant, o.id > after).order_by(o.id).limit(limit)
        if ns is not None:
            query = query.where(o.ns == ns)
        with self._db.read("list trigger events") as conn:
            return [_event(r) for r in conn.execute(query)]

    def count_events(self, tenant: str | None = None) -> int:
        """Return how many events the outbox holds (of one tenant when given)."""
        query = select(func.count()).select_from(trigger_outbox)
        if tenant is not None:
            query = query.where(o.tenant == tenant)
        with self._db.read("count trigger events") as conn:
            return int(conn.execute(query).scalar_one())

    def purge(self, before: float) -> int:
        """Forget events created before ``before`` that wait for no delivery (theirs go with them); return how many."""
        waiting = select(d.event_id).where(d.event_id == o.id, d.status == "pending").exists()
        stmt = delete(trigger_outbox).where(o.created_at < before, ~waiting)
        with self._db.write("purge old trigger events") as conn:
            return int(conn.execute(stmt).rowcount)

    # -- deliveries --------------------------------------------------------------------------------

    def due(self, limit: int = 100) -> list[DueDelivery]:
        """Return pending deliveries whose time has come, oldest first."""
        with self._db.read("find due trigger deliveries") as conn:
            if conn.dialect.name == "sqlite":
                return _sqlite_due(conn, self._clock.now(), limit)
            query = (
                select(trigger_outbox, subscriptions, d.attempts)
                .select_from(trigger_deliveries.join(trigger_outbox).join(subscriptions))
                .where(d.status == "pending", d.next_attempt_at <= self._clock.now())
                .order_by(d.next_attempt_at, d.event_id)
                .limit(limit)
            )
            return [DueDelivery(_event(r), _subscription(r), int(r._mapping[d.attempts])) for r in conn.execute(query)]

    def next_due(self) -> float | None:
        """Return when the next pending delivery may be attempted, or None when none is pending."""
        query = select(func.min(d.next_attempt_at)).where(d.status == "pending")
        with self._db.read("find the next trigger delivery") as conn:
            when = conn.execute(query).scalar_one_or_none()
        return None if when is None else float(when)

    def settle(
        self,
        event_id: int,
        subscription_id: str,
        *,
        status: DeliveryStatus,
        error: str | None = None,
        retry_at: float | None = None,
    ) -> None:
        """Record an attempt: delivered, failed for good, or pending again until ``retry_at``."""
        self.settle_all([Attempt(event_id, subscription_id, status, error, retry_at)])

    def settle_all(self, attempts: Sequence[Attempt]) -> None:
        """Record attempts in one transaction (one commit for a batch of POSTs, not one each).

        Not durable (no fsync): an outcome a power cut loses means those events are POSTed again,
        which subscribers dedupe by id, as after a crash before this commit.
        """
        if not attempts:
            return
        now = self._clock.now()
        params = [
            {
                "p_event": a.event_id,
                "p_subscription": a.subscription_id,
                "p_status": a.status,
                "p_error": a.error,
                "p_delivered": now if a.status == "delivered" else None,
                "p_next": a.retry_at if a.status == "pending" else None,
            }
            for a in attempts
        ]
        with self._db.write("record trigger deliveries", durable=False) as conn:
            if conn.dialect.name == "sqlite":  # on the driver: SQLAlchemy's executemany binds ~10 µs a row
                values = [tuple(row[name] for name in _SQLITE_SETTLE_PARAMS) for row in params]
                driver = conn.connection.driver_connection
                assert driver is not None
                driver.executemany(_SQLITE_SETTLE, values)
            else:
                conn.execute(_SETTLE, params)

    def redeliver(self, event_id: int, subscription_id: str) -> DeliveryState | None:
        """Make a failed delivery due now (one more attempt); return its state before, or None when there is none.

        Only a ``failed`` one changes: a pending one is on its way already and a delivered one is done.
        """
        where = (d.event_id == event_id, d.subscription_id == subscription_id)
        with self._db.write(f"redeliver trigger event {event_id} to {subscription_id!r}") as conn:
            row = conn.execute(select(trigger_deliveries).where(*where)).first()
            if row is not None and row.status == "failed":
                again = (
                    update(trigger_deliveries).where(*where).values(status="pending", next_attempt_at=self._clock.now())
                )
                conn.execute(again)
        return None if row is None else DeliveryState(**row._mapping)

    def deliveries(self, event_id: int | None = None) -> list[DeliveryState]:
        """Return delivery states (of one event when given)."""
        query = select(trigger_deliveries).order_by(d.event_id, d.subscription_id)
        if event_id is not None:
            query = query.where(d.event_id == event_id)
        with self._db.read("list trigger deliveries") as conn:
            return [DeliveryState(**r._mapping) for r in conn.execute(query)]
