"""Dry runs of a definition's mappings on a sample: a list page through a resource, a webhook body through its handler.

What ``map`` shows and ``--format json`` prints: each record as mapped, whether it would be
rejected and why, and for a webhook the event found, its transaction id, the customer
extracted and whether a trigger fires. Nothing is fetched or written.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from miniapp_sync.definition.model import Definition
from miniapp_sync.errors import UsageError
from miniapp_sync.mapping.paths import compile_path
from miniapp_sync.mapping.plan import MappingPlan
from miniapp_sync.mapping.records import MappedRecord
from miniapp_sync.sync.resources import check_resource_names
from miniapp_sync.webhooks.identify import Delivery, extract_event, transaction_id


def records_of(document: Any, data_property: str) -> list[Any]:
    """Find the records of a list page (D8): the dataProperty list, a bare list, or one record."""
    if isinstance(document, list):
        return document
    if data_property not in ("", "$"):
        found = compile_path(data_property).get(document)
        if isinstance(found, list):
            return found
        if isinstance(found, dict):
            return [found]  # a detail response unwrapped by the same dataProperty
    return [document]


def record_result(index: int, mapped: MappedRecord) -> dict[str, Any]:
    """Return one mapped record as a dry run reports it (``problems`` are Problem objects)."""
    return {"index": index, "rejected": mapped.rejected, "data": mapped.data, "problems": list(mapped.problems)}


def map_resource(plan: MappingPlan, definition: Definition, resource: str, document: Any) -> dict[str, Any]:
    """Map a list page (or one record) with a resource's apiMapping; an unknown resource is a UsageError."""
    check_resource_names(plan.resources, [resource], ns=definition.ns)
    assert definition.sync is not None  # the plan has the resource, so the definition has a sync block
    data_property = definition.sync.resources[resource].response_mapping.data_property
    mapper = plan.resources[resource].mapper
    results = [record_result(i, mapper(record)) for i, record in enumerate(records_of(document, data_property))]
    return {"resource": resource, "contentType": plan.resources[resource].content_type, "records": results}


def map_event(
    plan: MappingPlan,
    definition: Definition,
    event: str | None,
    body: Any,
    raw: bytes,
    headers: Mapping[str, str],
) -> dict[str, Any]:
    """Run a webhook body through event extraction, the transaction id, customer extraction and its handler."""
    delivery = Delivery(body=body, raw=raw, headers=dict(headers))
    extracted = extract_event(definition.webhook, delivery)
    chosen = event or extracted
    if chosen is None:
        where = "webhook.eventExtraction found nothing" if definition.webhook else "there is no webhook.eventExtraction"
        events = ", ".join(sorted(definition.handlers())) or "—"
        raise UsageError(f"the payload names no event ({where}); pass --event (handled events: {events})")
    handler = plan.handlers.get(chosen)
    customer = plan.customer.extract(chosen, body) if plan.customer else None
    return {
        "event": chosen,
        "extractedEvent": extracted,
        "eventMatches": extracted == chosen,
        "transactionId": transaction_id(definition.webhook, chosen, delivery),
        "handler": None if handler is None else {"contentType": handler.content_type, "operation": handler.operation},
        "customer": None if customer is None else record_result(0, customer),
        "records": [] if handler is None else [record_result(0, handler.map(body))],
        "triggerFires": chosen in definition.trigger_events(),
    }
