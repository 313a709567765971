"""Customers' phones in one form (D28): E.164, national numbers read in the installation's default country.

Matching a delivery's customer by phone compares the stored ``primaryPhone`` with the delivery's,
through migration 0005's index on the stored text: both sides must hold the same form. The
webhook processor and the bulk sync both pass ``core:customer`` records through
``with_normal_phone`` before they are written, with the installation's ``default_country``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from miniapp_sync.mapping.records import MappedRecord
from miniapp_sync.mapping.transforms import normalize_phone

UNKNOWN_REGION: Final = "ZZ"  # phonenumbers' "no default": only international numbers parse
# Where a provider's stores are when an installation does not say (both are Saudi platforms).
_HOME: Final = {"salla": "SA", "zid": "SA"}


def default_country(metadata: Mapping[str, Any], user_input: Mapping[str, Any], provider: str | None) -> str:
    """Return an installation's default phone country: its ``defaultCountry``, else its provider's home."""
    for bag in (metadata, user_input):
        value = bag.get("defaultCountry")
        if isinstance(value, str):
            # phonenumbers loads here, or with the first phone (transforms._e164): every sync asks
            # for its country, and most installations name none.
            import phonenumbers

            if value.upper() in phonenumbers.SUPPORTED_REGIONS:
                return value.upper()
    return _HOME.get(provider or "", UNKNOWN_REGION)


def with_normal_phone(customer: MappedRecord | None, country: str) -> MappedRecord | None:
    """Return the customer with ``primaryPhone`` in E.164 when it is a usable number (else as mapped)."""
    if customer is None:
        return None
    phone = customer.data.get("primaryPhone")
    if phone is None or isinstance(phone, bool):
        return customer
    if isinstance(phone, str) and phone[:1] == "+" and phone[1:].isascii() and phone[1:].isdigit():
        return customer  # E.164 already (what normalizePhone gives): no second parse
    normal = normalize_phone(phone, country)
    if normal is None or normal == phone:
        return customer
    return customer._replace(data={**customer.data, "primaryPhone": normal})
