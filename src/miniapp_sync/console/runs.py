"""Runs: the filterable list (live progress of running ones), one run's detail, and "retry" for a failed run.

Filters live in the query string (bookmarkable) and read as the API's do: ``since``/``until``
take the run search's moments (``today``, ``24h``, ISO 8601). Figures come from ``RunView``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, get_args
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from miniapp_sync.console.auth import Session
from miniapp_sync.console.site import PREFIX, Console, first, followed_jobs, list_window, secured
from miniapp_sync.jobs.start import SyncRefused, retry_run
from miniapp_sync.store import RunStatus
from miniapp_sync.store.run_search import RunFilter
from miniapp_sync.views import ParameterError, moment, queries

STATUSES: Final = get_args(RunStatus)
RETRYABLE: Final = frozenset({"failed", "partial", "interrupted", "abandoned"})
FILTERS: Final = ("tenant", "ns", "resource", "status", "since", "until")


def runs_url(**filters: str) -> str:
    """Return the runs list with these filters (where an overview figure or an installation leads)."""
    return f"{PREFIX}/runs?{urlencode(filters)}"


def routes(console: Console) -> list[BaseRoute]:
    """Return the runs routes."""
    runtime = console.runtime
    store = runtime.store
    resources = sorted({k for a in runtime.apps.values() if a.definition.sync for k in a.definition.sync.resources})

    def run_filter(given: dict[str, str | None], held: set[str]) -> RunFilter:
        """Return the search the query asks for; raise ParameterError naming the filter at fault.

        ``held``: the MiniApps the store has installations of; the overview shows (and links) those too.
        """
        known = sorted({*runtime.apps, *held})
        if given["ns"] not in (None, *known):
            raise ParameterError("ns", f"expected one of {', '.join(known)}, found {given['ns']!r}")
        if given["status"] not in (None, *STATUSES):
            raise ParameterError("status", f"expected one of {', '.join(STATUSES)}, found {given['status']!r}")
        now = store.clock.now()
        since, until = given["since"], given["until"]
        return RunFilter(
            None, given["tenant"], given["ns"], given["resource"], (given["status"],) if given["status"] else (),  # type: ignore[arg-type]  # checked above
            None if since is None else moment(since, now, field="since"),
            None if until is None else moment(until, now, field="until"),
        )  # fmt: skip

    @console.page
    async def runs_page(request: Request, session: Session) -> Response:
        given = {name: (request.query_params.get(name) or "").strip()[:200] or None for name in FILTERS}
        every = await console.call(store.list_installations)
        try:
            where = run_filter(given, {i.ns for i in every})
        except ParameterError as exc:
            return console.refuse(request, session, f"The {exc.field} filter: {exc.message}.", 400)
        window = list_window(request)
        if window is None:
            return console.refuse(request, session, "That page link is not one this console made.", 400)
        page = await console.call(queries.runs, store, window, where)
        tenants = sorted({i.tenant for i in every})
        return console.render(
            request, "runs.html", session, page=page, filters=given, statuses=STATUSES, resources=resources,
            tenants=tenants,
        )  # fmt: skip

    @console.page
    async def run_page(request: Request, session: Session) -> Response:
        run = await console.call(queries.run, store, request.path_params["id"])
        if run is None:
            return console.refuse(request, session, "There is no such run.", 404)
        jobs = await followed_jobs(console, request)
        return console.render(request, "run.html", session, run=run, jobs=jobs, retryable=run.status in RETRYABLE)

    @console.action
    async def retry(request: Request, session: Session, form: Mapping[str, list[str]]) -> Response:
        id = request.path_params["id"]
        try:
            _, receipts = await retry_run(runtime, console.jobs, id, full=first(form, "full") == "true")
        except SyncRefused as exc:
            if exc.running:
                return console.refuse(request, session, f"Not retried: {exc}; follow that run.", 409)
            return console.refuse(request, session, f"Not retried: {exc}.", 404 if exc.missing else 400)
        query = urlencode([("job", r.id) for r in receipts if r.id is not None])
        return secured(RedirectResponse(f"{PREFIX}/runs/{id}?{query}#jobs", 303))

    return [
        Route(f"{PREFIX}/runs", runs_page, methods=["GET"]),
        Route(f"{PREFIX}/runs/{{id}}", run_page, methods=["GET"]),
        Route(f"{PREFIX}/runs/{{id}}/retry", retry, methods=["POST"]),
    ]
