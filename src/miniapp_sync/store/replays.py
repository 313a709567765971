"""Bulk replays of webhook deliveries: what was asked, the job that runs it, and its report (D36)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import insert, select, update

from miniapp_sync.store.store import Store
from miniapp_sync.store.webhook_tables import delivery_replays

ReplayStatus = Literal["queued", "running", "done", "failed"]
r = delivery_replays.c


@dataclass(frozen=True, slots=True)
class Replay:
    """One bulk replay: its MiniApp, selection (``{"ids": [...]}`` or ``{"filter": {...}}``), state and report."""

    id: str
    ns: str
    selection: dict[str, Any]
    status: ReplayStatus
    report: dict[str, Any] | None
    job_id: str | None
    created_at: float
    finished_at: float | None


class Replays:
    """The delivery_replays table, on the store's database."""

    def __init__(self, store: Store) -> None:
        self._db = store.database
        self._clock = store.clock

    def create(self, ns: str, selection: dict[str, Any]) -> Replay:
        """Record a replay to be queued."""
        values: dict[str, Any] = {
            "id": uuid.uuid4().hex,
            "ns": ns,
            "selection": selection,
            "status": "queued",
            "report": None,
            "job_id": None,
            "created_at": self._clock.now(),
            "finished_at": None,
        }
        with self._db.write("record a replay of webhook deliveries") as conn:
            conn.execute(insert(delivery_replays).values(values))
        return Replay(**values)

    def queued(self, id: str, job_id: str | None) -> None:
        """Name the job that runs a replay."""
        self._set(id, job_id=job_id)

    def start(self, id: str, selection: dict[str, Any]) -> None:
        """Mark a replay running, with its selection as the job resolved it (see ``bulk_replay.run``)."""
        self._set(id, status="running", selection=selection)

    def finish(self, id: str, status: ReplayStatus, report: dict[str, Any]) -> None:
        """Record how a replay ended and its report."""
        self._set(id, status=status, report=report, finished_at=self._clock.now())

    def get(self, id: str) -> Replay | None:
        """Return one replay, or None."""
        with self._db.read("read a replay") as conn:
            row = conn.execute(select(delivery_replays).where(r.id == id)).first()
        return None if row is None else Replay(**row._mapping)

    def of_job(self, job_id: str) -> Replay | None:
        """Return the replay a job ran (or runs), or None."""
        with self._db.read("find a job's replay") as conn:
            row = conn.execute(select(delivery_replays).where(r.job_id == job_id)).first()
        return None if row is None else Replay(**row._mapping)

    def _set(self, id: str, **values: Any) -> None:
        with self._db.write(f"update replay {id}") as conn:
            conn.execute(update(delivery_replays).where(r.id == id).values(values))
