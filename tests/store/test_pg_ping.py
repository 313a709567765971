"""PostgreSQL pool pings: a connection idle a while is pinged and replaced when dead; a busy one is not pinged."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from miniapp_sync.errors import StoreError
from miniapp_sync.store.database import translated
from miniapp_sync.store.pg_ping import ping_when_idle


def _engine(url: str, idle: float) -> Iterator[Engine]:
    engine = create_engine(make_url(url).set(drivername="postgresql+psycopg"), pool_size=1, max_overflow=0)
    ping_when_idle(engine, idle=idle)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def idle_pinged(postgres_url: str) -> Iterator[Engine]:
    """An engine whose every checkout counts as idle: each one is pinged."""
    yield from _engine(postgres_url, 0.0)


@pytest.fixture
def never_pinged(postgres_url: str) -> Iterator[Engine]:
    """An engine whose connections never count as idle (an hour): none is pinged."""
    yield from _engine(postgres_url, 3600.0)


def _backend_pid(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


def _terminate(url: str, pid: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        assert conn.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone() == (True,)


def test_an_idle_connection_the_server_closed_is_replaced_before_use(idle_pinged: Engine, postgres_url: str) -> None:
    pid = _backend_pid(idle_pinged)
    _terminate(postgres_url, pid)
    assert _backend_pid(idle_pinged) != pid  # the ping found it dead: the pool connected afresh


def test_a_connection_in_recent_use_is_not_pinged_so_its_death_fails_one_call_clearly(
    never_pinged: Engine, postgres_url: str
) -> None:
    pid = _backend_pid(never_pinged)
    _terminate(postgres_url, pid)
    dead = pytest.raises(StoreError, match=r"^cannot read: AdminShutdown: terminating connection")
    with dead, translated("read"), never_pinged.connect() as conn:
        conn.execute(text("SELECT 1"))
    assert _backend_pid(never_pinged) != pid  # the failed call invalidated it: the next one reconnects
