"""Pages and cursors: every position round-trips, anything else is refused naming the field."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from miniapp_sync.views import MAX_LIMIT, ParameterError, Window, decode_cursor, encode_cursor

POSITIONS = st.integers(min_value=0, max_value=36**11 - 1)


@given(POSITIONS)
def test_every_position_round_trips_through_its_cursor(position: int) -> None:
    assert decode_cursor(encode_cursor(position)) == position


def _decoded(text: str) -> int | str:
    try:
        return decode_cursor(text)
    except ParameterError as exc:
        return exc.field


@given(st.text(max_size=30))
def test_any_other_text_is_refused_naming_the_field_or_decodes_within_64_bits(text: str) -> None:
    decoded = _decoded(text)
    assert decoded == "cursor" or (isinstance(decoded, int) and 0 <= decoded < 2**63)


@pytest.mark.parametrize("limit", [-1, 0, MAX_LIMIT + 1, 10**20])
def test_a_limit_outside_1_to_the_maximum_is_refused_naming_the_field(limit: int) -> None:
    with pytest.raises(ParameterError, match=f"from 1 to {MAX_LIMIT}, found {limit}") as caught:
        Window.of(limit, None)
    assert caught.value.field == "limit"


@given(st.integers(min_value=0, max_value=40), st.integers(min_value=1, max_value=7))
def test_reading_page_after_page_gives_every_row_once(rows: int, limit: int) -> None:
    table = list(range(rows))
    seen: list[int] = []
    cursor: str | None = None
    for _ in range(rows + 2):
        window = Window.of(limit, cursor)
        page = window.page(table[window.offset : window.offset + window.fetch])
        seen += page.items
        cursor = page.next
        if cursor is None:
            break
    assert seen == table
