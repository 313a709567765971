"""One sync run: its status, per-resource stats and error (the runs list with its filters comes with the runs API)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from miniapp_sync.console.auth import Session
from miniapp_sync.console.site import PREFIX, Console
from miniapp_sync.views import RunView


def routes(console: Console) -> list[BaseRoute]:
    """Return the run route."""
    store = console.runtime.store

    @console.page
    async def run_page(request: Request, session: Session) -> Response:
        found = await console.call(store.get_run, request.path_params["id"])
        if found is None:
            return console.refuse(request, session, "There is no such run.", 404)
        installation = await console.call(store.get_installation, found.installation_id)
        return console.render(request, "run.html", session, run=RunView.of(found), installation=installation)

    return [Route(f"{PREFIX}/runs/{{id}}", run_page, methods=["GET"])]
