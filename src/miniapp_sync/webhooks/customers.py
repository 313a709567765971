"""Customer extraction (D28): find each delivery's customer by code, then email, then phone; else create it.

The customer a delivery carries is mapped by ``webhook.customerExtraction`` before the handler
runs; the order or cart the handler writes is then linked to it through ``customerCode``.
Matching by email ignores case; phones are compared in E.164, the form ``normalizePhone`` gives:
the delivery's phone is normalised with the installation's default country before the lookup and
stored so (``mapping.phones.with_normal_phone``), so the docs' own ``primaryPhone: 'mobile'`` — a national
number such as Salla's ``501234567`` — finds the customer stored as ``+966501234567``, and the
indexed lookup of migration 0005 keeps serving the query.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from miniapp_sync.mapping.records import MappedRecord
from miniapp_sync.store import RecordWrite, StoredRecord
from miniapp_sync.store.processing import Processing
from miniapp_sync.webhooks.identify import as_text
from miniapp_sync.webhooks.triggers import View, record_view

CUSTOMER: Final = "core:customer"
LINKED: Final = frozenset({"ecommerce:orders", "ecommerce:abandonedCarts"})  # records that carry customerCode


def link(tx: Processing, installation_id: str, customers: Sequence[MappedRecord | None]) -> list[View | None]:
    """Return the stored customer of each delivery (None: it carries none), creating the new ones."""
    codes = {code for c in customers if c is not None and (code := as_text(c.data.get("code"))) is not None}
    known = {code: record_view(r) for code, r in tx.records(installation_id, CUSTOMER, codes).items() if not r.deleted}
    created = _Created(tx, installation_id)
    views: list[View | None] = []
    for customer in customers:
        if customer is None:
            views.append(None)
            continue
        code = as_text(customer.data.get("code"))
        view = known.get(code) if code is not None else None
        if view is None:
            view = _by_email_or_phone(tx, installation_id, customer, created)
        if view is None and code is not None and not customer.rejected:
            view = created.add(code, customer.data)
        if view is not None and code is not None:
            known[code] = view  # a later delivery of the batch finds it without a query
        views.append(view)
    created.write()
    return views


class _Created:
    """The customers a batch creates, written together once it is linked (a write per new customer cost more).

    Until then they are not in the store, so the batch's later lookups by email and phone match them
    here, as the store's query would: its email and phone folded by SQLite's ``lower`` (ASCII only;
    PostgreSQL's folds more, so there the writes go at once). A customer whose email or phone is not
    text is written at once too, for the store's own comparison to see it.
    """

    def __init__(self, tx: Processing, installation_id: str) -> None:
        self._tx = tx
        self._installation_id = installation_id
        self._deferred = tx.conn.dialect.name == "sqlite"
        self._writes: list[RecordWrite] = []
        self._views: dict[str, View] = {}  # by code
        self._keys: dict[tuple[str, str], list[str]] = {}  # (field, folded value) -> codes

    def add(self, code: str, data: dict[str, Any]) -> View:
        """Create a customer (in the store now, or with the batch's others at the end); return its view."""
        view = {"contentType": CUSTOMER, "code": code, "partial": False, "data": data}
        values = [data.get(field) for field in _FIELDS]
        texts = [(field, value) for field, value in zip(_FIELDS, values, strict=True) if isinstance(value, str)]
        if not self._deferred or len(texts) < sum(value is not None for value in values):
            self.write()  # keeps the order of creation
            self._tx.write(self._installation_id, CUSTOMER, [RecordWrite(code, data)])
            return view
        self._writes.append(RecordWrite(code, data))
        self._views[code] = view
        for field, text in texts:
            self._keys.setdefault((field, text.translate(_ASCII_LOWER)), []).append(code)
        return view

    def find(self, field: str, value: str) -> View | None:
        """Return the first by code of the batch's new customers whose ``field`` the store would match ``value`` to."""
        codes = self._keys.get((field, value.lower()))
        return self._views[min(codes)] if codes else None

    def write(self) -> None:
        """Write the customers created so far."""
        if self._writes:
            self._tx.write(self._installation_id, CUSTOMER, self._writes)
            self._writes = []


_FIELDS: Final = ("primaryEmail", "primaryPhone")
_ASCII_LOWER: Final = {upper: upper + 32 for upper in range(ord("A"), ord("Z") + 1)}


def _first(stored: StoredRecord | None, pending: View | None) -> View | None:
    """Return the first by code of a stored match and a match among the batch's new customers."""
    if stored is None or (pending is not None and pending["code"] < stored.code):
        return pending
    return record_view(stored)


def _by_email_or_phone(tx: Processing, installation_id: str, customer: MappedRecord, created: _Created) -> View | None:
    data = customer.data
    email = data.get("primaryEmail")
    if isinstance(email, str) and email.strip():
        value = email.strip()
        stored = tx.find_by_field(installation_id, CUSTOMER, "primaryEmail", value)
        found = _first(stored, created.find("primaryEmail", value))
        if found is not None:
            return found
    phone = data.get("primaryPhone")  # in E.164 already when it is a number (with_normal_phone)
    if isinstance(phone, str | int) and not isinstance(phone, bool):
        value = str(phone)
        stored = tx.find_by_field(installation_id, CUSTOMER, "primaryPhone", value)
        return _first(stored, created.find("primaryPhone", value))
    return None
