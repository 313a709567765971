"""The embedded scheduler fires syncs on the definition's cron schedule, on an injected clock."""

from __future__ import annotations

from miniapp_sync.sync.schedule import Scheduler

from .conftest import World, derive


def every_quarter_hour(document: dict[str, object]) -> None:
    document["sync"]["syncConfiguration"]["schedule"] = "*/15 * * * *"  # type: ignore[index]


async def test_a_sync_fires_at_each_cron_slot_and_not_before(world: World) -> None:
    app = derive(every_quarter_hour)
    installation = await world.install(app)
    scheduler = Scheduler(world.runtime, clock=world.clock)
    assert scheduler.due() == []  # a new installation waits for its first slot
    world.clock.advance(15 * 60)
    await scheduler.tick()
    ((due, report),) = scheduler.fired
    assert due.installation_id == installation.id
    assert report is not None
    assert report.status == "succeeded"
    assert scheduler.due() == []  # the next slot is 15 minutes away


async def test_run_forever_sleeps_until_the_next_slot(world: World) -> None:
    app = derive(every_quarter_hour)
    await world.install(app)
    scheduler = Scheduler(world.runtime, clock=world.clock)
    await scheduler.run_forever(stop=lambda: len(scheduler.fired) >= 2)
    assert len(scheduler.fired) == 2
    assert all(r is not None and r.status == "succeeded" for _, r in scheduler.fired)
    assert max(world.clock.sleeps) <= 60  # never naps longer than MAX_NAP: new installs are noticed


async def test_installations_that_are_not_connected_are_not_scheduled(world: World) -> None:
    app = derive(every_quarter_hour)
    installation = await world.install(app)
    world.runtime.store.update_installation(installation.id, status="error", error="reconnect")
    scheduler = Scheduler(world.runtime, clock=world.clock)
    world.clock.advance(3600)
    assert scheduler.due() == []


async def test_an_invalid_schedule_is_a_validation_error() -> None:
    from miniapp_sync.definition.lint import lint

    document = {"sync": {"syncConfiguration": {"schedule": "hourly"}}}
    findings = lint(document)[1]
    assert any(f.code == "schedule" and f.severity == "error" for f in findings)
