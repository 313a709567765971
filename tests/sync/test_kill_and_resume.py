"""A sync killed with SIGKILL mid-run resumes from its checkpoint and ends exactly like a clean run."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from miniapp_sync.definition.loader import load_file
from miniapp_sync.store import Store

from .conftest import EXAMPLE, KEY

CLI = str(Path(sys.executable).with_name("miniapp-sync"))
PRODUCTS = 360


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def sandbox_url() -> Iterator[str]:
    """The sandbox in its own process, so killing the sync cannot touch it."""
    port = free_port()
    process = subprocess.Popen(
        [CLI, "sandbox", "--port", str(port), "--products", str(PRODUCTS), "--latency", "0.004"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # waiting for a process to listen, not testing time
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.kill()
        process.wait()


@pytest.fixture
def definition(tmp_path: Path) -> Path:
    """The example with a commit per page (so a kill lands between commits), paced so a run lasts ~1.3 s.

    The budget paces the run so that the two thirds left after the watcher sees a third written
    take ~0.8 s whatever the CPU does: with an unbounded budget they took ~0.1 s once details
    cost little CPU, and on a loaded machine the run could end between the watcher's check and
    its signal.
    """
    document, _ = load_file(EXAMPLE)
    document["sync"]["syncConfiguration"].update(rateLimitPerSecond=300, batchSize=20)
    document["sync"]["resources"]["products"]["pagination"].update(defaultLimit=20, maxLimit=20)
    path = tmp_path / "definition.json"
    path.write_text(json.dumps(document))
    return path


def cli(*args: str, url: str, store: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    rewrites = ["--rewrite", f"https://api.salla.dev={url}", "--rewrite", f"https://accounts.salla.sa={url}"]
    result = subprocess.run(
        [CLI, *args, "--store", str(store), *rewrites],
        capture_output=True,
        text=True,
        env={**os.environ, **KEY},
        check=False,
    )
    if check:
        assert result.returncode == 0, result.stderr + result.stdout
    return result


def snapshot(store_path: Path) -> dict[str, str]:
    with Store.open(str(store_path)) as store:
        (installation,) = store.list_installations()
        records = store.list_records(installation.id, "core:product", limit=10_000)
        return {r.code: r.content_hash for r in records}


def test_sigkill_mid_run_then_resume_equals_a_clean_run(tmp_path: Path, sandbox_url: str, definition: Path) -> None:
    credentials = [
        "--credential",
        "accessToken=sandbox-access-token",
        "--credential",
        "refreshToken=sandbox-refresh-token",
    ]
    clean, killed = tmp_path / "clean.sqlite", tmp_path / "killed.sqlite"
    for store in (clean, killed):
        cli("install", str(definition), "--tenant", "acme", *credentials, "--no-sync", url=sandbox_url, store=store)
    cli("sync", str(definition), "--tenant", "acme", "--resource", "products", url=sandbox_url, store=clean)

    rewrites = [
        "--rewrite",
        f"https://api.salla.dev={sandbox_url}",
        "--rewrite",
        f"https://accounts.salla.sa={sandbox_url}",
    ]
    process = subprocess.Popen(
        [CLI, "sync", str(definition), "--tenant", "acme", "--resource", "products", "--store", str(killed), *rewrites],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **KEY},
    )
    with Store.open(str(killed)) as store:
        (installation,) = store.list_installations()
        deadline = time.monotonic() + 60
        while store.count_records(installation.id, "core:product") < PRODUCTS // 3 and time.monotonic() < deadline:
            time.sleep(0.01)  # watching another process's progress
        assert process.poll() is None, "the sync finished before it could be killed: make it slower"
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        partial = store.count_records(installation.id, "core:product")
        assert 0 < partial < PRODUCTS
        assert store.get_checkpoint(installation.id, "products") not in (None, {})

    resumed = cli(
        "sync", str(definition), "--tenant", "acme", "--resource", "products", "--format", "json",
        url=sandbox_url, store=killed,
    )  # fmt: skip
    (run,) = json.loads(resumed.stdout)["items"]
    (report,) = run["resources"]
    assert report["resumedFrom"] is not None
    assert report["fetched"] < PRODUCTS  # it did not start over
    assert snapshot(killed) == snapshot(clean)
    assert len(snapshot(clean)) == PRODUCTS


def _start_sync(definition: Path, store: Path, url: str) -> subprocess.Popen[bytes]:
    """Install, then start a products sync in its own process and return once it has written some records."""
    credentials = ["--credential", "accessToken=sandbox-access-token", "--no-sync"]
    cli("install", str(definition), "--tenant", "acme", *credentials, url=url, store=store)
    rewrites = ["--rewrite", f"https://api.salla.dev={url}", "--rewrite", f"https://accounts.salla.sa={url}"]
    process = subprocess.Popen(
        [CLI, "sync", str(definition), "--tenant", "acme", "--resource", "products", "--store", str(store), *rewrites],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **KEY},
    )
    with Store.open(str(store)) as opened:
        (installation,) = opened.list_installations()
        deadline = time.monotonic() + 60
        while opened.count_records(installation.id, "core:product") < PRODUCTS // 3 and time.monotonic() < deadline:
            time.sleep(0.01)  # watching another process's progress
    assert process.poll() is None, "the sync finished before it could be stopped: make it slower"
    return process


def _resume(definition: Path, store: Path, url: str) -> dict[str, Any]:
    resumed = cli(
        "sync", str(definition), "--tenant", "acme", "--resource", "products", "--format", "json", url=url, store=store
    )
    (run,) = json.loads(resumed.stdout)["items"]
    report: dict[str, Any] = run["resources"][0]
    return report


def test_a_killed_sync_run_is_marked_abandoned_when_the_next_process_opens_the_store(
    tmp_path: Path, sandbox_url: str, definition: Path
) -> None:
    store = tmp_path / "store.sqlite"
    process = _start_sync(definition, store, sandbox_url)
    process.kill()
    process.wait()
    with Store.open(str(store)) as opened:  # the store alone judges nothing: still running
        (run,) = opened.list_runs()
        assert run.status == "running"
        assert f"|{process.pid}|" in (run.owner or "")

    runs = [CLI, "runs", "--format", "json", "--store", str(store)]
    answer = subprocess.run(runs, capture_output=True, text=True, env={**os.environ, **KEY})
    listed = json.loads(answer.stdout)["items"]
    assert [(r["id"], r["status"]) for r in listed] == [(run.id, "abandoned")]
    assert f"the process running it (pid {process.pid} on " in listed[0]["error"]
    report = _resume(definition, store, sandbox_url)
    assert report["resumedFrom"] is not None
    assert report["fetched"] < PRODUCTS


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_sigterm_or_ctrl_c_marks_the_run_interrupted_and_the_next_run_resumes(
    tmp_path: Path, sandbox_url: str, definition: Path, signum: int, code: int
) -> None:
    store = tmp_path / "store.sqlite"
    process = _start_sync(definition, store, sandbox_url)
    process.send_signal(signum)
    assert process.wait(timeout=30) == code
    with Store.open(str(store)) as opened:
        (run,) = opened.list_runs()
        assert run.status == "interrupted"
        assert "resumes from the checkpoint" in (run.error or "")
        assert run.finished_at is not None
    report = _resume(definition, store, sandbox_url)
    assert report["resumedFrom"] is not None
    assert report["fetched"] < PRODUCTS
