"""``db upgrade``, ``sync --enqueue``, ``jobs`` and ``worker`` from the command line."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

from miniapp_sync.cli import main
from miniapp_sync.testing import sandbox_thread

from .conftest import KEY, migration_head, write_definition

Cli = Callable[..., tuple[int, str, str]]  # (*args) → exit code, stdout, stderr
CLI = str(Path(sys.executable).with_name("miniapp-sync"))


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.setenv("MINIAPP_SYNC_SECRET_KEY", KEY["MINIAPP_SYNC_SECRET_KEY"])
    monkeypatch.setenv("COLUMNS", "200")

    def run(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_db_upgrade_on_sqlite_migrates_and_says_no_queue_is_needed(cli: Cli, tmp_path: Path) -> None:
    code, out, _ = cli("db", "upgrade", "--store", str(tmp_path / "store.sqlite"))
    assert code == 0
    assert f"schema at revision {migration_head()}" in out
    assert "job queue: none needed" in out


def test_db_upgrade_creates_a_missing_database_when_asked(cli: Cli, postgres_admin_url: str) -> None:
    name = f"miniapp_sync_cli_{uuid.uuid4().hex[:10]}"
    url = make_url(postgres_admin_url).set(database=name).render_as_string(hide_password=False)
    try:
        code, out, err = cli("db", "upgrade", "--create", "--store", url)
        assert code == 0, err
        assert f"created the database '{name}'" in out
        assert "installed the Procrastinate" in out
        code, out, _ = cli("db", "upgrade", "--create", "--store", url)
        assert "created the database" not in out
        assert "schema is current" in out
    finally:
        with psycopg.connect(postgres_admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def test_sync_enqueue_queues_one_job_per_resource_and_reports_duplicates(cli: Cli, tmp_path: Path, pg_url: str) -> None:
    definition = str(write_definition(tmp_path))
    assert cli("db", "upgrade", "--store", pg_url)[0] == 0
    with sandbox_thread() as (_, base):
        rewrites = ["--rewrite", f"https://api.salla.dev={base}", "--rewrite", f"https://accounts.salla.sa={base}"]
        credentials = ["--credential", "accessToken=sandbox-access-token"]
        code, _, err = cli("install", definition, "--tenant", "acme", *credentials, "--store", pg_url, *rewrites)
        assert code == 0, err
    code, out, err = cli("sync", "--enqueue", definition, "--tenant", "acme", "--store", pg_url)
    assert code == 0, err
    assert "products: queued as job " in out
    assert "customers: queued as job " in out
    code, out, _ = cli("sync", "--enqueue", definition, "--tenant", "acme", "--resource", "products", "--store", pg_url)
    assert out.strip() == "products: already queued (that job will run it)"
    code, out, _ = cli("sync", "--enqueue", definition, "--tenant", "acme", "--store", pg_url, "--format", "json")
    assert [r["jobId"] for r in json.loads(out)] == [None, None]
    code, out, _ = cli("jobs", "--store", pg_url, "--format", "json")
    assert json.loads(out)["counts"] == [{"queue": "salla", "task": "miniapp_sync.sync", "status": "todo", "jobs": 2}]
    code, out, _ = cli("jobs", "--store", pg_url)
    assert code == 0
    assert "miniapp_sync.sync" in out


def test_queue_commands_refuse_a_sqlite_store_with_a_hint(cli: Cli, tmp_path: Path) -> None:
    definition = str(write_definition(tmp_path))
    code, _, err = cli("worker", "--definition", definition, "--store", str(tmp_path / "s.sqlite"))
    assert code == 1
    assert "needs a PostgreSQL store" in err
    assert "serve` runs jobs in its own process" in " ".join(err.split())


def test_a_heartbeat_slower_than_the_stall_timeout_is_bad_usage(cli: Cli, tmp_path: Path) -> None:
    definition = str(write_definition(tmp_path))
    code, _, err = cli("worker", "-d", definition, "--heartbeat", "30", "--stalled-after", "10")
    assert code == 2
    assert "shorter than stalled_after" in " ".join(err.split())


def test_a_worker_serves_the_metrics_it_owns_when_asked(cli: Cli, tmp_path: Path, pg_url: str) -> None:
    assert cli("db", "upgrade", "--store", pg_url)[0] == 0
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    args = ["worker", "-d", str(write_definition(tmp_path)), "--store", pg_url, "--metrics-port", str(port)]
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        worker = subprocess.Popen([CLI, *args], env={**os.environ, **KEY}, stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + 30
        while True:  # waiting for another process to listen, not testing time
            assert worker.poll() is None, log.read_text()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
                    text = response.read().decode()
                break
            except OSError:
                assert time.monotonic() < deadline, "the worker's metrics never answered"
                time.sleep(0.05)
        assert 'miniapp_sync_inbox_rows{status="pending"} 0.0' in text  # read from the store
        assert "miniapp_sync_inbox_processed" in text
        # What a worker does (syncs, processing, trigger deliveries) and not what only serve does (receiving).
        assert "# TYPE miniapp_sync_sync_runs_total counter" in text
        assert "# TYPE miniapp_sync_trigger_deliveries_total counter" in text
        assert "miniapp_sync_inbox_backlog" in text
        assert "miniapp_sync_webhook_deliveries" not in text
        assert "miniapp_sync_webhook_rejections" not in text
        with psycopg.connect(pg_url) as conn:  # SIGTERM is the worker's to handle once it has registered
            while not conn.execute("SELECT count(*) FROM procrastinate_workers").fetchone()[0]:  # type: ignore[index]
                assert time.monotonic() < deadline, "the worker never registered"
                time.sleep(0.05)
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=20) == 0  # a graceful stop closes the metrics too


def test_a_worker_whose_metrics_port_is_busy_says_which_port_and_what_to_do(
    cli: Cli, tmp_path: Path, pg_url: str
) -> None:
    assert cli("db", "upgrade", "--store", pg_url)[0] == 0
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        args = ["worker", "-d", str(write_definition(tmp_path)), "--store", pg_url, "--metrics-port", str(port)]
        code, _, err = cli(*args)
    assert code == 1
    assert f"port {port} is already in use" in err
    assert "choose a free port with --metrics-port" in err
