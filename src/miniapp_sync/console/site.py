"""The console's frame: templates, the guard every page and action goes through, and the headers every answer carries.

A page module (``overview``, ``installations``, …) declares its routes with ``Console.page``
(a GET for any session; no session: to the login form) and ``Console.action`` (a POST: a
session, the admin role and the session's CSRF token, else 403, before the handler runs).
Pages render a template of ``templates/`` that extends ``base.html`` and uses the macros of
``macros.html``; data comes from the view models (D37), never from a query of the page's own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final, ParamSpec, TypeVar
from urllib.parse import parse_qs, urlencode

import jinja2
import orjson
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from miniapp_sync.console.auth import COOKIE, Gate, Session
from miniapp_sync.jobs import JobQueue
from miniapp_sync.runtime import Runtime
from miniapp_sync.views import JobRunView, ParameterError, Window, queries
from miniapp_sync.views.ids import record_key

PREFIX: Final = "/console"
MAX_FORM: Final = 16 * 1024  # bytes of a console form: a token, a CSRF token, a few choices
PAGE_ROWS: Final = 50  # rows a list shows: one page, then a link to the next
MAX_JOBS: Final = 20  # jobs a page follows after "sync now" or "retry" (one per resource)
POLL_SECONDS: Final = 3
CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

PageHandler = Callable[[Request, Session], Awaitable[Response]]
ActionHandler = Callable[[Request, Session, Mapping[str, list[str]]], Awaitable[Response]]

P = ParamSpec("P")
T = TypeVar("T")


class FormError(ValueError):
    """A form that cannot be read (too big, not URL-encoded)."""


async def read_form(request: Request) -> dict[str, list[str]]:
    """Return a URL-encoded form body's fields (bounded; the console posts nothing else)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip()
    if kind != "application/x-www-form-urlencoded":
        raise FormError(f"expected a form (application/x-www-form-urlencoded), found {kind[:60] or 'no type'}")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM:
            raise FormError(f"expected a form of at most {MAX_FORM} bytes")
    try:
        return parse_qs(body.decode(), keep_blank_values=True, max_num_fields=50)
    except (UnicodeDecodeError, ValueError) as exc:
        raise FormError(f"not a form: {exc}") from None


def first(form: Mapping[str, list[str]], name: str) -> str | None:
    """Return a form field's first value, or None."""
    values = form.get(name)
    return values[0] if values else None


def pretty(value: Any) -> str:
    """Return data as indented JSON for a <pre> (integers of any size stay exact)."""
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()


class Console:
    """What every page needs: the runtime, the job queue, the gate, the templates."""

    def __init__(self, runtime: Runtime, jobs: JobQueue, gate: Gate, *, changed: Callable[[], None]) -> None:
        self.runtime = runtime
        self.jobs = jobs
        self.gate = gate
        self.changed = changed  # told when an installation changed (pause, resume, uninstall)
        self.templates = jinja2.Environment(
            loader=jinja2.PackageLoader("miniapp_sync.console", "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )
        self.templates.filters["pretty"] = pretty
        self.templates.filters["record_key"] = record_key  # a record id's (installation, content type, code)
        self.templates.globals.update(prefix=PREFIX, poll_seconds=POLL_SECONDS, served=sorted(runtime.apps))

    async def call(self, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a store read off the event loop (the webhook receiver shares it)."""
        return await asyncio.to_thread(function, *args, **kwargs)

    def render(
        self, request: Request, template: str, session: Session | None, status: int = 200, **context: Any
    ) -> Response:
        """Render a page with the headers every console answer carries."""
        html = self.templates.get_template(template).render(
            request=request, session=session, url=lambda **changes: url_with(request, **changes), **context
        )
        return secured(HTMLResponse(html, status))

    def refuse(self, request: Request, session: Session | None, message: str, status: int = 403) -> Response:
        """Render a refusal (403: not allowed; 400: a form that cannot be used)."""
        title = "Not allowed" if status == 403 else "Cannot do that"
        return self.render(request, "refused.html", session, status, title=title, message=message)

    def page(self, handler: PageHandler) -> Callable[[Request], Awaitable[Response]]:
        """Wrap a GET handler: without a session, go to the login form (and come back after)."""

        async def endpoint(request: Request) -> Response:
            session = self.gate.session(request.cookies.get(COOKIE))
            if session is None:
                back = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                login = f"{PREFIX}/login?{urlencode({'next': back})}"
                if request.headers.get("hx-request"):  # a poll: send the whole page there, not into the region
                    return secured(Response(status_code=204, headers={"HX-Redirect": login}))
                return secured(RedirectResponse(login, 303))
            return await handler(request, session)

        endpoint.__name__ = handler.__name__
        return endpoint

    def action(self, handler: ActionHandler) -> Callable[[Request], Awaitable[Response]]:
        """Wrap a POST handler: refuse (403) without a session, for a viewer, or without the session's CSRF token."""

        async def endpoint(request: Request) -> Response:
            session = self.gate.session(request.cookies.get(COOKIE))
            if session is None:
                return self.refuse(request, None, "Your session has ended: log in again.")
            if not session.can_act:
                return self.refuse(request, session, "This is a read-only (viewer) session: it cannot change anything.")
            try:
                form = await read_form(request)
            except FormError as exc:
                return self.refuse(request, session, f"The form could not be read: {exc}.", 400)
            if not session.check_csrf(first(form, "csrf")):
                return self.refuse(request, session, "The form is missing its security token: reload the page.")
            return await handler(request, session, form)

        endpoint.__name__ = handler.__name__
        return endpoint


def secured(response: Response) -> Response:
    """Add the console's security headers (CSP, no framing, no caching) to an answer."""
    response.headers.update(SECURITY_HEADERS)
    return response


def url_with(request: Request, **changes: str | None) -> str:
    """Return this page's URL with some query parameters changed (None: removed); a new filter starts at page one."""
    dropped = {*changes, *(("cursor", "after") if set(changes) - {"cursor", "after"} else ())}
    # Every value of a repeated parameter is kept (?status=pending&status=failed: the backlog).
    kept = [(k, v) for k, v in request.query_params.multi_items() if k not in dropped and v != ""]
    kept += [(k, v) for k, v in changes.items() if v is not None and v != ""]
    return request.url.path + (f"?{urlencode(kept)}" if kept else "")


def list_window(request: Request) -> Window | None:
    """Return the page a list asks for (?cursor=…), one console page long; None when the cursor is not ours."""
    try:
        return Window.of(PAGE_ROWS, request.query_params.get("cursor") or None)
    except ParameterError:
        return None


async def followed_jobs(console: Console, request: Request) -> list[JobRunView]:
    """Return what the jobs a page was sent back with (?job=…, after "sync now" or "retry") came to."""
    ids = [j[:64] for j in request.query_params.getlist("job")[:MAX_JOBS]]
    return [await console.call(queries.job_run, console.runtime.store, id) for id in ids]
