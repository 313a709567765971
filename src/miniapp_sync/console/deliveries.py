"""Deliveries: the inbox and the rejection trail with filters, one delivery whole, replay and assign (issue 15).

The list's filters are the deliveries API's (``delivery_filter``), in the query string. A replay
is two steps, both POSTs: the first answers the preview (``bulk_replay.preview``: how many, per
event and installation, against which definition version), the second, confirmed, queues the
replay job (D36) and leads to its page, which follows the job to its report. Assigning an
unmatched delivery gives it to one of its MiniApp's installations and queues its drain.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from miniapp_sync.console.auth import Session
from miniapp_sync.console.site import PREFIX, Console, first, list_window, secured
from miniapp_sync.errors import MiniAppSyncError, UsageError
from miniapp_sync.store import Inbox
from miniapp_sync.store.deliveries import FILTER_FIELDS, REASONS, STATES
from miniapp_sync.views import ParameterError, queries
from miniapp_sync.views.deliveries import ReplayPreviewView, deliveries, delivery, delivery_filter
from miniapp_sync.webhooks import bulk_replay
from miniapp_sync.webhooks.assign import assign

MAX_TEXT: Final = 200  # characters of a filter field


def _given(values: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    """Return the filter fields set in a query string or a form (blank: not set); ``status`` may be several."""
    given: dict[str, Any] = {}
    for name in FILTER_FIELDS:
        texts = [text[:MAX_TEXT] for value in values.get(name, ()) if (text := value.strip())]
        if texts:
            given[name] = texts[: len(STATES)] if name == "status" else texts[0]
    return given


def _query(request: Request) -> dict[str, list[str]]:
    return {name: request.query_params.getlist(name) for name in FILTER_FIELDS}


def _selection(form: Mapping[str, list[str]], now: float) -> dict[str, object]:
    """Return the replay a form names: the ticked ids, or every delivery matching its filter; raise ParameterError."""
    if first(form, "scope") == "filter":
        return {"filter": delivery_filter(**_given(form), now=now).as_dict()}
    ids = [i for i in form.get("ids", []) if i][: bulk_replay.MAX_REPLAY]
    if not ids:
        raise ParameterError("ids", "no delivery is ticked", "tick the deliveries to replay, or replay all matching")
    return {"ids": ids}


def routes(console: Console) -> list[BaseRoute]:
    """Return the deliveries routes."""
    runtime = console.runtime
    store = runtime.store

    @console.page
    async def deliveries_page(request: Request, session: Session) -> Response:
        given = _given(_query(request))
        window = list_window(request)
        if window is None:
            return console.refuse(request, session, "That page link is not one this console made.", 400)
        try:
            chosen = delivery_filter(**given, now=store.clock.now())
        except ParameterError as exc:
            return console.refuse(request, session, f"The filter cannot be used: {exc}.", 400)
        page = await console.call(deliveries, runtime, window, chosen)
        tenants = sorted({i.tenant for i in await console.call(store.list_installations)})
        return console.render(
            request, "deliveries.html", session,
            page=page, filters={name: given.get(name) for name in FILTER_FIELDS}, tenants=tenants, states=STATES,
            reasons=REASONS,
        )  # fmt: skip

    @console.page
    async def delivery_page(request: Request, session: Session) -> Response:
        id = request.path_params["id"]
        found = await console.call(delivery, runtime, id)
        if found is None:
            return console.refuse(request, session, f"There is no delivery {id[:60]!r}.", 404)
        candidates = []
        if found.delivery.status == "unmatched":
            every = await console.call(store.list_installations, found.delivery.ns)
            candidates = [i for i in every if i.status != "uninstalled"]
        return console.render(request, "delivery.html", session, detail=found, candidates=candidates)

    @console.action
    async def replay(request: Request, session: Session, form: Mapping[str, list[str]]) -> Response:
        try:
            selection = _selection(form, store.clock.now())
            if first(form, "confirm") != "yes":
                found = await console.call(bulk_replay.preview, runtime, selection)
                preview = ReplayPreviewView.of(found)
                again = [(k, v) for k, values in form.items() if k not in ("csrf", "confirm") for v in values]
                return console.render(
                    request, "replay.html", session, preview=preview, selection=selection, again=again
                )
            queued = await bulk_replay.queue(runtime, console.jobs, selection)
        except ParameterError as exc:
            return console.refuse(request, session, f"Nothing replayed: {exc}.", 400)
        except UsageError as exc:
            return console.refuse(request, session, f"Nothing replayed: {exc}.", 404)
        except MiniAppSyncError as exc:
            return console.refuse(request, session, f"Nothing replayed: {exc}.", 409)
        return secured(RedirectResponse(f"{PREFIX}/deliveries/replays/{queued.job_id}", 303))

    @console.page
    async def replay_page(request: Request, session: Session) -> Response:
        job = await console.call(queries.job_run, store, request.path_params["job"][:64])
        if job.replay is None:
            return console.refuse(request, session, "There is no replay with that job.", 404)
        return console.render(request, "replay_job.html", session, job=job, replay=job.replay)

    @console.action
    async def assign_delivery(request: Request, session: Session, form: Mapping[str, list[str]]) -> Response:
        id = request.path_params["id"]
        installation = first(form, "installation") or ""
        if not id.isascii() or not id.isdigit() or len(id) > 18:
            return console.refuse(request, session, f"There is no unmatched delivery {id[:60]!r}.", 404)
        try:
            assigned = await assign(runtime, Inbox(store), int(id), installation)
        except MiniAppSyncError as exc:
            return console.refuse(request, session, f"Not assigned: {exc}.", 409)
        row = assigned.row
        if row.status == "pending" and row.installation_id is not None:
            await console.jobs.drain_inbox(row.ns, row.installation_id)
        return secured(RedirectResponse(f"{PREFIX}/deliveries/{id}", 303))

    return [
        Route(f"{PREFIX}/deliveries", deliveries_page, methods=["GET"]),
        Route(f"{PREFIX}/deliveries/replay", replay, methods=["POST"]),
        Route(f"{PREFIX}/deliveries/replays/{{job}}", replay_page, methods=["GET"]),
        Route(f"{PREFIX}/deliveries/{{id}}", delivery_page, methods=["GET"]),
        Route(f"{PREFIX}/deliveries/{{id}}/assign", assign_delivery, methods=["POST"]),
    ]
