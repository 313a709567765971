"""The ASGI application: webhook and OAuth install routes, the management API, metrics, health (D31).

Public routes (what providers and browsers reach): ``POST /miniapps/{ns}/webhooks`` and
``/miniapps/{ns}/webhooks/{installation}`` (D24), ``/miniapps/{ns}/oauth2`` (started only from a
signed link that ``POST /api/oauth-links`` or ``miniapp-sync oauth-link`` issues, D31a), ``/healthz``
(the process is up), ``/readyz`` (the store and, on PostgreSQL, the queue can serve) and
``/metrics``, and the operator console under ``/console`` (``miniapp_sync.console``, D40) when
an admin or a viewer token is set. Every request leaves one access log line
(``miniapp_sync.access``): method, route template, status, duration; never the query string or a
header. The management API under ``/api``
(``server/management.py``, trigger events included) needs ``Authorization: Bearer <admin
token>``; without a configured token it is closed. Its OpenAPI document, ``/api/openapi.json``,
is served to anyone: it holds no data. Bind to 127.0.0.1 unless told otherwise. Everything that
is not an answer is a job of the deployment's queue (D36): a sync started through the API, the
initial import after an install, the drain of the inbox after deliveries. While the app lives,
the embedded queue runs those jobs and the schedules in this process, or in the processor child
that ``serve --processor separate`` forks (``jobs/separate.py``); on PostgreSQL, workers do.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import html
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Match, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from miniapp_sync.errors import InstallationConflict, InstallationError, MiniAppSyncError, SealError, preview
from miniapp_sync.jobs import JobQueue, Work, deployment_queue
from miniapp_sync.runtime import MiniApp, Runtime
from miniapp_sync.server.deliveries import delivery_routes
from miniapp_sync.server.management import management_routes
from miniapp_sync.server.openapi import Param, Reply, document, error, ok, operation
from miniapp_sync.server.steering import steering_routes
from miniapp_sync.server.webhooks import WebhookEndpoint, assign_endpoint, metrics_endpoint, webhook_params
from miniapp_sync.store import Installation
from miniapp_sync.store.health import not_ready
from miniapp_sync.sync.metrics import SyncMetrics
from miniapp_sync.views import JobRunView, queries
from miniapp_sync.webhooks.metrics import WebhookMetrics
from miniapp_sync.webhooks.service import WebhookService
from miniapp_sync.webhooks.settings import WebhookSettings

OPENAPI_PATH = "/api/openapi.json"  # served without the token: it holds no data, and clients need it to start
log = logging.getLogger("miniapp_sync.server")
access = logging.getLogger("miniapp_sync.access")


class AdminGuard:
    """Require the admin bearer token on /api (compared in constant time)."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/api") and scope["path"] != OPENAPI_PATH:
            if not self.token:
                hint = "start serve with --admin-token"
                response = error(403, "forbidden", "the management API is closed: set an admin token", hint=hint)
                return await response(scope, receive, send)
            given = dict(scope["headers"]).get(b"authorization", b"")
            if not hmac.compare_digest(given, f"Bearer {self.token}".encode()):
                # Who knocked, not what they sent: the header may hold a mistyped real token.
                client = scope.get("client")
                log.warning(
                    "management API refused: missing or wrong admin token",
                    extra={"method": scope["method"], "path": scope["path"], "client": client[0] if client else None},
                )
                hint = "send Authorization: Bearer <admin token>"
                response = error(401, "unauthorized", "missing or wrong admin token", hint=hint)
                return await response(scope, receive, send)
        await self.app(scope, receive, send)


_LINK_NEEDED = (
    "An install starts from a link the operator issues (miniapp-sync oauth-link, or POST /api/oauth-links); "
    "such a link works for 10 minutes. Ask them for a new one."
)


def _page(title: str, message: str, *, status: int, script: str = "") -> HTMLResponse:
    body = (
        f"<!doctype html><meta charset=utf-8><title>{html.escape(title)}</title>"
        f"<h1>{html.escape(title)}</h1><p>{html.escape(message)}</p>{script}"
    )
    return HTMLResponse(body, status)


class Server(Starlette):
    """The app: Starlette, except that webhook deliveries go straight to their endpoint (the hot path)."""

    def __init__(self, *args: Any, webhook: WebhookEndpoint, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.webhook = webhook

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await super().__call__(scope, receive, send)
        started = time.perf_counter()
        if scope["method"] == "POST":
            params = webhook_params(scope)
            if params is not None:
                scope["app"] = self
                scope["path_params"] = params
                status = await self.webhook(scope, receive, send)
                # An accepted delivery is in the inbox, which is its record: its line is debug, so
                # the hot path does not format one per delivery; a refusal is logged at info.
                level = logging.DEBUG if status is not None and status < 400 else logging.INFO
                if access.isEnabledFor(level):
                    template = "/miniapps/{ns}/webhooks" + ("/{installation}" if "installation" in params else "")
                    _access(level, scope, template, status, started, ns=params["ns"])
                return None
        status = 500  # what the client sees when the app fails before it answers

        async def sending(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await super().__call__(scope, receive, sending)
        finally:
            if access.isEnabledFor(logging.INFO):
                _access(logging.INFO, scope, self._template(scope), status, started)

    def _template(self, scope: Scope) -> str | None:
        """Return the route template a request matched (a partial match: the route, another method)."""
        routes = (r for r in self.router.routes if isinstance(r, Route) and r.matches(scope)[0] is not Match.NONE)
        return next((r.path for r in routes), None)


async def _no_route(request: Request, exc: Exception) -> Response:
    """Answer what Starlette refuses itself: a path no route serves, a method its route does not take.

    Under /api in the one error shape (D37), so a client reads every refusal the same way; elsewhere
    (the console, OAuth, health) as Starlette's plain text, as before. The Allow header stays.
    """
    assert isinstance(exc, HTTPException)
    path = request.url.path
    if not path.startswith("/api"):
        return PlainTextResponse(exc.detail, exc.status_code, headers=exc.headers)
    headers = dict(exc.headers or {})
    hint = None
    if exc.status_code == 404:
        type, message = "not_found", f"no operation at {preview(path)}"
    elif exc.status_code == 405:
        type, message = "method_not_allowed", f"{request.method} is not an operation of {preview(path)}"
        # Starlette lists a route's methods in set order, which varies between runs: sorted, it does not.
        headers["Allow"] = ", ".join(sorted(headers.get("Allow", "").split(", ")))
        hint = f"allowed: {headers['Allow']}"
    else:
        type, message = "bad_request", exc.detail
    response = error(exc.status_code, type, message, hint=hint)
    response.headers.update(headers)
    return response


def _access(level: int, scope: Scope, route: str | None, status: int | None, started: float, **fields: str) -> None:
    """Log one request by its route template: the ids in its path and its query string stay out of the log."""
    ms = round((time.perf_counter() - started) * 1000, 2)
    extra = {"method": scope["method"], "route": route, "status": status, "ms": ms, **fields}
    access.log(level, "request", extra=extra)


def create_app(
    runtime: Runtime,
    *,
    admin_token: str | None = None,
    viewer_token: str | None = None,
    webhooks: WebhookSettings | WebhookService | None = None,
    queue: JobQueue | None = None,
    default_schedule: str | None = None,
    concurrency: int = 4,
) -> Starlette:
    """Build the ASGI app over a runtime that serves ``runtime.apps``.

    ``webhooks`` tunes the webhook runtime, or is one the caller built. ``queue`` is the
    deployment's (``deployment_queue`` of the store's backend unless given), whose ``Work`` runs
    this app's webhook processor and delivery; ``default_schedule`` (cron) schedules the MiniApps
    without a schedule of their own; ``concurrency`` is how many jobs the embedded queue runs at once.
    The operator console (``/console``) is on when an admin or a viewer token is given (D40).
    """
    # Embedded, this process's queue processes and syncs; scaled out the workers do, and this
    # process exports only what it receives.
    runs_jobs = queue.runs_here if queue is not None else not runtime.backend.shared_queue
    if isinstance(webhooks, WebhookService):
        service = webhooks
    else:
        service = WebhookService(
            runtime, settings=webhooks, metrics=WebhookMetrics(processing=runs_jobs), processes_here=runs_jobs
        )
    if runs_jobs and runtime.engine.metrics is None:
        runtime.engine.metrics = SyncMetrics(service.metrics.registry)
    jobs = queue or deployment_queue(
        Work(
            runtime,
            drain=service.processor.drain_installation,
            deliver=service.delivery.deliver_due,
            default_schedule=default_schedule,
        )
    )
    service.connect(jobs)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            async with jobs.serving(concurrency=concurrency):
                try:
                    yield
                finally:
                    await service.stop()  # commit what was received, and ask for its drain, while the queue is open
        finally:
            await service.close()  # after the queue stopped: a deliver job running until then still had its session

    async def installed(installation: Installation) -> None:
        """A new installation: its deliveries may arrive at once, and its first import is queued (#13 item 8)."""
        service.directory.forget()
        try:
            await jobs.initial_sync(installation.ns, installation.id)
        except MiniAppSyncError as exc:  # installed all the same; the operator can start it later
            log.error("could not queue the initial sync of %s for %s: %s", installation.ns, installation.tenant, exc)

    def miniapp(ns: str) -> MiniApp:
        if ns not in runtime.apps:
            raise InstallationError(f"this server does not serve the MiniApp {ns!r}")
        return runtime.apps[ns]

    async def oauth(request: Request) -> Response:
        """Start an OAuth install from an operator's signed link (?start=…), or complete it (?code&state).

        Nothing else starts a flow (D31a). A bare ?tenant= is refused, so nobody can choose the tenant
        or the provider host, and a callback changes an installation only when it fully succeeds.
        """
        ns = request.path_params["ns"]
        query = request.query_params
        try:
            app = miniapp(ns)
            if "error" in query:
                return _page("Connection refused", f"The provider said: {query.get('error')}", status=400)
            if "code" in query:
                if not query.get("state"):
                    return _page("Connection failed", "The redirect carries no state.", status=400)
                installation = await runtime.installations.oauth.complete(app.definition, query["state"], query["code"])
                await installed(installation)  # its deliveries may start arriving at once; its first import
                script = (
                    "<script>window.opener&&window.opener.postMessage("
                    f"{{type:'miniapp-oauth',ns:{ns!r},status:'connected'}},'*');window.close()</script>"
                )
                return _page(
                    "Connected",
                    f"{installation.ns} is connected. You can close this window.",
                    status=200,
                    script=script,
                )
            if not query.get("start"):
                return _page("Install link needed", _LINK_NEEDED, status=403)
            return RedirectResponse(runtime.installations.oauth.start(app.definition, query["start"]), 302)
        except SealError as exc:
            return _page("Install link refused", f"This install link cannot be used: {exc}. {_LINK_NEEDED}", status=403)
        except InstallationConflict as exc:
            return _page("Connection refused", str(exc), status=409)
        except MiniAppSyncError as exc:
            return _page("Connection failed", str(exc), status=400)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"ok": True, "miniapps": sorted(runtime.apps)})

    async def readyz(request: Request) -> Response:
        """Ready when the store answers at this code's schema revision and, on PostgreSQL, the queue answers."""
        reason = await asyncio.to_thread(not_ready, runtime.store.database)
        if reason is None:
            reason = await jobs.not_ready()  # the in-process queue always can
        if reason is not None:
            log.warning("not ready: %s", reason)
            return JSONResponse({"ready": False, "reason": reason}, 503)
        return JSONResponse({"ready": True})

    @operation(
        "A job and what it came to: a sync's run, or a delivery replay and its report (null while it waits).",
        params=[Param("id", "The job's id, from the answer that queued it.", location="path")],
        responses={200: Reply("the job and its run or replay", JobRunView)},
    )
    async def get_job(request: Request, id: str) -> Response:
        return ok(await asyncio.to_thread(queries.job_run, runtime.store, id))

    receive = WebhookEndpoint(service)
    routes: list[BaseRoute] = [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics_endpoint(service, jobs), include_in_schema=False),
        Route("/miniapps/{ns}/webhooks", receive, methods=["POST"], include_in_schema=False),
        Route("/miniapps/{ns}/webhooks/{installation}", receive, methods=["POST"], include_in_schema=False),
        Route("/miniapps/{ns}/oauth2", oauth),
        *management_routes(runtime, installed=installed, next_sync=jobs.work.next_sync_at),
        *steering_routes(runtime, jobs, changed=service.directory.forget),
        *delivery_routes(runtime, jobs),
        Route("/api/jobs/{id}", get_job, methods=["GET"]),
        Route("/api/inbox/{id}/assign", assign_endpoint(service), methods=["POST"]),
    ]

    async def openapi(request: Request) -> Response:
        return JSONResponse(document(routes, title="miniapp-sync management API", version="1"))

    routes.append(Route(OPENAPI_PATH, openapi, include_in_schema=False))
    if admin_token or viewer_token:
        from miniapp_sync.console import console_routes  # jinja2, itsdangerous: only with the console on

        routes.extend(
            console_routes(
                runtime, jobs, admin_token=admin_token, viewer_token=viewer_token, changed=service.directory.forget
            )
        )
    middleware = [Middleware(AdminGuard, token=admin_token)]
    return Server(
        routes=routes,
        middleware=middleware,
        lifespan=lifespan,
        webhook=receive,
        exception_handlers={HTTPException: _no_route},
    )
