"""Scheduled syncs: ``syncConfiguration.schedule`` (cron) for every connected installation.

The embedded scheduler runs inside ``miniapp-sync serve``. It reads time only through the
injected clock, so tests drive it with a FakeClock; runs of one installation never overlap.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from croniter import croniter

from miniapp_sync.clock import Clock
from miniapp_sync.errors import MiniAppSyncError
from miniapp_sync.runtime import MiniApp, Runtime
from miniapp_sync.sync.engine import RunReport

log = logging.getLogger("miniapp_sync.schedule")
MAX_NAP = 60.0  # re-read installations at least this often (new installs, uninstalls)


@dataclass(frozen=True)
class Due:
    """One scheduled sync that is due: which MiniApp, which installation."""

    ns: str
    installation_id: str


class Scheduler:
    """Fire each installation's sync when its MiniApp's cron schedule says so."""

    def __init__(self, runtime: Runtime, *, clock: Clock | None = None) -> None:
        self.runtime = runtime
        self.clock = clock or runtime.clock
        self._next: dict[Due, float] = {}
        self.fired: list[tuple[Due, RunReport | None]] = []  # what ran, for `serve`'s log and tests

    def _scheduled(self) -> Iterable[tuple[MiniApp, str, str]]:
        for app in self.runtime.apps.values():
            sync = app.definition.sync
            if sync is None or not sync.sync_configuration.enabled or not sync.sync_configuration.schedule:
                continue
            for installation in self.runtime.store.list_installations(app.ns):
                if installation.status == "connected":
                    yield app, installation.id, sync.sync_configuration.schedule

    def due(self) -> list[Due]:
        """Return the syncs due now, and plan each one's next time (a new one waits for its first slot)."""
        now = self.clock.now()
        ready: list[Due] = []
        seen: set[Due] = set()
        for app, installation_id, expression in self._scheduled():
            key = Due(app.ns, installation_id)
            seen.add(key)
            planned = self._next.setdefault(key, croniter(expression, now).get_next(float))
            if planned <= now:
                ready.append(key)
                self._next[key] = croniter(expression, now).get_next(float)
        for gone in set(self._next) - seen:  # uninstalled or disconnected
            del self._next[gone]
        return ready

    async def tick(self) -> None:
        """Run every due sync, one after another (each under its installation's rate budget)."""
        for key in self.due():
            app = self.runtime.apps[key.ns]
            installation = self.runtime.store.get_installation(key.installation_id)
            if installation is None:
                continue
            try:
                report: RunReport | None = await self.runtime.engine.run(app.definition, app.plan, installation)
            except MiniAppSyncError as exc:
                log.warning("scheduled sync of %s for %s did not run: %s", key.ns, installation.tenant, exc)
                report = None
            self.fired.append((key, report))

    async def run_forever(self, stop: Callable[[], bool] = lambda: False) -> None:
        """Tick until ``stop()`` says so, sleeping until the next planned run (at most MAX_NAP)."""
        while not stop():
            await self.tick()
            upcoming = min(self._next.values(), default=self.clock.now() + MAX_NAP)
            await self.clock.sleep(max(0.0, min(MAX_NAP, upcoming - self.clock.now())))
            await asyncio.sleep(0)
