"""Fetch each list record's detail object and merge it over the record (D8, D9, D10).

``{id}`` in ``endpoints.details.url`` is the record's ``idProperty``, URL-quoted. The detail
response is unwrapped with ``responseMapping.dataProperty`` when that resolves to an object, then
merged over the list record (shallow, the detail wins). A 404 keeps the list record with a
warning; any other failure after retries is a failed result carrying the error, for the caller to
dead-letter: one bad record never stops the run.

A caller may ``settle`` each record as it arrives (the sync engine maps it): the result keeps
what ``settle`` made of it instead of the merged record, and the list record's place in the
page is emptied (``SETTLED``), so a page waiting for its stragglers holds mapped records and its
records still to fetch, not whole provider objects (an order's detail is ~22 KB of Python
objects, its mapped record ~2.5 KB, a listed product ~7 KB: with hundreds of installations
syncing in one process, pages of held records were most of its memory; issue 17 item 5).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import deque
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal
from urllib.parse import quote

from miniapp_sync.definition.model import Resource
from miniapp_sync.definition.rules import MISSING
from miniapp_sync.errors import ProviderError, preview
from miniapp_sync.provider.client import ProviderClient
from miniapp_sync.provider.errors import ProviderHTTPError, ResponseShapeError
from miniapp_sync.provider.fanout import FanOut
from miniapp_sync.provider.responses import ResponseReader, describe

if TYPE_CHECKING:
    from miniapp_sync.provider.pagination import Page

__all__ = ["DetailResult", "fetch_details", "with_details", "without_details"]

DetailStatus = Literal["ok", "not_found", "failed"]
# What a settled record's place in its page, and its result's ``record``, hold: never changed.
SETTLED: Final[dict[str, Any]] = {}


@dataclass(frozen=True, slots=True)
class DetailResult:
    """The outcome for one list record: merged, kept as listed (404), or failed with an error.

    With ``settle`` (see the module docstring), a result that is ``ok`` carries ``settle``'s value
    of the merged (or kept) record in ``settled``, and ``record`` is ``SETTLED``.
    """

    index: int
    record: dict[str, Any]
    status: DetailStatus
    warning: str | None = None
    error: ProviderError | None = None
    settled: Any = None

    @property
    def ok(self) -> bool:
        """Return whether the record can be mapped and stored (merged, or kept after a 404)."""
        return self.status != "failed"


async def fetch_details(
    client: ProviderClient,
    resource: Resource,
    records: Sequence[dict[str, Any]],
    *,
    concurrency: int = 1,
    fan_out: FanOut | None = None,
    resource_key: str | None = None,
    settle: Callable[[dict[str, Any]], Any] | None = None,
    nearly: asyncio.Event | None = None,
) -> list[DetailResult]:
    """Return one result per list record, in input order.

    Details are fetched ``concurrency`` at a time, or as many at a time as ``fan_out`` lets
    through (shared by every page of a run: it follows the budget and the provider's latency).
    ``settle`` is applied to each record that is ``ok`` as it arrives (see the module docstring);
    then ``records`` must be a list, and each record's place in it is emptied once it has a result
    (``SETTLED``; a failed result keeps a copy of its list record).
    ``nearly`` is set once the records still to be let through the gate are no more than it lets
    through at a time (at the latest when the last is through): the time to list the next page.
    """
    gate = fan_out or FanOut(math.inf, lambda: 0.0, cap=max(1, concurrency))
    emptied: list[dict[str, Any]] | None = None
    if settle is not None:
        if not isinstance(records, list):
            raise TypeError(f"settle empties each record's place in records: a list, not {type(records).__name__}")
        emptied = records
    resource_key = resource_key or resource.name or "records"
    endpoint = resource.endpoints.details
    if endpoint is None:
        return [DetailResult(index, dict(record), "ok") for index, record in enumerate(records)]
    reader = ResponseReader(resource, resource_key)
    unwrap = None if reader.bare else resource.response_mapping.data_property
    results: list[DetailResult | None] = [None] * len(records)

    async def fetch(index: int) -> DetailResult:
        record = records[index]
        record_id = reader.record_id(record)
        if record_id is MISSING or record_id is None:
            error = ResponseShapeError(
                f"{resource_key} record {index}: idProperty {resource.id_property!r} is missing, "
                "so its details cannot be fetched",
                resource=resource_key,
                page=None,
            )
            return DetailResult(index, dict(record), "failed", error=error)
        url = endpoint.url.replace("{id}", quote(str(record_id), safe=""))
        try:
            response = await client.request_json(
                endpoint.method, url, endpoint.query_params, resource=resource_key, what="details"
            )
        except ProviderHTTPError as exc:
            if exc.status != 404:
                return DetailResult(index, dict(record), "failed", error=exc)
            warning = f"{resource_key} record {preview(record_id)}: details answered 404; kept the list record"
            return DetailResult(index, dict(record), "not_found", warning=warning)
        except ProviderError as exc:
            return DetailResult(index, dict(record), "failed", error=exc)
        detail = response.data
        if unwrap is not None:
            inner = reader.unwrap(detail)
            detail = inner if isinstance(inner, dict) else detail
        if not isinstance(detail, dict):
            error = ResponseShapeError(
                f"{resource_key} record {preview(record_id)}: the details response is {describe(detail)}, "
                "expected an object",
                resource=resource_key,
                page=None,
            )
            return DetailResult(index, dict(record), "failed", error=error)
        return DetailResult(index, {**record, **detail}, "ok")

    async def fetch_into(index: int) -> None:
        result = await fetch(index)
        if emptied is not None:
            emptied[index] = SETTLED  # the list record leaves the page (its body, the listing's locals) too
            if settle is not None and result.ok:
                result = DetailResult(index, SETTLED, result.status, result.warning, settled=settle(result.record))
        results[index] = result

    # A place at the gate first, then a task for the record: a page waiting for the budget is one
    # waiter, not a task per record (a run holds two pages: at 4 requests/s hundreds of runs kept
    # tens of thousands of idle tasks, and the gate woke them all). The place is given back when
    # the task is done, also when it was cancelled before it ever ran.
    async with asyncio.TaskGroup() as group:
        for index in range(len(records)):
            if nearly is not None and len(records) - index <= gate.target:
                nearly.set()
            await gate.enter()
            task = group.create_task(fetch_into(index))
            task.add_done_callback(lambda _: gate.leave())
        if nearly is not None:
            nearly.set()  # an empty page
    return [result for result in results if result is not None]


async def with_details(
    listing: AsyncGenerator[Page, None],
    client: ProviderClient,
    resource: Resource,
    *,
    fan_out: FanOut,
    resource_key: str,
    settle: Callable[[dict[str, Any]], Any] | None = None,
) -> AsyncGenerator[tuple[Page, list[DetailResult] | None], None]:
    """Yield each page with its records' detail results, in page order.

    The details of the next page are fetched while this page's last ones are still out (one
    page ahead, through the same ``fan_out``), so the number in flight does not fall to the
    stragglers of each page; the caller gets the pages in order all the same. ``settle``: as
    ``fetch_details``'s.

    The next page is listed only when this page's records are nearly all let through the gate
    (``fetch_details``'s ``nearly``), not as soon as this page is: a page listed sooner waited
    whole at the gate, a page of decoded list records (~0.7 MiB of products) held by every run for
    most of a page's time at 4 requests/s, while listing it one gateful early still overlaps its
    list call with this page's last detail calls.

    Closing the stream closes ``listing`` too (as ``without_details`` does): a walk left open
    with pages in flight would be closed later by the collector or the loop's shutdown, which
    closes the walk's nested generators at once ("asynchronous generator is already running").
    """
    ahead: deque[tuple[Page, asyncio.Task[list[DetailResult]]]] = deque()
    waiting: asyncio.Task[Literal[True]] | None = None
    try:
        async for page in listing:
            nearly = asyncio.Event()
            fetching = fetch_details(
                client, resource, page.records, fan_out=fan_out, resource_key=resource_key, settle=settle, nearly=nearly
            )
            current = asyncio.ensure_future(fetching)
            ahead.append((page, current))
            del page  # held by ``ahead`` until yielded, and no longer
            if len(ahead) > 1:
                done, task = ahead.popleft()
                yield done, await task
                del done, task  # the caller is done with the page: not held while the next is listed
            waiting = nearly_waited = asyncio.ensure_future(nearly.wait())
            await asyncio.wait((current, nearly_waited), return_when=asyncio.FIRST_COMPLETED)  # a failed page: no wait
            nearly_waited.cancel()
        while ahead:
            done, task = ahead.popleft()
            yield done, await task
    finally:
        if waiting is not None:
            waiting.cancel()
        for _, task in ahead:
            task.cancel()
        await asyncio.gather(*(task for _, task in ahead), return_exceptions=True)
        await listing.aclose()  # its pages in flight too, before the run goes on or ends


async def without_details(
    listing: AsyncGenerator[Page, None],
) -> AsyncGenerator[tuple[Page, list[DetailResult] | None], None]:
    """Yield each page with None for its detail results: the same stream shape for a resource without details."""
    async with contextlib.aclosing(listing):
        async for page in listing:
            yield page, None
