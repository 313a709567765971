"""``db upgrade``: the store's migrations plus Procrastinate's schema, installed once and upgraded in order."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import procrastinate
import pytest
from sqlalchemy import Engine, create_engine, text

from miniapp_sync.errors import StoreError
from miniapp_sync.jobs.schema import install_job_schema, migrations, upgrade_database, version

from .conftest import migration_head


@pytest.fixture
def engine(pg_url: str) -> Iterator[Engine]:
    made = create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://", 1))
    yield made
    made.dispose()


def _comment(engine: Engine) -> str:
    with engine.connect() as conn:
        return str(conn.execute(text("SELECT obj_description('procrastinate_jobs'::regclass, 'pg_class')")).scalar())


def _mark(engine: Engine, comment: str | None) -> None:
    with engine.begin() as conn:
        conn.execute(text(f"COMMENT ON TABLE procrastinate_jobs IS {'NULL' if comment is None else repr(comment)}"))


def test_upgrade_migrates_the_store_and_installs_the_job_schema_once(pg_url: str, engine: Engine) -> None:
    first = upgrade_database(pg_url, environ={})
    assert first[0].endswith(f"schema at revision {migration_head()}")
    assert first[1] == f"job queue: installed the Procrastinate {procrastinate.__version__} schema"
    assert _comment(engine) == f"procrastinate {procrastinate.__version__} schema, miniapp-sync"
    again = upgrade_database(pg_url, environ={})
    assert again[1] == f"job queue: the Procrastinate {procrastinate.__version__} schema is current"
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM procrastinate_jobs")).scalar_one() == 0


def test_upgrade_applies_the_migrations_released_since_the_installed_schema(engine: Engine, tmp_path: Path) -> None:
    install_job_schema(engine)
    _mark(engine, "procrastinate 3.8.0 schema, miniapp-sync")
    (tmp_path / "03.08.00_01_pre_already_there.sql").write_text("CREATE TABLE must_not_run (x int);")
    (tmp_path / "03.09.00_01_pre_first.sql").write_text("CREATE TABLE probe (step int);")
    (tmp_path / "03.09.00_02_post_second.sql").write_text("INSERT INTO probe VALUES (2); -- 100% applied")
    (tmp_path / "99.00.00_01_pre_future.sql").write_text("CREATE TABLE not_yet (x int);")
    said = install_job_schema(engine, folder=tmp_path)
    assert (
        said == f"job queue: upgraded the schema from Procrastinate 3.8.0 to {procrastinate.__version__} (2 migrations)"
    )
    with engine.connect() as conn:
        assert conn.execute(text("SELECT step FROM probe")).scalar_one() == 2
        skipped = conn.execute(text("SELECT to_regclass('must_not_run'), to_regclass('not_yet')")).one()
    assert tuple(skipped) == (None, None)  # older than the schema, or newer than the installed release
    assert _comment(engine).startswith(f"procrastinate {procrastinate.__version__} ")


def test_a_schema_installed_by_someone_else_is_left_alone(engine: Engine) -> None:
    install_job_schema(engine)
    _mark(engine, None)
    assert "miniapp-sync did not install; left as it is" in install_job_schema(engine)


def test_a_schema_newer_than_the_installed_procrastinate_is_refused(engine: Engine) -> None:
    install_job_schema(engine)
    _mark(engine, "procrastinate 99.0.0 schema, miniapp-sync")
    with pytest.raises(StoreError, match=r"Procrastinate 99\.0\.0's, newer than the installed"):
        install_job_schema(engine)


def test_procrastinates_own_migrations_are_found_in_release_order() -> None:
    found = migrations()
    assert found == sorted(found)
    assert found[0].version < found[-1].version <= version(procrastinate.__version__)
    assert all(m.path.suffix == ".sql" for m in found)


def test_release_numbers_compare_as_numbers() -> None:
    assert version("03.04.00") == (3, 4, 0)
    assert version("3.10.0") > version("3.9.1")
    assert version("3.11.0.dev2") == (3, 11, 0)
    with pytest.raises(ValueError, match="not a release number"):
        version("three")


def test_on_sqlite_there_is_no_job_schema_to_install(tmp_path: Path) -> None:
    said = upgrade_database(str(tmp_path / "store.sqlite"), environ={})
    assert said[1] == "job queue: none needed (on SQLite, `serve` runs jobs in its own process)"
