"""Installations: the list (by MiniApp and status), one installation's detail, "sync now" and "reconnect"."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, cast, get_args
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from miniapp_sync.console.auth import Session
from miniapp_sync.console.site import PREFIX, Console, list_window, secured
from miniapp_sync.errors import MiniAppSyncError
from miniapp_sync.jobs.start import SyncRefused, start_sync
from miniapp_sync.store import InstallationStatus
from miniapp_sync.store.run_search import RunFilter
from miniapp_sync.views import OAuthLinkView, Window, queries
from miniapp_sync.views.details import installation_detail

STATUSES: Final = get_args(InstallationStatus)
MAX_JOBS: Final = 20  # jobs a page follows after "sync now" (one per resource)
RECENT: Final = 10  # runs the detail page shows; the runs page lists them all


def routes(console: Console) -> list[BaseRoute]:
    """Return the installations routes."""
    runtime = console.runtime
    store = runtime.store

    @console.page
    async def installations_page(request: Request, session: Session) -> Response:
        ns = request.query_params.get("ns") or None
        asked = request.query_params.get("status") or None
        if ns not in (None, *runtime.apps) or asked not in (None, *STATUSES):
            return console.refuse(request, session, "Unknown MiniApp or status in the filter.", 400)
        status = cast(InstallationStatus | None, asked)
        window = list_window(request)
        if window is None:
            return console.refuse(request, session, "That page link is not one this console made.", 400)
        page = await console.call(queries.installations, store, window, ns=ns, status=status)
        filters = {"ns": ns, "status": status}
        return console.render(request, "installations.html", session, page=page, filters=filters, statuses=STATUSES)

    @console.page
    async def installation_page(request: Request, session: Session) -> Response:
        id = request.path_params["id"]
        detail = await console.call(installation_detail, runtime, id)
        if detail is None:
            return console.refuse(request, session, f"There is no installation {id[:60]!r}.", 404)
        job_ids = [j[:64] for j in request.query_params.getlist("job")[:MAX_JOBS]]
        jobs = [await console.call(queries.job_run, store, job_id) for job_id in job_ids]
        runs = await console.call(queries.runs, store, Window(0, RECENT), RunFilter(installation_ids=(id,)))
        return console.render(request, "installation.html", session, detail=detail, jobs=jobs, runs=runs)

    @console.action
    async def sync_now(request: Request, session: Session, form: Mapping[str, list[str]]) -> Response:
        id = request.path_params["id"]
        resources = [r for r in form.get("resource", []) if r]
        try:
            _, receipts = await start_sync(runtime, console.jobs, id, resources)
        except SyncRefused as exc:
            hint = f" ({exc.hint})" if exc.hint else ""
            return console.refuse(request, session, f"No sync started: {exc}{hint}.", 404 if exc.missing else 400)
        query = urlencode([("job", r.id) for r in receipts if r.id is not None])
        return secured(RedirectResponse(f"{PREFIX}/installations/{id}?{query}#jobs", 303))

    @console.action
    async def reconnect(request: Request, session: Session, form: Mapping[str, list[str]]) -> Response:
        id = request.path_params["id"]
        installation = await console.call(store.get_installation, id)
        if installation is None:
            return console.refuse(request, session, f"There is no installation {id[:60]!r}.", 404)
        app = runtime.apps.get(installation.ns)
        if app is None:
            return console.refuse(request, session, f"This server does not serve {installation.ns!r}.", 409)
        try:
            link = runtime.installations.oauth.issue_link(app.definition, installation.tenant, reconnect=True)
        except MiniAppSyncError as exc:
            return console.refuse(request, session, f"No reconnect link: {exc}", 409)
        return console.render(
            request, "reconnect.html", session, 201, link=OAuthLinkView.of(link), installation=installation
        )

    return [
        Route(f"{PREFIX}/installations", installations_page, methods=["GET"]),
        Route(f"{PREFIX}/installations/{{id}}", installation_page, methods=["GET"]),
        Route(f"{PREFIX}/installations/{{id}}/sync", sync_now, methods=["POST"]),
        Route(f"{PREFIX}/installations/{{id}}/reconnect", reconnect, methods=["POST"]),
    ]
