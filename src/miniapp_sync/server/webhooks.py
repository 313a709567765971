"""The webhook routes as ASGI: the receiving endpoint and /metrics.

The receiving endpoint is a bare ASGI callable rather than a Starlette request handler: it reads
the body itself, refusing it with 413 from ``Content-Length`` before reading, or as soon as the
chunks read exceed the limit (chunked bodies), and keeps the exact bytes for verification. The
app hands deliveries to it before Starlette's middleware and routing (``webhook_params``): on
the project machine that stack cost as much as everything else a delivery needs.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from miniapp_sync.errors import MiniAppSyncError
from miniapp_sync.jobs import JobQueue
from miniapp_sync.server.openapi import Param, error, ok, operation
from miniapp_sync.server.openapi import Reply as Documented
from miniapp_sync.views import DeliveryView, ErrorView
from miniapp_sync.views.deliveries import delivery
from miniapp_sync.views.queries import MAX_EVENT_ID as MAX_ID  # ids JSON and every database here hold exactly
from miniapp_sync.webhooks.assign import assign
from miniapp_sync.webhooks.receiver import TOO_LARGE, UNAVAILABLE, Reply
from miniapp_sync.webhooks.service import WebhookService

log = logging.getLogger("miniapp_sync.webhooks")


class _Disconnected(Exception):
    """The client went away before its body was read whole."""


async def _body(receive: Receive, limit: int) -> bytes | None:
    """Read the whole body, or return None as soon as it exceeds ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _send(send: Send, reply: Reply) -> None:
    headers = [(b"content-type", reply.content_type.encode()), (b"content-length", str(len(reply.body)).encode())]
    headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in reply.headers]
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": reply.body})


def webhook_params(scope: Scope) -> dict[str, str] | None:
    """Return the path parameters of a webhook delivery's path, or None when ``scope`` is not one."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    parts = path.split("/")
    if len(parts) not in (4, 5) or parts[1] != "miniapps" or parts[3] != "webhooks" or not all(parts[2:]):
        return None
    return {"ns": parts[2], "installation": parts[4]} if len(parts) == 5 else {"ns": parts[2]}


class WebhookEndpoint:
    """``POST /miniapps/{ns}/webhooks[/{installation}]``: hand the raw delivery to the receiver."""

    def __init__(self, service: WebhookService) -> None:
        self.service = service
        self.limit = service.settings.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> int | None:
        """Answer one delivery; return the status answered (None: the sender went away first)."""
        clock = self.service.clock
        started = clock.monotonic()
        params = scope["path_params"]
        ns = params["ns"]
        # ASGI gives header names in lowercase already.
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        declared = headers.get("content-length", "")
        try:
            raw = (
                None
                if declared.isascii() and declared.isdigit() and int(declared) > self.limit
                else await _body(receive, self.limit)
            )
        except _Disconnected:
            return None  # half a body is not a delivery; the sender will resend it
        if raw is None:
            reply = TOO_LARGE
            # Recorded for a MiniApp served here only: any other path segment would be a new cap.
            if ns in self.service.runtime.apps:
                size = int(declared) if declared.isdigit() else self.limit + 1  # at least: reading stopped there
                reason = f"the body is over {self.limit} bytes"
                await self.service.receiver.refuse(
                    TOO_LARGE, ns, params.get("installation"), reason, size=size, body=None, headers=headers
                )
        else:
            query = dict(parse_qsl(scope["query_string"].decode("latin-1"))) if scope["query_string"] else {}
            try:
                reply = await self.service.receiver.receive(ns, params.get("installation"), raw, headers, query)
            except MiniAppSyncError as exc:  # the inbox cannot commit: nothing was stored, so ask for a resend
                log.error("could not store a %s delivery: %s", ns, exc)
                reply = UNAVAILABLE
        await _send(send, reply)
        self.service.metrics.answered(ns, reply.outcome, clock.monotonic() - started)
        return reply.status


def metrics_endpoint(service: WebhookService, jobs: JobQueue) -> Any:
    """Return the handler of ``GET /metrics`` (Prometheus text format): this process's series and its processor's."""

    async def metrics(request: Request) -> Response:
        try:
            processor = await jobs.metrics()
        except MiniAppSyncError as exc:  # this process's series still answer; /readyz says what is wrong
            log.warning("metrics without the inbox processor's: %s", exc)
            processor = b""
        body = await service.scrape() + processor
        return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")

    return metrics


def assign_endpoint(service: WebhookService) -> Any:
    """Return the handler of ``POST /api/inbox/{id}/assign`` (D24a)."""

    @operation(
        "Give an unmatched webhook delivery to an installation; it is then processed (D24a).",
        params=[
            Param("id", "The unmatched inbox row's id.", kind="integer", location="path", minimum=1, maximum=MAX_ID)
        ],
        body={
            "type": "object",
            "required": ["installation"],
            "additionalProperties": False,
            "properties": {"installation": {"type": "string", "description": "The installation it is for."}},
        },
        responses={
            202: Documented("the delivery, queued (or ignored as a resend of one stored)", DeliveryView),
            404: Documented("no such inbox row", ErrorView),
            409: Documented(
                "the row is not unmatched, or the installation cannot take it (the message says why)", ErrorView
            ),
        },
    )
    async def assign_delivery(request: Request, id: int) -> Response:
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return error(400, "bad_request", "the body is not JSON", hint='send {"installation": "<id>"}')
        if not isinstance(body, dict) or set(body) != {"installation"} or not isinstance(body["installation"], str):
            return error(400, "bad_request", 'expected {"installation": "<installation id>"}', field="installation")
        if await asyncio.to_thread(service.inbox.get, id) is None:
            return error(404, "not_found", f"no inbox row {id}", field="id")
        try:
            assignment = await assign(service.runtime, service.inbox, id, body["installation"])
        except MiniAppSyncError as exc:
            return error(409, "conflict", str(exc))
        row = assignment.row
        if row.status == "pending" and row.installation_id is not None:
            service.queue_processing(row.ns, row.installation_id)
        shown = await asyncio.to_thread(delivery, service.runtime, str(row.id))
        if shown is None:
            return error(404, "not_found", f"inbox row {id} was purged meanwhile", field="id")
        return ok(shown.delivery, 202)

    return assign_delivery
