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
from typing import Final

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
    views: list[View | None] = []
    for customer in customers:
        if customer is None:
            views.append(None)
            continue
        code = as_text(customer.data.get("code"))
        view = known.get(code) if code is not None else None
        if view is None:
            view = record_view(_by_email_or_phone(tx, installation_id, customer))
        if view is None and code is not None and not customer.rejected:
            tx.write(installation_id, CUSTOMER, [RecordWrite(code, customer.data)])
            view = {"contentType": CUSTOMER, "code": code, "partial": False, "data": customer.data}
        if view is not None and code is not None:
            known[code] = view  # a later delivery of the batch finds it without a query
        views.append(view)
    return views


def _by_email_or_phone(tx: Processing, installation_id: str, customer: MappedRecord) -> StoredRecord | None:
    data = customer.data
    email = data.get("primaryEmail")
    if isinstance(email, str) and email.strip():
        found = tx.find_by_field(installation_id, CUSTOMER, "primaryEmail", email.strip())
        if found is not None:
            return found
    phone = data.get("primaryPhone")  # in E.164 already when it is a number (with_normal_phone)
    if isinstance(phone, str | int) and not isinstance(phone, bool):
        return tx.find_by_field(installation_id, CUSTOMER, "primaryPhone", str(phone))
    return None
