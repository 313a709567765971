"""The ASGI application: webhook and OAuth install routes, the management API, metrics, health (D31).

Public routes (what providers and browsers reach): ``POST /miniapps/{ns}/webhooks`` and
``/miniapps/{ns}/webhooks/{installation}`` (D24), ``/miniapps/{ns}/oauth2``, ``/healthz`` and
``/metrics``. The management API under ``/api`` (trigger events included) needs
``Authorization: Bearer <admin token>``; without a configured token it is closed. Bind to
127.0.0.1 unless told otherwise. While the app lives it runs the scheduler, the inbox
processor and trigger delivery.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import html
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.schemas import SchemaGenerator
from starlette.types import ASGIApp, Receive, Scope, Send

from miniapp_sync.errors import InstallationError, MiniAppSyncError
from miniapp_sync.runtime import MiniApp, Runtime
from miniapp_sync.server.webhooks import WebhookEndpoint, events_endpoint, metrics_endpoint, webhook_params
from miniapp_sync.store import Run, StoredRecord
from miniapp_sync.sync.schedule import Scheduler
from miniapp_sync.webhooks.service import WebhookService
from miniapp_sync.webhooks.settings import WebhookSettings

if TYPE_CHECKING:
    from miniapp_sync.jobs import JobQueue  # imported for its type only: Procrastinate loads slowly

SCHEMAS = SchemaGenerator({"openapi": "3.0.0", "info": {"title": "miniapp-sync management API", "version": "1"}})


class AdminGuard:
    """Require the admin bearer token on /api (compared in constant time)."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/api"):
            if not self.token:
                response = JSONResponse({"error": "the management API is closed: set an admin token"}, 403)
                return await response(scope, receive, send)
            given = dict(scope["headers"]).get(b"authorization", b"").decode(errors="replace")
            if not hmac.compare_digest(given.encode(), f"Bearer {self.token}".encode()):
                response = JSONResponse({"error": "missing or wrong admin token"}, 401)
                return await response(scope, receive, send)
        await self.app(scope, receive, send)


def _page(title: str, message: str, *, status: int, script: str = "") -> HTMLResponse:
    body = (
        f"<!doctype html><meta charset=utf-8><title>{html.escape(title)}</title>"
        f"<h1>{html.escape(title)}</h1><p>{html.escape(message)}</p>{script}"
    )
    return HTMLResponse(body, status)


def _run(r: Run) -> dict[str, Any]:
    return {
        "id": r.id,
        "installationId": r.installation_id,
        "resource": r.resource,
        "status": r.status,
        "startedAt": r.started_at,
        "finishedAt": r.finished_at,
        "stats": r.stats,
        "error": r.error,
    }


def _record(r: StoredRecord) -> dict[str, Any]:
    return {
        "contentType": r.content_type,
        "code": r.code,
        "data": r.data,
        "source": r.source,
        "partial": r.partial,
        "deleted": r.deleted,
        "updatedAt": r.updated_at,
    }


class Server(Starlette):
    """The app: Starlette, except that webhook deliveries go straight to their endpoint (the hot path)."""

    def __init__(self, *args: Any, webhook: WebhookEndpoint, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.webhook = webhook

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            params = webhook_params(scope)
            if params is not None:
                scope["app"] = self
                scope["path_params"] = params
                return await self.webhook(scope, receive, send)
        await super().__call__(scope, receive, send)


def create_app(
    runtime: Runtime,
    *,
    admin_token: str | None = None,
    schedule: bool = True,
    webhooks: WebhookSettings | WebhookService | None = None,
    process: bool = True,
    queue: JobQueue | None = None,
) -> Starlette:
    """Build the ASGI app over a runtime that serves ``runtime.apps``.

    While it lives it runs the scheduler (``schedule``), and the inbox processor and trigger
    delivery (``process``). ``webhooks`` tunes the webhook runtime, or is one the caller built.
    With a ``queue`` (scale-out), syncs, schedules, inbox drains and deliveries are jobs for the
    workers: this process only enqueues them (a service the caller built needs the same queue).
    """
    tasks: set[asyncio.Task[Any]] = set()
    service = (
        webhooks if isinstance(webhooks, WebhookService) else WebhookService(runtime, settings=webhooks, queue=queue)
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        stopping = False
        if queue is not None:
            await queue.open()  # workers run the jobs and the schedules; this process only enqueues
        runs_schedule = schedule and queue is None
        scheduler = asyncio.create_task(Scheduler(runtime).run_forever(lambda: stopping)) if runs_schedule else None
        await service.start(process=process, deliver=process)
        try:
            yield
        finally:
            stopping = True
            await service.stop()
            if queue is not None:
                await queue.close()
            if scheduler is not None:
                scheduler.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await scheduler

    def miniapp(ns: str) -> MiniApp:
        if ns not in runtime.apps:
            raise InstallationError(f"this server does not serve the MiniApp {ns!r}")
        return runtime.apps[ns]

    async def oauth(request: Request) -> Response:
        """Start an OAuth install (?tenant=T) or complete it (the provider's redirect with ?code&state)."""
        ns = request.path_params["ns"]
        query = request.query_params
        try:
            app = miniapp(ns)
            if "error" in query:
                return _page("Connection refused", f"The provider said: {query.get('error')}", status=400)
            if "code" in query:
                if not query.get("state"):
                    return _page("Connection failed", "The redirect carries no state.", status=400)
                installation = await runtime.installations.complete_oauth(app.definition, query["state"], query["code"])
                service.directory.forget()  # its deliveries may start arriving at once
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
            tenant = query.get("tenant")
            if not tenant:
                return _page("Connection failed", "Start the install with ?tenant=<your workspace>.", status=400)
            return RedirectResponse(runtime.installations.begin_oauth(app.definition, tenant), 302)
        except MiniAppSyncError as exc:
            return _page("Connection failed", str(exc), status=400)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"ok": True, "miniapps": sorted(runtime.apps)})

    async def list_installations(request: Request) -> Response:
        """
        summary: List installations (credentials are never returned).
        responses: {200: {description: installations}}
        """
        found = runtime.store.list_installations(request.query_params.get("ns"))
        return JSONResponse([i.public() for i in found])

    async def create_installation(request: Request) -> Response:
        """
        summary: Install a MiniApp for a tenant with API keys (the API-key flow).
        requestBody: {content: {application/json: {schema: {type: object, required: [ns, tenant]}}}}
        responses: {201: {description: the installation}, 400: {description: what was wrong}}
        """
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse({"error": "the body is not JSON"}, 400)
        if not isinstance(body, dict) or not isinstance(body.get("ns"), str) or not isinstance(body.get("tenant"), str):
            return JSONResponse({"error": "expected {ns, tenant, credentials?, metadata?, userInput?}"}, 400)
        try:
            installation = await runtime.installations.install(
                miniapp(body["ns"]).definition,
                body["tenant"],
                credentials=body.get("credentials") or {},
                metadata=body.get("metadata") or {},
                user_input=body.get("userInput") or {},
            )
        except MiniAppSyncError as exc:
            return JSONResponse({"error": str(exc)}, 400)
        service.directory.forget()  # its deliveries may start arriving at once
        return JSONResponse(installation.public(), 201)

    async def start_sync(request: Request) -> Response:
        """
        summary: Start a bulk sync of an installation; poll /api/runs/{id}.
        responses: {202: {description: the run id}, 404: {description: unknown installation}}
        """
        installation = runtime.store.get_installation(request.path_params["id"])
        if installation is None:
            return JSONResponse({"error": "no such installation"}, 404)
        try:
            app = miniapp(installation.ns)
        except MiniAppSyncError as exc:
            return JSONResponse({"error": str(exc)}, 400)
        resources = request.query_params.getlist("resource") or None
        if queue is not None:
            try:
                keys: list[str | None] = list(resources) if resources else [None]
                receipts = [r for key in keys for r in await queue.sync(app.ns, installation.id, key)]
            except MiniAppSyncError as exc:
                return JSONResponse({"error": str(exc)}, 400)
            return JSONResponse({"jobs": [r.as_dict() for r in receipts]}, 202)
        run = runtime.store.start_run(installation.id, resources[0] if resources and len(resources) == 1 else None)
        task = asyncio.create_task(
            runtime.engine.run(app.definition, app.plan, installation, resources=resources, run=run)
        )
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        return JSONResponse({"runId": run.id}, 202)

    async def get_run(request: Request) -> Response:
        """
        summary: A sync run with its per-resource stats.
        responses: {200: {description: the run}, 404: {description: unknown run}}
        """
        run = runtime.store.get_run(request.path_params["id"])
        return JSONResponse(_run(run)) if run else JSONResponse({"error": "no such run"}, 404)

    async def list_records(request: Request) -> Response:
        """
        summary: Records of an installation (?installation=ID&type=core:product&limit=&offset=).
        responses: {200: {description: records}, 400: {description: bad query}}
        """
        query = request.query_params
        installation = query.get("installation")
        if not installation:
            return JSONResponse({"error": "?installation=<id> is required"}, 400)
        try:
            limit, offset = int(query.get("limit", "100")), int(query.get("offset", "0"))
        except ValueError:
            return JSONResponse({"error": "limit and offset are whole numbers"}, 400)
        found = runtime.store.list_records(installation, query.get("type"), limit=min(limit, 1000), offset=offset)
        return JSONResponse([_record(r) for r in found])

    receive = WebhookEndpoint(service)
    routes: list[BaseRoute] = [
        Route("/healthz", healthz),
        Route("/metrics", metrics_endpoint(service), include_in_schema=False),
        Route("/miniapps/{ns}/webhooks", receive, methods=["POST"], include_in_schema=False),
        Route("/miniapps/{ns}/webhooks/{installation}", receive, methods=["POST"], include_in_schema=False),
        Route("/miniapps/{ns}/oauth2", oauth),
        Route("/api/installations", list_installations, methods=["GET"]),
        Route("/api/installations", create_installation, methods=["POST"]),
        Route("/api/installations/{id}/sync", start_sync, methods=["POST"]),
        Route("/api/runs/{id}", get_run),
        Route("/api/records", list_records),
        Route("/api/events", events_endpoint(service), methods=["GET"]),
    ]

    async def openapi(request: Request) -> Response:
        return JSONResponse(SCHEMAS.get_schema(routes=routes))

    routes.append(Route("/api/openapi.json", openapi, include_in_schema=False))
    middleware = [Middleware(AdminGuard, token=admin_token)]
    return Server(routes=routes, middleware=middleware, lifespan=lifespan, webhook=receive)
