"""Line items (D16): map an order's or cart's items onto the standard line-item fields.

Without an ``itemMapping`` each field is read from the first of its candidate keys that holds a
value; the candidates cover Salla (order and cart items), Zid, Shopify and WooCommerce. A field
none of them provides is left out, never set to None, like any unresolved path (D14).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from miniapp_sync.definition.rules import MISSING
from miniapp_sync.errors import MappingError, TransformError, preview
from miniapp_sync.mapping.coercions import to_number, to_text

LINE_ITEM_FIELDS: Final = ("code", "productCode", "name", "sku", "quantity", "unitPrice", "totalAmount", "currency")
# Line items a record may hold. Neither the guide nor DESIGN sets one; real orders hold a few to
# hundreds (B2B ones thousands). Past it, a provider answer is broken or hostile: mapping, hashing,
# diffing and storing a million items would take seconds and hundreds of MB per record, so the
# record is rejected (D19: to the dead-letter store, the field and the count named) before any of it.
MAX_ITEMS: Final = 10_000


# (field, candidate key paths in order, conversion). Salla's money values are {amount, currency}
# objects, which to_number reads; Shopify and WooCommerce send decimal strings. Only scalars
# become text: an object where a code or name belongs is a shape we do not know.
_FALLBACKS: Final[tuple[tuple[str, tuple[tuple[str, ...], ...], Callable[[Any], Any]], ...]] = (
    ("code", (("id",),), to_text),
    ("productCode", (("product_id",), ("product", "id"), ("productId",)), to_text),
    ("name", (("name",), ("title",), ("product", "name"), ("product_name",)), to_text),
    ("sku", (("sku",), ("product", "sku")), to_text),
    ("quantity", (("quantity",), ("qty",)), to_number),
    (
        "unitPrice",
        (
            ("amounts", "price_without_tax"),
            ("price",),
            ("price_set", "shop_money"),
            ("unit_price",),
            ("product", "price"),
        ),
        to_number,
    ),
    ("totalAmount", (("amounts", "total"), ("total",), ("subtotal",)), to_number),
    (
        "currency",
        (
            ("currency",),
            ("currency_code",),
            ("amounts", "total", "currency"),
            ("price_set", "shop_money", "currency_code"),
            ("product", "currency"),
        ),
        to_text,
    ),
)


def _dig(item: Mapping[str, Any], keys: tuple[str, ...]) -> Any:
    value: Any = item
    for key in keys:
        if type(value) is not dict and not isinstance(value, Mapping):  # the ABC check alone costs ~0.1 µs
            return MISSING
        value = value.get(key, MISSING)
    return value


def standard_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """Map one provider line item onto the standard fields, leaving out those it does not have."""
    mapped: dict[str, Any] = {}
    for field, candidates, convert in _FALLBACKS:
        for keys in candidates:
            value = _dig(item, keys)
            if value is MISSING or value is None:
                continue
            value = convert(value)
            if value is not None:
                mapped[field] = value
                break
    return mapped


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "a list"
    return "an object" if isinstance(value, Mapping) else type(value).__name__


def map_items(items: Any, item_mapper: Callable[[Any], Any] | None = None, *, currency: str | None = None) -> Any:
    """Map line items onto the standard fields; ``item_mapper`` replaces the built-in fallbacks.

    A dict whose values are all objects is a dict of items keyed by id (WooCommerce, Zid);
    any other dict is a single item. An entry that is not an object fails the whole list with
    its index: dropping it would store an order whose items do not add up. ``currency`` fills
    the currency of items that do not carry their own (WooCommerce's sit on the order).
    """
    if items is None or items is MISSING or items == "":
        return []
    if isinstance(items, (Mapping, list, tuple)) and len(items) > MAX_ITEMS:
        raise too_many(items)
    if isinstance(items, Mapping):
        values = list(items.values())
        entries: Any = values if all(isinstance(v, Mapping) for v in values) else [items]
    elif isinstance(items, (list, tuple)):
        entries = items
    else:
        raise TransformError(f"mapItems expects a list of line items, found {_kind(items)}: {preview(items)}")
    mapped_items = []
    for index, item in enumerate(entries):
        if not isinstance(item, Mapping):
            raise TransformError(f"mapItems: item [{index}] is {_kind(item)}, expected an object: {preview(item)}")
        if item_mapper is None:
            mapped: Any = standard_item(item)
        else:
            try:
                mapped = item_mapper(item)
            except MappingError as exc:  # the compiled itemMapping reports a failed item this way
                raise TransformError(f"mapItems: item [{index}]: {exc}") from exc
        if currency is not None and isinstance(mapped, dict) and "currency" not in mapped:
            mapped["currency"] = currency
        mapped_items.append(mapped)
    return mapped_items


def too_many(items: Any) -> TransformError:
    """Return the error of a list of line items longer than ``MAX_ITEMS``."""
    return TransformError(f"mapItems: {len(items):,} line items, more than the {MAX_ITEMS:,} a record may hold")


def item_list(
    optimistic: Callable[[Any], Any],
    list_fast: Callable[[Any], Any],
    general: Callable[[Any], Any],
    currency: str | None,
) -> Callable[[Any], Any]:
    """Return a mapItems step for a compiled ``itemMapping``: ``list_fast`` on a list of dicts.

    ``optimistic`` is tried first: it subscripts the primary paths and raises on anything it
    does not expect, and then ``list_fast`` decides, as if it had never run.

    ``list_fast`` is the mapping's straight-line code looped over a list, without the checks
    and the error wrapping of ``map_items`` per item; it returns None when an entry is no exact
    dict. Any other shape, and any list it fails on, goes to ``general`` (the step as
    ``map_items`` builds it), which gives the same result or the error naming the item by index.
    """

    def items(value: Any) -> Any:
        if value.__class__ is not list or len(value) > MAX_ITEMS:
            return general(value)  # which words the error of too many
        try:
            mapped = optimistic(value)
        except Exception:
            try:
                mapped = list_fast(value)
            except Exception:
                return general(value)
            if mapped is None:
                return general(value)
        if currency is not None:
            for data in mapped:
                if "currency" not in data:
                    data["currency"] = currency
        return mapped

    return items
