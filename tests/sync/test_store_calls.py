"""Where a run's store calls run: inline on SQLite, in threads where they wait on the network (PostgreSQL).

A worker runs many syncs on one event loop: a store round trip made on it would stall every other
run's rate limiter and requests. The engine's ``inline_writes`` (the backend's call) decides.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from miniapp_sync.store.runs import RunLiveness
from miniapp_sync.sync.engine import SyncEngine

from .conftest import World, derive


def _recording(calls: list[tuple[str, bool]], name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        calls.append((name, threading.current_thread() is threading.main_thread()))
        return function(*args, **kwargs)

    return call


@pytest.mark.parametrize("inline", [True, False])
async def test_a_runs_store_calls_are_made_inline_or_in_threads_as_the_backend_says(
    world: World, monkeypatch: pytest.MonkeyPatch, inline: bool
) -> None:
    def reject_some(document: dict[str, Any]) -> None:
        document["sync"]["resources"]["products"]["apiMapping"]["name"] = {"path": "nope"}  # a required field

    app = derive(reject_some)
    installation = await world.install(app)
    store = world.runtime.store
    calls: list[tuple[str, bool]] = []
    for name in ("start_run", "finish_run", "get_checkpoint", "add_dead_letter"):
        monkeypatch.setattr(store, name, _recording(calls, name, getattr(store, name)))
    monkeypatch.setattr(RunLiveness, "progress", _recording(calls, "progress", RunLiveness.progress))
    installations = world.runtime.installations
    monkeypatch.setattr(installations, "get", _recording(calls, "installation", installations.get))
    engine = SyncEngine(store, installations, clock=world.clock, inline_writes=inline)

    report = await engine.run(app.definition, app.plan, installation, resources=["products"])

    assert report.resources["products"].rejected == len(world.sandbox.data["products"])
    assert {name for name, _ in calls} == {
        "start_run", "finish_run", "get_checkpoint", "add_dead_letter", "progress", "installation"
    }  # fmt: skip
    on_loop = {name for name, main in calls if main}
    assert on_loop == ({name for name, _ in calls} if inline else set())
