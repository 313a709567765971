"""Where the store lives: URL resolution, the engine per backend, transactions and migrations.

SQLite (the embedded default) runs in WAL mode with ``synchronous=FULL``, foreign keys on and a
busy timeout. Its connections come from a pool, one per thread at a time; write transactions
start with ``BEGIN IMMEDIATE`` so a reader never has to upgrade to a writer half-way (which
SQLite answers with "database is locked" instead of waiting), and writers take a lock first, so
they queue fairly instead of polling the busy handler: a thread lock within this process, an
``flock`` on ``<store>-writer`` between processes (``serve`` and its inbox processor, a CLI sync).
PostgreSQL is reached through psycopg 3.
"""

from __future__ import annotations

import fcntl
import os
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar

from sqlalchemy import Connection, create_engine, event, inspect, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from miniapp_sync import exactjson
from miniapp_sync.errors import StoreError
from miniapp_sync.store.pg_ping import ping_when_idle
from miniapp_sync.store.tables import VERSION_TABLE

if TYPE_CHECKING:
    from concurrent.futures import Future, ThreadPoolExecutor

ENV_VAR: Final = "MINIAPP_SYNC_STORE"
DEFAULT_PATH: Final = Path(".miniapp-sync") / "store.sqlite"
BUSY_TIMEOUT_SECONDS: Final = 30.0
MIGRATIONS: Final = Path(__file__).with_name("migrations")
# A migration file's own revision line (``revision: str = "0005"``); see head_revision().
_REVISION: Final = re.compile(r"^(down_revision|revision)\b[^=\n]*=\s*(?:None|['\"]([^'\"]+)['\"])\s*$", re.MULTILINE)

_WRITE: Final = "miniapp_sync_write"  # execution option: this transaction will write

T = TypeVar("T")


def resolve_url(url: str | None, environ: Mapping[str, str]) -> URL:
    """Turn a store URL or a file path (or nothing: the environment, then the default file) into a URL."""
    raw = url if url is not None else environ.get(ENV_VAR) or str(DEFAULT_PATH)
    if "://" not in raw:
        return _sqlite_url(raw)
    try:
        parsed = make_url(raw)
    except ArgumentError as exc:
        raise StoreError(f"store URL cannot be parsed: {exc}") from None
    backend, _, driver = parsed.drivername.partition("+")
    if backend in ("postgresql", "postgres"):
        if driver not in ("", "psycopg"):
            raise StoreError(
                f"store URL names the PostgreSQL driver {driver!r}; expected psycopg (psycopg 3)",
            )
        return parsed.set(drivername="postgresql+psycopg")
    if backend == "sqlite":
        if driver not in ("", "pysqlite") or not parsed.database or parsed.database == ":memory:":
            raise StoreError(
                f"unsupported SQLite store URL {parsed.render_as_string()!r}; "
                "expected a file, e.g. sqlite:///path/to/store.sqlite (an in-memory database is not shared "
                "between connections)",
            )
        return _sqlite_url(parsed.database)
    raise StoreError(
        f"unsupported store URL scheme {parsed.drivername!r}; "
        "expected sqlite:///path, postgresql://user@host/db or a file path",
    )


def _sqlite_url(path: str) -> URL:
    return URL.create("sqlite+pysqlite", database=str(Path(path).expanduser().resolve()))


class _NotJSON(StoreError):
    """A JSON column was given a value JSON cannot represent."""


def _dumps(value: Any) -> str:
    # psycopg calls this while sending the query, where SQLAlchemy does not wrap what is raised;
    # a StoreError subclass is recognisable on both paths (see translated()).
    try:
        return exactjson.dumps(value).decode()
    except (TypeError, ValueError) as exc:  # orjson's JSONEncodeError is a TypeError; json's a ValueError too
        raise _NotJSON(f"a value is not JSON-serialisable ({exc})") from None


def _describe(exc: BaseException) -> str:
    # The driver's own exception says what went wrong; SQLAlchemy's text adds SQL we don't need,
    # and the driver's DETAIL lines may quote values (keys, tokens), so only the first line is kept.
    orig = getattr(exc, "orig", None) or exc
    first = (str(orig).strip().splitlines() or [""])[0]
    return first if isinstance(orig, StoreError) else f"{type(orig).__name__}: {first}"


@contextmanager
def translated(action: str) -> Iterator[None]:
    """Raise database failures inside the block as StoreError naming ``action``."""
    try:
        yield
    except (SQLAlchemyError, _NotJSON) as exc:
        raise StoreError(f"cannot {action}: {_describe(exc)}") from exc


class Database:
    """An engine with the store's transaction rules; ``read()`` and ``write()`` hand out connections."""

    def __init__(self, url: URL) -> None:
        self.url = url
        self.dialect = url.get_backend_name()
        self._write_lock: AbstractContextManager[object]
        if self.dialect == "sqlite":
            _private_sqlite_file(Path(url.database or ""))
            self.engine = create_engine(
                url,
                connect_args={"timeout": BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
                pool_size=8,
                max_overflow=24,
                json_serializer=_dumps,
                json_deserializer=exactjson.loads,
                hide_parameters=True,  # parameters may hold credentials; keep them out of errors
            )
            event.listen(self.engine, "connect", _sqlite_connect)
            event.listen(self.engine, "begin", _sqlite_begin)
            self._write_lock = WriterLock(Path(f"{url.database}-writer"))
        else:
            self.engine = create_engine(
                url,
                json_serializer=_dumps,
                json_deserializer=exactjson.loads,
                hide_parameters=True,
            )
            # Survive a database restart between calls: a connection idle a while is pinged first,
            # not every one (pool_pre_ping's round trip per checkout); see pg_ping.
            ping_when_idle(self.engine)
            # PostgreSQL handles concurrent writers itself (row locks, advisory locks).
            self._write_lock = nullcontext()
        self._committer: ThreadPoolExecutor | None = None  # write_staged's one thread, made by the first
        self._committer_made = threading.Lock()

    @contextmanager
    def read(self, action: str) -> Iterator[Connection]:
        """Yield a connection for reading; its snapshot ends with the block."""
        with translated(action), self.engine.connect() as conn:
            yield conn

    @contextmanager
    def write(self, action: str, *, durable: bool = True) -> Iterator[Connection]:
        """Yield a connection inside one write transaction, committed when the block ends without error.

        ``durable=False`` (SQLite): the commit skips its fsync (``synchronous=NORMAL``), for bookkeeping
        that a power cut may lose without harm (a claim of inbox rows, a trigger POST's outcome). A
        process that crashes loses nothing either way, and the WAL keeps commits in order: the next
        durable commit makes this one durable too. The fsync is most of a small commit's time, spent
        holding the writer lock that ``serve``'s acknowledgements wait for.
        """
        with translated(action), self._write_lock, self.engine.connect() as conn:
            conn.execution_options(**{_WRITE: True})
            with _relaxed(conn, not durable and self.dialect == "sqlite"), conn.begin():
                yield conn

    def write_staged(
        self,
        action: str,
        body: Callable[[Connection], T],
        then: Callable[[Connection], object] | None = None,
        *,
        durable: bool = True,
    ) -> tuple[T, Future[None]]:
        """Run ``body`` in a write transaction on this thread; run ``then`` and commit on the committer thread.

        Return what ``body`` returned and the commit's future (done when the transaction is
        committed, or rolled back and the error raised). On SQLite a commit is an fsync of the
        WAL, milliseconds of waiting that the caller (a bulk run on the event loop) spends
        fetching and mapping its next pages instead. The writer lock is held until the commit
        ends, so every other write, in any thread, waits for it as for an ordinary ``write``.
        The committer is one thread of this database's own: a commit never queues behind work
        that may be waiting for this very lock (the default executor's threads may be). When
        ``body`` raises, the transaction is rolled back here and nothing is left to commit; when
        ``then`` raises, it is rolled back there, and the future raises what it raised.
        ``durable=False`` (SQLite): the commit skips its fsync, as ``write``'s does.
        """
        stack = ExitStack()
        with translated(action):
            try:
                stack.enter_context(self._write_lock)
                conn = stack.enter_context(self.engine.connect())
                conn.execution_options(**{_WRITE: True})
                stack.enter_context(_relaxed(conn, not durable and self.dialect == "sqlite"))
                stack.enter_context(conn.begin())
                result = body(conn)
                return result, self._commit_thread().submit(self._commit, stack, action, conn, then)
            except BaseException as exc:
                stack.__exit__(type(exc), exc, exc.__traceback__)  # roll back, give back, unlock
                raise

    def _commit_thread(self) -> ThreadPoolExecutor:
        with self._committer_made:
            if self._committer is None:
                from concurrent.futures import ThreadPoolExecutor  # only processes that stage writes need it

                self._committer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="miniapp-sync-commit")
            return self._committer

    @staticmethod
    def _commit(stack: ExitStack, action: str, conn: Connection, then: Callable[[Connection], object] | None) -> None:
        with translated(action):
            try:
                if then is not None:
                    then(conn)
            except BaseException as exc:
                stack.__exit__(type(exc), exc, exc.__traceback__)  # roll back, give back, unlock
                raise
            stack.close()  # commit, give the connection back, unlock

    def upgrade(self) -> None:
        """Run the Alembic migrations up to head (a no-op when the schema is current).

        Alembic costs every command ~0.1 s of imports; when the version table already holds the
        head revision there is nothing to run, so that case is checked first without it.
        """
        head, current = head_revision(), self._current_revisions()
        if head is not None and current == {head}:
            return
        from alembic import command
        from alembic.config import Config
        from alembic.util.exc import CommandError

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        if not current:
            with translated("migrate the store"), self.engine.connect() as conn:
                if inspect(conn).has_table("installations"):
                    # Migrating would start from the first revision and fail on its first CREATE TABLE.
                    raise StoreError(
                        f"cannot migrate the store: it holds miniapp-sync's tables but its {VERSION_TABLE} "
                        "table names no schema revision (hint: restore the store from a backup, or give "
                        "--store a new one)"
                    )
        with translated("migrate the store"), self._write_lock, self.engine.connect() as conn:
            conn.execution_options(**{_WRITE: True})
            config.attributes["connection"] = conn
            try:
                command.upgrade(config, "head")
            except CommandError as exc:
                raise StoreError(
                    f"cannot migrate the store: {exc} (hint: was it migrated by a newer miniapp-sync?)"
                ) from exc

    def _current_revisions(self) -> set[str] | None:
        """Return the revisions in the version table, or None when it cannot be read (a new database)."""
        try:
            with self.engine.connect() as conn:
                return {row[0] for row in conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}"))}
        except SQLAlchemyError:
            return None

    def dispose(self) -> None:
        """Close every pooled connection (after the staged commits still running)."""
        with self._committer_made:
            committer, self._committer = self._committer, None
        if committer is not None:
            committer.shutdown(wait=True)
        self.engine.dispose()
        if isinstance(self._write_lock, WriterLock):
            self._write_lock.close()


class WriterLock:
    """One SQLite writer at a time: the threads of this process on a lock, processes on an ``flock``.

    SQLite's busy handler polls with growing sleeps (up to 100 ms), so a writer waiting for another
    process misses the short gaps between that process's transactions and can wait seconds behind
    a busy one (measured: ``serve``'s group commit behind its inbox processor). The kernel wakes an
    ``flock`` waiter as soon as the lock is released. Each instance opens the file itself: a lock
    is shared by whoever shares the open file, so a forked child must not use its parent's.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._threads = threading.Lock()
        self._fd: int | None = None

    def __enter__(self) -> None:
        self._threads.acquire()
        try:
            if self._fd is None:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        except OSError as exc:
            self._threads.release()
            raise StoreError(f"cannot lock the store for writing ({self.path}): {exc.strerror}") from None
        except BaseException:
            self._threads.release()
            raise

    def __exit__(self, *exc: object) -> None:
        try:
            if self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._threads.release()

    def close(self) -> None:
        """Close the lock file (the lock goes with it)."""
        with self._threads:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


@contextmanager
def _relaxed(conn: Connection, relax: bool) -> Iterator[None]:
    """Commit without an fsync inside the block (SQLite), and hand the connection back durable."""
    if not relax:
        yield
        return
    raw: Any = conn.connection.driver_connection
    raw.execute("PRAGMA synchronous=NORMAL")  # outside the transaction, which SQLite requires
    try:
        yield
    finally:
        try:
            raw.execute("PRAGMA synchronous=FULL")
        except Exception:
            conn.invalidate()  # never back to the pool relaxed: the next writer there may be an acknowledgement
            raise


def head_revision(versions: Path = MIGRATIONS / "versions") -> str | None:
    """Return the newest migration's revision, read from the files; None when that is not certain.

    Each file must state one ``revision`` and one ``down_revision`` and exactly one revision
    must be nobody's ``down_revision``; anything else (a branch, a file written differently)
    answers None, and ``upgrade`` leaves the decision to Alembic. A test checks this agrees
    with Alembic's own head.
    """
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in versions.glob("*.py"):
        lines = _REVISION.findall(path.read_text(encoding="utf-8"))
        found = dict(lines)
        if len(lines) != 2 or len(found) != 2 or not found["revision"]:
            return None
        revisions.add(found["revision"])
        if found["down_revision"]:
            parents.add(found["down_revision"])
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def _private_sqlite_file(path: Path) -> None:
    """Create the SQLite file 0600 before SQLite does, and make an existing store's files 0600 (D31c).

    SQLite creates the ``-wal`` and ``-shm`` files with the database file's permissions, so a
    private database file keeps them private too. The store holds webhook bodies, records and
    encrypted credentials beside the key file: nobody else on the machine needs to read it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass
    except OSError as exc:
        raise StoreError(f"cannot create the store file {path}: {exc.strerror}") from None
    for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        try:
            if name.stat().st_mode & 0o077:
                name.chmod(0o600)
        except FileNotFoundError:
            continue
        except PermissionError:  # another user's file: SQLite will say whether it can be opened
            continue


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # Take transaction control away from the sqlite3 module, which would BEGIN lazily and
    # DEFERRED; _sqlite_begin emits BEGIN itself, IMMEDIATE for writes.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_SECONDS * 1000)}")
    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(_WRITE) else "BEGIN")
