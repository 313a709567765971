"""The Store: one synchronous API over SQLite or PostgreSQL, safe to share between threads.

Callers in asyncio use ``asyncio.to_thread``. Every timestamp comes from the injected clock.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import EllipsisType, TracebackType
from typing import Any, Self

from sqlalchemy import Row, and_, delete, func, insert, inspect, select, update
from sqlalchemy.dialects import postgresql, sqlite

from miniapp_sync.clock import Clock, SystemClock
from miniapp_sync.errors import StoreError, StoreMissing
from miniapp_sync.store import records as rec
from miniapp_sync.store.database import Database, resolve_url
from miniapp_sync.store.history import DEFAULT_RETENTION_DAYS
from miniapp_sync.store.model import (
    DEAD_LETTER_KINDS,
    INSTALLATION_STATUSES,
    RUN_STATUSES,
    DeadLetter,
    DeadLetterKind,
    Installation,
    InstallationStatus,
    OAuthState,
    RecordSource,
    RecordWrite,
    Run,
    RunStatus,
    StoredRecord,
    WriteResult,
)
from miniapp_sync.store.tables import (
    VERSION_TABLE,
    checkpoints,
    dead_letters,
    installations,
    oauth_states,
    records,
    sync_runs,
)


def _check(value: str, allowed: frozenset[str], what: str) -> None:
    if value not in allowed:
        raise StoreError(f"unknown {what} {value!r}; expected one of {', '.join(sorted(allowed))}")


def _installation(row: Row[Any]) -> Installation:
    # Column names are the dataclass's field names, for this and the two below.
    return Installation(**row._mapping)


def _run(row: Row[Any]) -> Run:
    return Run(**row._mapping)


def _dead_letter(row: Row[Any]) -> DeadLetter:
    return DeadLetter(**row._mapping)


class Store:
    """Installations, records, runs, checkpoints, dead letters and OAuth states in one database."""

    def __init__(
        self, database: Database, *, clock: Clock | None = None, history_days: float = DEFAULT_RETENTION_DAYS
    ) -> None:
        if not history_days >= 0:  # NaN too
            raise StoreError(f"history_days: expected 0 (no record history) or more days, found {history_days}")
        self._db = database
        self._clock = clock or SystemClock()
        self._history_days = history_days

    @classmethod
    def open(
        cls,
        url: str | os.PathLike[str] | None = None,
        *,
        clock: Clock | None = None,
        migrate: bool = True,
        environ: Mapping[str, str] | None = None,
        create: bool = True,
        history_days: float = DEFAULT_RETENTION_DAYS,
    ) -> Self:
        """Open the store at ``url`` (default: $MINIAPP_SYNC_STORE, then ./.miniapp-sync/store.sqlite).

        With ``create=False`` (commands that only read) a store that does not exist yet is a
        StoreMissing error, and nothing is created: no file, no folder, no tables.
        """
        raw = None if url is None else os.fspath(url)
        resolved = resolve_url(raw, os.environ if environ is None else environ)
        if not create and resolved.get_backend_name() == "sqlite" and not Path(resolved.database or "").is_file():
            raise StoreMissing(f"no store at {resolved.database}")
        store = cls(Database(resolved), clock=clock, history_days=history_days)
        if not create and not store.exists():
            store.close()
            raise StoreMissing(f"no store in {store.url} (the database has no miniapp-sync tables)")
        if migrate:
            try:
                store.upgrade()
            except BaseException:
                store.close()
                raise
        return store

    @property
    def history_retention(self) -> float | None:
        """How long record history is kept, in seconds; None: no history is written (D39)."""
        return self._history_days * 86_400.0 if self._history_days else None

    @property
    def url(self) -> str:
        """The database URL, password hidden."""
        return self._db.url.render_as_string(hide_password=True)

    @property
    def sqlite_path(self) -> Path | None:
        """The SQLite file (files that belong beside it, like a generated key, go in its folder); None otherwise."""
        return Path(self._db.url.database or "") if self.dialect == "sqlite" else None

    @property
    def database(self) -> Database:
        """The database under this store, shared by modules that keep their own tables (webhooks)."""
        return self._db

    @property
    def clock(self) -> Clock:
        """The clock every timestamp of this store comes from."""
        return self._clock

    @property
    def dialect(self) -> str:
        """The backend's name: ``sqlite`` or ``postgresql``."""
        return self._db.dialect

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    def close(self) -> None:
        """Close every pooled connection."""
        self._db.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def upgrade(self) -> None:
        """Migrate the schema to the newest revision (alembic upgrade head)."""
        self._db.upgrade()

    def exists(self) -> bool:
        """Say whether the database holds a store (its migrations have run at least once)."""
        with self._db.read("look for the store's tables") as conn:
            return inspect(conn).has_table(VERSION_TABLE)

    # -- installations -------------------------------------------------------------------------

    def save_installation(
        self,
        tenant: str,
        ns: str,
        *,
        credentials: bytes,
        metadata: dict[str, Any],
        user_input: dict[str, Any],
        status: InstallationStatus = "pending",
    ) -> Installation:
        """Insert the installation of ``ns`` for ``tenant``, or replace its credentials, metadata and input."""
        _check(status, INSTALLATION_STATUSES, "installation status")
        now = self._clock.now()
        values = {"credentials": credentials, "metadata": metadata, "user_input": user_input, "status": status}
        dialect_insert = sqlite.insert if self.dialect == "sqlite" else postgresql.insert
        stmt = dialect_insert(installations).values(
            id=uuid.uuid4().hex, tenant=tenant, ns=ns, error=None, created_at=now, updated_at=now, **values
        )
        # A re-install starts clean: the previous error no longer applies.
        stmt = stmt.on_conflict_do_update(
            index_elements=[installations.c.tenant, installations.c.ns],
            set_={**values, "error": None, "updated_at": now},
        )
        with self._db.write(f"save the installation of {ns!r} for tenant {tenant!r}") as conn:
            conn.execute(stmt)
            row = conn.execute(
                select(installations).where(installations.c.tenant == tenant, installations.c.ns == ns)
            ).one()
        return _installation(row)

    def get_installation(self, id: str) -> Installation | None:
        """Return the installation with this id, or None."""
        with self._db.read("read an installation") as conn:
            row = conn.execute(select(installations).where(installations.c.id == id)).first()
        return None if row is None else _installation(row)

    def find_installation(self, tenant: str, ns: str) -> Installation | None:
        """Return the installation of ``ns`` for ``tenant``, or None."""
        query = select(installations).where(installations.c.tenant == tenant, installations.c.ns == ns)
        with self._db.read("find an installation") as conn:
            row = conn.execute(query).first()
        return None if row is None else _installation(row)

    def list_installations(self, ns: str | None = None) -> list[Installation]:
        """Return every installation (of ``ns`` when given), ordered by tenant and ns."""
        query = select(installations).order_by(installations.c.tenant, installations.c.ns)
        if ns is not None:
            query = query.where(installations.c.ns == ns)
        with self._db.read("list installations") as conn:
            return [_installation(row) for row in conn.execute(query)]

    def update_installation(
        self,
        id: str,
        *,
        status: InstallationStatus | None = None,
        error: str | EllipsisType | None = ...,
        credentials: bytes | None = None,
        metadata: dict[str, Any] | None = None,
        user_input: dict[str, Any] | None = None,
        paused_at: float | EllipsisType | None = ...,
    ) -> Installation:
        """Change the given fields of an installation (``error=None`` clears it, ``paused_at=None`` resumes it)."""
        values: dict[str, Any] = {"updated_at": self._clock.now()}
        if status is not None:
            _check(status, INSTALLATION_STATUSES, "installation status")
            values["status"] = status
        if error is not ...:
            values["error"] = error
        if paused_at is not ...:
            values["paused_at"] = paused_at
        for name, value in (("credentials", credentials), ("metadata", metadata), ("user_input", user_input)):
            if value is not None:
                values[name] = value
        with self._db.write(f"update installation {id!r}") as conn:
            conn.execute(update(installations).where(installations.c.id == id).values(values))
            row = conn.execute(select(installations).where(installations.c.id == id)).first()
        if row is None:
            raise StoreError(f"cannot update installation {id!r}: no such installation")
        return _installation(row)

    # -- records ---------------------------------------------------------------------------------

    def write_records(
        self,
        installation_id: str,
        content_type: str,
        writes: Sequence[RecordWrite],
        *,
        source: RecordSource,
        run_id: str | None = None,
        checkpoint: tuple[str, dict[str, Any]] | None = None,
    ) -> WriteResult:
        """Upsert a batch of records and save the resource checkpoint, all in one transaction (D6, D20-D22)."""
        now = self._clock.now()
        with self._db.write(f"write {content_type} records of installation {installation_id!r}") as conn:
            return rec.write_records(
                conn,
                installation_id,
                content_type,
                writes,
                source=source,
                run_id=run_id,
                checkpoint=checkpoint,
                now=now,
                history=self._history_days > 0,
            )

    def get_record(self, installation_id: str, content_type: str, code: str) -> StoredRecord | None:
        """Return one stored record (soft-deleted ones included), or None."""
        r = records.c
        query = select(records).where(
            r.installation_id == installation_id, r.content_type == content_type, r.code == code
        )
        with self._db.read("read a record") as conn:
            row = conn.execute(query).first()
        return None if row is None else rec.to_record(row)

    def list_records(
        self,
        installation_id: str,
        content_type: str | None = None,
        *,
        limit: int = 100,
        offset: int = 0,
        include_deleted: bool = False,
        code: str | None = None,
    ) -> list[StoredRecord]:
        """Return a page of records ordered by content type and code (of one code when given)."""
        r = records.c
        query = select(records).where(r.installation_id == installation_id)
        if content_type is not None:
            query = query.where(r.content_type == content_type)
        if code is not None:
            query = query.where(r.code == code)
        if not include_deleted:
            query = query.where(r.deleted.is_(False))
        query = query.order_by(r.content_type, r.code).limit(limit).offset(offset)
        with self._db.read("list records") as conn:
            return [rec.to_record(row) for row in conn.execute(query)]

    def count_records(
        self,
        installation_id: str,
        content_type: str | None = None,
        *,
        include_deleted: bool = False,
        code: str | None = None,
    ) -> int:
        """Return how many records are stored (soft-deleted ones only when asked; of one code when given)."""
        r = records.c
        query = select(func.count()).select_from(records).where(r.installation_id == installation_id)
        if content_type is not None:
            query = query.where(r.content_type == content_type)
        if code is not None:
            query = query.where(r.code == code)
        if not include_deleted:
            query = query.where(r.deleted.is_(False))
        with self._db.read("count records") as conn:
            return int(conn.execute(query).scalar_one())

    def soft_delete_unseen(
        self, installation_id: str, content_type: str, *, since: float, run_id: str | None = None
    ) -> int:
        """Mark deleted the records neither seen nor written since ``since`` (D23); return how many."""
        now = self._clock.now()
        with self._db.write(f"detect deleted {content_type} records") as conn:
            return rec.soft_delete_unseen(
                conn, installation_id, content_type, since=since, now=now, run_id=run_id, history=self._history_days > 0
            )

    # -- runs and checkpoints ----------------------------------------------------------------------

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
        _check(status, RUN_STATUSES - {"running"}, "final run status")
        values = {"status": status, "stats": stats, "error": error, "finished_at": self._clock.now()}
        if progress is not None:
            values["progress"] = progress
        with self._db.write(f"finish run {run_id!r}") as conn:
            conn.execute(update(sync_runs).where(sync_runs.c.id == run_id).values(values))
            row = conn.execute(select(sync_runs).where(sync_runs.c.id == run_id)).first()
        if row is None:
            raise StoreError(f"cannot finish run {run_id!r}: no such run")
        return _run(row)

    def get_run(self, run_id: str) -> Run | None:
        """Return the run with this id, or None."""
        with self._db.read("read a run") as conn:
            row = conn.execute(select(sync_runs).where(sync_runs.c.id == run_id)).first()
        return None if row is None else _run(row)

    def runs_of_job(self, job_id: str) -> list[Run]:
        """Return the runs the job ``job_id`` started (one, or none yet), newest first."""
        query = select(sync_runs).where(sync_runs.c.job_id == job_id).order_by(sync_runs.c.started_at.desc())
        with self._db.read("read a job's runs") as conn:
            return [_run(row) for row in conn.execute(query)]

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
            return [_run(row) for row in conn.execute(query)]

    def get_checkpoint(self, installation_id: str, resource: str) -> dict[str, Any] | None:
        """Return the saved state of (installation, resource), or None."""
        c = checkpoints.c
        query = select(c.state).where(c.installation_id == installation_id, c.resource == resource)
        with self._db.read("read a checkpoint") as conn:
            state: dict[str, Any] | None = conn.execute(query).scalar_one_or_none()
        return state

    def clear_checkpoint(self, installation_id: str, resource: str) -> None:
        """Forget the checkpoint of (installation, resource), so the next run starts from the beginning."""
        c = checkpoints.c
        with self._db.write(f"clear the checkpoint of {resource!r}") as conn:
            conn.execute(delete(checkpoints).where(c.installation_id == installation_id, c.resource == resource))

    # -- dead letters --------------------------------------------------------------------------------

    def add_dead_letter(
        self,
        installation_id: str,
        *,
        kind: DeadLetterKind,
        source: str,
        payload: Any,
        reason: str,
        run_id: str | None = None,
    ) -> int:
        """Keep a record or delivery that could not be processed; return its id."""
        _check(kind, DEAD_LETTER_KINDS, "dead letter kind")
        values = {
            "installation_id": installation_id,
            "kind": kind,
            "source": source,
            "payload": payload,
            "reason": reason,
            "run_id": run_id,
            "created_at": self._clock.now(),
        }
        with self._db.write(f"add a dead letter for installation {installation_id!r}") as conn:
            new_id = conn.execute(insert(dead_letters).values(values).returning(dead_letters.c.id)).scalar_one()
        return int(new_id)

    def list_dead_letters(
        self,
        installation_id: str | None = None,
        *,
        installation_ids: Sequence[str] | None = None,
        kind: DeadLetterKind | None = None,
        include_replayed: bool = False,
        limit: int = 100,
        offset: int = 0,
    ) -> list[DeadLetter]:
        """Return dead letters oldest first, the order to replay them in, ``offset`` rows in."""
        d = dead_letters.c
        query = select(dead_letters).order_by(d.id).limit(limit).offset(offset)
        if installation_id is not None:
            query = query.where(d.installation_id == installation_id)
        if installation_ids is not None:  # the installations of a tenant, say
            query = query.where(d.installation_id.in_(installation_ids))
        if kind is not None:
            query = query.where(d.kind == kind)
        if not include_replayed:
            query = query.where(d.replayed_at.is_(None))
        with self._db.read("list dead letters") as conn:
            return [_dead_letter(row) for row in conn.execute(query)]

    def get_dead_letter(self, id: int) -> DeadLetter | None:
        """Return the dead letter with this id, or None."""
        with self._db.read("read a dead letter") as conn:
            row = conn.execute(select(dead_letters).where(dead_letters.c.id == id)).first()
        return None if row is None else _dead_letter(row)

    def mark_replayed(self, id: int) -> None:
        """Record that a dead letter was replayed, so it leaves the default listing."""
        stmt = update(dead_letters).where(dead_letters.c.id == id).values(replayed_at=self._clock.now())
        with self._db.write(f"mark dead letter {id} replayed") as conn:
            if conn.execute(stmt).rowcount == 0:
                raise StoreError(f"cannot mark dead letter {id} replayed: no such dead letter")

    # -- OAuth state ---------------------------------------------------------------------------------

    def put_oauth_state(
        self,
        state: str,
        *,
        tenant: str,
        ns: str,
        expires_at: float,
        redirect_uri: str | None = None,
        reconnect: bool = False,
        user_input: Mapping[str, Any] | None = None,
    ) -> None:
        """Remember an OAuth ``state`` for (tenant, ns) until ``expires_at``, with what it is bound to."""
        now = self._clock.now()
        values = {
            "state": state,
            "tenant": tenant,
            "ns": ns,
            "created_at": now,
            "expires_at": expires_at,
            "redirect_uri": redirect_uri,
            "reconnect": reconnect,
            "user_input": dict(user_input or {}),
        }
        with self._db.write("save an OAuth state") as conn:
            # Expired states can never be taken again; dropping them here keeps the table small.
            conn.execute(delete(oauth_states).where(oauth_states.c.expires_at <= now))
            conn.execute(insert(oauth_states).values(values))

    def take_oauth_state(self, state: str) -> OAuthState | None:
        """Return a live ``state`` and mark it used; None when unknown, expired or used."""
        o = oauth_states.c
        now = self._clock.now()
        # One conditional UPDATE: of two concurrent callbacks with the same state, only one matches.
        stmt = (
            update(oauth_states)
            .where(and_(o.state == state, o.used_at.is_(None), o.expires_at > now))
            .values(used_at=now)
            .returning(o.tenant, o.ns, o.redirect_uri, o.reconnect, o.user_input)
        )
        with self._db.write("take an OAuth state") as conn:
            row = conn.execute(stmt).first()
        if row is None:
            return None
        return OAuthState(row[0], row[1], row[2], bool(row[3]), dict(row[4] or {}))
