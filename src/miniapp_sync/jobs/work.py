"""What each job does, whichever queue runs it: sync a resource, drain an inbox, deliver trigger events.

A job carries ids and names only; the work looks the MiniApp up among the definitions this
process serves and the installation up in the store, so a job enqueued on one machine runs on
any worker started with the same definitions. Every job ends with an ``Outcome``; the queue turns
``failed`` into a retry with backoff and ``done`` with ``again_in`` into a follow-up job.

The webhook side (the inbox, the outbox, the processor's purge and its metrics) is imported by
the jobs that use it: a ``sync`` process runs none of them, and importing them cost it ~15 ms.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Final

from miniapp_sync.errors import InstallationError, MiniAppSyncError
from miniapp_sync.jobs.model import Job, Outcome
from miniapp_sync.runtime import MiniApp, Runtime
from miniapp_sync.store import Installation
from miniapp_sync.store.runs import RunLiveness
from miniapp_sync.sync.reports import Progress
from miniapp_sync.sync.resources import select_resources
from miniapp_sync.sync.runs import RunOwner, abandon_dead_runs
from miniapp_sync.webhooks.settings import WebhookSettings

log = logging.getLogger("miniapp_sync.jobs")

# (ns, installation id) → when (epoch seconds, runtime clock) the installation's next waiting
# delivery comes due, or None when none waits: the webhook processor's per-installation drain.
DrainHook = Callable[[str, str], Awaitable[float | None]]
# () → when the next pending trigger delivery comes due, or None: TriggerDelivery.deliver_due.
DeliverHook = Callable[[], Awaitable[float | None]]

ABANDONED: Final = "abandoned: the worker running it stopped; a later run resumes from the checkpoint"


class Work:
    """The bodies of jobs over one process's runtime; the webhook side plugs in ``drain`` and ``deliver``.

    ``default_schedule`` (a cron expression, ``serve --default-schedule``) schedules the MiniApps
    whose definition has no ``syncConfiguration.schedule`` of its own; ``progress`` sees each
    resource's report as a sync goes (the CLI's progress bars).
    """

    def __init__(
        self,
        runtime: Runtime,
        *,
        drain: DrainHook | None = None,
        deliver: DeliverHook | None = None,
        default_schedule: str | None = None,
        progress: Progress | None = None,
        max_in_flight: int | None = None,
    ) -> None:
        self.runtime = runtime
        self.max_in_flight = max_in_flight  # detail requests in flight at most (sync --max-in-flight)
        self.drain = drain
        self.deliver = deliver
        self.default_schedule = default_schedule
        self.progress = progress

    def miniapp(self, ns: str) -> MiniApp:
        """Return the served MiniApp ``ns``, or raise naming the ones served."""
        app = self.runtime.apps.get(ns)
        if app is None:
            served = ", ".join(sorted(self.runtime.apps)) or "none"
            raise InstallationError(
                f"this process does not serve the MiniApp {ns!r} (serving: {served}); pass its definition "
                "with --definition"
            )
        return app

    def resources(self, ns: str, resource: str | None) -> list[str]:
        """Return the resources a sync of ``ns`` covers: the one named, or every enabled one."""
        return select_resources(self.miniapp(ns).definition, [resource] if resource else None)

    def syncs_anything(self, ns: str) -> bool:
        """Return whether a sync of ``ns`` without a named resource has something to run."""
        sync = self.miniapp(ns).definition.sync
        return (
            sync is not None
            and sync.sync_configuration.enabled
            and any(resource.enabled for resource in sync.resources.values())
        )

    def scheduled_jobs(self, ns: str) -> list[Job]:
        """Return a sync job per enabled resource of each connected installation of ``ns`` not paused."""
        if not self.syncs_anything(ns):
            return []
        keys = self.resources(ns, None)
        return [
            Job("sync", ns, installation.id, key)
            for installation in self.runtime.store.list_installations(ns)
            if installation.status == "connected" and not installation.paused
            for key in keys
        ]

    def schedules(self) -> dict[str, str]:
        """Return the cron schedule of each served MiniApp that has one, its own or the default (by ns)."""
        found: dict[str, str] = {}
        for ns, app in self.runtime.apps.items():
            sync = app.definition.sync
            cron = (sync.sync_configuration.schedule if sync else None) or self.default_schedule
            if cron and self.syncs_anything(ns):
                found[ns] = cron
        return found

    def due_syncs(self, after: float, until: float) -> list[Job]:
        """Return the scheduled sync jobs of every MiniApp whose cron fires in (after, until]."""
        return [
            job
            for ns, cron in self.schedules().items()
            if _next_fire(cron, after) <= until
            for job in self.scheduled_jobs(ns)
        ]

    def next_sync_at(self, installation: Installation) -> float | None:
        """Return when the schedule next syncs ``installation`` (None: no schedule applies, or it is paused)."""
        cron = self.schedules().get(installation.ns)
        if cron is None or installation.paused or installation.status != "connected":
            return None
        return _next_fire(cron, self.runtime.clock.now())

    def next_schedule(self, after: float) -> float | None:
        """Return the earliest cron time after ``after`` among the served MiniApps (None: nothing is scheduled)."""
        return min((_next_fire(cron, after) for cron in self.schedules().values()), default=None)

    async def run(self, job: Job, job_id: str | None = None) -> Outcome:
        """Run one job (``job_id``: the queue's id of it) to its outcome; nothing it raises escapes.

        A bug is logged and retried like a failure.
        """
        try:
            if job.kind == "sync":
                return await self.sync(job, job_id)
            if job.kind == "drain":
                return await self._hook(job, self.drain, "inbox processor")
            if job.kind == "replay":
                return await self.replay(job, job_id)
            return await self._hook(job, self.deliver, "trigger deliverer")
        except MiniAppSyncError as exc:
            return Outcome("failed", str(exc))
        except Exception as exc:
            log.exception("job %s raised", job)
            return Outcome("failed", f"internal error: {type(exc).__name__}: {exc}")

    async def sync(self, job: Job, job_id: str | None = None) -> Outcome:
        """Sync one resource of one installation (resuming from its checkpoint); the run names ``job_id``."""
        app = self.miniapp(job.ns)
        installation = await asyncio.to_thread(self.runtime.store.get_installation, job.installation_id)
        if installation is None:
            return Outcome("dropped", f"installation {job.installation_id} no longer exists")
        await asyncio.to_thread(self._interrupt_stale_runs, installation, job.resource)
        try:
            report = await self.runtime.engine.run(
                app.definition,
                app.plan,
                installation,
                resources=[job.resource],
                progress=self.progress,
                job_id=job_id,
                full=job.full,
                **({} if self.max_in_flight is None else {"max_in_flight": self.max_in_flight}),
            )
        except InstallationError as exc:  # disconnected, uninstalled, resource gone: retrying will not help
            return Outcome("dropped", str(exc))
        resource = report.resources[job.resource]
        if resource.error:
            return Outcome("failed", f"run {report.run_id}: {resource.error}", run_id=report.run_id)
        counts = f"{resource.fetched} fetched, {resource.created} created, {resource.updated} updated"
        return Outcome("done", f"run {report.run_id} {report.status}: {counts}", run_id=report.run_id)

    async def replay(self, job: Job, job_id: str | None = None) -> Outcome:
        """Run a recorded bulk replay of webhook deliveries; its report goes to the replay row.

        Then the trigger events it emitted are delivered, and the inboxes it touched drained (a
        row that waited for its retry held the installation's later rows).
        """
        from miniapp_sync.store.replays import Replays
        from miniapp_sync.webhooks.bulk_replay import run

        self.miniapp(job.ns)  # a clear failure when this worker lacks the definition
        replays = Replays(self.runtime.store)
        replay = await asyncio.to_thread(replays.get, job.replay)
        if replay is None:
            return Outcome("dropped", f"no replay {job.replay}")
        if replay.status in ("done", "failed"):
            return Outcome("dropped", f"replay {replay.id} ran already ({replay.status})")
        if job_id is not None and replay.job_id is None:
            await asyncio.to_thread(replays.queued, replay.id, job_id)
        report = await run(self.runtime, replay)
        drains = [Job("drain", job.ns, iid) for iid in report["installations"]] if self.drain else []
        follow = (*drains, *([Job("deliver")] if self.deliver else []))  # a process without them: the sweep's
        counts = ", ".join(f"{report[k]} {k}" for k in ("processed", "failed", "refused", "skipped"))
        return Outcome("done", f"replay {replay.id}: {counts}", follow=follow)

    def _interrupt_stale_runs(self, installation: Installation, resource: str) -> None:
        # The job's lock means no other queued sync of this pair runs now, so a run of it still
        # marked running belonged to a worker that died (SIGKILL, lost machine): close it as
        # abandoned (D38), so the runs table never shows two of them running at once. Unless its
        # owner is provably alive: another process's `miniapp-sync sync` (its own in-process queue) takes no lock.
        liveness = RunLiveness(self.runtime.store)
        processes = self.runtime.engine.processes
        for run in self.runtime.store.list_runs(installation.id, limit=50):
            owner = RunOwner.parse(run.owner)
            if run.status == "running" and run.resource == resource and not (owner and processes.alive(owner)):
                liveness.end(run.id, "abandoned", ABANDONED)

    def adopt(self) -> int:
        """Put back the inbox rows a stopped process left 'processing'; only a store's one owner may (embedded)."""
        from miniapp_sync.store import Inbox

        return Inbox(self.runtime.store).recover()

    def sweep(self) -> list[Job]:
        """Return the drains and the delivery that are due now, whatever enqueued them or failed to.

        The safety net under D33: a server that stored deliveries but could not enqueue their
        drain, a retry whose follow-up job was lost, an event emitted by a replay; run periodically.
        """
        from miniapp_sync.store import Inbox, Outbox

        abandon_dead_runs(self.runtime.store, processes=self.runtime.engine.processes)  # D38
        now = self.runtime.clock.now()
        heads = Inbox(self.runtime.store).pending_heads()
        jobs = [Job("drain", ns, iid) for iid, ns, at in heads if at is None or at <= now]
        due = Outbox(self.runtime.store).next_due()
        if due is not None and due <= now:
            jobs.append(Job("deliver"))
        return jobs

    def purge(self) -> str:
        """Forget finished webhook deliveries, delivered trigger events and record history past their retention."""
        from miniapp_sync.webhooks.processor import purge

        rows, events, changes = purge(self.runtime.store, self.runtime.clock.now() - WebhookSettings().retention)
        return f"purged {rows} finished inbox rows, {events} trigger events and {changes} record changes"

    async def _hook(self, job: Job, hook: Callable[..., Awaitable[float | None]] | None, what: str) -> Outcome:
        if hook is None:
            return Outcome("dropped", f"this process has no {what}; {job.kind} jobs need one")
        if job.kind == "drain":
            self.miniapp(job.ns)  # a clear failure when this worker lacks the definition
        due = await hook(job.ns, job.installation_id) if job.kind == "drain" else await hook()
        again_in = None if due is None else max(0.0, due - self.runtime.clock.now())
        # Processed deliveries may have emitted trigger events: send them (a queued delivery coalesces).
        follow = (Job("deliver"),) if job.kind == "drain" and self.deliver is not None else ()
        return Outcome("done", again_in=again_in, follow=follow)


def _next_fire(cron: str, after: float) -> float:
    """Return the first time after ``after`` that ``cron`` fires."""
    from croniter import croniter  # here: a sync or an inbox drain runs Work and never reads a schedule

    return float(croniter(cron, after).get_next(float))
