"""Fetch each list record's detail object and merge it over the record (D8, D9, D10).

``{id}`` in ``endpoints.details.url`` is the record's ``idProperty``, URL-quoted. The detail
response is unwrapped with ``responseMapping.dataProperty`` when that resolves to an object, then
merged over the list record (shallow, the detail wins). A 404 keeps the list record with a
warning; any other failure after retries is a failed result carrying the error, for the caller to
dead-letter: one bad record never stops the run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

from miniapp_sync.definition.model import Resource
from miniapp_sync.definition.rules import MISSING
from miniapp_sync.errors import ProviderError, preview
from miniapp_sync.provider.client import ProviderClient
from miniapp_sync.provider.errors import ProviderHTTPError, ResponseShapeError
from miniapp_sync.provider.responses import ResponseReader, describe

__all__ = ["DetailResult", "fetch_details"]

DetailStatus = Literal["ok", "not_found", "failed"]


@dataclass(frozen=True, slots=True)
class DetailResult:
    """The outcome for one list record: merged, kept as listed (404), or failed with an error."""

    index: int
    record: dict[str, Any]
    status: DetailStatus
    warning: str | None = None
    error: ProviderError | None = None

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
    resource_key: str | None = None,
) -> list[DetailResult]:
    """Return one result per list record, in input order, fetching up to ``concurrency`` details at once."""
    resource_key = resource_key or resource.name or "records"
    endpoint = resource.endpoints.details
    if endpoint is None:
        return [DetailResult(index, dict(record), "ok") for index, record in enumerate(records)]
    reader = ResponseReader(resource, resource_key)
    unwrap = None if reader.bare else resource.response_mapping.data_property
    results: list[DetailResult | None] = [None] * len(records)
    todo = iter(range(len(records)))

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

    async def worker() -> None:
        # Workers share one iterator of indices: each record is fetched once, at most
        # ``concurrency`` at a time, and all of them inside the installation's rate budget.
        for index in todo:
            results[index] = await fetch(index)

    async with asyncio.TaskGroup() as group:
        for _ in range(min(max(1, concurrency), len(records))):
            group.create_task(worker())
    return [result for result in results if result is not None]
