"""Built-in transforms (D15): one callable per rule step, built once when a mapping compiles.

A transform receives a present value (never MISSING; None is JSON null) and returns the new one.
``coalesce`` is the exception: it receives the list of a ``paths`` rule's values, MISSING
entries included, and returns MISSING when all are empty so the field is left out (D14).
Options are checked here, at build time, so a bad option fails the definition, not a record.
"""

from __future__ import annotations

import email.utils
import inspect
import math
import re
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Final
from zoneinfo import ZoneInfo

from miniapp_sync.definition.rules import MISSING, TransformStep, thaw
from miniapp_sync.errors import MiniAppSyncError, TransformError, preview
from miniapp_sync.mapping.coercions import normalize_digits, to_number, to_string
from miniapp_sync.mapping.functions import unknown_name_error
from miniapp_sync.mapping.items import map_items

if TYPE_CHECKING:
    from miniapp_sync.mapping.functions import FunctionRegistry

Transform = Callable[[Any], Any]
_Factory = Callable[[TransformStep, "FunctionRegistry", Callable[[Any], Any] | None], Transform]


def to_integer(value: Any) -> int | None:
    """Read a number like toNumberOrNull and round it to an int (halves to even: 2.5 -> 2, 3.5 -> 4)."""
    number = to_number(value)
    return number if number is None or type(number) is int else round(number)


_BOOLEANS: Final = {
    "true": True,
    "yes": True,
    "on": True,
    "1": True,
    "false": False,
    "no": False,
    "off": False,
    "0": False,
}


def to_boolean(value: Any) -> bool | None:
    """Read a boolean from bools, 0/1 and true/false/yes/no/on/off (any case); else None."""
    if type(value) is bool:
        return value
    if type(value) is str:
        return _BOOLEANS.get(normalize_digits(value).strip().lower())
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    return None


def is_empty(value: Any) -> bool:
    """Tell whether coalesce skips a value: MISSING, None, '', [] or {} (0 and False are values)."""
    if value is None or value is MISSING:
        return True
    return isinstance(value, (str, list, tuple, Mapping)) and len(value) == 0


def coalesce(value: Any) -> Any:
    """Return the first entry that is not missing, None, '', [] or {}; MISSING when there is none."""
    if isinstance(value, (list, tuple)):
        return next((v for v in value if not is_empty(v)), MISSING)
    return value if not is_empty(value) else MISSING


def join_codes(value: Any, separator: str = ",") -> str | None:
    """Join a list of codes, or of objects with ``code`` (else ``name``), skipping empty entries."""
    if value == []:  # most orders have no discount code: skip the generator
        return None
    entries = value if isinstance(value, (list, tuple)) else [value]
    return separator.join(c for v in entries if (c := _code(v))) or None


def _code(entry: Any) -> str | None:
    if type(entry) is dict or isinstance(entry, Mapping):  # an exact dict skips the ABC check (~0.2 µs)
        entry = entry.get("code") if not is_empty(entry.get("code")) else entry.get("name")
    if entry is MISSING or (type(entry) is not str and isinstance(entry, (list, tuple, Mapping))):
        return None
    text = to_string(entry)
    return text.strip() if text else None


def lowercase(value: Any) -> Any:
    """Lower-case a string; other values pass through."""
    return value.lower() if type(value) is str else value


def trim(value: Any) -> Any:
    """Strip surrounding whitespace from a string; other values pass through."""
    return value.strip() if type(value) is str else value


_PHONE_KEYS: Final = ("mobile", "number", "phone", "phone_number")
_DIAL_KEYS: Final = ("mobile_code", "country_code", "dial_code", "calling_code")


def normalize_phone(value: Any, region: str = "SA") -> str | None:
    """Format a phone number as E.164, reading local numbers in ``region``; None when unusable."""
    code = None
    if isinstance(value, Mapping):
        code = next((value[k] for k in _DIAL_KEYS if not is_empty(value.get(k))), None)
        value = next((value[k] for k in _PHONE_KEYS if not is_empty(value.get(k))), None)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return None
    text = normalize_digits(str(value)).strip()
    if text.startswith("00"):
        text = "+" + text[2:]
    dial = normalize_digits(to_string(code) or "").strip().lstrip("+") if code is not None else ""
    if dial and not text.startswith("+"):
        if len(dial) == 2 and dial.isalpha():  # an ISO country ({country_code: 'SA'})
            region = dial.upper()
        elif dial.isdigit() and dial.isascii() and len(dial) <= 4:
            import phonenumbers  # see _e164

            # Parse in the dial code's region so a national trunk '0' is dropped properly.
            found = phonenumbers.region_code_for_country_code(int(dial))
            region, text = (found, text) if found != phonenumbers.UNKNOWN_REGION else (region, f"+{dial}{text}")
    return _e164(text, region)


@lru_cache(maxsize=4096)
def _e164(text: str, region: str) -> str | None:
    # Parsing costs ~0.2 ms, most of a webhook's customer mapping, and a store's customers order
    # again and again: remember the last few thousand numbers (pure: same text, same answer).
    # phonenumbers loads here, with the first phone: validate and most mappings never need it.
    import phonenumbers

    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


_MONTHS: Final = {
    m: i for i, m in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1)
}
_DATE_ONLY: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_EPOCH_TEXT: Final = re.compile(r"[0-9]{9,}(?:\.[0-9]+)?")
_OFFSET: Final = re.compile(r"(?:UTC|GMT)?([+-])([0-9]{2}):?([0-9]{2})")
_ZONE_NAME: Final = re.compile(r"[A-Za-z][A-Za-z0-9_+\-]*(?:/[A-Za-z0-9_+\-]+)*")
_JS_DATE: Final = re.compile(  # JavaScript's Date#toString(): "Sun Jun 26 2022 12:21:48 GMT+0300 (…)"
    r"(?:[A-Za-z]{3},?\s+)?(?P<mon>[A-Za-z]{3})\s+(?P<day>[0-9]{1,2}),?\s+(?P<year>[0-9]{4})"
    r"(?:\s+(?P<h>[0-9]{1,2}):(?P<m>[0-9]{2})(?::(?P<s>[0-9]{2}))?)?"
    r"\s*(?:(?:GMT|UTC)\s*(?P<off>[+-][0-9]{2}:?[0-9]{2})?)?\s*(?:\([^)]*\))?"
)


@lru_cache(maxsize=256)
def _zone(name: str) -> tzinfo | None:
    """Return the zone for an IANA name, 'UTC'/'GMT'/'Z' or an offset like '+03:00'; None if unknown."""
    name = name.strip()
    if name.upper() in ("UTC", "GMT", "Z"):
        return UTC
    if offset := _OFFSET.fullmatch(name):
        sign, hours, minutes = offset.groups()
        delta = timedelta(hours=int(hours), minutes=int(minutes))
        return timezone(-delta if sign == "-" else delta) if delta < timedelta(hours=24) else None
    if not _ZONE_NAME.fullmatch(name):
        return None
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError, OSError):  # not found, malformed, or a folder of the tz database
        return None


def to_iso_date(value: Any, zone: tzinfo = UTC, fmt: str | None = None) -> str | None:
    """Render a date as ISO 8601 in UTC ('2022-06-26T09:21:48Z'), or 'YYYY-MM-DD' for a date alone."""
    kind = value.__class__  # exact dicts and strings skip the Mapping ABC check (~0.2 µs)
    if kind is dict or (kind is not str and isinstance(value, Mapping)):  # PHP Carbon: {date, timezone_type, timezone}
        if isinstance(value.get("timezone"), str):
            found = _zone(value["timezone"])
            if found is None:
                return None
            zone = found
        value = value.get("date")
    try:
        moment: datetime | date | None
        if value.__class__ is str or isinstance(value, str):  # text first: no value is text and a number
            # The common shape first: ISO 8601 date-time, straight to the C parser (an index,
            # not a slice, below: no new string).
            if fmt is None and len(value) > 10 and value[4] == "-":
                try:
                    moment = datetime.fromisoformat(value)
                except ValueError:
                    moment = _parse_date(normalize_digits(value).strip(), fmt)
            else:
                moment = _parse_date(normalize_digits(value).strip(), fmt)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            moment = _from_epoch(value)
        else:
            return None
        if moment is None or not isinstance(moment, datetime):
            return None if moment is None else moment.isoformat()
        # Shifting a naive value by its offset is several times faster than replace() + astimezone().
        if moment.tzinfo is None:
            offset = zone.utcoffset(moment)
        else:
            offset, moment = moment.utcoffset(), moment.replace(tzinfo=None)
        if offset:
            moment -= offset
    except (ValueError, OverflowError, OSError):  # out of datetime's range
        return None
    micro = moment.microsecond
    if micro == 0:
        return moment.isoformat() + "Z"
    return moment.isoformat(timespec="milliseconds" if micro % 1000 == 0 else "microseconds") + "Z"


def _from_epoch(seconds: float) -> datetime | None:
    if not math.isfinite(seconds):
        return None
    if abs(seconds) > 1e11:  # ~5138 AD in seconds, ~1973 in milliseconds: it is milliseconds
        seconds /= 1000
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)


def _parse_date(text: str, fmt: str | None) -> datetime | date | None:
    if fmt is not None:
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            pass  # fall through to the formats recognised without help
    if _DATE_ONLY.fullmatch(text) or (len(text) == 8 and text.isascii() and text.isdigit()):
        return date.fromisoformat(text)
    if _EPOCH_TEXT.fullmatch(text):
        return _from_epoch(float(text))
    try:
        return datetime.fromisoformat(text)  # also 'YYYY-MM-DD HH:MM:SS.ffffff', 'Z' and offsets
    except ValueError:
        pass
    if js := _JS_DATE.fullmatch(text):
        month = _MONTHS.get(js["mon"].lower())
        if month is None:
            return None
        parts = (int(js["year"]), month, int(js["day"]), int(js["h"] or 0), int(js["m"] or 0), int(js["s"] or 0))
        offset = _zone(js["off"]) if js["off"] else None
        return datetime(*parts, tzinfo=offset)
    try:  # RFC 2822, as in e-mail and HTTP headers: "Sun, 26 Jun 2022 09:21:48 +0000"
        return email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None


def _option(step: TransformStep, key: str, kind: type, default: Any, expected: str) -> Any:
    value = step.options.get(key, default)
    if value is not default and not isinstance(value, kind):
        raise TransformError(f"transform {step.name!r}: option {key!r} must be {expected}, found {preview(value)}")
    return value


def _plain(step: TransformStep, functions: FunctionRegistry, item_mapper: Callable[[Any], Any] | None) -> Transform:
    return _PLAIN[step.name]


def _join_codes(
    step: TransformStep, functions: FunctionRegistry, item_mapper: Callable[[Any], Any] | None
) -> Transform:
    separator: str = _option(step, "separator", str, ",", "a string")
    return lambda value: join_codes(value, separator)


def _normalize_phone(
    step: TransformStep, functions: FunctionRegistry, item_mapper: Callable[[Any], Any] | None
) -> Transform:
    import phonenumbers  # see _e164

    country: str = _option(step, "country", str, "SA", "an ISO 3166 alpha-2 country code such as 'SA'").upper()
    if country not in phonenumbers.SUPPORTED_REGIONS:
        raise TransformError(
            f"transform 'normalizePhone': unknown country {country!r}; expected an ISO 3166 alpha-2 code such as 'SA'"
        )
    return lambda value: normalize_phone(value, country)


def iso_date_options(step: TransformStep) -> tuple[tzinfo, str | None]:
    """Return the zone and format of a toISODate step; raise TransformError when one is bad."""
    name: str = _option(step, "timezone", str, "UTC", "a time zone name such as 'Asia/Riyadh'")
    fmt: str | None = _option(step, "format", str, None, "a strptime format such as '%d/%m/%Y %H:%M'")
    zone = _zone(name)
    if zone is None:
        raise TransformError(
            f"transform 'toISODate': unknown time zone {name!r}; expected an IANA name such as 'Asia/Riyadh'"
        )
    return zone, fmt


def _to_iso_date(
    step: TransformStep, functions: FunctionRegistry, item_mapper: Callable[[Any], Any] | None
) -> Transform:
    zone, fmt = iso_date_options(step)
    return lambda value: to_iso_date(value, zone, fmt)


def _map_items(step: TransformStep, functions: FunctionRegistry, item_mapper: Callable[[Any], Any] | None) -> Transform:
    currency: str | None = _option(step, "currency", str, None, "a currency code such as 'SAR'")
    if item_mapper is None and "itemMapping" in step.options:
        raise TransformError("transform 'mapItems' has an 'itemMapping' but no item mapper was built for it")
    return lambda value: map_items(value, item_mapper, currency=currency)


def _compute(step: TransformStep, functions: FunctionRegistry, item_mapper: Callable[[Any], Any] | None) -> Transform:
    if not step.fn:
        raise TransformError("transform 'compute' needs 'fn', the name of a compute function")
    name, fn = step.fn, functions.get(step.fn)
    args = thaw(_option(step, "args", Mapping, {}, "an object of keyword arguments"))
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # some callables written in C have no signature; call them blind
        signature = None
    if signature is not None:
        try:
            signature.bind(None, **args)
        except TypeError as exc:
            raise TransformError(f"compute function {name!r} cannot take args {preview(args)}: {exc}") from None

    def compute(value: Any) -> Any:
        try:
            return fn(value, **args) if args else fn(value)  # no empty kwargs dict per call
        except TransformError as exc:
            raise TransformError(f"compute function {name!r}: {exc}") from exc
        except MiniAppSyncError:
            raise
        except Exception as exc:
            raise TransformError(
                f"compute function {name!r} failed on {preview(value)}: {type(exc).__name__}: {exc}"
            ) from exc

    return compute


_PLAIN: Final[Mapping[str, Transform]] = {
    "coalesce": coalesce,
    "lowercase": lowercase,
    "toBoolean": to_boolean,
    "toInteger": to_integer,
    "toNumberOrNull": to_number,
    "toString": to_string,
    "trim": trim,
}
_FACTORIES: Final[Mapping[str, _Factory]] = {
    **dict.fromkeys(_PLAIN, _plain),
    "compute": _compute,
    "joinCodes": _join_codes,
    "mapItems": _map_items,
    "normalizePhone": _normalize_phone,
    "toISODate": _to_iso_date,
}
TRANSFORM_NAMES: Final[frozenset[str]] = frozenset(_FACTORIES)


def build_transform(
    step: TransformStep, *, functions: FunctionRegistry, item_mapper: Callable[[Any], Any] | None = None
) -> Transform:
    """Build the callable for one transform step; raise TransformError for unknown names or bad options."""
    factory = _FACTORIES.get(step.name)
    if factory is None:
        raise unknown_name_error("transform", step.name, TRANSFORM_NAMES)
    return factory(step, functions, item_mapper)
