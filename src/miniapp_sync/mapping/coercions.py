"""The value coercions every mapping step shares (D15): to text, to a number, decimal sums.

They live below transforms, line items and compute functions because all three must coerce
values by the same rules: ``toString`` renders numbers without ``.0``, ``toNumberOrNull`` reads
thousands separators, currency marks and Arabic-Indic digits.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Final

import orjson

from miniapp_sync.definition.rules import MISSING
from miniapp_sync.errors import TransformError, preview

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
    if kind is str:  # the next most common ('', '52.00'): no loop to set up
        return _parse_number(value)
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
    text = (text if text.isascii() else text.translate(_DIGITS)).strip()  # normalize_digits without its call
    if not text:  # '' is common (an unset price); the pattern would only find no digits in it
        return None
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


def decimals(value: Any) -> list[Decimal]:
    """Return the numbers of a value or a list as decimals, skipping empty entries; a non-number raises ValueError."""
    decimals = []
    for entry in value if isinstance(value, (list, tuple)) else [value]:
        if entry is None or entry is MISSING or entry == "":
            continue
        # Plain decimal text of at most 15 digits ('59.00') is what a float round trip gives
        # back exactly (DBL_DIG): read it straight, skipping the parse and the float.
        plain = entry.replace(".", "", 1) if entry.__class__ is str else ""
        if len(plain) <= 15 and plain.isdigit() and plain.isascii():
            decimals.append(Decimal(entry))
            continue
        number = to_number(entry)
        if number is None:
            raise ValueError(f"not a number: {preview(entry)}")
        decimals.append(Decimal(repr(number)) if isinstance(number, float) else Decimal(number))
    return decimals


def from_decimal(number: Decimal) -> int | float:
    """Return a decimal as an int when it is whole, else as a float."""
    # Summing as decimals keeps money exact: 0.1 + 0.2 is 0.3, not 0.30000000000000004.
    return int(number) if number == number.to_integral_value() else float(number)
