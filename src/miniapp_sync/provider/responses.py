"""Read a list response the way a resource's responseMapping describes it (D8).

Records sit at ``dataProperty`` (``''`` or ``'$'``: the body is the array); totals at
``totalProperty`` / ``totalPagesProperty``, either a body path or ``header:<Name>``
(``header:X-WP-Total``); the next cursor or URL at ``nextProperty``, where ``header:Link`` means
the RFC 8288 ``rel="next"`` link. A response of the wrong shape is a ``ResponseShapeError``
naming the resource, the page, what was expected and what was found.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any, Final
from urllib.parse import urljoin

from miniapp_sync.definition.model import Resource
from miniapp_sync.definition.rules import MISSING
from miniapp_sync.errors import preview
from miniapp_sync.mapping.paths import CompiledPath, compile_path
from miniapp_sync.provider.errors import ResponseShapeError
from miniapp_sync.provider.messages import Response

__all__ = ["ResponseReader", "describe", "next_link"]

_HEADER: Final = "header:"
_LINK: Final = re.compile(r"<([^>]*)>([^<]*)")
_REL: Final = re.compile(r"""\brel\s*=\s*(?:"([^"]*)"|([^\s;,"]+))""", re.IGNORECASE)
_SHOWN_KEYS: Final = 12


def describe(value: Any) -> str:
    """Name a JSON value's kind for a message: 'an object', 'an array', 'a string', …."""
    if value is MISSING:
        return "missing"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, int | float):
        return "a number"
    return "a string" if isinstance(value, str) else type(value).__name__


def _keys(value: Any) -> str:
    keys = list(value)[:_SHOWN_KEYS] if isinstance(value, dict) else []
    more = ", …" if isinstance(value, dict) and len(value) > _SHOWN_KEYS else ""
    return (", ".join(map(str, keys)) or "none") + more


def _as_number(value: Any) -> float | None:
    """Return a count as a number (numeric strings too: headers are text), or None."""
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return value


def next_link(link_headers: Sequence[str], base_url: str) -> str | None:
    """Return the absolute ``rel="next"`` target of RFC 8288 Link header values, or None."""
    for match_link in _LINK.finditer(", ".join(link_headers)):
        target: str = match_link.group(1)
        params: str = match_link.group(2)
        for match in _REL.finditer(params):
            rels = (match.group(1) or match.group(2) or "").lower().split()
            if "next" in rels:
                return urljoin(base_url, target.strip())
    return None


class _Source:
    """A value's location: a compiled body path, or a response header."""

    __slots__ = ("header", "path", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.header = text[len(_HEADER) :].strip() if text.lower().startswith(_HEADER) else None
        self.path: CompiledPath | None = None if self.header is not None else compile_path(text)

    def read(self, response: Response) -> Any:
        if self.header is not None:
            values = response.headers.getall(self.header, [])
            return ", ".join(values) if values else MISSING
        assert self.path is not None
        return self.path.get(response.data)

    def label(self, field: str) -> str:
        return f"header {self.header}" if self.header is not None else f"responseMapping.{field} {self.text!r}"


class ResponseReader:
    """Extract records, totals, ids and the next cursor or link from a resource's responses."""

    def __init__(self, resource: Resource, resource_key: str) -> None:
        mapping = resource.response_mapping
        self.key = resource_key
        self.bare = mapping.data_property.strip() in ("", "$")
        self.data_property = mapping.data_property
        self._data = None if self.bare else compile_path(mapping.data_property)
        self._total = _Source(mapping.total_property) if mapping.total_property else None
        self._total_pages = _Source(mapping.total_pages_property) if mapping.total_pages_property else None
        next_property = resource.pagination.next_property
        if next_property is None and resource.pagination.style == "next":
            next_property = "header:Link"  # the RFC 8288 way, as WooCommerce and Shopify answer
        self._next = _Source(next_property) if next_property else None
        self._id = compile_path(resource.id_property)

    def _shape(self, page: int | None, message: str) -> ResponseShapeError:
        where = f"{self.key} page {page}" if page is not None else self.key
        return ResponseShapeError(f"{where}: {message}", resource=self.key, page=page)

    def unwrap(self, body: Any) -> Any:
        """Return what ``dataProperty`` selects in a body (the body itself when it is ``$``), or ``MISSING``."""
        return body if self._data is None else self._data.get(body)

    def records(self, response: Response, page: int) -> list[dict[str, Any]]:
        """Return the page's records; raise ``ResponseShapeError`` if they are not an array of objects."""
        body = response.data
        if self._data is None:
            found = body
            if not isinstance(found, list):
                raise self._shape(
                    page,
                    f"the response is {describe(found)}, expected an array (responseMapping.dataProperty is "
                    f"{self.data_property!r}); found keys: {_keys(found)}",
                )
        else:
            found = self._data.get(body)
            where = f"responseMapping.dataProperty {self.data_property!r}"
            if found is None:  # "data": null is how some providers say "no records"
                return []
            if found is MISSING:
                if isinstance(body, list):
                    raise self._shape(
                        page,
                        f"{where} is missing: the response is an array (hint: set responseMapping.dataProperty to '$')",
                    )
                raise self._shape(page, f"{where} is missing in the response; found keys: {_keys(body)}")
            if not isinstance(found, list):
                raise self._shape(page, f"{where} is {describe(found)}, expected an array")
        for index, record in enumerate(found):
            if not isinstance(record, dict):
                raise self._shape(page, f"record {index} is {describe(record)} {preview(record)}, expected an object")
        return found

    def _count(self, source: _Source | None, field: str, response: Response, page: int) -> int | None:
        if source is None:
            return None
        value = source.read(response)
        if value is MISSING or value is None:
            return None
        number = _as_number(value)
        if number is None:
            raise self._shape(page, f"{source.label(field)} is {describe(value)} {preview(value)}, expected a number")
        return int(number)

    def total(self, response: Response, page: int) -> int | None:
        """Return the total record count the response announces, or None."""
        return self._count(self._total, "totalProperty", response, page)

    def total_pages(self, response: Response, page: int) -> int | None:
        """Return the total page count the response announces, or None."""
        return self._count(self._total_pages, "totalPagesProperty", response, page)

    def next_value(self, response: Response, page: int, *, as_url: bool) -> str | None:
        """Return the next cursor (or absolute next URL when ``as_url``), or None at the end."""
        source = self._next
        if source is None:
            return None
        if source.header is not None and source.header.lower() == "link":
            return next_link(response.headers.getall("Link", []), response.url)
        value = source.read(response)
        if value is MISSING or value is None or value == "" or value is False:
            return None
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise self._shape(
                page, f"{source.label('nextProperty')} is {describe(value)} {preview(value)}, expected a string"
            )
        text = str(value)
        return urljoin(response.url, text) if as_url else text

    def id_or_record(self, record: dict[str, Any]) -> Any:
        """Return a record's id (the record itself when it has none), to compare pages."""
        value = self._id.get(record)
        return record if value is MISSING else value

    def record_id(self, record: dict[str, Any]) -> Any:
        """Return a record's id, or ``MISSING``."""
        return self._id.get(record)
