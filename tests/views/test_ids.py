"""Record ids: a record's key made opaque, and back, whatever its code holds."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from miniapp_sync.views import record_id, record_key

CODES = st.text(min_size=1).filter(lambda code: "\x00" not in code)


@given(code=CODES)
def test_a_record_id_gives_back_the_key_whatever_the_code_holds(code: str) -> None:
    id = record_id("0123456789abcdef0123456789abcdef", "core:product", code)
    assert record_key(id) == ("0123456789abcdef0123456789abcdef", "core:product", code)
    assert all(ch.isalnum() or ch in "-_" for ch in id)  # one path segment, no escaping


def test_what_is_not_a_record_id_is_refused() -> None:
    for id in ("", "not-an-id!", "YWJj", "====", "\u00e9", "aR90H2N"):  # garbage, two parts, padding, bad bits
        assert record_key(id) is None, id
