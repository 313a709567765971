"""Runs end in a terminal state even when their process does not (D38): owners, liveness, abandonment.

Every run records its owner: the host, its boot, the process id and the process's start time
(``RunOwner``). A run still marked ``running`` is closed as ``abandoned`` only when its owner is
provably gone:

- on the same host (always so for the embedded SQLite store, whose file is local): the boot
  differs (the machine restarted), or no process has that pid, or the process with that pid
  started at another time (the pid was reused), or it is a zombie;
- on another host (PostgreSQL shared by several machines), which cannot be asked: the run showed
  no progress (heartbeat, written at least every ``HEARTBEAT_EVERY`` seconds while it fetches)
  for ``STALE_AFTER`` seconds, longer than any wait a live run makes (``Retry-After`` is capped
  at 300 s, a request times out) — and the conditional update loses to a heartbeat that lands first.

A run without an owner (started before runs had one) is judged by its last sign of progress too.

The next process that opens the store (``Runtime.open``) and every worker sweep call
``abandon_dead_runs``. Ctrl-C and SIGTERM are not this module's: the engine marks its own run
``interrupted`` as the cancellation passes through it. Either way the checkpoint stays, and the
next run of the resource resumes from it.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from miniapp_sync.clock import Clock
from miniapp_sync.store import Store
from miniapp_sync.store.runs import RunLiveness

if TYPE_CHECKING:
    # Only its type: the runtime imports this module, and commands that never sync need no asyncio.
    from miniapp_sync.webhooks.concurrency import Call

__all__ = [
    "ABANDONED",
    "HEARTBEAT_EVERY",
    "INTERRUPTED",
    "PROGRESS_EVERY",
    "STALE_AFTER",
    "Heartbeat",
    "Processes",
    "RunOwner",
    "abandon_dead_runs",
]

HEARTBEAT_EVERY: Final = 30.0  # seconds between a live run's heartbeats (at most; progress triggers them)
PROGRESS_EVERY: Final = 1.0  # seconds between writes of a live run's progress (each one also a heartbeat)
STALE_AFTER: Final = 3600.0  # seconds without a heartbeat before another host's run counts as dead
INTERRUPTED: Final = "interrupted (Ctrl-C or SIGTERM); the next run resumes from the checkpoint"
ABANDONED: Final = "abandoned: {why}; the next run resumes from the checkpoint"


@dataclass(frozen=True, slots=True)
class RunOwner:
    """The process that runs a sync: host, boot id, pid, and the process's start time (since boot)."""

    host: str
    boot: str
    pid: int
    started: str

    def __str__(self) -> str:
        return f"{self.host}|{self.boot}|{self.pid}|{self.started}"

    @classmethod
    def parse(cls, text: str | None) -> RunOwner | None:
        """Read an owner written by ``str()``; None for anything else."""
        parts = (text or "").split("|")
        if len(parts) != 4 or not parts[2].isdigit():
            return None
        return cls(parts[0], parts[1], int(parts[2]), parts[3])


class Processes:
    """Ask the operating system about processes (through ``/proc`` where there is one)."""

    def __init__(self, proc: Path = Path("/proc"), host: str | None = None) -> None:
        self._proc = proc
        self._host = host if host is not None else socket.gethostname()

    def current(self) -> RunOwner:
        """Return this process as an owner."""
        pid = os.getpid()
        return RunOwner(self._host, self._boot(), pid, self._started(pid) or "")

    def alive(self, owner: RunOwner) -> bool | None:
        """Return whether ``owner`` still runs: True, False (provably gone), or None (another host: unknown)."""
        if owner.host != self._host:
            return None
        boot = self._boot()
        if owner.boot and boot and owner.boot != boot:
            return False  # this machine restarted since
        if self._proc.is_dir():
            started = self._started(owner.pid)
            return started is not None and (not owner.started or started == owner.started)
        try:  # no /proc (macOS): whether the pid exists, which cannot tell a reused pid
            os.kill(owner.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def _boot(self) -> str:
        try:
            return (self._proc / "sys" / "kernel" / "random" / "boot_id").read_text().strip()
        except OSError:
            return ""

    def _started(self, pid: int) -> str | None:
        """Return a process's start time in clock ticks since boot; None when it is gone or a zombie."""
        try:
            stat = (self._proc / str(pid) / "stat").read_text()
        except OSError:
            return None
        # "pid (comm) state ppid … starttime …": comm may hold spaces and parentheses, so split after the last ')'.
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) < 20 or fields[0] in ("Z", "X"):
            return None
        return fields[19]


def abandon_dead_runs(
    store: Store, *, processes: Processes | None = None, stale_after: float = STALE_AFTER
) -> list[str]:
    """Close as ``abandoned`` every running run whose owner is provably gone; return their ids."""
    processes = processes or Processes()
    liveness = RunLiveness(store)
    quiet_since = store.clock.now() - stale_after
    closed = []
    for run in liveness.running():
        owner = RunOwner.parse(run.owner)
        alive = processes.alive(owner) if owner is not None else None
        if alive is False:
            assert owner is not None
            why = f"the process running it (pid {owner.pid} on {owner.host}) is gone"
            ended = liveness.end(run.id, "abandoned", ABANDONED.format(why=why))
        elif alive is None:
            why = f"no sign of progress for {stale_after:.0f} s from a process this one cannot ask"
            ended = liveness.end(run.id, "abandoned", ABANDONED.format(why=why), quiet_since=quiet_since)
        else:
            ended = False
        if ended:
            closed.append(run.id)
    return closed


class Heartbeat:
    """The progress callback of a run: the caller's, and the run's figures so far in the store.

    The figures (``progress``: records, pages, records/s since the last write, 429s, the resource
    at work) and the stats so far are written at most every ``PROGRESS_EVERY`` seconds of the
    injected clock, from the first page on, so another process (the API, the CLI) can watch the
    run; each write is also its heartbeat (D38). ``figures`` gives the last ones for its end.
    ``call`` makes the write: inline, or in a thread where a store call waits on the network.
    """

    def __init__(
        self,
        store: Store,
        run_id: str,
        clock: Clock,
        progress: Callable[[Any, int | None], None] | None,
        stats: Callable[[], dict[str, dict[str, Any]]] = dict,
        *,
        call: Call | None = None,
    ) -> None:
        self.store = store
        self.run_id = run_id
        self.clock = clock
        self.progress = progress
        self.stats = stats  # the run's per-resource reports so far, as stored
        self._call = call or _inline
        self._next = clock.monotonic()  # the first page is shown at once
        self._last: tuple[float, int] | None = None  # (monotonic time, records) of the last write

    def due(self) -> bool:
        """Tell whether the next call writes the figures (the first page's, then every PROGRESS_EVERY)."""
        return self.clock.monotonic() >= self._next

    async def __call__(self, report: Any, total: int | None) -> None:
        now = self.clock.monotonic()
        if now >= self._next:
            self._next = now + PROGRESS_EVERY
            stats = self.stats()
            figures = self.figures(stats, report.resource, now)
            await self._call(RunLiveness(self.store).progress, self.run_id, stats, figures)
        if self.progress is not None:
            self.progress(report, total)

    def figures(
        self, stats: dict[str, dict[str, Any]], resource: str | None, now: float | None = None
    ) -> dict[str, Any]:
        """Return the progress figures of ``stats``, and remember them as the last written."""
        now = self.clock.monotonic() if now is None else now
        records = sum(int(r.get("fetched", 0)) for r in stats.values())
        rate = None
        if self._last is not None and now > self._last[0]:
            rate = round((records - self._last[1]) / (now - self._last[0]), 2)
        self._last = (now, records)
        return {
            "resource": resource,
            "records": records,
            "pages": sum(int(r.get("pages", 0)) for r in stats.values()),
            "rate": rate,
            "throttled": sum(int(r.get("throttled", 0)) for r in stats.values()),
            "at": self.clock.now(),
        }


async def _inline(function: Callable[..., Any], /, *args: Any) -> Any:
    return function(*args)
