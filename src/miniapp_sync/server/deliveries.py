"""The deliveries API (issue 15): the inbox and the rejection trail in one list, one delivery whole, bulk replay.

``GET /api/deliveries`` and ``GET /api/deliveries/{id}`` read; ``POST /api/deliveries/replay``
previews (``"preview": true``, changing nothing) or queues a replay job (D36) whose report
``GET /api/jobs/{id}`` shows, like a sync's run. Deliveries out, too: ``POST
/api/events/{id}/redeliver`` sends a trigger event a subscriber never took once more.
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from miniapp_sync.errors import MiniAppSyncError, UsageError
from miniapp_sync.jobs import JobQueue
from miniapp_sync.runtime import Runtime
from miniapp_sync.server.openapi import CURSOR, LIMIT, Param, Reply, error, ok, operation
from miniapp_sync.store.deliveries import FILTER_FIELDS, MAX_QUERY, REASONS, STATES
from miniapp_sync.views import ErrorView, ParameterError, Window
from miniapp_sync.views.deliveries import (
    DeliveryDetailView,
    DeliveryReplayView,
    DeliveryView,
    ReplayPreviewView,
    deliveries,
    delivery,
    delivery_filter,
)
from miniapp_sync.views.details import RedeliveryView, TriggerDeliveryView
from miniapp_sync.views.pages import MAX_EVENT_ID
from miniapp_sync.views.runs import MOMENT_HINT, MOMENT_PATTERN
from miniapp_sync.webhooks import bulk_replay
from miniapp_sync.webhooks.redelivery import RedeliveryRefused, redeliver

MAX_BODY: Final = 256 * 1024  # a replay names at most 1,000 ids
_TEXT: Final = {"type": "string", "minLength": 1, "maxLength": 200}
_TIME: Final = {"type": "string", "pattern": MOMENT_PATTERN}
FILTER_SCHEMA: Final = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "tenant": _TEXT,
        "ns": _TEXT,
        "event": _TEXT,
        "status": {
            "oneOf": [
                {"type": "string", "enum": list(STATES)},
                {"type": "array", "minItems": 1, "items": {"type": "string", "enum": list(STATES)}},
            ]
        },
        "reason": {"type": "string", "enum": list(REASONS)},
        "since": _TIME,
        "until": _TIME,
        "q": {"type": "string", "minLength": 1, "maxLength": MAX_QUERY},
    },
}
_PREVIEW: Final = {"type": "boolean", "description": "Say what would be replayed; change nothing."}
FILTERS: Final = (
    Param("tenant", "Only this tenant's deliveries."),
    Param("ns", "Only this MiniApp's."),
    Param("event", "Only this event."),
    Param("status", "Only deliveries in this state (repeat it for any of several).", enum=STATES, repeated=True),
    Param("reason", "Only refusals for this reason (status rejected).", enum=REASONS),
    Param("since", f"Received at or after: {MOMENT_HINT}.", pattern=MOMENT_PATTERN),
    Param("until", f"Received before: {MOMENT_HINT}.", pattern=MOMENT_PATTERN),
    Param("q", "Text in the body (exact bytes; the 5,000 newest deliveries that pass the other filters)."),
)


def replay_request(raw: bytes, now: float) -> tuple[dict[str, Any], bool]:
    """Return a replay request's selection (``{"ids"}`` or ``{"filter"}``, stored form) and whether it is a preview."""
    if len(raw) > MAX_BODY:
        raise ParameterError("body", f"expected at most {MAX_BODY} bytes, found {len(raw)}")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ParameterError("body", f"not JSON: {exc}", 'send {"ids": [...]} or {"filter": {...}}') from None
    if not isinstance(body, dict):
        raise ParameterError("body", f"expected a JSON object, found {type(body).__name__}")
    unknown = sorted(set(body) - {"ids", "filter", "preview"})
    if unknown:
        raise ParameterError(unknown[0][:40], "is not a field of a replay request", "expected ids or filter, preview")
    preview = body.get("preview", False)
    if not isinstance(preview, bool):
        raise ParameterError("preview", f"expected true or false, found {type(preview).__name__}")
    if ("ids" in body) == ("filter" in body):
        raise ParameterError("ids", "give either ids or a filter", 'send {"ids": ["42"]} or {"filter": {...}}')
    if "ids" in body:
        ids = body["ids"]
        if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
            raise ParameterError("ids", "expected a non-empty list of delivery ids (strings)")
        if len(ids) > bulk_replay.MAX_REPLAY:
            raise ParameterError("ids", f"expected at most {bulk_replay.MAX_REPLAY} ids, found {len(ids)}")
        return {"ids": ids}, preview
    given = body["filter"]
    if not isinstance(given, dict):
        raise ParameterError("filter", f"expected an object, found {type(given).__name__}")
    strange = sorted(set(given) - set(FILTER_FIELDS))
    if strange:
        raise ParameterError(f"filter.{strange[0][:40]}", "is not a filter field", f"known: {', '.join(FILTER_FIELDS)}")
    for name, value in given.items():
        several = name == "status" and isinstance(value, list) and value and all(isinstance(v, str) for v in value)
        if not isinstance(value, str) and not several:
            expected = "a string or a non-empty list of strings" if name == "status" else "a string"
            raise ParameterError(f"filter.{name}", f"expected {expected}, found {type(value).__name__}")
    return {"filter": delivery_filter(**given, now=now).as_dict()}, preview


def delivery_routes(runtime: Runtime, jobs: JobQueue) -> list[BaseRoute]:
    """Return the /api/deliveries routes over ``runtime``; replays are queued on ``jobs``."""

    @operation(
        "Webhook deliveries, newest first: inbox rows and refusals at the door (D24a), filtered.",
        params=[*FILTERS, LIMIT, CURSOR],
        responses={200: Reply("a page of deliveries", DeliveryView, page=True)},
    )
    async def list_deliveries(request: Request, limit: int, cursor: str | None, **given: Any) -> Response:
        window = Window.of(limit, cursor)
        chosen = delivery_filter(**given, now=runtime.clock.now())
        return ok(await asyncio.to_thread(deliveries, runtime, window, chosen))

    @operation(
        "One delivery whole: its body (credential values masked) or a refusal's redacted headers, "
        "what it wrote and which trigger events it fired.",
        params=[Param("id", "The delivery's id: 42 (inbox) or r7 (refused).", location="path")],
        responses={200: Reply("the delivery", DeliveryDetailView), 404: Reply("no such delivery", ErrorView)},
    )
    async def get_delivery(request: Request, id: str) -> Response:
        found = await asyncio.to_thread(delivery, runtime, id)
        if found is None:
            return error(404, "not_found", f"no delivery {id[:60]!r}", field="id")
        return ok(found)

    @operation(
        "Replay dead or failed deliveries (by ids, or all matching a filter) through the loaded definition, "
        "as a job whose report GET /api/jobs/{id} shows; with preview true, say what it would do instead.",
        body={
            "oneOf": [
                {
                    "type": "object",
                    "required": ["ids"],
                    "additionalProperties": False,
                    "properties": {
                        "ids": {
                            "type": "array",
                            "minItems": 1,
                            "maxItems": bulk_replay.MAX_REPLAY,
                            "items": {"type": "string", "pattern": "^r?[0-9]{1,18}$"},
                        },
                        "preview": _PREVIEW,
                    },
                },
                {
                    "type": "object",
                    "required": ["filter"],
                    "additionalProperties": False,
                    "properties": {"filter": FILTER_SCHEMA, "preview": _PREVIEW},
                },
            ]
        },
        responses={
            200: Reply("the preview (preview: true)", ReplayPreviewView),
            202: Reply("the replay, queued: its jobId leads to its report", DeliveryReplayView),
            404: Reply("an id names no delivery", ErrorView),
            409: Reply("nothing to replay, or the deliveries are of several MiniApps (replay each)", ErrorView),
        },
    )
    async def replay_deliveries(request: Request) -> Response:
        try:
            selection, preview = replay_request(await request.body(), runtime.clock.now())
        except ParameterError as exc:
            return error(400, "bad_request", str(exc), hint=exc.hint, field=exc.field)
        try:
            if preview:
                found = await asyncio.to_thread(bulk_replay.preview, runtime, selection)
                return ok(ReplayPreviewView.of(found))
            return ok(DeliveryReplayView.of(await bulk_replay.queue(runtime, jobs, selection)), 202)
        except UsageError as exc:
            return error(404, "not_found", str(exc), field="ids")
        except MiniAppSyncError as exc:
            return error(409, "conflict", str(exc))

    @operation(
        "Send a trigger event once more to a subscription that gave up on it (failed): the deliver job makes "
        "the attempt (D36); a pending or delivered one is left alone.",
        params=[
            Param("id", "The trigger event's id.", kind="integer", location="path", minimum=1, maximum=MAX_EVENT_ID)
        ],
        body={
            "type": "object",
            "required": ["subscription"],
            "additionalProperties": False,
            "properties": {"subscription": {"type": "string", "minLength": 1, "maxLength": 64}},
        },
        responses={
            202: Reply("the delivery as it stood, made due; the deliver job sends it", RedeliveryView),
            404: Reply("the event has no delivery to that subscription", ErrorView),
            409: Reply("the delivery is pending or delivered: only a failed one is sent again", ErrorView),
        },
    )
    async def redeliver_event(request: Request, id: int) -> Response:
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return error(400, "bad_request", "the body is not JSON", hint='send {"subscription": "<id>"}')
        if not isinstance(body, dict) or not isinstance(body.get("subscription"), str):
            return error(400, "bad_request", 'expected {"subscription": "<subscription id>"}', field="subscription")
        try:
            before, receipt = await redeliver(runtime.store, jobs, id, body["subscription"])
        except RedeliveryRefused as exc:
            return error(404 if exc.missing else 409, "not_found" if exc.missing else "conflict", str(exc))
        return ok(RedeliveryView(str(id), TriggerDeliveryView.of(before), receipt.id), 202)

    return [
        Route("/api/events/{id}/redeliver", redeliver_event, methods=["POST"]),
        Route("/api/deliveries", list_deliveries, methods=["GET"]),
        Route("/api/deliveries/replay", replay_deliveries, methods=["POST"]),
        Route("/api/deliveries/{id}", get_delivery, methods=["GET"]),
    ]
