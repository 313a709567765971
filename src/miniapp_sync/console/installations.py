"""Installations: the list (by MiniApp and status), one installation's detail and its actions.

The actions (admin only, CSRF'd, through ``Console.action``): "sync now" (all or one resource,
full or from the checkpoint), pause and resume the schedules, reconnect, and uninstall after a
confirmation page where the operator types the tenant.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Final, cast, get_args
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from miniapp_sync.console.auth import Session
from miniapp_sync.console.runs import runs_url
from miniapp_sync.console.site import PREFIX, Console, first, followed_jobs, list_window, secured
from miniapp_sync.errors import MiniAppSyncError
from miniapp_sync.jobs.start import SyncRefused, start_sync
from miniapp_sync.store import Installation, InstallationStatus
from miniapp_sync.store.run_search import RunFilter
from miniapp_sync.views import OAuthLinkView, Window, queries
from miniapp_sync.views.details import installation_detail

log = logging.getLogger("miniapp_sync.console")

STATUSES: Final = get_args(InstallationStatus)
RECENT: Final = 10  # runs the detail page shows; the runs page lists them all


def routes(console: Console) -> list[BaseRoute]:
    """Return the installations routes."""
    runtime = console.runtime
    store = runtime.store

    @console.page
    async def installations_page(request: Request, session: Session) -> Response:
        ns = request.query_params.get("ns") or None
        asked = request.query_params.get("status") or None
        held = {i.ns for i in await console.call(store.list_installations)}  # the overview links these too
        if ns not in (None, *runtime.apps, *held) or asked not in (None, *STATUSES):
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
        detail = await console.call(installation_detail, runtime, id, next_sync=console.jobs.work.next_sync_at)
        if detail is None:
            return console.refuse(request, session, f"There is no installation {id[:60]!r}.", 404)
        jobs = await followed_jobs(console, request)
        runs = await console.call(queries.runs, store, Window(0, RECENT), RunFilter(installation_ids=(id,)))
        all_runs = runs_url(tenant=detail.installation.tenant, ns=detail.installation.ns)
        return console.render(
            request, "installation.html", session, detail=detail, jobs=jobs, runs=runs, all_runs=all_runs
        )

    @console.action
    async def sync_now(request: Request, session: Session, form: Mapping[str, list[str]]) -> Response:
        id = request.path_params["id"]
        resources = [r for r in form.get("resource", []) if r]
        full = first(form, "full") == "true"
        try:
            _, receipts = await start_sync(runtime, console.jobs, id, resources, full=full)
        except SyncRefused as exc:
            hint = f" ({exc.hint})" if exc.hint else ""
            return console.refuse(request, session, f"No sync started: {exc}{hint}.", 404 if exc.missing else 400)
        query = urlencode([("job", r.id) for r in receipts if r.id is not None])
        return secured(RedirectResponse(f"{PREFIX}/installations/{id}?{query}#jobs", 303))

    async def existing(request: Request, session: Session) -> Installation | Response:
        """Return the installation the path names, or the page saying there is none (404)."""
        id = request.path_params["id"]
        found = await console.call(store.get_installation, id)
        if found is None:
            return console.refuse(request, session, f"There is no installation {id[:60]!r}.", 404)
        return found

    @console.action
    async def reconnect(request: Request, session: Session, form: Mapping[str, list[str]]) -> Response:
        installation = await existing(request, session)
        if isinstance(installation, Response):
            return installation
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

    def steer(
        act: Callable[[str], Installation], done: str, *, confirm: bool = False
    ) -> Callable[[Request], Awaitable[Response]]:
        """An action that changes an installation (pause, resume, uninstall), then shows it again.

        ``confirm``: the form must carry the tenant's name, typed on the confirmation page.
        """

        @console.action
        async def endpoint(request: Request, session: Session, form: Mapping[str, list[str]]) -> Response:
            found = await existing(request, session)
            if isinstance(found, Response):
                return found
            id = found.id
            if confirm and (first(form, "tenant") or "").strip() != found.tenant:
                # The confirmation again, saying why: the operator retypes the name there.
                view = await console.call(queries.installation, store, id)
                mismatch = f"Not uninstalled: type the tenant's name exactly ({found.tenant}) to confirm."
                return console.render(request, "uninstall.html", session, installation=view, mismatch=mismatch)
            await console.call(act, id)
            console.changed()
            log.info(done, extra={"installation": id, "tenant": found.tenant})
            return secured(RedirectResponse(f"{PREFIX}/installations/{id}", 303))

        return endpoint

    @console.page
    async def confirm_uninstall(request: Request, session: Session) -> Response:
        id = request.path_params["id"]
        found = await console.call(queries.installation, store, id)
        if found is None:
            return console.refuse(request, session, f"There is no installation {id[:60]!r}.", 404)
        if not session.can_act:
            return console.refuse(request, session, "This is a read-only (viewer) session: it cannot uninstall.")
        return console.render(request, "uninstall.html", session, installation=found, mismatch=None)

    service = runtime.installations
    pause = steer(service.pause, "installation paused through the console")
    resume = steer(service.resume, "installation resumed through the console")
    uninstall = steer(service.uninstall, "installation uninstalled through the console", confirm=True)
    return [
        Route(f"{PREFIX}/installations", installations_page, methods=["GET"]),
        Route(f"{PREFIX}/installations/{{id}}", installation_page, methods=["GET"]),
        Route(f"{PREFIX}/installations/{{id}}/sync", sync_now, methods=["POST"]),
        Route(f"{PREFIX}/installations/{{id}}/reconnect", reconnect, methods=["POST"]),
        Route(f"{PREFIX}/installations/{{id}}/pause", pause, methods=["POST"]),
        Route(f"{PREFIX}/installations/{{id}}/resume", resume, methods=["POST"]),
        Route(f"{PREFIX}/installations/{{id}}/uninstall", confirm_uninstall, methods=["GET"]),
        Route(f"{PREFIX}/installations/{{id}}/uninstall", uninstall, methods=["POST"]),
    ]
