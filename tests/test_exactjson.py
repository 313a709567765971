"""exactjson's check for integers past 64 bits: the sampled scan against the whole one, and exact ids at any offset."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from miniapp_sync import exactjson


def whole_scan(data: bytes) -> bool:
    """The reference: every byte translated, then a run of 20 digits looked for."""
    return b"0" * 20 in data.translate(exactjson._DIGITS)


# Digits in runs around 20, between bytes of every other kind (quotes, letters, non-ASCII).
PIECES = st.lists(
    st.integers(min_value=1, max_value=26).map(lambda n: b"7" * n)
    | st.binary(max_size=6)
    | st.sampled_from([b'"', b"a", b"-", b".", "٣".encode(), b" "]),
    max_size=12,
)


@given(pieces=PIECES)
@settings(max_examples=1000)
def test_the_sampled_scan_finds_what_the_whole_scan_finds(pieces: list[bytes]) -> None:
    data = b"".join(pieces)
    assert exactjson.has_long_digit_run(data) == whole_scan(data), data


@pytest.mark.parametrize("length", [19, 20, 21, 39])
def test_a_run_is_found_at_every_offset_and_only_when_long_enough(length: int) -> None:
    for offset in range(12):
        data = b"x" * offset + b"1" * length + b"y" * (offset % 3)
        assert exactjson.has_long_digit_run(data) is (length >= 20), (offset, length)


@pytest.mark.parametrize("offset", range(6))
def test_an_integer_past_64_bits_is_read_exactly_at_any_offset(offset: int) -> None:
    big = 10**25 + 7
    raw = ('{"pad":"' + "a" * offset + f'","id":{big},"n":1.5}}').encode()
    assert exactjson.loads(raw) == {"pad": "a" * offset, "id": big, "n": 1.5}
    assert exactjson.loads(raw.decode()) == json.loads(raw)


def test_random_text_with_digits_is_parsed_by_orjson_alone() -> None:
    # Four digits five bytes apart (as image names show), no run of 20: the fast path's answer.
    raw = b'{"image":"a1bcde2fghi3jklm4nopq5.jpg","id":12345678901234567}'
    assert not exactjson.has_long_digit_run(raw)
    assert exactjson.loads(raw) == {"image": "a1bcde2fghi3jklm4nopq5.jpg", "id": 12345678901234567}
