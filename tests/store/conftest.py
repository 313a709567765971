"""Store fixtures: every contract test runs on a fresh SQLite file and on PostgreSQL.

PostgreSQL is found at $MINIAPP_SYNC_TEST_POSTGRES (default postgresql://postgres@127.0.0.1:5432/test).
Each session creates its own database ``miniapp_sync_test_<random>`` there and drops it at the
end, so parallel sessions and reruns never share tables; tests that need an empty database get
a fresh schema in it. Without a reachable server the
PostgreSQL cases skip, unless CI=true, where they fail.

On PostgreSQL a batch of records is written by executemany or, from a few dozen rows, by COPY
through a staging table (D35). The ``postgresql-copy`` cases run the store's contract again with
every batch written by COPY, so the small batches of the tests check that path, too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

from miniapp_sync.store import Store
from miniapp_sync.store import records as store_records
from miniapp_sync.store.tables import metadata
from miniapp_sync.testing import FakeClock, temporary_database

BACKENDS = ["sqlite", "postgresql"]


class PostgresServer:
    """A database of this session's own on the test server."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._schemas = 0

    def empty_schema_url(self) -> str:
        """Create an empty schema and return a URL whose search_path puts everything there."""
        self._schemas += 1
        schema = f"empty_{self._schemas}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        url = make_url(self.url).update_query_dict({"options": f"-csearch_path={schema}"})
        return url.render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def postgres(postgres_admin_url: str) -> Iterator[PostgresServer]:
    """Return this session's PostgreSQL database, or skip (fail when CI=true) if there is no server."""
    with temporary_database(postgres_admin_url, "miniapp_sync_test") as url:
        yield PostgresServer(url)


@pytest.fixture(scope="session")
def postgres_url(postgres: PostgresServer) -> str:
    """Return the URL of this session's database, migrated once."""
    Store.open(postgres.url).close()
    return postgres.url


@pytest.fixture
def clock() -> FakeClock:
    """Return a clock the test moves by hand."""
    return FakeClock()


@pytest.fixture(params=BACKENDS)
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Return the URL of an empty database (no tables) on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'empty.sqlite'}"
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.empty_schema_url()


def _truncate(url: str) -> None:
    tables = sql.SQL(", ").join(sql.Identifier(t.name) for t in metadata.sorted_tables)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("TRUNCATE {} RESTART IDENTITY CASCADE").format(tables))


@pytest.fixture(params=[*BACKENDS, "postgresql-copy"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Return the URL of a migrated, empty store on each backend."""
    if request.param == "sqlite":
        return str(tmp_path / "store.sqlite")
    if request.param == "postgresql-copy":
        monkeypatch.setattr(store_records, "_COPY_ROWS", 1)
    url: str = request.getfixturevalue("postgres_url")
    _truncate(url)
    return url


@pytest.fixture
def open_store(store_url: str, clock: FakeClock) -> Iterator[Callable[[], Store]]:
    """Return a factory of Store handles on the test's database; all are closed afterwards."""
    opened: list[Store] = []

    def factory() -> Store:
        opened.append(Store.open(store_url, clock=clock))
        return opened[-1]

    yield factory
    for store in opened:
        store.close()


@pytest.fixture
def store(open_store: Callable[[], Store]) -> Store:
    """Return a Store on a fresh database, SQLite or PostgreSQL."""
    return open_store()


@pytest.fixture
def installation_id(store: Store) -> str:
    """Return the id of a fresh installation in ``store``."""
    return store.save_installation("tenant-1", "salla", credentials=b"\x00secret", metadata={}, user_input={}).id
