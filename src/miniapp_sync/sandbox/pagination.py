"""Salla's page-number pagination: which slice a page holds, and the ``pagination`` block."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Page:
    """One page of ``total`` records: the slice [start, stop) and the numbers Salla reports."""

    total: int
    per_page: int
    current: int
    total_pages: int
    start: int
    stop: int

    def block(self, link: Callable[[int], str]) -> dict[str, Any]:
        """Return the ``pagination`` object; ``link(n)`` gives the URL of page n."""
        links: dict[str, str] = {}
        if self.current > 1:
            links["previous"] = link(min(self.current - 1, self.total_pages))
        if self.current < self.total_pages:
            links["next"] = link(self.current + 1)
        return {
            "count": self.stop - self.start,
            "total": self.total,
            "perPage": self.per_page,
            "currentPage": self.current,
            "totalPages": self.total_pages,
            "links": links,
        }


def page_of(total: int, page: int, per_page: int) -> Page:
    """Return page ``page`` (1-based) of ``total`` records, ``per_page`` a page."""
    # Salla runs on Laravel, whose paginator reports at least one page, even when it is empty.
    total_pages = max(1, math.ceil(total / per_page))
    start = min(total, (page - 1) * per_page)
    return Page(total, per_page, page, total_pages, start, min(total, start + per_page))
