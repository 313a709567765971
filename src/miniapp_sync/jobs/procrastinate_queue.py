"""The scale-out queue (D32): Procrastinate on the store's PostgreSQL, shared by every process and machine.

A job's key is both its ``queueing_lock`` (a second enqueue while one waits raises
``AlreadyEnqueued``: reported, not an error) and its ``lock`` (a job waits while another with its
key runs). Sync and replay jobs go to a queue named after their MiniApp, inbox drains and the
MiniApp's schedule to its short queue (``<ns>:short``), so only workers started with that
definition take them; the other periodic jobs and trigger deliveries go to a common queue.

The short lane, as ``LocalQueue``'s: a sync holds its slot for minutes to hours, sleeping on its
rate budget, so a worker runs its ``concurrency`` slots on every queue plus ``short`` slots that
take only the short jobs (drains, deliveries, periodic work): webhooks never wait for a sync to end.

Periodic tasks, each deferred once per tick whichever worker gets there first:
- one per MiniApp with ``syncConfiguration.schedule``, on that cron: enqueue its scheduled syncs;
- ``retry-stalled``: a worker SIGKILLed mid-job leaves its job ``doing`` under a heartbeat that
  stops; once the heartbeat is ``stalled_after`` seconds old, another worker puts the job back
  to ``todo`` (Procrastinate's documented recipe), and the sync resumes from its checkpoint;
- ``sweep``, as often: enqueue the inbox drains and the trigger delivery that are due, whatever
  should have enqueued them (``Work.sweep``), so that no stored delivery waits for a next one;
- ``purge``, hourly: forget finished deliveries and trigger events past their retention.

A worker told to stop (SIGTERM, SIGINT) takes no more jobs and gives its running ones
``Liveness.grace`` seconds to end; then it interrupts them (a sync's run ends ``interrupted``,
D38), each is queued again for another worker to resume from its checkpoint, and its
Procrastinate job ends ``aborted``: nothing stays ``doing`` under a worker that is gone. Without
the grace, Procrastinate would wait for a sync to end with its heartbeat already stopped, and the
other workers' ``retry-stalled`` would run the job a second time beside it.

Retries of failed jobs are not Procrastinate's ``retry``: that would put the job back to
``todo`` in place, which collides with a newer job queued under the same queueing lock. A failed
job enqueues its successor instead, and a duplicate means the waiting job covers it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

import orjson
from procrastinate import App, JobContext, PsycopgConnector
from procrastinate import exceptions as pq_exceptions
from procrastinate import job_context as pq_job_context
from procrastinate import jobs as pq_jobs

from miniapp_sync.errors import StoreError
from miniapp_sync.jobs.model import Enqueued, Job, JobKind, JobRetry
from miniapp_sync.jobs.queue import JobQueue
from miniapp_sync.jobs.work import Work

log = logging.getLogger("miniapp_sync.jobs")

COMMON_QUEUE: Final = "miniapp_sync"
SHORT_LANE: Final = 2  # a worker's slots for short jobs only (drains wait on the store, rarely on a provider)
TASKS: Final[dict[JobKind, str]] = {
    "sync": "miniapp_sync.sync",
    "drain": "miniapp_sync.drain_inbox",
    "deliver": "miniapp_sync.deliver_triggers",
    "replay": "miniapp_sync.replay_deliveries",
}
SCHEDULE_TASK: Final = "miniapp_sync.scheduled_syncs"
STALLED_TASK: Final = "miniapp_sync.retry_stalled_jobs"
SWEEP_TASK: Final = "miniapp_sync.sweep"
PURGE_TASK: Final = "miniapp_sync.purge"


@dataclass(frozen=True, slots=True)
class Liveness:
    """How workers prove they are alive: a heartbeat every ``heartbeat`` s; silent ``stalled_after`` s means dead."""

    heartbeat: float = 10.0
    stalled_after: float = 30.0
    poll: float = 1.0  # how often an idle worker looks for jobs whose lock was released or whose time came

    def __post_init__(self) -> None:
        if not 0 < self.heartbeat < self.stalled_after:
            raise ValueError(
                f"the heartbeat ({self.heartbeat} s) must be positive and shorter than stalled_after "
                f"({self.stalled_after} s), or live workers would look dead"
            )

    @property
    def grace(self) -> float:
        """Return how long a stopping worker lets its running jobs end before it interrupts them.

        Procrastinate stops a worker's heartbeat as its shutdown begins, and the last one may be
        a ``heartbeat`` old by then: a job still running ``stalled_after`` seconds after it would be
        taken for a dead worker's and run again beside this one. So the grace ends half-way
        through what is left of ``stalled_after``, room for the interrupted jobs to end. At most
        one heartbeat: enough for a drain or a delivery, and a sync cut short resumes from its
        checkpoint on another worker (D38).
        """
        return min(self.heartbeat, (self.stalled_after - self.heartbeat) / 2)

    @property
    def stall_check_cron(self) -> str:
        """Return a seconds-resolution cron firing about once per heartbeat (a divisor of 60 seconds)."""
        every = next(d for d in (30, 20, 15, 12, 10, 6, 5, 4, 3, 2, 1) if d <= max(1.0, self.heartbeat))
        # croniter (Procrastinate's) reads seconds from the sixth field: "*/10 * * * * *" would fire
        # every second of every tenth minute, and not at all in between.
        return "* * * * * *" if every == 1 else f"* * * * * */{every}"


@dataclass(frozen=True, slots=True)
class QueueStatus:
    """What the queue holds now: job counts, the jobs running and on which worker, the workers' heartbeats."""

    counts: list[dict[str, Any]]  # queue, task, status, jobs
    running: list[dict[str, Any]]  # id, task, key, worker, attempts
    workers: list[dict[str, Any]]  # id, silent (seconds since the last heartbeat)

    def as_dict(self) -> dict[str, Any]:
        """Return the status as JSON-ready data."""
        return {"counts": self.counts, "running": self.running, "workers": self.workers}


def short_queue(ns: str) -> str:
    """Return the name of ``ns``'s short queue: its inbox drains and its schedule's ticks."""
    return f"{ns}:short"


class ProcrastinateQueue(JobQueue):
    """Jobs in PostgreSQL through Procrastinate: enqueue from any process, run them in ``worker`` processes."""

    def __init__(
        self,
        work: Work,
        *,
        retry: JobRetry | None = None,
        liveness: Liveness | None = None,
        pool_size: int = 10,
    ) -> None:
        super().__init__(work, retry=retry)
        store = work.runtime.store
        if not work.runtime.backend.shared_queue:
            raise StoreError(
                f"the distributed job queue needs a PostgreSQL store, not {store.url}; "
                "on SQLite, `miniapp-sync serve` runs jobs in its own process"
            )
        self.liveness = liveness or Liveness()
        conninfo = store.database.url.set(drivername="postgresql").render_as_string(hide_password=False)
        self.app = App(connector=PsycopgConnector(conninfo=conninfo, min_size=1, max_size=pool_size))
        self._register()

    @property
    def queues(self) -> list[str]:
        """Return the queues this process's worker takes jobs from: its MiniApps', and the common one."""
        return [*sorted(self.work.runtime.apps), *self.short_queues]

    @property
    def short_queues(self) -> list[str]:
        """Return the queues of the short lane: its MiniApps' drains and schedules, and the common queue."""
        return [*(short_queue(ns) for ns in sorted(self.work.runtime.apps)), COMMON_QUEUE]

    async def open(self) -> None:
        """Open the connection pool."""
        try:
            await self.app.open_async()
        except pq_exceptions.ConnectorException as exc:
            raise StoreError(f"cannot reach the job queue's database: {exc.__cause__ or exc}") from exc

    async def close(self) -> None:
        """Close the connection pool."""
        await self.app.close_async()

    @contextlib.asynccontextmanager
    async def serving(self, *, concurrency: int = 4) -> AsyncIterator[None]:
        """Keep the queue open for enqueues while the block runs: ``worker`` processes run the jobs."""
        async with self:
            yield

    async def enqueue(self, job: Job, *, delay: float = 0.0) -> Enqueued:
        """Queue ``job`` to run after ``delay`` seconds, unless a job with its key is queued already."""
        try:
            made = await self.app.job_manager.defer_job_async(self._job(job, delay))
        except pq_exceptions.AlreadyEnqueued:
            return Enqueued(job, None)
        except pq_exceptions.ConnectorException as exc:
            raise StoreError(f"cannot enqueue {job}: {exc.__cause__ or exc}") from exc
        return Enqueued(job, str(made.id))

    async def enqueue_many(self, jobs: list[Job]) -> list[Enqueued]:
        """Queue ``jobs`` to run now in one insert (a cron tick's syncs); each refused whose key is queued already.

        Procrastinate's batch defer refuses the whole batch on one duplicate, so the keys queued
        already are looked up first; when another process queues one of the rest meanwhile (the
        batch fails on it), they are looked up again: each failure means one more key is queued.
        """
        ids: dict[str, str | None] = {}  # key: the new job's id, or None (a job of that key was queued)
        try:
            while todo := list({job.key: job for job in jobs if job.key not in ids}.values()):
                queued = await self.app.connector.execute_query_all_async(
                    "SELECT queueing_lock FROM procrastinate_jobs "
                    "WHERE status = 'todo' AND queueing_lock = ANY(%(keys)s)",
                    keys=[job.key for job in todo],
                )
                ids.update((row["queueing_lock"], None) for row in queued)
                todo = [job for job in todo if job.key not in ids]
                if not todo:
                    break
                try:
                    made = await self.app.job_manager.batch_defer_jobs_async([self._job(job) for job in todo])
                except pq_exceptions.AlreadyEnqueued:
                    continue
                ids.update((job.key, str(pq_job.id)) for job, pq_job in zip(todo, made, strict=True))
        except pq_exceptions.ConnectorException as exc:
            raise StoreError(f"cannot enqueue {len(jobs)} jobs: {exc.__cause__ or exc}") from exc
        receipts, seen = [], set()
        for job in jobs:  # a key listed twice: the second is the first's duplicate
            receipts.append(Enqueued(job, None if job.key in seen else ids[job.key]))
            seen.add(job.key)
        return receipts

    def _job(self, job: Job, delay: float = 0.0) -> pq_jobs.Job:
        """Return ``job`` as Procrastinate's: its task and queue, its key as both locks, its arguments."""
        queue = {"sync": job.ns, "replay": job.ns, "drain": short_queue(job.ns)}.get(job.kind, COMMON_QUEUE)
        options: dict[str, Any] = {"lock": job.key, "queueing_lock": job.key, "queue": queue}
        if delay > 0:
            options["schedule_in"] = {"seconds": delay}
        return self.app.configure_task(TASKS[job.kind], **options).make_new_job(**job.args())

    async def hasten(self, job: Job) -> str | None:
        """Make the waiting job of ``job``'s key due now, as ``job`` asks (its attempts start over); return its id."""
        try:
            rows = await self.app.connector.execute_query_all_async(
                "UPDATE procrastinate_jobs SET scheduled_at = NULL, args = %(args)s::jsonb "
                "WHERE queueing_lock = %(lock)s AND status = 'todo' RETURNING id",
                args=orjson.dumps(job.args()).decode(),
                lock=job.key,
            )
        except pq_exceptions.ConnectorException as exc:
            raise StoreError(f"cannot hasten {job}: {exc.__cause__ or exc}") from exc
        return str(rows[0]["id"]) if rows else None

    async def run_worker(
        self, *, concurrency: int = 4, short: int = SHORT_LANE, name: str = "worker", signals: bool = True
    ) -> None:
        """Run jobs of this process's queues, ``concurrency`` at a time plus ``short`` slots for short jobs only.

        Two Procrastinate workers in this process, until SIGTERM/SIGINT (if ``signals``) or cancelled:
        one on every queue, one on the short lane's queues; stopping either stops the other. Jobs
        still running ``liveness.grace`` seconds into the stop are interrupted and queued again.
        """
        if concurrency < 1 or short < 1:
            raise ValueError(f"a worker needs at least one slot of each lane, got {concurrency} and {short}")
        lane = asyncio.create_task(self._worker(self.short_queues, short, f"{name}/short", signals=False))
        try:
            await self._worker(self.queues, concurrency, name, signals=signals)
        finally:
            lane.cancel()  # Procrastinate stops gracefully on cancel: the running short jobs get the grace
            await asyncio.gather(lane, return_exceptions=True)

    async def _worker(self, queues: list[str], concurrency: int, name: str, *, signals: bool) -> None:
        await self.app.run_worker_async(
            queues=queues,
            name=name,
            concurrency=concurrency,
            update_heartbeat_interval=self.liveness.heartbeat,
            stalled_worker_timeout=self.liveness.stalled_after,
            fetch_job_polling_interval=self.liveness.poll,
            delete_jobs=pq_jobs.DeleteJobCondition.SUCCESSFUL,  # history lives in sync_runs; failures stay
            install_signal_handlers=signals,
            shutdown_graceful_timeout=self.liveness.grace,  # then its jobs are interrupted, and queued again
        )

    async def retry_stalled(self) -> tuple[int, int]:
        """Put the jobs of dead workers back in the queue; return (retried, closed as covered by a queued twin)."""
        manager = self.app.job_manager
        retried = covered = 0
        for stalled in await manager.get_stalled_jobs(seconds_since_heartbeat=self.liveness.stalled_after):
            try:
                await manager.retry_job(stalled)
                retried += 1
                log.warning("job %s (%s) of a dead worker is back in the queue", stalled.id, stalled.lock)
            except pq_exceptions.UniqueViolation:
                # A job with the same queueing lock waits already and will do this work.
                await manager.finish_job(stalled, status=pq_jobs.Status.FAILED, delete_job=False)
                covered += 1
                log.warning("job %s (%s) of a dead worker is covered by a queued twin", stalled.id, stalled.lock)
        return retried, covered

    async def _requeue_interrupted(self, job: Job) -> None:
        """Queue ``job`` again, as it was, after its worker's shutdown interrupted it: another worker resumes it.

        Not Procrastinate's retry of the job in place (see the module's docstring), nor the
        stalled-worker sweep's, which would wait ``stalled_after`` seconds and call it a dead worker's.
        """
        try:
            receipt = await self.enqueue(job)
        except StoreError as exc:  # the job stays "aborted" in the table, where an operator sees it
            log.error("%s was interrupted by this worker's stop and could not be queued again: %s", job, exc)
            return
        if receipt.duplicate:
            log.info("%s was interrupted by this worker's stop; the job queued for its key resumes it", job)
        else:
            log.info("%s was interrupted by this worker's stop and is queued again (job %s)", job, receipt.id)

    async def not_ready(self) -> str | None:
        """Return why the queue's database cannot take jobs (unreachable, or its schema missing), or None."""
        try:
            await self.app.connector.execute_query_one_async("SELECT count(*) FROM procrastinate_jobs WHERE false")
        except Exception as exc:  # whatever the driver raises, the answer is "not ready, because"
            cause = exc.__cause__ or exc  # Procrastinate wraps the driver's error, which says what is wrong
            first = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
            because = f"{type(cause).__name__}: {first[:200]}".rstrip(": ")
            return f"the job queue is not reachable: {because} (hint: is `miniapp-sync db upgrade` done?)"
        return None

    async def status(self) -> QueueStatus:
        """Return a snapshot of the queue, for operators."""
        query = self.app.connector.execute_query_all_async
        return QueueStatus(
            counts=await query(
                "SELECT queue_name AS queue, task_name AS task, status::text AS status, count(*) AS jobs "
                "FROM procrastinate_jobs GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
            ),
            running=await query(
                "SELECT id, task_name AS task, lock AS key, worker_id AS worker, attempts "
                "FROM procrastinate_jobs WHERE status = 'doing' ORDER BY id"
            ),
            workers=await query(
                "SELECT id, round(extract(epoch FROM now() - last_heartbeat)::numeric, 1)::float AS silent "
                "FROM procrastinate_workers ORDER BY id"
            ),
        )

    def _register(self) -> None:
        for kind, name in TASKS.items():
            self.app.task(name=name, pass_context=True)(self._runner(kind))

        async def scheduled(timestamp: int, ns: str) -> str:
            return f"scheduled syncs of {ns}: " + await self._enqueue_each(self.work.scheduled_jobs, ns)

        schedule_task = self.app.task(name=SCHEDULE_TASK)(scheduled)
        for ns, cron in self.work.schedules().items():
            # The definition's own cron: each tick is deferred once, by whichever worker is first.
            key = f"schedule:{ns}"
            self.app.periodic(
                cron=cron, periodic_id=key, queue=short_queue(ns), queueing_lock=key, task_kwargs={"ns": ns}
            )(schedule_task)

        async def retry_stalled(timestamp: int) -> str:
            retried, covered = await self.retry_stalled()
            return f"{retried} stalled jobs retried, {covered} covered by a queued job"

        async def sweep(timestamp: int) -> str:
            return "inbox drains and trigger delivery due: " + await self._enqueue_each(self.work.sweep)

        async def purge(timestamp: int) -> str:
            return await asyncio.to_thread(self.work.purge)

        often = self.liveness.stall_check_cron
        for name, periodic_id, cron, body in (
            (STALLED_TASK, "retry-stalled", often, retry_stalled),
            (SWEEP_TASK, "sweep", often, sweep),
            (PURGE_TASK, "purge", "0 * * * *", purge),
        ):
            task = self.app.task(name=name, queue=COMMON_QUEUE, lock=name)(body)
            self.app.periodic(cron=cron, periodic_id=periodic_id, queueing_lock=name)(task)

    async def _enqueue_each(self, jobs: Callable[..., list[Job]], *args: str) -> str:
        """Enqueue the jobs ``jobs(*args)`` returns (read from the store in a thread) at once; say how many were new."""
        receipts = await self.enqueue_many(await asyncio.to_thread(jobs, *args))
        fresh = sum(not r.duplicate for r in receipts)
        return f"{fresh} enqueued, {len(receipts) - fresh} already queued"

    def _runner(self, kind: JobKind) -> Callable[..., Awaitable[str]]:
        async def run(
            context: JobContext,
            ns: str,
            installation_id: str,
            resource: str,
            attempt: int,
            replay: str = "",
            full: bool = False,
        ) -> str:
            # Defaults: a job's args carry ``replay`` and ``full`` only when they are set.
            job = Job(kind, ns, installation_id, resource, attempt, replay, full)
            try:
                outcome = await self.work.run(job, None if context.job.id is None else str(context.job.id))
            except asyncio.CancelledError:
                if context.abort_reason() is pq_job_context.AbortReason.SHUTDOWN:
                    await self._requeue_interrupted(job)
                raise  # Procrastinate ends this job "aborted": nothing is left "doing" under a stopped worker
            await self.settle(job, outcome)
            return str(outcome)  # Procrastinate logs it with the job's end

        return run
