"""Dead letters: the records a bulk run could not write and the deliveries given up on, listed and one whole.

The list filters by MiniApp, tenant and kind (the overview's "record dead letters" figure leads
to its MiniApp's records); oldest first, the order to replay them in, one page at a time however
many a tenant has. A letter's page shows the reason, the payload with its installation's
credential values masked (D30), the run it came from, or the delivery it was.
"""

from __future__ import annotations

from typing import Final, get_args

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from miniapp_sync.console.auth import Session
from miniapp_sync.console.site import PREFIX, Console, list_window
from miniapp_sync.store import DeadLetterKind
from miniapp_sync.views import queries

KINDS: Final[tuple[str, ...]] = get_args(DeadLetterKind)


def routes(console: Console) -> list[BaseRoute]:
    """Return the dead letters routes."""
    runtime = console.runtime
    store = runtime.store

    @console.page
    async def dead_letters_page(request: Request, session: Session) -> Response:
        params = request.query_params
        ns, tenant, kind = (params.get(name) or None for name in ("ns", "tenant", "kind"))
        if kind not in (None, *KINDS):
            return console.refuse(request, session, f"Unknown kind in the filter: expected {' or '.join(KINDS)}.", 400)
        every = await console.call(store.list_installations)
        window = list_window(request)
        if window is None:
            return console.refuse(request, session, "That page link is not one this console made.", 400)
        chosen = [i for i in every if ns in (None, i.ns) and tenant in (None, i.tenant)]
        ids = None if ns is None and tenant is None else [i.id for i in chosen]
        page = await console.call(
            queries.dead_letters,
            runtime,
            window,
            installation_ids=ids,
            kind=kind,  # type: ignore[arg-type]  # checked
        )
        namespaces = sorted({*runtime.apps, *(i.ns for i in every)})
        return console.render(
            request, "dead_letters.html", session,
            page=page, filters={"ns": ns, "tenant": tenant, "kind": kind}, kinds=KINDS, namespaces=namespaces,
            tenants=sorted({i.tenant for i in every}), ns_of={i.id: i.ns for i in every},
        )  # fmt: skip

    @console.page
    async def dead_letter_page(request: Request, session: Session) -> Response:
        id = request.path_params["id"]
        number = int(id) if id.isascii() and id.isdigit() and len(id) <= 18 else None
        found = None if number is None else await console.call(queries.dead_letter, runtime, number)
        if found is None:
            return console.refuse(request, session, f"There is no dead letter {id[:60]!r}.", 404)
        installation = await console.call(store.get_installation, found.installation_id)
        return console.render(request, "dead_letter.html", session, letter=found, installation=installation)

    return [
        Route(f"{PREFIX}/dead-letters", dead_letters_page, methods=["GET"]),
        Route(f"{PREFIX}/dead-letters/{{id}}", dead_letter_page, methods=["GET"]),
    ]
