"""Compute functions (D17) and the value coercions every mapping step shares.

A compute function is called as ``fn(value, **args)``. ``to_string`` and ``to_number`` live here,
below transforms and line items, because transforms, ``mapItems`` and compute functions must
all coerce values by the same rules (D15).
"""

from __future__ import annotations

import difflib
import hashlib
import importlib.util
import inspect
import json
import math
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from types import ModuleType
from typing import Any, Final

import orjson

from miniapp_sync.definition.rules import MISSING
from miniapp_sync.errors import TransformError, preview

ComputeFunction = Callable[..., Any]
ENTRY_POINT_GROUP: Final = "miniapp_sync.functions"

# Arabic-Indic and Eastern Arabic-Indic digits plus the Arabic decimal (٫) and thousands (٬)
# separators become ASCII; the bidi marks that right-to-left formatted prices carry are dropped.
_DIGITS: Final[dict[int, int | None]] = {
    **str.maketrans("٠١٢٣٤٥٦٧٨٩۰۱۲۳۴۵۶۷۸۹٫٬", "01234567890123456789.,"),
    **dict.fromkeys(map(ord, "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")),
}
# Currency symbols (Unicode "Sc", incl. the U+20A0 block with the new Saudi riyal sign), ISO codes
# and Arabic abbreviations such as "ر.س" or "د.إ", accepted on either side of the number.
_SYMBOLS: Final = "$\u00a2-\u00a5\u058f\u060b\u09f2\u09f3\u0e3f\u20a0-\u20cf\ufdfc\ufe69\uff04\uffe0\uffe1\uffe5\uffe6"
_CURRENCY: Final = rf"(?:[A-Z]{{2,3}}[{_SYMBOLS}]?|[{_SYMBOLS}]|[\u0621-\u064a][\u0621-\u064a.]{{0,7}})"
_NUMBER_RE: Final = re.compile(
    rf"(?P<s1>[+-]?)\s*(?:{_CURRENCY}\s*)?(?P<s2>[+-]?)"
    r"(?P<int>[0-9]{1,3}(?:,[0-9]{3})+|[0-9]*)(?P<frac>\.[0-9]*)?(?P<exp>[eE][+-]?[0-9]+)?"
    rf"(?:\s*{_CURRENCY})?"
)


def normalize_digits(text: str) -> str:
    """Return text with Arabic-Indic digits and separators in ASCII and bidi marks removed."""
    return text if text.isascii() else text.translate(_DIGITS)


def to_string(value: Any) -> str | None:
    """Render a value as text: integral floats without '.0', bools as 'true'/'false', None stays None."""
    kind = type(value)
    if kind is str:
        return value  # type: ignore[no-any-return]
    if kind is int:
        return str(value)
    if value is None:
        return None
    if kind is bool:
        return "true" if value else "false"
    if kind is float or isinstance(value, float):
        if not math.isfinite(value):
            return None
        # Like JavaScript's String(): plain digits up to 1e21, exponent notation beyond.
        return str(int(value)) if value.is_integer() and abs(value) < 1e21 else repr(float(value))
    return _json_text(value)  # containers; also int and str subclasses, which orjson renders as such


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, (tuple, set, frozenset)):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def _json_text(value: Any) -> str:
    try:
        return orjson.dumps(value, default=_jsonable).decode()
    except TypeError:
        pass  # orjson refuses ints beyond 64 bits and very deep nesting; the stdlib does not
    try:
        return json.dumps(value, default=_jsonable, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError) as exc:
        raise TransformError(f"cannot render {preview(value)} as text: {exc}") from None


def to_number(value: Any) -> int | float | None:
    """Read a number from numbers, numeric strings (any digits, separators, currency) or {amount}."""
    kind = type(value)  # the common cases before the loop: this sits on every price of every record
    if kind is int:
        return value  # type: ignore[no-any-return]
    if kind is float:
        return value if math.isfinite(value) else None
    for _ in range(3):  # {amount: {amount: x}} nests at most twice in provider payloads
        kind = type(value)
        if kind is int:
            return value  # type: ignore[no-any-return]
        if kind is float:
            return value if math.isfinite(value) else None
        if kind is str:
            return _parse_number(value)
        if kind is bool or value is None:
            return None
        if isinstance(value, Mapping):
            value = value.get("amount")
            continue
        if isinstance(value, int):
            return int(value)
        if isinstance(value, float):
            return float(value) if math.isfinite(value) else None
        return None
    return None


def _parse_number(text: str) -> int | float | None:
    text = normalize_digits(text).strip()
    try:
        if text.isdigit() and text.isascii():
            return int(text)
        if (plain := text.replace(".", "", 1)).isdigit() and plain.isascii():  # '120.50': skip the regex
            return float(text)
        match = _NUMBER_RE.fullmatch(text)
        if match is None:
            return None
        s1, s2, whole, frac, exp = match.group("s1", "s2", "int", "frac", "exp")
        if (s1 and s2) or (not whole and (frac is None or len(frac) < 2)):
            return None
        sign = s1 or s2
        whole = whole.replace(",", "")
        if frac is None and exp is None:
            return int(sign + whole)
        number = float(sign + (whole or "0") + (frac or "") + (exp or ""))
    except ValueError:  # more digits than int() accepts
        return None
    return number if math.isfinite(number) else None


def to_text(value: Any) -> str | None:
    """Return a string stripped, a number as text, and None for empty strings and anything else."""
    if type(value) is str:
        return value.strip() or None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return to_string(value)
    return None


def _decimals(value: Any) -> list[Decimal]:
    decimals = []
    for entry in value if isinstance(value, (list, tuple)) else [value]:
        if entry is None or entry is MISSING or entry == "":
            continue
        number = to_number(entry)
        if number is None:
            raise ValueError(f"not a number: {preview(entry)}")
        decimals.append(Decimal(repr(number)) if isinstance(number, float) else Decimal(number))
    return decimals


def _from_decimal(number: Decimal) -> int | float:
    # Summing as decimals keeps money exact: 0.1 + 0.2 is 0.3, not 0.30000000000000004.
    return int(number) if number == number.to_integral_value() else float(number)


_FIRST_KEYS: Final = ("first_name", "firstName", "first", "given_name", "givenName")
_LAST_KEYS: Final = ("last_name", "lastName", "last", "family_name", "familyName", "surname")


def full_name(value: Any) -> str | None:
    """Join first and last name from an object (first_name/firstName/…) or a [first, last] list."""
    if isinstance(value, Mapping):
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
    return _from_decimal(sum(_decimals(value), Decimal(0)))


def multiply(value: Any) -> int | float | None:
    """Multiply a list of numbers; any null or missing factor makes the product null."""
    entries = value if isinstance(value, (list, tuple)) else [value]
    if not entries or any(e is None or e is MISSING or e == "" for e in entries):
        return None
    product = Decimal(1)
    for factor in _decimals(entries):
        product *= factor
    return _from_decimal(product)


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
    if isinstance(value, Mapping):
        return to_text(value.get("slug")) or to_text(value.get("name"))
    return to_text(value)


def money_amount(value: Any) -> int | float | None:
    """Read an amount from {amount}, Shopify {shop_money: {amount}}, a numeric string or a number."""
    if isinstance(value, Mapping) and "amount" not in value and isinstance(value.get("shop_money"), Mapping):
        value = value["shop_money"]
    return to_number(value)


_CURRENCY_CODE: Final = re.compile(r"\b[A-Z]{3}\b")
_IDENTIFIER: Final = re.compile(r"\W")


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
    if isinstance(value, Mapping):
        value = value.get("discounts")
    if not isinstance(value, (list, tuple)):
        return 0
    amounts = [d.get("discount", d.get("amount")) if isinstance(d, Mapping) else d for d in value]
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


def unknown_name_error(kind: str, name: str, known: Iterable[str]) -> TransformError:
    """Build the error for an unknown name, with a 'did you mean' and the known names."""
    names = sorted(known)
    by_lower = {n.lower(): n for n in names}
    close = difflib.get_close_matches(str(name).lower(), list(by_lower), n=1)
    hint = f" (did you mean {by_lower[close[0]]!r}?)" if close else ""
    return TransformError(f"unknown {kind} {name!r}{hint}; known: {', '.join(names)}")


def _module_functions(module: ModuleType, origin: str) -> dict[str, ComputeFunction]:
    declared = getattr(module, "FUNCTIONS", None)
    if declared is None:
        return {
            name: obj
            for name, obj in vars(module).items()
            if not name.startswith("_") and inspect.isfunction(obj) and obj.__module__ == module.__name__
        }
    if not isinstance(declared, Mapping) or not all(
        isinstance(k, str) and k and callable(v) for k, v in declared.items()
    ):
        raise TransformError(f"{origin}: FUNCTIONS must map function names to callables, found {preview(declared)}")
    return dict(declared)


class FunctionRegistry:
    """The compute functions known by name: built-ins plus user functions (D17)."""

    __slots__ = ("_functions",)

    def __init__(self, functions: Mapping[str, ComputeFunction] | None = None) -> None:
        self._functions: dict[str, ComputeFunction] = dict(BUILTIN_FUNCTIONS)
        for name, fn in (functions or {}).items():
            self.register(name, fn)

    def register(self, name: str, fn: ComputeFunction) -> None:
        """Register ``fn`` under ``name``; a user function may replace a built-in of that name."""
        if not isinstance(name, str) or not name:
            raise TransformError(f"a compute function needs a non-empty name, found {preview(name)}")
        if not callable(fn):
            raise TransformError(f"compute function {name!r} must be callable, found {preview(fn)}")
        self._functions[name] = fn

    def get(self, name: str) -> ComputeFunction:
        """Return the function registered under ``name``."""
        try:
            return self._functions[name]
        except KeyError:
            raise unknown_name_error("compute function", name, self._functions) from None

    def names(self) -> list[str]:
        """Return the registered names, sorted."""
        return sorted(self._functions)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._functions

    @classmethod
    def default(cls) -> FunctionRegistry:
        """Return the built-ins plus the functions of the ``miniapp_sync.functions`` entry points."""
        registry = cls()
        registry.load_entry_points()
        return registry

    def load_entry_points(self, points: Iterable[EntryPoint] | None = None) -> list[str]:
        """Register the functions of entry points (default: the installed ``miniapp_sync.functions``)."""
        registered: list[str] = []
        for point in entry_points(group=ENTRY_POINT_GROUP) if points is None else points:
            origin = f"entry point {point.name!r} ({point.value}) in group {ENTRY_POINT_GROUP!r}"
            try:
                target = point.load()
            except Exception as exc:
                raise TransformError(f"{origin} failed to load: {type(exc).__name__}: {exc}") from exc
            if isinstance(target, ModuleType):
                found = _module_functions(target, origin)
            elif isinstance(target, Mapping):
                found = dict(target)
            elif callable(target):
                found = {point.name: target}
            else:
                raise TransformError(f"{origin} must be a function, a module or a dict, found {preview(target)}")
            for name, fn in found.items():
                self.register(name, fn)
            registered += found
        return registered

    def load_module(self, path: str | os.PathLike[str]) -> list[str]:
        """Import a Python file and register its public functions (or its FUNCTIONS dict)."""
        file = Path(path)
        where = f"functions module {str(file)!r}"
        if not file.is_file():
            raise TransformError(f"{where} not found")
        # A module name unique per file, so two 'functions.py' in different folders do not collide.
        digest = hashlib.sha256(str(file.resolve()).encode()).hexdigest()[:12]
        name = f"miniapp_sync_user_functions_{_IDENTIFIER.sub('_', file.stem)}_{digest}"
        spec = importlib.util.spec_from_file_location(name, file.resolve())
        if spec is None or spec.loader is None:
            raise TransformError(f"{where} is not a Python file")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses and pickling inside the module look it up there
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            sys.modules.pop(name, None)
            if isinstance(exc, SyntaxError):
                raise TransformError(f"{where}: syntax error at line {exc.lineno}: {exc.msg}") from exc
            raise TransformError(f"{where} failed to import: {type(exc).__name__}: {exc}") from exc
        found = _module_functions(module, where)
        if not found:
            raise TransformError(
                f"{where} defines no public functions"
                " (hint: define functions whose names do not start with '_', or a FUNCTIONS dict)"
            )
        for fn_name, fn in found.items():
            self.register(fn_name, fn)
        return list(found)
