"""Start a bulk sync of an installation from an edge (the API, the console): checked first, then queued (D36)."""

from __future__ import annotations

from collections.abc import Sequence

from miniapp_sync.errors import MiniAppSyncError, UsageError
from miniapp_sync.jobs.model import Enqueued
from miniapp_sync.jobs.queue import JobQueue
from miniapp_sync.runtime import Runtime
from miniapp_sync.store import Installation
from miniapp_sync.store.run_search import RunSearch


class SyncRefused(UsageError):
    """A sync cannot start as asked: which request field is at fault, and a hint."""

    def __init__(
        self, message: str, *, field: str, hint: str | None = None, missing: bool = False, running: bool = False
    ) -> None:
        super().__init__(message)
        self.field = field
        self.hint = hint
        self.missing = missing  # there is no such installation or run (the API answers 404)
        self.running = running  # the run to retry has a twin running now (the API answers 409)


async def start_sync(
    runtime: Runtime, jobs: JobQueue, installation_id: str, resources: Sequence[str], *, full: bool = False
) -> tuple[Installation, list[Enqueued]]:
    """Queue a sync of an installation's ``resources`` (all enabled ones when empty): the installation, a job each.

    ``full`` ignores the checkpoints: each resource is listed again from its first page. A
    twin waiting for its time (a failed sync's retry in backoff) runs now instead (``JobQueue.sync``).

    Everything is checked before anything is queued, because a job that fails later has nobody
    to tell: a missing installation, a MiniApp this process does not serve, an unknown resource.
    """
    installation = runtime.store.get_installation(installation_id)
    if installation is None:
        raise SyncRefused(f"no installation {installation_id[:60]!r}", field="id", missing=True)
    app = runtime.apps.get(installation.ns)
    if app is None:
        raise SyncRefused(f"this server does not serve the MiniApp {installation.ns!r}", field="id")
    own = app.definition.sync.resources if app.definition.sync else {}
    unknown = [r for r in resources if r not in own]
    if unknown:
        message = f"no resource {unknown[0]!r} in {app.ns}'s sync.resources"
        raise SyncRefused(message, field="resource", hint=f"known: {', '.join(own) or 'none'}")
    keys: list[str | None] = list(resources) if resources else [None]
    try:
        return installation, [
            r for key in keys for r in await jobs.sync(app.ns, installation.id, key, full=full, now=True)
        ]
    except MiniAppSyncError as exc:  # e.g. bulk sync is disabled for this resource
        raise SyncRefused(str(exc), field="resource") from None


async def retry_run(
    runtime: Runtime, jobs: JobQueue, run_id: str, *, full: bool = False
) -> tuple[Installation, list[Enqueued]]:
    """Queue a run's sync again: its installation and resource (every enabled one, for a run of all).

    Refused while that resource of that installation runs: a second run would only wait for the
    first's lock. ``hint`` then names the running run.
    """
    search = RunSearch(runtime.store)
    found = search.one(run_id)
    if found is None:
        raise SyncRefused(f"no run {run_id[:60]!r}", field="id", missing=True)
    run = found.run
    running = search.running(run.installation_id, run.resource)
    if running is not None:
        what = run.resource or "every resource"
        message = f"{what} of {found.tenant}'s {found.ns} is running now (run {running.id})"
        raise SyncRefused(message, field="id", hint=running.id, running=True)
    return await start_sync(runtime, jobs, run.installation_id, [run.resource] if run.resource else [], full=full)
