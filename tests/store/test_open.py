"""Store.open: where the store lives, which URLs it accepts, and what it shows of them."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from miniapp_sync.errors import StoreError
from miniapp_sync.store import Store


def test_default_store_is_a_sqlite_file_under_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with Store.open(environ={}) as store:
        assert store.dialect == "sqlite"
        assert store.url == f"sqlite+pysqlite:///{tmp_path / '.miniapp-sync' / 'store.sqlite'}"
    assert (tmp_path / ".miniapp-sync" / "store.sqlite").is_file()


def test_environment_names_the_store(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "from-env.sqlite"
    with Store.open(environ={"MINIAPP_SYNC_STORE": str(path)}) as store:
        assert store.url.endswith(str(path))
        assert store.sqlite_path == path
    assert path.is_file()


@pytest.mark.parametrize("form", ["path", "sqlite-url"])
def test_a_path_or_a_sqlite_url_opens_that_file(tmp_path: Path, form: str) -> None:
    path = tmp_path / "s.sqlite"
    with Store.open(str(path) if form == "path" else f"sqlite:///{path}") as store:
        store.save_installation("t", "ns", credentials=b"", metadata={}, user_input={})
    with Store.open(str(path)) as store:
        assert len(store.list_installations()) == 1


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_the_sqlite_store_and_its_wal_and_shm_files_are_created_0600(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    old = os.umask(0o022)  # the usual umask, under which SQLite would create them 0644
    try:
        with Store.open(str(path)) as store:
            store.save_installation("t", "ns", credentials=b"", metadata={}, user_input={})
            files = [path, Path(f"{path}-wal"), Path(f"{path}-shm")]
            assert all(f.exists() for f in files)
            assert {f.name: _mode(f) for f in files} == {f.name: 0o600 for f in files}
    finally:
        os.umask(old)


def test_an_existing_store_readable_by_others_is_made_0600(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    with Store.open(str(path)):
        pass
    path.chmod(0o644)
    with Store.open(str(path)):
        assert _mode(path) == 0o600


@pytest.mark.parametrize("scheme", ["postgresql", "postgres", "postgresql+psycopg"])
def test_postgresql_urls_use_psycopg_3_and_hide_the_password(scheme: str) -> None:
    with Store.open(f"{scheme}://app:s3cret@db.example:5433/sync", migrate=False) as store:
        assert (store.dialect, store.sqlite_path) == ("postgresql", None)
        assert store.url == "postgresql+psycopg://app:***@db.example:5433/sync"
        assert "s3cret" not in repr(store)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql+psycopg2://u@h/db", "expected psycopg"),
        ("mysql://u@h/db", "unsupported store URL scheme 'mysql'"),
        ("sqlite://", "expected a file"),
        ("sqlite:///:memory:", "expected a file"),
    ],
)
def test_unsupported_urls_are_refused(url: str, message: str) -> None:
    with pytest.raises(StoreError, match=message):
        Store.open(url, migrate=False)


def test_an_unreachable_database_is_a_store_error() -> None:
    with pytest.raises(StoreError, match="cannot migrate the store: OperationalError"):
        Store.open("postgresql://nobody@127.0.0.1:1/nothing")


@pytest.mark.parametrize("create", [True, False])
@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_file_that_is_not_a_store_or_is_damaged_is_named_with_what_to_do(
    tmp_path: Path, create: bool, damage: str
) -> None:
    path = tmp_path / "s.sqlite"
    if damage == "garbage":
        path.write_bytes(b"not a database, whatever it is " * 200)
    else:
        with Store.open(str(path)) as store:
            store.save_installation("t", "ns", credentials=b"", metadata={}, user_input={})
        path.write_bytes(path.read_bytes()[: 3 * 4096])  # its first pages: the schema names pages it lacks
    with pytest.raises(StoreError) as caught:
        Store.open(str(path), create=create)
    # Before: "cannot migrate the store: DatabaseError: file is not a database", and nothing more.
    assert "DatabaseError: " in str(caught.value)
    assert f"(hint: {path} is not a miniapp-sync store, or is damaged: restore it from a backup" in str(caught.value)
