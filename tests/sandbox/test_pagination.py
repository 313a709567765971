"""Page slices and Salla's pagination block: N records, page size k, every record exactly once."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from miniapp_sync.sandbox.pagination import page_of


def link(number: int) -> str:
    return f"/products?page={number}"


@given(total=st.integers(min_value=0, max_value=600), per_page=st.integers(min_value=1, max_value=60))
def test_walking_the_pages_yields_every_record_exactly_once(total: int, per_page: int) -> None:
    seen: list[int] = []
    number = 1
    while True:
        page = page_of(total, number, per_page)
        block = page.block(link)
        seen += range(page.start, page.stop)
        assert block["count"] == page.stop - page.start <= per_page
        assert block["currentPage"] == number
        if "next" not in block["links"]:
            break
        assert block["links"]["next"] == link(number + 1)
        number += 1
    assert seen == list(range(total))
    assert number == block["totalPages"]


def test_an_empty_list_is_one_empty_page_without_links() -> None:
    block = page_of(0, 1, 15).block(link)
    assert block == {"count": 0, "total": 0, "perPage": 15, "currentPage": 1, "totalPages": 1, "links": {}}


def test_a_page_past_the_end_links_back_to_the_last_page() -> None:
    block = page_of(30, 9, 10).block(link)
    assert block["count"] == 0
    assert block["links"] == {"previous": link(3)}
