"""The front page: the overview view (D37), the same figures ``GET /api/overview`` answers."""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from miniapp_sync.console.auth import Session
from miniapp_sync.console.runs import runs_url
from miniapp_sync.console.site import PREFIX, Console
from miniapp_sync.store.overview import BACKLOG_STATES
from miniapp_sync.views.overview import overview


def installations_url(ns: str, status: str) -> str:
    """Return the installations list filtered to one MiniApp and status (where an overview figure leads)."""
    return f"{PREFIX}/installations?{urlencode({'ns': ns, 'status': status})}"


def deliveries_url(ns: str, *states: str, reason: str | None = None) -> str:
    """Return the deliveries list of one MiniApp in any of ``states``, refused for ``reason`` (an inbox figure's)."""
    filters = [("ns", ns), *(("status", state) for state in states), *([("reason", reason)] if reason else [])]
    return f"{PREFIX}/deliveries?{urlencode(filters)}"


def dead_letters_url(ns: str, kind: str) -> str:
    """Return the dead letters list filtered to one MiniApp and kind (where the record dead letters figure leads)."""
    return f"{PREFIX}/dead-letters?{urlencode({'ns': ns, 'kind': kind})}"


def routes(console: Console) -> list[BaseRoute]:
    """Return the overview's route."""
    served = sorted(console.runtime.apps)

    @console.page
    async def overview_page(request: Request, session: Session) -> Response:
        view = await console.call(overview, console.runtime.store, served)
        return console.render(
            request, "overview.html", session,
            view=view, installations_url=installations_url, deliveries_url=deliveries_url, runs_url=runs_url,
            dead_letters_url=dead_letters_url, backlog_states=BACKLOG_STATES,
        )  # fmt: skip

    return [Route(f"{PREFIX}/", overview_page, methods=["GET"])]
