"""Runs as an operator looks for them (issue #15): by tenant, MiniApp, resource, status and time.

Each run is read with its installation's tenant and ns (one join), so "which tenants' syncs
failed today" is one query and no hand join. Times are epoch seconds of the injected clock, as
every column is; ``since`` is inclusive and ``until`` exclusive, so consecutive windows never
count a run twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, func, select

from miniapp_sync.store.model import Run, RunStatus
from miniapp_sync.store.store import Store
from miniapp_sync.store.tables import checkpoints, installations, sync_runs

__all__ = ["FoundRun", "RunFilter", "RunSearch"]


@dataclass(frozen=True, slots=True)
class RunFilter:
    """Which runs to list: every field that is set must match (statuses: any of them)."""

    installation_ids: tuple[str, ...] | None = None
    tenant: str | None = None
    ns: str | None = None
    resource: str | None = None  # a run of several resources at once (resource null) is not one of its runs
    statuses: tuple[RunStatus, ...] = ()
    since: float | None = None  # started at or after
    until: float | None = None  # started before


@dataclass(frozen=True, slots=True)
class FoundRun:
    """A run, with the tenant and MiniApp of its installation."""

    run: Run
    tenant: str
    ns: str


_RUN_COLUMNS = list(sync_runs.c)


def _found(row: Any) -> FoundRun:
    mapping = row._mapping
    run = Run(**{c.name: mapping[c] for c in _RUN_COLUMNS})
    return FoundRun(run, mapping[installations.c.tenant], mapping[installations.c.ns])


def _joined() -> Select[Any]:
    return select(*_RUN_COLUMNS, installations.c.tenant, installations.c.ns).join(
        installations, installations.c.id == sync_runs.c.installation_id
    )


class RunSearch:
    """Filtered lists of runs, last runs per resource and the checkpoints runs resume from."""

    def __init__(self, store: Store) -> None:
        self._db = store.database

    def find(self, where: RunFilter, *, limit: int, offset: int = 0) -> list[FoundRun]:
        """Return the runs ``where`` selects, newest first, ``offset`` rows in."""
        r, i = sync_runs.c, installations.c
        query = _joined().order_by(r.started_at.desc(), r.id).limit(limit).offset(offset)
        if where.installation_ids is not None:
            query = query.where(r.installation_id.in_(where.installation_ids))
        if where.tenant is not None:
            query = query.where(i.tenant == where.tenant)
        if where.ns is not None:
            query = query.where(i.ns == where.ns)
        if where.resource is not None:
            query = query.where(r.resource == where.resource)
        if where.statuses:
            query = query.where(r.status.in_(where.statuses))
        if where.since is not None:
            query = query.where(r.started_at >= where.since)
        if where.until is not None:
            query = query.where(r.started_at < where.until)
        with self._db.read("search runs") as conn:
            return [_found(row) for row in conn.execute(query)]

    def one(self, run_id: str) -> FoundRun | None:
        """Return one run with its tenant and ns, or None."""
        with self._db.read("read a run") as conn:
            row = conn.execute(_joined().where(sync_runs.c.id == run_id)).first()
        return None if row is None else _found(row)

    def running(self, installation_id: str, resource: str | None) -> Run | None:
        """Return a run of this installation and resource (None: of all) still marked running, or None."""
        r = sync_runs.c
        query = select(sync_runs).where(r.installation_id == installation_id, r.status == "running")
        query = query.where(r.resource.is_(None) if resource is None else r.resource == resource).limit(1)
        with self._db.read("look for a running run") as conn:
            row = conn.execute(query).first()
        return None if row is None else Run(**row._mapping)

    def latest(self, installation_ids: Sequence[str]) -> dict[str, list[Run]]:
        """Return the last run of each resource of these installations (by installation id, by resource)."""
        if not installation_ids:
            return {}
        r = sync_runs.c
        rank = func.row_number().over(partition_by=(r.installation_id, r.resource), order_by=r.started_at.desc())
        ranked = (
            select(sync_runs, rank.label("rank"))
            .where(r.installation_id.in_(installation_ids), r.resource.is_not(None))
            .subquery()
        )
        query = select(*[ranked.c[c.name] for c in _RUN_COLUMNS]).where(ranked.c.rank == 1)
        found: dict[str, list[Run]] = {}
        with self._db.read("read the last runs") as conn:
            for row in conn.execute(query.order_by(ranked.c.resource)):
                run = Run(**row._mapping)
                found.setdefault(run.installation_id, []).append(run)
        return found

    def checkpoints(self, installation_ids: Sequence[str]) -> dict[tuple[str, str], dict[str, Any]]:
        """Return the saved checkpoint states of these installations, by (installation id, resource)."""
        if not installation_ids:
            return {}
        c = checkpoints.c
        query = select(c.installation_id, c.resource, c.state).where(c.installation_id.in_(set(installation_ids)))
        with self._db.read("read checkpoints") as conn:
            return {(row.installation_id, row.resource): row.state for row in conn.execute(query)}
