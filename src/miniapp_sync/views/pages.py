"""Lists as pages: ``{"items": [...], "next": cursor}`` with an opaque cursor and a bounded limit (D37).

A cursor stands for the position of the next page; clients pass it back as it is and never
build one (its form is ours to change): ``None`` means there is no next page. ``limit`` is
checked to be 1..``MAX_LIMIT`` and a cursor to match ``CURSOR_PATTERN``, which keeps every
position within 64 bits, so that no value a client sends (``limit=-1``, ``offset=10**20``)
reaches the database unchecked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Generic, TypeVar

T = TypeVar("T")

MAX_LIMIT: Final = 1000
# Trigger events are pulled after an id (``after``), not by cursor; they live here, beside the
# other bounds, so the CLI can name them in its options without loading the store.
MAX_EVENTS: Final = 1000  # events per pull
MAX_EVENT_ID: Final = 2**53 - 1  # an event cursor is an id: what JSON and every database here hold exactly
CURSOR_PATTERN: Final = "^c[0-9a-z]{1,11}$"  # "c" and a base-36 position: 11 digits stay within 64 bits
_DIGITS: Final = "0123456789abcdefghijklmnopqrstuvwxyz"


class ParameterError(ValueError):
    """A query parameter, option or body field that cannot be used: which one, why, and a hint."""

    def __init__(self, field: str, message: str, hint: str | None = None) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.hint = hint


def encode_cursor(position: int) -> str:
    """Return the opaque cursor of a position."""
    digits = ""
    while True:
        position, digit = divmod(position, 36)
        digits = _DIGITS[digit] + digits
        if not position:
            return "c" + digits


def decode_cursor(cursor: str, *, field: str = "cursor") -> int:
    """Return the position a cursor stands for; raise ParameterError when it is not one of ours."""
    body = cursor[1:]
    if not cursor.startswith("c") or not 1 <= len(body) <= 11 or not all(ch in _DIGITS for ch in body):
        raise ParameterError(field, "not a cursor this server issued", "pass back the `next` of the previous page")
    return int(body, 36)


def check_limit(limit: int, *, field: str = "limit", most: int = MAX_LIMIT) -> int:
    """Return ``limit`` when it is 1..``most``; raise ParameterError naming the field otherwise."""
    if not 1 <= limit <= most:
        raise ParameterError(field, f"expected a whole number from 1 to {most}, found {limit}")
    return limit


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a list and the cursor of the next one (None: this is the last)."""

    items: list[T]
    next: str | None


@dataclass(frozen=True, slots=True)
class Window:
    """Which page to read: ``offset`` rows in, ``limit`` rows; read ``fetch`` rows to learn if more follow."""

    offset: int
    limit: int

    @classmethod
    def of(cls, limit: int, cursor: str | None, *, most: int = MAX_LIMIT) -> Window:
        """Return the window of a validated ``limit`` and optional cursor."""
        return cls(decode_cursor(cursor) if cursor else 0, check_limit(limit, most=most))

    @property
    def fetch(self) -> int:
        """Return how many rows to read: one more than the page, to know whether a next page exists."""
        return self.limit + 1

    def page(self, rows: list[T]) -> Page[T]:
        """Return the page of ``rows`` read with ``fetch``: at most ``limit`` items, and the next cursor."""
        more = len(rows) > self.limit
        return Page(rows[: self.limit], encode_cursor(self.offset + self.limit) if more else None)
