"""Runs left running end as abandoned only when their owner is provably gone (D38)."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from miniapp_sync.jobs import Work
from miniapp_sync.store import Run, Store
from miniapp_sync.store.runs import RunLiveness
from miniapp_sync.sync.runs import (
    HEARTBEAT_EVERY,
    PROGRESS_EVERY,
    STALE_AFTER,
    Processes,
    RunOwner,
    abandon_dead_runs,
)
from miniapp_sync.testing import FakeClock

from .conftest import World, derive


def _store(tmp_path: Path, clock: FakeClock) -> tuple[Store, str]:
    store = Store.open(str(tmp_path / "store.sqlite"), clock=clock)
    installation = store.save_installation("acme", "salla", credentials=b"", metadata={}, user_input={})
    return store, installation.id


def _status(store: Store, run: Run) -> str:
    found = store.get_run(run.id)
    assert found is not None
    return found.status


def _gone_pid() -> int:
    """Return the pid of a process that has exited (and been reaped)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_run_whose_process_is_gone_is_abandoned_and_a_live_ones_is_not(tmp_path: Path) -> None:
    clock = FakeClock()
    store, installation = _store(tmp_path, clock)
    processes = Processes()
    me = processes.current()
    live = store.start_run(installation, "products", owner=str(me))
    dead = store.start_run(installation, "customers", owner=str(RunOwner(me.host, me.boot, _gone_pid(), "1")))
    reused = store.start_run(installation, "orders", owner=str(RunOwner(me.host, me.boot, os.getpid(), "1")))
    rebooted = store.start_run(installation, "carts", owner=str(RunOwner(me.host, "another-boot", me.pid, me.started)))

    assert set(abandon_dead_runs(store, processes=processes)) == {dead.id, reused.id, rebooted.id}
    assert _status(store, live) == "running"
    closed = store.get_run(dead.id)
    assert closed is not None
    assert closed.status == "abandoned"
    assert closed.finished_at == clock.now()
    assert f"the process running it (pid {RunOwner.parse(dead.owner).pid} on {me.host}) is gone" in (  # type: ignore[union-attr]
        closed.error or ""
    )
    assert abandon_dead_runs(store, processes=processes) == []  # closed once; finished runs are never touched
    store.close()


def test_a_run_of_another_host_is_abandoned_only_after_an_hour_without_progress(tmp_path: Path) -> None:
    clock = FakeClock()
    store, installation = _store(tmp_path, clock)
    elsewhere = RunOwner("another-machine", "boot", 4242, "7")
    run = store.start_run(installation, "products", owner=str(elsewhere))
    legacy = store.start_run(installation, "customers")  # no owner: started before runs had one

    clock.advance(STALE_AFTER - 60)
    assert abandon_dead_runs(store) == []
    RunLiveness(store).heartbeat(run.id)  # it showed progress: another hour to go
    clock.advance(120)
    assert abandon_dead_runs(store) == [legacy.id]
    assert _status(store, run) == "running"
    clock.advance(STALE_AFTER)
    assert abandon_dead_runs(store) == [run.id]
    store.close()


def test_a_zombie_or_an_unreadable_process_counts_as_gone(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    (proc / "sys" / "kernel" / "random").mkdir(parents=True)
    (proc / "sys" / "kernel" / "random" / "boot_id").write_text("b1\n")
    (proc / "77").mkdir()
    (proc / "77" / "stat").write_text("77 (my (odd) name) Z 1 " + " ".join(["0"] * 17) + " 555 0 0\n")
    (proc / "78").mkdir()
    (proc / "78" / "stat").write_text("78 (sync) S 1 " + " ".join(["0"] * 17) + " 555 0 0\n")
    processes = Processes(proc, host="h")
    assert processes.alive(RunOwner("h", "b1", 77, "555")) is False  # a zombie
    assert processes.alive(RunOwner("h", "b1", 78, "555")) is True
    assert processes.alive(RunOwner("h", "b1", 78, "554")) is False  # the pid was reused
    assert processes.alive(RunOwner("h", "b1", 79, "555")) is False  # no such process
    assert processes.alive(RunOwner("other", "b1", 79, "555")) is None  # cannot be asked
    assert RunOwner.parse(str(RunOwner("h", "b1", 78, "555"))) == RunOwner("h", "b1", 78, "555")
    assert RunOwner.parse("not an owner") is None


async def test_the_worker_sweep_abandons_a_run_whose_process_is_gone(world: World) -> None:
    store = world.runtime.store
    installation = store.save_installation("acme", "salla", credentials=b"", metadata={}, user_input={})
    me = world.runtime.engine.processes.current()
    run = store.start_run(installation.id, "products", owner=str(RunOwner(me.host, me.boot, _gone_pid(), "1")))
    Work(world.runtime).sweep()
    assert _status(store, run) == "abandoned"


def _small_pages(document: dict[str, Any]) -> None:
    document["sync"]["resources"]["customers"]["pagination"].update(defaultLimit=2, maxLimit=2)


async def test_a_long_run_heartbeats_while_it_fetches(world: World) -> None:
    app = derive(_small_pages)
    installation = await world.install(app)

    def slow(report: object, total: int | None) -> None:
        world.clock.advance(HEARTBEAT_EVERY / 2)  # each page takes half a heartbeat interval

    engine = world.runtime.engine
    report = await engine.run(app.definition, app.plan, installation, resources=["customers"], progress=slow)
    assert report.status == "succeeded"
    run = world.runtime.store.get_run(report.run_id)
    assert run is not None
    assert run.owner == str(engine.processes.current())
    assert run.heartbeat_at is not None
    assert run.started_at + HEARTBEAT_EVERY <= run.heartbeat_at < world.clock.now()


async def test_a_run_writes_its_progress_at_most_once_a_second_and_its_last_figures_at_the_end(world: World) -> None:
    app = derive(_small_pages)
    installation = await world.install(app)
    store = world.runtime.store
    written: list[dict[str, Any]] = []

    def quick(report: Any, total: int | None) -> None:
        (run,) = store.list_runs(installation.id)
        assert run.progress is not None  # the first page's figures are there at once
        if not written or written[-1] != run.progress:
            written.append(run.progress)
        world.clock.advance(0.4)  # each page takes 0.4 s

    report = await world.runtime.engine.run(
        app.definition, app.plan, installation, resources=["customers"], progress=quick
    )
    pages = report.resources["customers"].pages
    assert pages == 6  # 12 customers, 2 a page
    # Pages take 0.4 s (and the rate budget's spacing): fewer writes than pages, a second apart at least.
    assert written[0]["pages"] == 1
    assert 1 < len(written) < pages
    assert all(later["at"] - earlier["at"] >= PROGRESS_EVERY for earlier, later in itertools.pairwise(written))
    assert all(later["records"] > earlier["records"] for earlier, later in itertools.pairwise(written))
    assert written[0]["rate"] is None  # no interval yet
    seconds = written[1]["at"] - written[0]["at"]
    assert written[1]["rate"] == pytest.approx((written[1]["records"] - written[0]["records"]) / seconds, rel=0.01)
    run = store.get_run(report.run_id)
    assert run is not None
    assert run.progress is not None
    assert (run.progress["records"], run.progress["pages"], run.progress["resource"]) == (12, 6, None)
