"""The built-in compute functions (D17): ``fn(value, **args)``, registered by name in BUILTIN_FUNCTIONS.

User functions join them through ``FunctionRegistry`` (``mapping/functions.py``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Final

from miniapp_sync.definition.rules import MISSING
from miniapp_sync.errors import preview
from miniapp_sync.mapping.coercions import decimals, from_decimal, to_number, to_string, to_text

ComputeFunction = Callable[..., Any]

_FIRST_KEYS: Final = ("first_name", "firstName", "first", "given_name", "givenName")
_LAST_KEYS: Final = ("last_name", "lastName", "last", "family_name", "familyName", "surname")


def full_name(value: Any) -> str | None:
    """Join first and last name from an object (first_name/firstName/…) or a [first, last] list."""
    kind = type(value)  # exact dicts and lists skip the Mapping ABC check (~0.2 µs)
    if kind is list:  # [first, last] from a ``paths`` rule, once per order: text entries without a call each
        if len(value) == 2 and (a := value[0]).__class__ is str and (b := value[1]).__class__ is str:
            # Two texts, the usual pair: no comprehension (a function call of its own before 3.12).
            a, b = a.strip(), b.strip()
            return f"{a} {b}" if a and b else a or b or None
        return " ".join([t for v in value if (t := v.strip() if v.__class__ is str else to_text(v))]) or None
    if kind is dict or isinstance(value, Mapping):
        first = next((t for k in _FIRST_KEYS if (t := to_text(value.get(k)))), None)
        last = next((t for k in _LAST_KEYS if (t := to_text(value.get(k)))), None)
        if first is None and last is None:
            return to_text(value.get("name")) or to_text(value.get("full_name"))
        parts: list[str | None] = [first, last]
    elif isinstance(value, (list, tuple)):
        parts = [to_text(v) for v in value]
    else:
        return to_text(value)
    return " ".join(p for p in parts if p) or None


def concat(value: Any, separator: str = " ") -> str | None:
    """Join the non-empty entries of a list with ``separator``."""
    entries = value if isinstance(value, (list, tuple)) else [value]
    return separator.join(t for v in entries if (t := to_text(v))) or None


def sum_numbers(value: Any) -> int | float:
    """Add a list of numbers or numeric strings; null and missing entries count as nothing."""
    return from_decimal(sum(decimals(value), Decimal(0)))


def multiply(value: Any) -> int | float | None:
    """Multiply a list of numbers; any null or missing factor makes the product null."""
    entries = value if isinstance(value, (list, tuple)) else [value]
    if not entries or any(e is None or e is MISSING or e == "" for e in entries):
        return None
    product = Decimal(1)
    for factor in decimals(entries):
        product *= factor
    return from_decimal(product)


def round_number(value: Any, digits: int = 0) -> int | float | None:
    """Round to ``digits`` decimals, halves away from zero on the digits as written (2.675 -> 2.68)."""
    if type(digits) is not int:
        raise ValueError(f"'digits' must be an integer, found {preview(digits)}")
    number = to_number(value)
    if number is None:
        return None
    try:
        rounded = Decimal(repr(number)).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP)
    except InvalidOperation:  # more digits than the decimal context holds: binary rounding will do
        rounded = Decimal(repr(round(number, digits)))
    return int(rounded) if digits <= 0 else float(rounded)


def first(value: Any) -> Any:
    """Return the first entry of a list that is not missing (None when there is none)."""
    if not isinstance(value, (list, tuple)):
        return value
    return next((v for v in value if v is not MISSING), None)


def last(value: Any) -> Any:
    """Return the last entry of a list that is not missing (None when there is none)."""
    if not isinstance(value, (list, tuple)):
        return value
    return next((v for v in reversed(value) if v is not MISSING), None)


def count(value: Any) -> int:
    """Count the entries of a list or object; null counts 0 and any other value 1."""
    if isinstance(value, (list, tuple)):
        return sum(1 for v in value if v is not MISSING)
    if isinstance(value, Mapping):
        return len(value)
    return 0 if value is None or value is MISSING else 1


def pick(value: Any, key: str) -> Any:
    """Return the entry at ``key`` (dots and list indices allowed: 'price.amount', 'items.0')."""
    if not isinstance(key, str) or not key:
        raise ValueError(f"'key' must be a non-empty string, found {preview(key)}")
    for part in key.split("."):
        if isinstance(value, Mapping):
            value = value.get(part)
        elif isinstance(value, (list, tuple)) and part.isascii() and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def split_first_name(value: Any) -> str | None:
    """Return the first word of a full name."""
    words = (to_text(value) or "").split()
    return words[0] if words else None


def split_last_name(value: Any) -> str | None:
    """Return everything after the first word of a full name (None for a single word)."""
    words = (to_text(value) or "").split()
    return " ".join(words[1:]) or None


def salla_status(value: Any) -> str | None:
    """Return a Salla status object's stable ``slug``, else its ``name``."""
    if type(value) is dict or isinstance(value, Mapping):
        return to_text(value.get("slug")) or to_text(value.get("name"))
    return to_text(value)


def money_amount(value: Any) -> int | float | None:
    """Read an amount from {amount}, Shopify {shop_money: {amount}}, a numeric string or a number."""
    if isinstance(value, Mapping) and "amount" not in value and isinstance(value.get("shop_money"), Mapping):
        value = value["shop_money"]
    return to_number(value)


_CURRENCY_CODE: Final = re.compile(r"\b[A-Z]{3}\b")


def currency_of(value: Any) -> str | None:
    """Return the currency code of a money object ({currency}, {currency_code}, {shop_money}) or text."""
    for _ in range(3):
        if isinstance(value, str):
            match = _CURRENCY_CODE.search(value.upper() if len(value.strip()) == 3 else value)
            return match.group() if match else None
        if not isinstance(value, Mapping):
            return None
        code = next((t for k in ("currency", "currency_code", "currencyCode") if (t := to_text(value.get(k)))), None)
        if code is not None:
            return code
        value = next((value[k] for k in ("shop_money", "amount", "total") if isinstance(value.get(k), Mapping)), None)
    return None


def discount_total(value: Any) -> int | float:
    """Add the ``discount`` (else ``amount``) of each discount in a list or in {discounts: [...]}."""
    if type(value) is not list and isinstance(value, Mapping):  # a list skips the ABC check (~0.2 µs)
        value = value.get("discounts")
    if value == [] or not isinstance(value, (list, tuple)):  # most orders have no discount: skip the decimals
        return 0
    amounts = [d.get("discount", d.get("amount")) if type(d) is dict or isinstance(d, Mapping) else d for d in value]
    return sum_numbers(amounts)


def lookup(value: Any, table: Mapping[str, Any], default: Any = None) -> Any:
    """Translate a value through ``table`` (keys compared as text); ``default`` when not listed."""
    if type(table) is not dict and not isinstance(table, Mapping):  # the ABC check alone costs ~0.1 µs a call
        raise ValueError(f"'table' must be an object, found {preview(table)}")
    key = value if isinstance(value, str) else to_string(value) if isinstance(value, (int, float)) else None
    return table.get(key, default) if key is not None else default


BUILTIN_FUNCTIONS: Final[Mapping[str, ComputeFunction]] = {
    "concat": concat,
    "count": count,
    "currencyOf": currency_of,
    "discountTotal": discount_total,
    "first": first,
    "fullName": full_name,
    "last": last,
    "lookup": lookup,
    "moneyAmount": money_amount,
    "multiply": multiply,
    "pick": pick,
    "round": round_number,
    "sallaStatus": salla_status,
    "splitFirstName": split_first_name,
    "splitLastName": split_last_name,
    "sum": sum_numbers,
}
