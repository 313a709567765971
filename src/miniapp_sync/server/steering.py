"""The management API's steering routes: start, retry and follow syncs; pause, resume and uninstall installations.

What the operator console's buttons call (issue #16). Every sync is a job of the deployment's
queue (D36) and answers the same way: ``{"items": [{"jobId", "resource", "duplicate", "runId"}]}``
with 202, each job's id leading to its run (``GET /api/jobs/{id}``, in ``app``). A twin
already waiting for its time (a failed sync's retry in backoff, a scheduled sync) runs now
instead, as asked, and its id is answered (``JobQueue.sync(now=True)``). A retry of a run that is
still running is refused (409): a second run of the pair would only wait for the first's lock.
Pausing stops the schedules only (the scheduler skips the installation on every backend);
webhooks keep flowing and syncs asked for run. ``DELETE`` uninstalls as ``miniapp-sync
uninstall`` does: the credentials are forgotten, the records kept.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Final

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from miniapp_sync.jobs import Enqueued, JobQueue
from miniapp_sync.jobs.start import SyncRefused, start_sync
from miniapp_sync.jobs.start import retry_run as retry
from miniapp_sync.runtime import Runtime
from miniapp_sync.server.openapi import Handler, Param, Reply, error, ok, operation
from miniapp_sync.store import Installation
from miniapp_sync.views import ErrorView, InstallationView, JobView, Page, queries

log = logging.getLogger("miniapp_sync.server")

_FULL: Final = Param(
    "full", "Ignore the checkpoints: list each resource again from its first page.", enum=("true", "false")
)
_ID: Final = Param("id", "The installation's id.", location="path")


def _jobs(receipts: list[Enqueued]) -> Page[JobView]:
    # A job has no run until a worker starts it: its id leads there (GET /api/jobs/{id}).
    return Page([JobView.of(r) for r in receipts], None)


def steering_routes(runtime: Runtime, jobs: JobQueue, *, changed: Callable[[], None]) -> list[BaseRoute]:
    """Return the steering routes over ``runtime`` and its queue; ``changed`` is told when an installation changed."""
    store = runtime.store
    known_resources = sorted(
        {key for a in runtime.apps.values() if a.definition.sync for key in a.definition.sync.resources}
    )
    missing = Reply("no such installation", ErrorView)

    async def queued(started: Awaitable[tuple[Installation, list[Enqueued]]], why: str, full: bool) -> Response:
        """Answer the jobs of a sync ``started`` queues (or why it refused)."""
        try:
            installation, receipts = await started
        except SyncRefused as exc:
            if exc.running:
                return error(409, "running", str(exc), hint=f"follow it with GET /api/runs/{exc.hint}")
            kind = "not_found" if exc.missing else "bad_request"
            return error(404 if exc.missing else 400, kind, str(exc), hint=exc.hint, field=exc.field)
        log.info(
            why,
            extra={"installation": installation.id, "tenant": installation.tenant,
                   "resources": sorted({r.job.resource or "all" for r in receipts}), "full": full,
                   "jobs": [r.id for r in receipts]},
        )  # fmt: skip
        return ok(_jobs(receipts), 202)

    @operation(
        "Queue a bulk sync of an installation: a job per resource, whose id leads to its run (GET /api/jobs/{id}).",
        params=[
            _ID,
            Param("resource", "Only these resources (repeatable).", enum=tuple(known_resources), repeated=True),
            _FULL,
        ],
        responses={
            202: Reply("the jobs, one per resource (a twin waiting for its time runs now: its id)", JobView, page=True),
            404: missing,
        },
    )
    async def sync_installation(request: Request, id: str, resource: list[str], full: str | None) -> Response:
        started = start_sync(runtime, jobs, id, resource, full=full == "true")
        return await queued(started, "sync queued through the API", full == "true")

    @operation(
        "Queue a run's sync again: its installation and resource (all, for a run of all), from the checkpoint.",
        params=[Param("id", "The run's id.", location="path"), _FULL],
        responses={
            202: Reply("the jobs, as POST /api/installations/{id}/sync answers", JobView, page=True),
            404: Reply("no such run", ErrorView),
            409: Reply("that resource of that installation is running now: wait for its run to end", ErrorView),
        },
    )
    async def retry_run(request: Request, id: str, full: str | None) -> Response:
        started = retry(runtime, jobs, id, full=full == "true")
        return await queued(started, "run retried through the API", full == "true")

    def steer(name: str, summary: str, act: Callable[[str], Installation], done: str) -> Handler:
        async def endpoint(request: Request, id: str) -> Response:
            if await asyncio.to_thread(store.get_installation, id) is None:
                return error(404, "not_found", f"no installation {id[:60]!r}", field="id")
            changed_one = await asyncio.to_thread(act, id)
            changed()
            log.info(done, extra={"installation": changed_one.id, "tenant": changed_one.tenant})
            view = await asyncio.to_thread(queries.installation, store, id, next_sync=jobs.work.next_sync_at)
            return ok(view)

        endpoint.__name__ = name  # the route's name: the document's operationId
        return operation(summary, params=[_ID], responses={200: Reply(done, InstallationView), 404: missing})(endpoint)

    service = runtime.installations
    pause = steer(
        "pause_installation",
        "Pause an installation's schedules: the scheduler skips it; webhooks and syncs asked for go on.",
        service.pause,
        "the installation, paused",
    )
    resume = steer(
        "resume_installation", "Resume an installation's schedules.", service.resume, "the installation, resumed"
    )
    uninstall = steer(
        "uninstall",
        "Uninstall: forget the credentials, stop syncing and receiving webhooks (records are kept).",
        service.uninstall,
        "the installation, uninstalled",
    )
    return [
        Route("/api/installations/{id}/sync", sync_installation, methods=["POST"]),
        Route("/api/installations/{id}/pause", pause, methods=["POST"]),
        Route("/api/installations/{id}/resume", resume, methods=["POST"]),
        Route("/api/installations/{id}", uninstall, methods=["DELETE"]),
        Route("/api/runs/{id}/retry", retry_run, methods=["POST"]),
    ]
