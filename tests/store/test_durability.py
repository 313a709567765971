"""Durable and relaxed writes on SQLite: an fsync where a commit must survive a power cut, none for bookkeeping."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Connection, text

from miniapp_sync.errors import StoreError
from miniapp_sync.store import Store

FULL, NORMAL = 2, 1  # PRAGMA synchronous


def synchronous(conn: Connection) -> int:
    return int(conn.execute(text("PRAGMA synchronous")).scalar_one())


def test_a_relaxed_write_commits_without_fsync_and_its_connection_goes_back_durable(tmp_path: Path) -> None:
    with Store.open(str(tmp_path / "store.sqlite")) as store:
        database = store.database
        with database.write("make a table") as conn:
            assert synchronous(conn) == FULL
            conn.execute(text("CREATE TABLE marks (n INTEGER)"))
        with database.write("claim something", durable=False) as conn:
            assert synchronous(conn) == NORMAL
            conn.execute(text("INSERT INTO marks VALUES (1)"))
        with database.write("acknowledge something") as conn:  # the pool's one connection, durable again
            assert synchronous(conn) == FULL
        with database.read("count") as conn:
            assert conn.execute(text("SELECT count(*) FROM marks")).scalar_one() == 1


def test_a_relaxed_write_that_fails_rolls_back_and_its_connection_goes_back_durable(tmp_path: Path) -> None:
    with Store.open(str(tmp_path / "store.sqlite")) as store:
        database = store.database
        with database.write("make a table") as conn:
            conn.execute(text("CREATE TABLE marks (n INTEGER NOT NULL)"))

        def claim_badly() -> None:
            with database.write("claim something", durable=False) as conn:
                conn.execute(text("INSERT INTO marks VALUES (1)"))
                conn.execute(text("INSERT INTO marks VALUES (NULL)"))

        with pytest.raises(StoreError, match="cannot claim something"):
            claim_badly()
        with database.write("acknowledge something") as conn:
            assert synchronous(conn) == FULL
            assert conn.execute(text("SELECT count(*) FROM marks")).scalar_one() == 0


def test_a_relaxed_staged_write_runs_its_statements_and_commit_elsewhere_and_goes_back_durable(tmp_path: Path) -> None:
    with Store.open(str(tmp_path / "store.sqlite")) as store:
        database = store.database
        with database.write("make a table") as conn:
            conn.execute(text("CREATE TABLE marks (n INTEGER NOT NULL)"))
        seen: list[int] = []
        result, commit = database.write_staged(
            "write a bulk batch",
            lambda conn: seen.append(synchronous(conn)) or "decided",
            lambda conn: conn.execute(text("INSERT INTO marks VALUES (1)")),
            durable=False,
        )
        commit.result(timeout=60)
        assert (result, seen) == ("decided", [NORMAL])
        with database.write("acknowledge something") as conn:
            assert synchronous(conn) == FULL
            assert conn.execute(text("SELECT count(*) FROM marks")).scalar_one() == 1


def test_a_relaxed_staged_write_whose_statements_fail_rolls_back_and_goes_back_durable(tmp_path: Path) -> None:
    with Store.open(str(tmp_path / "store.sqlite")) as store:
        database = store.database
        with database.write("make a table") as conn:
            conn.execute(text("CREATE TABLE marks (n INTEGER NOT NULL)"))

        def statements(conn: Connection) -> None:
            conn.execute(text("INSERT INTO marks VALUES (1)"))
            conn.execute(text("INSERT INTO marks VALUES (NULL)"))

        _, commit = database.write_staged(
            "write a bulk batch",
            lambda conn: conn.execute(text("INSERT INTO marks VALUES (2)")),
            statements,
            durable=False,
        )
        with pytest.raises(StoreError, match="cannot write a bulk batch"):
            commit.result(timeout=60)
        with database.write("acknowledge something") as conn:
            assert synchronous(conn) == FULL
            assert conn.execute(text("SELECT count(*) FROM marks")).scalar_one() == 0
