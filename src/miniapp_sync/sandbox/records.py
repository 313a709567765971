"""The sandbox store's records: generation at start, the list/detail views, filters and changes."""

from __future__ import annotations

import random
import threading
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Final

from miniapp_sync.sandbox import catalog as c
from miniapp_sync.sandbox.data import Generator
from miniapp_sync.sandbox.shapes import Record, carbon, plain_time, status_object

RESOURCES: Final = ("products", "customers", "orders", "abandonedCarts")
_ALIASES: Final = {"carts": "abandonedCarts", "carts/abandoned": "abandonedCarts", "abandoned_carts": "abandonedCarts"}
# Salla's product list omits what only GET /products/{id} returns (examples/salla/README.md).
_PRODUCT_DETAIL_ONLY: Final = frozenset(
    {"allow_attachments", "is_pinned", "pinned_date", "sort", "enable_upload_image", "updated_at"}
    | {"options", "skus", "categories", "brand", "tags"}
)
_ORDER_SUMMARY: Final = (
    "id", "reference_id", "total", "date", "status", "can_cancel", "can_reorder", "is_pending_payment",
    "pending_payment_ends_at", "payment_method", "urls", "items",
)  # fmt: skip
_LOCALIZED: Final = frozenset({"city", "country", "name", "company"})


def resource_key(name: str) -> str:
    """Return the canonical resource key for a name or alias ('carts' → 'abandonedCarts')."""
    key = _ALIASES.get(name.strip("/"), name.strip("/"))
    if key not in RESOURCES:
        raise ValueError(f"unknown sandbox resource {name!r}; known: {', '.join(RESOURCES)} (or 'carts')")
    return key


def list_view(resource: str, record: Record) -> Record:
    """Return a record as a list endpoint shows it (orders: a summary; products: no detail-only fields)."""
    if resource == "products":
        return {k: v for k, v in record.items() if k not in _PRODUCT_DETAIL_ONLY}
    if resource == "orders":
        summary = {k: record["amounts"]["total"] if k == "total" else record[k] for k in _ORDER_SUMMARY[:-1]}
        summary["items"] = [
            {"name": item["name"], "quantity": item["quantity"], "thumbnail": item["product"]["thumbnail"]}
            for item in record["items"]
        ]
        return summary
    return record


def localize(value: Any, language: str) -> Any:
    """Return ``value`` with Salla's localised labels (cities, countries, statuses) in ``language``."""
    if language != "ar":
        return value
    if isinstance(value, dict):
        return {
            k: c.ARABIC.get(v, v) if k in _LOCALIZED and isinstance(v, str) else localize(v, language)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [localize(v, language) for v in value]
    return value


def moment(value: Any) -> datetime:
    """Read a Carbon object, a naive store-time string or an ISO string as an aware datetime."""
    text = value["date"] if isinstance(value, dict) else str(value)
    found = datetime.fromisoformat(text)
    return found if found.tzinfo is not None else found.replace(tzinfo=c.RIYADH)


class SandboxData:
    """Every record of the sandbox store, by resource, sorted by id; safe to change from any thread."""

    def __init__(self, counts: dict[str, int], seed: int) -> None:
        self.lock = threading.RLock()
        self._generator = Generator(seed)
        self._rng = random.Random(f"{seed}:store")
        self.records: dict[str, list[Record]] = {key: [] for key in RESOURCES}
        self._index: dict[str, dict[int, Record]] = {key: {} for key in RESOURCES}
        self._created: dict[str, dict[int, datetime]] = {key: {} for key in RESOURCES}
        needs_both = counts.get("orders", 0) or counts.get("abandonedCarts", 0)
        if needs_both and not (counts.get("customers", 0) and counts.get("products", 0)):
            raise ValueError("orders and carts need at least one customer and one product")
        day = timedelta(days=1)
        for created, updated in self._moments(counts.get("products", 0), 400 * day, 2 * day, None):
            self._keep("products", self._generator.product(created, updated), created)
        for created, updated in self._moments(counts.get("customers", 0), 365 * day, day, None):
            self._keep("customers", self._generator.customer(updated), created)
        listed = self._listed()
        for created, updated in self._moments(counts.get("orders", 0), 180 * day, timedelta(hours=1), 3 * day):
            self._keep("orders", self._order(created, updated, listed), created)
        spans = (10 * day, timedelta(minutes=30), timedelta(minutes=45))
        for created, updated in self._moments(counts.get("abandonedCarts", 0), *spans):
            self._keep("abandonedCarts", self._cart(created, updated, listed), created)
        # Changes made later are stamped after everything generated, whatever the clock says.
        stamps = [self.updated(key, r) for key in RESOURCES for r in self.records[key]]
        self._latest = max([c.SNAPSHOT, *stamps])

    def _moments(
        self, count: int, since: timedelta, until: timedelta, within: timedelta | None
    ) -> list[tuple[datetime, datetime]]:
        start, end = c.SNAPSHOT - since, c.SNAPSHOT - until
        seconds = (end - start).total_seconds()
        created = sorted(start + timedelta(seconds=int(self._rng.uniform(0, seconds))) for _ in range(count))
        pairs = []
        for moment_ in created:
            room = (c.SNAPSHOT - moment_).total_seconds()
            if within is not None:
                room = min(room, within.total_seconds())
            pairs.append((moment_, moment_ + timedelta(seconds=int(self._rng.uniform(0, room)))))
        return pairs

    def _listed(self) -> list[Record]:
        # Customers can only order products the store shows.
        return [p for p in self.records["products"] if p["status"] != "hidden"] or self.records["products"]

    def _order(self, created: datetime, updated: datetime, products: list[Record]) -> Record:
        customer = self._rng.choice(self.records["customers"])
        return self._generator.order(created, updated, customer, products)

    def _cart(self, created: datetime, updated: datetime, products: list[Record]) -> Record:
        customer = self._rng.choice(self.records["customers"])
        return self._generator.cart(created, updated, customer, products)

    def _keep(self, resource: str, record: Record, created: datetime) -> None:
        self.records[resource].append(record)
        self._index[resource][record["id"]] = record
        self._created[resource][record["id"]] = created

    def get(self, resource: str, record_id: int) -> Record | None:
        """Return the stored record, or None."""
        with self.lock:
            return self._index[resource].get(record_id)

    def updated(self, resource: str, record: Record) -> datetime:
        """Return when a record was last changed."""
        return moment(record["updated_at"])

    def select(
        self, resource: str, *, updated_after: datetime | None = None, created_after: datetime | None = None
    ) -> Sequence[Record]:
        """Return the records, by ascending id, changed or created at or after the given moments.

        Without a filter this is the stored list itself, not a copy: a list endpoint serves one
        page of it, and copying half a million records for each page bounded a large sync at the
        sandbox's pace. Read it while holding ``lock``, and do not change it.
        """
        with self.lock:
            found = self.records[resource]
            if updated_after is not None:
                found = [r for r in found if self.updated(resource, r) >= updated_after]
            if created_after is not None:
                found = [r for r in found if self._created[resource][r["id"]] >= created_after]
            return found

    def stamp(self, now: float) -> datetime:
        """Return a change time from the clock's ``now``, always after every earlier change."""
        with self.lock:
            wall = datetime.fromtimestamp(int(now), c.RIYADH)
            self._latest = max(wall, self._latest + timedelta(seconds=1))
            return self._latest

    def mutate(self, resource: str, record_id: int, changes: dict[str, Any], now: float) -> Record:
        """Apply ``changes`` to a record and move its ``updated_at`` on; return the stored record."""
        with self.lock:
            record = self._index[resource].get(record_id)
            if record is None:
                raise KeyError(f"no {resource} record with id {record_id}")
            changes = dict(changes)
            if resource == "orders" and isinstance(changes.get("status"), str):
                changes["status"] = status_object(changes["status"])  # a slug is enough to change status
            record.update(changes)
            if "updated_at" not in changes:
                when = self.stamp(now)
                record["updated_at"] = plain_time(when) if resource == "products" else carbon(when)
            return record

    def add(self, resource: str, count: int, now: float) -> list[Record]:
        """Create ``count`` new records dated now; return them."""
        with self.lock:
            added = []
            for _ in range(count):
                when = self.stamp(now)
                if resource == "products":
                    record = self._generator.product(when, when)
                elif resource == "customers":
                    record = self._generator.customer(when)
                elif resource == "orders":
                    record = self._order(when, when, self._listed())
                else:
                    record = self._cart(when, when, self._listed())
                self._keep(resource, record, when)
                added.append(record)
            return added

    def delete(self, resource: str, record_id: int) -> None:
        """Remove a record: lists stop showing it and its detail answers 404."""
        with self.lock:
            record = self._index[resource].pop(record_id, None)
            if record is None:
                raise KeyError(f"no {resource} record with id {record_id}")
            self.records[resource].remove(record)
            del self._created[resource][record_id]
