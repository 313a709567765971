"""errors.preview: a value in a message is one short line, however large the value."""

from __future__ import annotations

from typing import Any

import pytest

from miniapp_sync.errors import PREVIEW_LIMIT, preview


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (None, "null"),
        ({"a": [1, "b"]}, '{"a":[1,"b"]}'),
        (("a", 2), '["a",2]'),
        (list(range(100)), "[" + ",".join(map(str, range(100)))[: PREVIEW_LIMIT - 2] + "…"),
        ("x" * 100, '"' + "x" * (PREVIEW_LIMIT - 2) + "…"),
        ({str(n): n for n in range(100)}, '{"0":0,"1":1,"2":2,"3":3,"4":4,"5":5,"6":6,"7":7,"8":8,"9":…'),
    ],
)
def test_a_preview_is_json_cut_to_the_limit(value: Any, shown: str) -> None:
    assert preview(value) == shown


def test_a_preview_of_a_huge_value_renders_only_what_it_shows() -> None:
    rendered: list[int] = []

    class Entry:
        def __repr__(self) -> str:
            rendered.append(1)
            return "e"

    # A million line items in a rejected record's message: the entries past the limit are never rendered.
    text = preview({"items": [{"entry": Entry()}] * 1_000_000})
    assert text.startswith('{"items":[{"entry":"e"},')
    assert text.endswith("…")
    assert len(text) == PREVIEW_LIMIT
    assert len(rendered) <= PREVIEW_LIMIT
