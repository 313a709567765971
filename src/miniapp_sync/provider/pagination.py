"""Walk a resource's list endpoint page by page (D7, D8, D10), resumable from a checkpoint.

Styles: ``page`` (page number + size, the default), ``offset`` (offset + size), ``cursor`` (a
cursor read from the body or a header, sent back as ``cursorParam``) and ``next`` (follow a next
URL from the body, or the RFC 8288 ``Link`` header, verbatim).

Each ``Page`` carries ``state``: the checkpoint to save in the same transaction as the page's
records (D6); passing it back as ``start`` resumes with the next page. The last page's state is
``{"done": True}``.

A page ends the walk when it is empty; when the announced total pages are reached, or else the
announced total records are seen; when, with no total, a page or offset page is shorter than the
size asked; or when there is no next cursor or link. With a total known, a short page does not
stop the walk: providers cap the size silently (Salla serves 60 when asked for 100).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncGenerator, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from miniapp_sync.definition.model import Resource
from miniapp_sync.errors import ProviderError, preview
from miniapp_sync.provider.client import ProviderClient
from miniapp_sync.provider.details import DetailResult, fetch_details
from miniapp_sync.provider.errors import PaginationLoopError
from miniapp_sync.provider.messages import RawResponse, Response, build_url
from miniapp_sync.provider.responses import ResponseReader

# fetch_details lives in details.py; it is re-exported here, beside the list walk it follows.
__all__ = ["DetailResult", "Page", "fetch_details", "pages"]

_NO_PARAMS: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Page:
    """One page of records, and the checkpoint that resumes after it."""

    number: int
    records: list[dict[str, Any]]
    total: int | None
    state: dict[str, Any]

    @property
    def done(self) -> bool:
        """Return whether this is the last page."""
        return self.state.get("done") is True


class _Walk:
    """What every style shares: requests, the reader, stop rules and loop detection."""

    def __init__(self, client: ProviderClient, resource: Resource, key: str, params: Mapping[str, Any]) -> None:
        endpoint = resource.endpoints.list
        if resource.pagination.style == "cursor" and not resource.pagination.next_property:
            # Without it every walk would silently end after the first page.
            raise ProviderError(
                f"{key}: pagination.style 'cursor' needs pagination.nextProperty, the response path of the next cursor"
            )
        self.client = client
        self.key = key
        self.url = endpoint.url
        self.method = endpoint.method
        self.pagination = resource.pagination
        self.size = resource.pagination.limit
        self.params = {**endpoint.query_params, **params, resource.pagination.param_name: self.size}
        self.reader = ResponseReader(resource, key)
        self.total: int | None = None
        self.total_pages: int | None = None
        # The previous page's record keys (ids; a record without one: the record), not its records:
        # a page's records may be let go of while it is walked (details.fetch_details's settle).
        self._previous: list[Any] = []

    async def fetch(self, url: str, params: Mapping[str, Any] | None) -> Response:
        return await self.client.request_json(self.method, url, params, resource=self.key, what="list")

    async def fetch_ahead(self, url: str, params: Mapping[str, Any] | None) -> RawResponse:
        return await self.client.request_body(self.method, url, params, resource=self.key, what="list")

    def read(self, response: Response, number: int) -> list[dict[str, Any]]:
        """Return the page's records after checking the shape, totals and repetition."""
        records = self.reader.records(response, number)
        # The first answer's totals hold for the whole walk: a total that shifts while new
        # orders arrive must not move the end under the pages already scheduled.
        if self.total is None:
            self.total = self.reader.total(response, number)
        if self.total_pages is None:
            self.total_pages = self.reader.total_pages(response, number)
        if records and self._repeats(records):
            raise PaginationLoopError(
                f"{self.key} page {number}: the provider returned the same {len(records)} records as the "
                "previous page (is the page parameter ignored? check pagination.pageParam / style)",
                resource=self.key,
                page=number,
            )
        self._previous = list(map(self.reader.id_or_record, records))
        return records

    def _repeats(self, records: list[dict[str, Any]]) -> bool:
        """Say whether ``records`` have the ids (a record without one: its content) of the previous page's."""
        previous = self._previous
        if len(previous) != len(records):
            return False
        # Pair by pair, so a page costs a comparison or two: the first ids already differ.
        return all(a == b for a, b in zip(previous, map(self.reader.id_or_record, records), strict=True))

    @contextlib.contextmanager
    def at(self, number: int) -> Iterator[None]:
        """Name page ``number`` in a provider error raised in the block that has no page yet (run forensics)."""
        try:
            yield
        except ProviderError as exc:
            if exc.page is None:
                exc.page = number
            raise

    def finished(self, records: list[dict[str, Any]], ordinal: int, seen: int, *, sized: bool) -> bool:
        """Return whether the walk ends after this page (``ordinal`` counts pages from 1)."""
        if not records:
            return True
        if self.total_pages is not None:
            return ordinal >= self.total_pages
        if self.total is not None:
            return seen >= self.total
        return sized and len(records) < self.size

    def loop(self, number: int, what: str, value: str) -> PaginationLoopError:
        shown = self.client.redact_url(value) if what == "next URL" else self.client.redactor.values(preview(value))
        return PaginationLoopError(
            f"{self.key} page {number}: the provider returned {what} {shown} again; stopping instead of looping",
            resource=self.key,
            page=number,
        )


def pages(
    client: ProviderClient,
    resource: Resource,
    *,
    start: Mapping[str, Any] | None = None,
    params: Mapping[str, Any] = _NO_PARAMS,
    concurrency: int = 1,
    resource_key: str,
) -> AsyncGenerator[Page, None]:
    """Yield a resource's pages in order, starting after the checkpoint ``start`` (None: from the first).

    Close it (``aclose``) when stopping early: that cancels the pages fetched ahead and waits for them.
    It is the style's own generator, not one wrapping it: a walk left open is closed by the
    collector or the loop's shutdown, which close every open generator at once, and closing a
    wrapper closes the one inside while that one is being closed too ("aclose(): asynchronous
    generator is already running", seen when a run was cancelled with pages in flight).
    """
    state = dict(start or {})
    style = resource.pagination.style
    if style == "page":
        return _by_page_number(client, resource, resource_key, params, state, max(1, concurrency))
    if style == "offset":
        return _by_offset(client, resource, resource_key, params, state)
    return _by_link(client, resource, resource_key, params, state, follow_urls=style == "next")


async def _by_page_number(
    client: ProviderClient,
    resource: Resource,
    resource_key: str,
    params: Mapping[str, Any],
    start: dict[str, Any],
    concurrency: int,
) -> AsyncGenerator[Page, None]:
    if start.get("done") is True:
        return
    walk = _Walk(client, resource, resource_key, params)
    page_param, first = walk.pagination.page_param, walk.pagination.start_page
    number = int(start.get("page", first))
    seen = int(start["seen"]) if "seen" in start else None
    last: int | None = None  # the last page number, once a total is known
    scheduled: dict[int, asyncio.Task[RawResponse]] = {}

    def fetch(n: int) -> asyncio.Task[RawResponse]:
        # Pages wait undecoded until their turn (see ProviderClient.request_body).
        return asyncio.create_task(walk.fetch_ahead(walk.url, {**walk.params, page_param: n}))

    try:
        while True:
            if last is not None:
                # Keep up to ``concurrency`` pages in flight, all still inside the one rate budget (D10).
                for n in range(number, min(last, number + concurrency - 1) + 1):
                    if n not in scheduled:
                        scheduled[n] = fetch(n)
            task = scheduled.pop(number, None) or fetch(number)
            with walk.at(number):
                response = walk.client.decode(await task)
                records = walk.read(response, number)
            del task  # its undecoded body: not held while the page is walked
            ordinal = number - first + 1
            if seen is None:
                # A resumed walk counts the pages before it as full: every page that did not end
                # the walk had as many records as this one.
                seen = (ordinal - 1) * len(records)
            seen += len(records)
            done = walk.finished(records, ordinal, seen, sized=True)
            if not done and last is None and concurrency > 1 and (walk.total_pages or walk.total):
                per_page = len(records)  # what the provider really serves, maybe under the size asked
                pages_total = walk.total_pages or math.ceil((walk.total or 0) / per_page)
                last = first + pages_total - 1
            state = {"done": True} if done else {"page": number + 1, "seen": seen}
            yield Page(number, records, walk.total, state)
            if done:
                return
            number += 1
    finally:
        for pending in scheduled.values():
            pending.cancel()
        # Collect what they raised (a prefetched page past the end may fail): nothing is left unretrieved.
        await asyncio.gather(*scheduled.values(), return_exceptions=True)


async def _by_offset(
    client: ProviderClient, resource: Resource, resource_key: str, params: Mapping[str, Any], start: dict[str, Any]
) -> AsyncGenerator[Page, None]:
    if start.get("done") is True:
        return
    walk = _Walk(client, resource, resource_key, params)
    offset = int(start.get("offset", 0))
    number = int(start.get("page", offset // walk.size + 1))
    while True:
        with walk.at(number):
            response = await walk.fetch(walk.url, {**walk.params, walk.pagination.offset_param: offset})
            records = walk.read(response, number)
        # Advance by what came back, not by the size asked, so a provider's silent cap loses nothing.
        offset += len(records)
        done = walk.finished(records, number, offset, sized=True)
        yield Page(number, records, walk.total, {"done": True} if done else {"offset": offset, "page": number + 1})
        if done:
            return
        number += 1


async def _by_link(
    client: ProviderClient,
    resource: Resource,
    resource_key: str,
    params: Mapping[str, Any],
    start: dict[str, Any],
    *,
    follow_urls: bool,
) -> AsyncGenerator[Page, None]:
    if start.get("done") is True:
        return
    walk = _Walk(client, resource, resource_key, params)
    key = "next" if follow_urls else "cursor"
    what = "next URL" if follow_urls else "cursor"
    current: str | None = start.get(key)
    number = int(start.get("page", 1))
    seen = int(start.get("seen", 0))
    if follow_urls:
        used = {current or str(build_url(walk.client.base_url, walk.url, walk.params))}
    else:
        used = {current} if current else set()
    while True:
        with walk.at(number):
            if follow_urls:
                # A next URL is used verbatim: Shopify rejects page_info combined with other filters.
                response = await (walk.fetch(current, None) if current else walk.fetch(walk.url, walk.params))
            else:
                cursor = {walk.pagination.cursor_param: current} if current else {}
                response = await walk.fetch(walk.url, {**walk.params, **cursor})
            records = walk.read(response, number)
            following = walk.reader.next_value(response, number, as_url=follow_urls)
        seen += len(records)
        if following is not None and following in used:
            raise walk.loop(number, what, following)
        done = following is None or walk.finished(records, number, seen, sized=False)
        state = {"done": True} if done else {key: following, "page": number + 1, "seen": seen}
        yield Page(number, records, walk.total, state)
        if done:
            return
        assert following is not None
        used.add(following)
        current = following
        number += 1
