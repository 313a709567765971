"""Runs in the store: started, finished, read and listed (``RunRows``, the Store's), and their liveness.

Liveness (D38): a running run's owner, heartbeat and progress; closing it when its owner is gone.
The policy (whose owner is provably gone) lives in ``sync.runs``; this module only reads and
writes rows, each change conditional on the run still being ``running``, so a run that finished
meanwhile is never overwritten.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, or_, select, update

from miniapp_sync.store.model import RUN_STATUSES, Run, RunStatus, check_allowed
from miniapp_sync.store.rows import Rows, from_row
from miniapp_sync.store.tables import sync_runs

if TYPE_CHECKING:
    from miniapp_sync.store.store import Store

__all__ = ["RunLiveness", "RunRows"]


class RunRows(Rows):
    """The Store's runs."""

    def start_run(
        self, installation_id: str, resource: str | None, *, owner: str | None = None, job_id: str | None = None
    ) -> Run:
        """Record the start of a sync run and return it.

        ``owner`` is the process running it (D38); ``job_id`` the job that runs it, if a queue does (D36).
        """
        now = self._clock.now()
        run = Run(uuid.uuid4().hex, installation_id, resource, "running", now, None, {}, None, owner, now, job_id)
        values = {
            "id": run.id,
            "installation_id": installation_id,
            "resource": resource,
            "status": run.status,
            "started_at": run.started_at,
            "stats": run.stats,
            "owner": owner,
            "heartbeat_at": now,
            "job_id": job_id,
        }
        with self._db.write(f"start a run for installation {installation_id!r}") as conn:
            conn.execute(insert(sync_runs).values(values))
        return run

    def finish_run(
        self,
        run_id: str,
        *,
        status: RunStatus,
        stats: dict[str, Any],
        error: str | None = None,
        progress: dict[str, Any] | None = None,
    ) -> Run:
        """Record how a run ended (and its last progress figures, when given) and return it."""
        check_allowed(status, RUN_STATUSES - {"running"}, "final run status")
        values = {"status": status, "stats": stats, "error": error, "finished_at": self._clock.now()}
        if progress is not None:
            values["progress"] = progress
        return from_row(Run, self._update_one(sync_runs, run_id, values, f"finish run {run_id!r}", "run"))

    def get_run(self, run_id: str) -> Run | None:
        """Return the run with this id, or None."""
        with self._db.read("read a run") as conn:
            row = conn.execute(select(sync_runs).where(sync_runs.c.id == run_id)).first()
        return None if row is None else from_row(Run, row)

    def runs_of_job(self, job_id: str) -> list[Run]:
        """Return the runs the job ``job_id`` started (one, or none yet), newest first."""
        query = select(sync_runs).where(sync_runs.c.job_id == job_id).order_by(sync_runs.c.started_at.desc())
        with self._db.read("read a job's runs") as conn:
            return [from_row(Run, row) for row in conn.execute(query)]

    def list_runs(
        self,
        installation_id: str | None = None,
        *,
        installation_ids: Sequence[str] | None = None,
        limit: int = 20,
        offset: int = 0,
    ) -> list[Run]:
        """Return the newest runs first (of one installation, or some, when given), ``offset`` rows in."""
        order = (sync_runs.c.started_at.desc(), sync_runs.c.id)
        query = select(sync_runs).order_by(*order).limit(limit).offset(offset)
        if installation_id is not None:
            query = query.where(sync_runs.c.installation_id == installation_id)
        if installation_ids is not None:
            query = query.where(sync_runs.c.installation_id.in_(installation_ids))
        with self._db.read("list runs") as conn:
            return [from_row(Run, row) for row in conn.execute(query)]


class RunLiveness:
    """The ``owner`` and ``heartbeat_at`` columns of sync_runs, on the store's database."""

    def __init__(self, store: Store) -> None:
        self._db = store.database
        self._clock = store.clock

    def running(self) -> list[Run]:
        """Return every run marked running, oldest first."""
        query = select(sync_runs).where(sync_runs.c.status == "running").order_by(sync_runs.c.started_at)
        with self._db.read("list running runs") as conn:
            return [from_row(Run, row) for row in conn.execute(query)]

    def heartbeat(self, run_id: str) -> None:
        """Record that a run is making progress now."""
        stmt = update(sync_runs).where(sync_runs.c.id == run_id, sync_runs.c.status == "running")
        with self._db.write(f"heartbeat run {run_id!r}") as conn:
            conn.execute(stmt.values(heartbeat_at=self._clock.now()))

    def progress(self, run_id: str, stats: dict[str, Any], progress: dict[str, Any]) -> None:
        """Record a running run's figures so far: its stats, its progress, and a heartbeat."""
        stmt = update(sync_runs).where(sync_runs.c.id == run_id, sync_runs.c.status == "running")
        values = {"stats": stats, "progress": progress, "heartbeat_at": self._clock.now()}
        with self._db.write(f"record the progress of run {run_id!r}") as conn:
            conn.execute(stmt.values(values))

    def end(self, run_id: str, status: RunStatus, reason: str, *, quiet_since: float | None = None) -> bool:
        """Close a running run as ``status`` with ``reason``; return False if it was no longer running.

        With ``quiet_since``, only if it showed no progress since then (its heartbeat, else its start):
        a heartbeat that lands first keeps the run alive.
        """
        c = sync_runs.c
        stmt = update(sync_runs).where(c.id == run_id, c.status == "running")
        if quiet_since is not None:
            stmt = stmt.where(
                or_(c.heartbeat_at < quiet_since, c.heartbeat_at.is_(None) & (c.started_at < quiet_since))
            )
        values = {"status": status, "error": reason, "finished_at": self._clock.now()}
        with self._db.write(f"end run {run_id!r} as {status}") as conn:
            return bool(conn.execute(stmt.values(values)).rowcount)
