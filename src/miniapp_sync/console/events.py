"""Trigger events of a tenant with their delivery attempts and outcomes, the tenant's subscriptions; redeliver."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from miniapp_sync.console.auth import Session
from miniapp_sync.console.site import PAGE_ROWS, PREFIX, Console, first, secured
from miniapp_sync.views import queries
from miniapp_sync.views.details import events
from miniapp_sync.views.pages import MAX_EVENT_ID
from miniapp_sync.webhooks.redelivery import RedeliveryRefused, redeliver

NOT_AFTER: Final = "after: expected a whole number (the last event id seen)"


def routes(console: Console) -> list[BaseRoute]:
    """Return the trigger events route."""
    store = console.runtime.store

    @console.page
    async def events_page(request: Request, session: Session) -> Response:
        query = request.query_params
        tenant = (query.get("tenant") or "").strip()[:200] or None
        ns = query.get("ns") or None
        after_text = query.get("after") or "0"
        if not after_text.isascii() or not after_text.isdigit() or int(after_text) > MAX_EVENT_ID:
            return console.refuse(request, session, NOT_AFTER, 400)
        installed = await console.call(store.list_installations)
        tenants = sorted({i.tenant for i in installed})
        page = subscriptions = None
        if tenant is not None:
            page = await console.call(events, store, tenant=tenant, ns=ns, after=int(after_text), limit=PAGE_ROWS)
            subscriptions = await console.call(queries.subscriptions, store, tenant=tenant, ns=ns)
        return console.render(
            request, "events.html", session,
            page=page, subscriptions=subscriptions, tenants=tenants, filters={"tenant": tenant, "ns": ns},
            full=page is not None and len(page.items) == PAGE_ROWS,
        )  # fmt: skip

    @console.action
    async def redeliver_event(request: Request, session: Session, form: Mapping[str, list[str]]) -> Response:
        id = request.path_params["id"]
        if not id.isascii() or not id.isdigit() or int(id) > MAX_EVENT_ID:
            return console.refuse(request, session, f"There is no trigger event {id[:40]!r}.", 404)
        try:
            await redeliver(store, console.jobs, int(id), first(form, "subscription") or "")
        except RedeliveryRefused as exc:
            return console.refuse(request, session, f"Not sent again: {exc}.", 404 if exc.missing else 409)
        back = {k: v for k in ("tenant", "ns", "after") if (v := first(form, k))}
        return secured(RedirectResponse(f"{PREFIX}/events?{urlencode(back)}#event-{id}", 303))

    return [
        Route(f"{PREFIX}/events", events_page, methods=["GET"]),
        Route(f"{PREFIX}/events/{{id}}/redeliver", redeliver_event, methods=["POST"]),
    ]
