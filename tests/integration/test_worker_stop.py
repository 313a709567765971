"""A worker stopped with SIGTERM mid-sync (D38): its runs end `interrupted`, its jobs end, another worker resumes.

Two `worker` processes on a fresh PostgreSQL database, syncs slow enough to be caught mid-job; one
worker gets SIGTERM. Its exit leaves no run `running` and no job `doing` of its own, and the work
it held is queued again at once and finished by the other worker from the checkpoint, not found
later by the stalled-worker sweep as a dead worker's.

Needs PostgreSQL (skips without it, fails when CI=true).
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
from pathlib import Path

from sqlalchemy import text
from tests.integration.test_scale_out import (  # noqa: F401 (fixtures)
    CLI,
    CUSTOMERS,
    ENV,
    PRODUCTS,
    TENANTS,
    closing,
    database,
    definition,
    enqueue_all,
    mint_token,
    processes,
    sandbox,
    start_workers,
    wait_for,
)
from tests.integration.test_scale_out import cli as run_cli

from miniapp_sync.store import Store

SLOW_RATE = 4  # requests/s: 14 pages take 3.5 s, long enough to stop a worker mid-sync


def test_a_sigtermed_worker_interrupts_its_syncs_and_another_worker_resumes_them(
    tmp_path: Path,
    database: str,  # noqa: F811
    sandbox: str,  # noqa: F811
    processes: list[subprocess.Popen[bytes]],  # noqa: F811
    closing: contextlib.ExitStack,  # noqa: F811
) -> None:
    path = definition(tmp_path)
    document = json.loads(path.read_text())
    document["sync"]["syncConfiguration"]["rateLimitPerSecond"] = SLOW_RATE
    path.write_text(json.dumps(document))
    rewrites = ["--rewrite", f"https://api.salla.dev={sandbox}", "--rewrite", f"https://accounts.salla.sa={sandbox}"]
    run_cli("db", "upgrade", "--store", database)
    for tenant in TENANTS:
        token = ["--credential", f"accessToken={mint_token(sandbox)}"]
        run_cli("install", str(path), "--tenant", tenant, "--no-sync", *token, "--store", database, *rewrites)

    store = closing.enter_context(Store.open(database))

    def query(sql: str, **params: object) -> list[tuple[object, ...]]:
        with store.database.read("look at the queue") as conn:
            return [tuple(row) for row in conn.execute(text(sql), params)]

    workers, logs = start_workers(store, database, path, rewrites, tmp_path, processes, closing)

    assert all(enqueue_all(database, path))  # two resources of three installations

    stopped, stopped_ids = workers["a"]

    def mid_job() -> list[tuple[str, str, str]] | None:
        held = query(
            "SELECT id, args->>'installation_id', args->>'resource' FROM procrastinate_jobs "
            "WHERE status = 'doing' AND worker_id = ANY(:w) AND task_name = 'miniapp_sync.sync'",
            w=stopped_ids,
        )
        for _, installation_id, resource in held:
            state = store.get_checkpoint(str(installation_id), str(resource))
            if state and not state.get("done"):  # some pages committed, more to come
                return [(str(id), str(i), str(r)) for id, i, r in held]
        return None

    held = wait_for(mid_job, "worker a to be mid-sync")
    stopped.send_signal(signal.SIGTERM)
    assert stopped.wait(timeout=30) == 0  # a graceful stop, and a prompt one: the sync was interrupted

    # Nothing is left attributed to the stopped worker: no job doing, no run running.
    doing = "SELECT id FROM procrastinate_jobs WHERE status = 'doing' AND worker_id = ANY(:w)"
    assert query(doing, w=stopped_ids) == []
    held_jobs = {job_id for job_id, _, _ in held}
    runs = [run for (_, iid, _) in held for run in store.list_runs(iid, limit=100) if run.job_id in held_jobs]
    assert runs
    assert {run.status for run in runs} == {"interrupted"}

    def sync_jobs_left() -> bool:
        left = query(
            "SELECT count(*) FROM procrastinate_jobs "
            "WHERE task_name = 'miniapp_sync.sync' AND status IN ('todo', 'doing')"
        )
        return left[0][0] == 0

    wait_for(sync_jobs_left, "the other worker to finish every sync", timeout=90)
    survivor, _ = workers["b"]
    survivor.send_signal(signal.SIGTERM)
    assert survivor.wait(timeout=30) == 0

    # The interrupted work was resumed by worker b through the queue, not the dead-worker sweep.
    assert "of a dead worker" not in logs["b"].read_text()
    for _, installation_id, resource in held:
        ordered = sorted(store.list_runs(installation_id, limit=100), key=lambda r: r.started_at)
        mine = [run for run in ordered if run.resource == resource]
        assert [run.status for run in mine] == ["interrupted", "succeeded"]
    for tenant in TENANTS:
        installation = store.find_installation(tenant, "salla")
        assert installation is not None
        for content_type, expected in (("core:product", PRODUCTS), ("core:customer", CUSTOMERS)):
            stored = store.list_records(installation.id, content_type, limit=10_000, include_deleted=True)
            assert len(stored) == expected == len({r.code for r in stored})
        assert all(run.status != "running" for run in store.list_runs(installation.id, limit=100))
