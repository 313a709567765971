"""The Store: one synchronous API over SQLite or PostgreSQL, safe to share between threads.

Callers in asyncio use ``asyncio.to_thread``. Every timestamp comes from the injected clock.
The methods live beside their tables, one base class each (``installations.InstallationRows``,
``records.RecordRows``, ``runs.RunRows``, ``checkpoints.CheckpointRows``,
``dead_letters.DeadLetterRows``, ``oauth_states.OAuthStateRows``); this module opens, migrates and
closes the database they share.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Self

from sqlalchemy import inspect

from miniapp_sync.clock import Clock, SystemClock
from miniapp_sync.errors import StoreError, StoreMissing
from miniapp_sync.store.checkpoints import CheckpointRows
from miniapp_sync.store.database import Database, resolve_url
from miniapp_sync.store.dead_letters import DeadLetterRows
from miniapp_sync.store.history import DEFAULT_RETENTION_DAYS
from miniapp_sync.store.installations import InstallationRows
from miniapp_sync.store.oauth_states import OAuthStateRows
from miniapp_sync.store.records import RecordRows
from miniapp_sync.store.runs import RunRows
from miniapp_sync.store.tables import VERSION_TABLE


def _damaged(store: Store, exc: StoreError) -> StoreError | None:
    """Return the error for a SQLite file that is not a database or is damaged; None for any other error.

    SQLite says only "file is not a database" or "database disk image is malformed": name the
    file, and what to do, rather than leave an operator to guess (or, on upgrade, to think of a
    newer miniapp-sync).
    """
    cause = getattr(exc.__cause__, "orig", None)
    if store.sqlite_path is None or type(cause) is not sqlite3.DatabaseError:  # not its subclasses (locks, SQL)
        return None
    return StoreError(
        f"{exc} (hint: {store.sqlite_path} is not a miniapp-sync store, or is damaged: restore it from a "
        "backup, or point --store / MINIAPP_SYNC_STORE at the right file)"
    )


class Store(InstallationRows, RecordRows, RunRows, CheckpointRows, DeadLetterRows, OAuthStateRows):
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
        try:
            if not create and not store.exists():
                raise StoreMissing(f"no store in {store.url} (the database has no miniapp-sync tables)")
            if migrate:
                store.upgrade()
        except StoreError as exc:
            store.close()
            damaged = _damaged(store, exc)
            if damaged is None:
                raise
            raise damaged from exc
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
