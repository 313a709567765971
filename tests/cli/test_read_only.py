"""Commands that only read never create a store or a key file: no store is an error saying how to make one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from miniapp_sync.cli import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = str(ROOT / "examples" / "salla" / "definition.json5")

READING = [
    ["records", "--tenant", "acme"],
    ["runs"],
    ["installations"],
    ["deliveries"],
    ["deadletters", "list"],
    ["deadletters", "show", "1"],
    ["events", "--tenant", "acme"],
    ["subscriptions"],
    ["jobs"],
    ["uninstall", "--tenant", "acme", "--ns", "salla"],
    ["sync", EXAMPLE, "--tenant", "acme"],
]


@pytest.fixture
def empty(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # the default store is ./.miniapp-sync/store.sqlite
    return tmp_path


@pytest.mark.parametrize("command", READING, ids=lambda c: " ".join(c[:2]))
def test_a_reading_command_in_an_empty_directory_fails_clearly_and_leaves_no_file(
    empty: Path, command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(command, environ={})
    err = capsys.readouterr().err
    assert code == 1
    assert f"no store at {empty / '.miniapp-sync' / 'store.sqlite'}" in err
    assert "miniapp-sync install" in err
    assert "db upgrade" in err
    assert list(empty.iterdir()) == []


def test_a_reading_command_on_a_store_without_its_key_file_reads_and_creates_no_key(
    empty: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A store whose credentials were encrypted with MINIAPP_SYNC_SECRET_KEY: there is no key file.
    environ = {"MINIAPP_SYNC_SECRET_KEY": "the operator's key", "MINIAPP_SYNC_STORE": str(empty / "store.sqlite")}
    assert main(["db", "upgrade"], environ=environ) == 0
    capsys.readouterr()
    without_key = {"MINIAPP_SYNC_STORE": environ["MINIAPP_SYNC_STORE"]}
    assert main(["installations", "--format", "json"], environ=without_key) == 0
    assert json.loads(capsys.readouterr().out) == {"items": [], "next": None}
    assert not (empty / "secret.key").exists()  # a new key would not decrypt what is stored


def test_install_still_creates_the_store_and_its_key_file(empty: Path, capsys: pytest.CaptureFixture[str]) -> None:
    nowhere = [
        "--rewrite",
        "https://api.salla.dev=http://127.0.0.1:9",
        "--rewrite",
        "https://accounts.salla.sa=http://127.0.0.1:9",
    ]
    code = main(["install", EXAMPLE, "--tenant", "acme", "--credential", "accessToken=x", *nowhere], environ={})
    capsys.readouterr()
    assert code == 1  # nothing listens on the discard port: the installation is saved as failed
    assert (empty / ".miniapp-sync" / "store.sqlite").is_file()
    assert (empty / ".miniapp-sync" / "secret.key").is_file()
