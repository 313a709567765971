"""The operator console under ``/console`` (D40): server-rendered pages over the view models, htmx for polling.

Served by ``serve`` when an admin or a viewer token is configured, and off otherwise. One
module per page family (``overview``, ``installations``, ``deliveries``, ``dead_letters``, ``records``,
``events``, ``runs``),
each returning its routes; ``site`` holds the frame they share (templates, the session and
CSRF guard, security headers), ``auth`` the login and the sessions. Adding a page: a module
with ``routes(console)``, a template extending ``base.html``, a line in ``PAGES`` and in the
navigation of ``base.html``. jinja2 and itsdangerous are imported only when the console is on.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from miniapp_sync.console import dead_letters, deliveries, events, installations, login, overview, records, runs
from miniapp_sync.console.auth import Gate
from miniapp_sync.console.site import PREFIX, Console
from miniapp_sync.jobs import JobQueue
from miniapp_sync.runtime import Runtime

PAGES = (login, overview, installations, runs, deliveries, dead_letters, records, events)
STATIC = Path(__file__).parent / "static"


def console_routes(
    runtime: Runtime,
    jobs: JobQueue,
    *,
    admin_token: str | None,
    viewer_token: str | None,
    changed: Callable[[], None],
) -> list[BaseRoute]:
    """Return the console's routes (its pages and its static files); a session key derived from the secret key.

    ``changed`` is told when an action changed an installation (the webhook receiver's directory forgets it).
    """
    gate = Gate(
        runtime.installations.vault.derive("console session"),
        admin_token=admin_token,
        viewer_token=viewer_token,
        clock=runtime.clock,
    )
    console = Console(runtime, jobs, gate, changed=changed)
    routes: list[BaseRoute] = [Route(PREFIX, _to_front, methods=["GET"])]
    routes += [route for page in PAGES for route in page.routes(console)]
    routes.append(Mount(f"{PREFIX}/static", StaticFiles(directory=STATIC), name="console-static"))
    return routes


async def _to_front(request: Request) -> Response:
    return RedirectResponse(f"{PREFIX}/", 308)
