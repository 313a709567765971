"""Run liveness in the store: a running run's owner, heartbeat and progress; closing it when its owner is gone (D38).

The policy (whose owner is provably gone) lives in ``sync.runs``; this module only reads and
writes rows, each change conditional on the run still being ``running``, so a run that finished
meanwhile is never overwritten.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import or_, select, update

from miniapp_sync.store.model import Run, RunStatus
from miniapp_sync.store.store import Store, _run
from miniapp_sync.store.tables import sync_runs

__all__ = ["RunLiveness"]


class RunLiveness:
    """The ``owner`` and ``heartbeat_at`` columns of sync_runs, on the store's database."""

    def __init__(self, store: Store) -> None:
        self._db = store.database
        self._clock = store.clock

    def running(self) -> list[Run]:
        """Return every run marked running, oldest first."""
        query = select(sync_runs).where(sync_runs.c.status == "running").order_by(sync_runs.c.started_at)
        with self._db.read("list running runs") as conn:
            return [_run(row) for row in conn.execute(query)]

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
