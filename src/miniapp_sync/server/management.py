"""The management API under ``/api`` (D31, D37): overview, installations, OAuth links, runs, records, events, ….

Every handler is declared with ``openapi.operation``: its parameters are checked before it runs
and the OpenAPI document is written from the same declarations. Answers are view models, lists
are pages (``{"items", "next"}``), errors are ``{"error": {"type", "message", "hint", "field"}}``.
The admin guard (in ``app``) stands in front of all of it.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Any, Final

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from miniapp_sync.errors import InstallationConflict, MiniAppSyncError
from miniapp_sync.runtime import Runtime
from miniapp_sync.server.openapi import CURSOR, LIMIT, Param, Reply, bad_request, error, ok, operation
from miniapp_sync.store import DeadLetterKind, Installation, RunStatus
from miniapp_sync.store.model import RUN_STATUSES
from miniapp_sync.store.run_search import RunFilter
from miniapp_sync.views import (
    DeadLetterView,
    ErrorView,
    InstallationView,
    OAuthLinkView,
    OverviewView,
    ParameterError,
    RecordChangeView,
    RecordView,
    RunView,
    TriggerEventView,
    Window,
    moment,
    queries,
)
from miniapp_sync.views.overview import overview
from miniapp_sync.views.queries import MAX_EVENT_ID, MAX_EVENTS
from miniapp_sync.views.runs import MOMENT_HINT, MOMENT_PATTERN

MAX_BODY: Final = 64 * 1024  # an install request is a few credentials: anything bigger is a mistake
_SCALAR: Final = {"anyOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}]}
_BAG: Final = {"type": "object", "additionalProperties": _SCALAR}
_TENANT: Final = {"type": "string", "minLength": 1, "maxLength": 200, "pattern": "^[^\\u0000-\\u001f\\u007f]+$"}
_CONTROL: Final = re.compile("[\x00-\x1f\x7f]")  # what _TENANT's pattern refuses
RUN_STATES: Final = tuple(sorted(RUN_STATUSES))


def _scalars(value: Any, field: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ParameterError(field, f"expected an object of key: value, found {type(value).__name__}")
    for key, item in value.items():
        if isinstance(item, dict | list) or item is None:
            found = "null" if item is None else type(item).__name__
            raise ParameterError(f"{field}.{key[:40]}", f"expected a string, number or boolean, found {found}")
    return value


def _tenant_request(raw: bytes, served: list[str], fields: set[str], what: str) -> dict[str, Any]:
    """Return a request body naming a served ``ns`` and a ``tenant``, with only ``fields`` in it."""
    if len(raw) > MAX_BODY:
        raise ParameterError("body", f"expected at most {MAX_BODY} bytes, found {len(raw)}")
    try:
        body = orjson.loads(raw)  # unlike json.loads, refuses absurd nesting with an error, not a crash
    except orjson.JSONDecodeError as exc:
        raise ParameterError("body", f"not JSON: {exc}", 'send {"ns": …, "tenant": …}') from None
    if not isinstance(body, dict):
        raise ParameterError("body", f"expected a JSON object, found {type(body).__name__}")
    unknown = sorted(set(body) - {"ns", "tenant", *fields})
    if unknown:
        raise ParameterError(unknown[0][:40], f"is not a field of {what}", f"expected ns, tenant, {', '.join(fields)}")
    ns, tenant = body.get("ns"), body.get("tenant")
    if ns not in served:
        raise ParameterError("ns", f"expected one of {', '.join(served)}, found {str(ns)[:40]!r}")
    if not isinstance(tenant, str) or not 1 <= len(tenant) <= 200 or _CONTROL.search(tenant):
        raise ParameterError("tenant", "expected the tenant's id: 1 to 200 characters, no control characters")
    return body


def install_body(raw: bytes, served: list[str]) -> dict[str, Any]:
    """Return the checked body of an install request; raise ParameterError naming the field at fault."""
    body = _tenant_request(raw, served, {"credentials", "metadata", "userInput"}, "an install request")
    return {
        "ns": body["ns"],
        "tenant": body["tenant"],
        "credentials": _scalars(body.get("credentials"), "credentials"),
        "metadata": _scalars(body.get("metadata"), "metadata"),
        "user_input": _scalars(body.get("userInput"), "userInput"),
    }


def link_body(raw: bytes, served: list[str]) -> dict[str, Any]:
    """Return the checked body of an OAuth start link request (D31a)."""
    body = _tenant_request(raw, served, {"reconnect", "userInput"}, "a start link request")
    reconnect = body.get("reconnect", False)
    if not isinstance(reconnect, bool):
        raise ParameterError("reconnect", f"expected true or false, found {type(reconnect).__name__}")
    return {
        "ns": body["ns"],
        "tenant": body["tenant"],
        "reconnect": reconnect,
        "user_input": _scalars(body.get("userInput"), "userInput"),
    }


def management_routes(
    runtime: Runtime,
    *,
    installed: Callable[[Installation], Awaitable[None]],
    next_sync: queries.NextSync | None = None,
) -> list[BaseRoute]:
    """Return the /api routes over ``runtime``; ``installed`` is told when an installation was added.

    ``next_sync`` says when the schedule next syncs an installation (the queue's ``Work.next_sync_at``).
    """
    store = runtime.store
    served = sorted(runtime.apps)
    not_found = Reply("no such thing (`error.field` names the path parameter)", ErrorView)

    @operation(
        "Per MiniApp: installations and 24 h of runs by status, inbox backlog, dead letters, rejections by reason.",
        responses={200: Reply("the figures (the console's front page shows the same)", OverviewView)},
    )
    async def get_overview(request: Request) -> Response:
        return ok(await asyncio.to_thread(overview, store, served))

    @operation(
        "List installations (credentials are never returned).",
        params=[Param("ns", "Only this MiniApp.", enum=tuple(served)), LIMIT, CURSOR],
        responses={200: Reply("a page of installations", InstallationView, page=True)},
    )
    async def list_installations(request: Request, ns: str | None, limit: int, cursor: str | None) -> Response:
        window = Window.of(limit, cursor)
        return ok(await asyncio.to_thread(queries.installations, store, window, ns=ns, next_sync=next_sync))

    @operation(
        "Install a MiniApp for a tenant with API keys (the API-key flow).",
        body={
            "type": "object",
            "required": ["ns", "tenant"],
            "additionalProperties": False,
            "properties": {
                "ns": {"type": "string", "enum": served},
                "tenant": _TENANT,
                "credentials": _BAG,
                "metadata": _BAG,
                "userInput": _BAG,
            },
        },
        responses={
            201: Reply(
                "the installation; its initial import is queued (GET /api/runs?installation=…)", InstallationView
            ),
            409: Reply(
                "the install failed: the provider refused it or could not be reached (the message says why)", ErrorView
            ),
        },
    )
    async def create_installation(request: Request) -> Response:
        try:
            body = install_body(await request.body(), served)
        except ParameterError as exc:
            return bad_request(exc)
        try:
            installation = await runtime.installations.install(
                runtime.apps[body["ns"]].definition,
                body["tenant"],
                credentials=body["credentials"],
                metadata=body["metadata"],
                user_input=body["user_input"],
            )
        except MiniAppSyncError as exc:
            return error(409, "install_failed", str(exc))
        await installed(installation)  # its deliveries may arrive at once; its initial sync is queued
        return ok(InstallationView.of(installation), 201)

    @operation(
        "Issue a signed OAuth start link for a tenant: its admin opens it within 10 minutes (D31a).",
        body={
            "type": "object",
            "required": ["ns", "tenant"],
            "additionalProperties": False,
            "properties": {
                "ns": {"type": "string", "enum": served},
                "tenant": _TENANT,
                "reconnect": {
                    "type": "boolean",
                    "description": "Replace the tokens of the tenant's installation (same provider account only).",
                },
                "userInput": _BAG,
            },
        },
        responses={
            201: Reply("the link and when it expires", OAuthLinkView),
            409: Reply(
                "no link: the tenant has the MiniApp and reconnect is not true, or the flow could not start as "
                "configured (no OAuth flow, an unresolved placeholder, a value that cannot be a host label)",
                ErrorView,
            ),
        },
    )
    async def create_oauth_link(request: Request) -> Response:
        try:
            body = link_body(await request.body(), served)
        except ParameterError as exc:
            return bad_request(exc)
        try:
            link = runtime.installations.oauth.issue_link(
                runtime.apps[body["ns"]].definition,
                body["tenant"],
                reconnect=body["reconnect"],
                user_input=body["user_input"],
            )
        except InstallationConflict as exc:
            return error(409, "installed", str(exc), hint="ask for a reconnect link (reconnect: true)")
        except MiniAppSyncError as exc:  # what the start would refuse: no OAuth flow, a host value, a placeholder
            return error(409, "link_refused", str(exc))
        return ok(OAuthLinkView.of(link), 201)

    @operation(
        "One installation.",
        params=[Param("id", "The installation's id.", location="path")],
        responses={200: Reply("the installation", InstallationView), 404: not_found},
    )
    async def get_installation(request: Request, id: str) -> Response:
        found = await asyncio.to_thread(queries.installation, store, id, next_sync=next_sync)
        if found is None:
            return error(404, "not_found", f"no installation {id[:60]!r}", field="id")
        return ok(found)

    @operation(
        "Sync runs, newest first, with tenant, MiniApp, per-resource figures and errors; every filter set must match.",
        params=[
            Param("installation", "Only this installation's runs."),
            Param("tenant", "Only this tenant's runs."),
            Param("ns", "Only this MiniApp's runs."),
            Param("resource", "Only the runs of this resource."),
            Param("status", "Only runs in these states (repeatable).", enum=RUN_STATES, repeated=True),
            Param("since", f"Only runs started at or after: {MOMENT_HINT}.", pattern=MOMENT_PATTERN),
            Param("until", f"Only runs started before: {MOMENT_HINT}.", pattern=MOMENT_PATTERN),
            LIMIT,
            CURSOR,
        ],
        responses={200: Reply("a page of runs", RunView, page=True)},
    )
    async def list_runs(
        request: Request,
        installation: str | None,
        tenant: str | None,
        ns: str | None,
        resource: str | None,
        status: list[RunStatus],
        since: str | None,
        until: str | None,
        limit: int,
        cursor: str | None,
    ) -> Response:
        window = Window.of(limit, cursor)
        now = store.clock.now()
        where = RunFilter(
            (installation,) if installation else None, tenant, ns, resource, tuple(status),
            None if since is None else moment(since, now, field="since"),
            None if until is None else moment(until, now, field="until"),
        )  # fmt: skip
        return ok(await asyncio.to_thread(queries.runs, store, window, where))

    @operation(
        "A sync run: per-resource figures, errors (page, redacted URL), live progress, checkpoints it resumes from.",
        params=[Param("id", "The run's id.", location="path")],
        responses={200: Reply("the run", RunView), 404: not_found},
    )
    async def get_run(request: Request, id: str) -> Response:
        found = await asyncio.to_thread(queries.run, store, id)
        if found is None:
            return error(404, "not_found", f"no run {id[:60]!r}", field="id")
        return ok(found)

    @operation(
        "Records by content type and code: of one installation, or of all (to look a `code` up anywhere).",
        params=[
            Param("installation", "Only this installation's records."),
            Param("type", "Only this content type, e.g. core:product."),
            Param("code", "Only the records of this code (the provider's id)."),
            LIMIT,
            CURSOR,
        ],
        responses={200: Reply("a page of records", RecordView, page=True)},
    )
    async def list_records(
        request: Request, installation: str | None, type: str | None, code: str | None, limit: int, cursor: str | None
    ) -> Response:
        window = Window.of(limit, cursor)
        ids = [installation] if installation else [i.id for i in await asyncio.to_thread(store.list_installations)]
        return ok(await asyncio.to_thread(queries.records, store, window, ids, type, code))

    @operation(
        "One record by its id (the `id` of a listed record), soft-deleted ones included.",
        params=[Param("id", "The record's id.", location="path")],
        responses={200: Reply("the record", RecordView), 404: not_found},
    )
    async def get_record(request: Request, id: str) -> Response:
        found = await asyncio.to_thread(queries.record, store, id)
        if found is None:
            return error(404, "not_found", f"no record {id[:60]!r}", field="id")
        return ok(found)

    @operation(
        "A record's history (D39), newest first: each change with its source (bulk run or delivery) and fields.",
        params=[Param("id", "The record's id.", location="path"), LIMIT, CURSOR],
        responses={200: Reply("a page of changes", RecordChangeView, page=True), 404: not_found},
    )
    async def record_history(request: Request, id: str, limit: int, cursor: str | None) -> Response:
        window = Window.of(limit, cursor)
        found = await asyncio.to_thread(queries.record_history, store, window, id)
        if found is None:
            return error(404, "not_found", f"no record {id[:60]!r}", field="id")
        return ok(found)

    @operation(
        "Dead letters (rejected records, failed deliveries), oldest first: the order to replay them in.",
        params=[
            Param("installation", "Only this installation's."),
            Param("kind", "Only records or only webhook deliveries.", enum=("record", "webhook")),
            Param("replayed", "Include those already replayed.", enum=("true", "false")),
            LIMIT,
            CURSOR,
        ],
        responses={200: Reply("a page of dead letters, credential values masked", DeadLetterView, page=True)},
    )
    async def list_dead_letters(
        request: Request,
        installation: str | None,
        kind: DeadLetterKind | None,
        replayed: str | None,
        limit: int,
        cursor: str | None,
    ) -> Response:
        window = Window.of(limit, cursor)
        ids = [installation] if installation else None
        page = await asyncio.to_thread(
            queries.dead_letters, runtime, window, installation_ids=ids, kind=kind, include_replayed=replayed == "true"
        )
        return ok(page)

    @operation(
        "One dead letter: the reason and the payload that failed, credential values masked.",
        params=[Param("id", "The dead letter's id.", location="path")],
        responses={200: Reply("the dead letter", DeadLetterView), 404: not_found},
    )
    async def get_dead_letter(request: Request, id: str) -> Response:
        found = (
            await asyncio.to_thread(queries.dead_letter, runtime, int(id))
            if id.isascii() and id.isdigit() and len(id) < 16
            else None
        )
        if found is None:
            return error(404, "not_found", f"no dead letter {id[:60]!r}", field="id")
        return ok(found)

    @operation(
        "Trigger events of a tenant after a cursor, oldest first; pass `next` back as `after`.",
        params=[
            Param("tenant", "The tenant.", required=True),
            Param("ns", "Only this MiniApp's events."),
            Param("after", "The cursor: events after it.", "integer", default=0, minimum=0, maximum=MAX_EVENT_ID),
            Param("limit", "Events per page.", "integer", default=100, minimum=1, maximum=MAX_EVENTS),
        ],
        responses={
            200: Reply("a page of events; `next` is always a cursor to pull from later", TriggerEventView, page=True)
        },
    )
    async def list_events(request: Request, tenant: str, ns: str | None, after: int, limit: int) -> Response:
        page = await asyncio.to_thread(queries.events, store, tenant=tenant, ns=ns, after=after, limit=limit)
        return ok(page)

    return [
        Route("/api/overview", get_overview, methods=["GET"]),
        Route("/api/installations", list_installations, methods=["GET"]),
        Route("/api/installations", create_installation, methods=["POST"]),
        Route("/api/installations/{id}", get_installation, methods=["GET"]),
        Route("/api/oauth-links", create_oauth_link, methods=["POST"]),
        Route("/api/runs", list_runs, methods=["GET"]),
        Route("/api/runs/{id}", get_run, methods=["GET"]),
        Route("/api/records", list_records, methods=["GET"]),
        Route("/api/records/{id}", get_record, methods=["GET"]),
        Route("/api/records/{id}/history", record_history, methods=["GET"]),
        Route("/api/deadletters", list_dead_letters, methods=["GET"]),
        Route("/api/deadletters/{id}", get_dead_letter, methods=["GET"]),
        Route("/api/events", list_events, methods=["GET"]),
    ]
