"""Records: browse by tenant, MiniApp and content type, look one up by code, read its data and history (D39)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from miniapp_sync.console.auth import Session
from miniapp_sync.console.site import PREFIX, Console, list_window
from miniapp_sync.views import queries
from miniapp_sync.views.ids import record_key


def routes(console: Console) -> list[BaseRoute]:
    """Return the records routes."""
    store = console.runtime.store

    @console.page
    async def records_page(request: Request, session: Session) -> Response:
        query = request.query_params
        filters = {name: (query.get(name) or "").strip()[:200] or None for name in ("tenant", "ns", "type", "code")}
        window = list_window(request)
        if window is None:
            return console.refuse(request, session, "That page link is not one this console made.", 400)
        every = await console.call(store.list_installations, filters["ns"])
        chosen = [i for i in every if filters["tenant"] in (None, i.tenant)]
        tenants = {i.id: i.tenant for i in every}
        page = (
            await console.call(queries.records, store, window, [i.id for i in chosen], filters["type"], filters["code"])
            if chosen
            else None
        )
        known_tenants = sorted({i.tenant for i in every})
        return console.render(
            request, "records.html", session, page=page, filters=filters, tenants=tenants, known_tenants=known_tenants
        )

    @console.page
    async def record_page(request: Request, session: Session) -> Response:
        id = request.path_params["id"]
        window = list_window(request)
        found = await console.call(queries.record, store, id)
        if found is None or window is None:
            return console.refuse(request, session, "There is no such record.", 404)
        history = await console.call(queries.record_history, store, window, id)
        key = record_key(id)
        installation = await console.call(store.get_installation, key[0]) if key else None
        return console.render(request, "record.html", session, record=found, history=history, installation=installation)

    return [
        Route(f"{PREFIX}/records", records_page, methods=["GET"]),
        Route(f"{PREFIX}/records/{{id}}", record_page, methods=["GET"]),
    ]
