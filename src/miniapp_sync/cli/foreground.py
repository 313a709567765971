"""A sync run here and now, for ``sync`` and ``install``: jobs on the in-process queue, progress bars, the summary.

Ctrl-C and SIGTERM cancel it; the engine marks the run interrupted and the command exits 130/143.
"""

from __future__ import annotations

import dataclasses
import signal
import sys
import threading
import time
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from miniapp_sync.cli.app import OutputFormat, console
from miniapp_sync.errors import InstallationError

if TYPE_CHECKING:
    from rich.progress import Progress
    from rich.table import Table

    from miniapp_sync.jobs import Finished
    from miniapp_sync.runtime import Runtime
    from miniapp_sync.store import Installation, Run
    from miniapp_sync.sync.reports import ResourceReport

T = TypeVar("T")


class _Bars:
    """Rich progress bars, one per resource: records, pages and request rate.

    Drawn on a terminal only: elsewhere (a pipe, a log file) Rich would print just their last
    state, which the summary table says again, and importing rich.progress costs start-up.
    Whether the output is a terminal is asked with the first report, after the first page:
    asking Rich loads rich.console (~15 ms), which need not delay the sync's first request.
    """

    def __init__(self) -> None:
        self.progress: Progress | None = None
        self.drawn: bool | None = None  # None: not known before the first report
        self.tasks: dict[str, tuple[Any, float]] = {}

    def _start(self) -> Progress:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        progress = Progress(
            TextColumn("[bold]{task.description:<16}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[pages]} pages · {task.fields[rate]:.0f} req/s"),
            TimeElapsedColumn(),
            console=console(),
        )
        progress.start()
        return progress

    def stop(self) -> None:
        """Take the bars off the screen (their last state stays), if they were drawn."""
        if self.progress is not None:
            self.progress.stop()

    def __call__(self, report: ResourceReport, total: int | None) -> None:
        if self.drawn is None:
            self.drawn = console().is_terminal
            self.progress = self._start() if self.drawn else None
        if self.progress is None:
            return
        if report.resource not in self.tasks:
            task = self.progress.add_task(report.resource, total=None, pages=0, rate=0.0)
            self.tasks[report.resource] = (task, time.perf_counter() - report.seconds)
        task, started = self.tasks[report.resource]
        elapsed = report.seconds or time.perf_counter() - started
        rate = report.requests / elapsed if elapsed > 0 else 0.0
        self.progress.update(task, completed=report.fetched, total=total, pages=report.pages, rate=rate)


def _summary(reports: dict[str, ResourceReport]) -> Table:
    from rich.table import Table

    table = Table(title="Sync summary", title_justify="left")
    columns = ("resource", "fetched", "created", "updated", "unchanged", "rejected", "retries", "429s", "seconds")
    for column in columns:
        table.add_column(column, justify="left" if column == "resource" else "right")
    for key, r in reports.items():
        name = f"[red]{key} ✗[/]" if r.error else key
        table.add_row(
            name,
            *(str(v) for v in (r.fetched, r.created, r.updated, r.unchanged, r.rejected, r.retries, r.throttled)),
            f"{r.seconds:.2f}",
        )
    return table


def foreground_sync(
    runtime: Runtime,
    installation: Installation,
    resources: list[str] | None,
    output: OutputFormat,
    *,
    initial: bool,
    max_in_flight: int | None = None,
    full: bool = False,
) -> list[Run]:
    """Run a sync of an installation here and now: the in-process queue running its jobs (D36), with progress.

    One job per resource, one at a time, each tried once (the operator is watching: exit 1 says
    what failed). ``initial``: the import after an install, which is nothing when bulk sync is off;
    ``full``: ignore the checkpoints.
    """
    from miniapp_sync.jobs import JobRetry, LocalQueue, Work

    # The store's committer thread writes a batch while the loop maps the next; at CPython's default
    # 5 ms switch interval it waits for the GIL about a batch's worth of the loop's work, so the two
    # barely overlap. 0.5 ms while the sync runs (a server keeps the default) lets the committer in
    # sooner: 20,000 nested orders ~7% less wall (bench/process.py --only 2).
    switching = sys.getswitchinterval()
    sys.setswitchinterval(0.0005)
    bars = _Bars() if output is OutputFormat.text else None
    queue = LocalQueue(Work(runtime, progress=bars, max_in_flight=max_in_flight), retry=JobRetry(attempts=1))
    ns = installation.ns

    async def jobs() -> list[Finished]:
        if initial:
            await queue.initial_sync(ns, installation.id)
        else:
            keys: list[str | None] = list(resources) if resources else [None]
            for key in keys:
                await queue.sync(ns, installation.id, key, full=full)
        return await queue.run_until_idle()

    try:
        finished = until_stopped(jobs())
    finally:
        sys.setswitchinterval(switching)  # a caller in the same process (a test, a script) gets its own back
        if bars:
            bars.stop()
    for done in finished:
        if done.outcome.status == "dropped":  # no run: the installation cannot sync (disconnected, gone)
            raise InstallationError(done.outcome.detail)
    return [run for done in finished if done.outcome.run_id and (run := runtime.store.get_run(done.outcome.run_id))]


def failed(runs: list[Run]) -> bool:
    """Return whether a run failed."""
    return any(run.status == "failed" for run in runs)


def _report(run: Run) -> ResourceReport:
    from miniapp_sync.sync.reports import ResourceReport

    stats = dict(run.stats.get(run.resource or "", {}))
    known = {f.name for f in dataclasses.fields(ResourceReport)}
    return ResourceReport(**{k: v for k, v in stats.items() if k in known})


def runs_view(runtime: Runtime, runs: list[Run]) -> dict[str, Any]:
    """Return the runs of a sync as JSON: their overall status and their views (D37)."""
    from miniapp_sync.views import queries, to_json

    status = "failed" if failed(runs) else "partial" if any(r.status == "partial" for r in runs) else "succeeded"
    return {"status": status, "items": [to_json(v) for v in queries.runs_by_id(runtime.store, [r.id for r in runs])]}


def print_runs(runs: list[Run]) -> int:
    """Print the runs of a sync as a summary table and its failures; return the exit code."""
    out = console()
    if not runs:
        out.print("nothing to sync: bulk sync is off, or no resource is enabled")
        return 0
    reports = {run.resource or "": _report(run) for run in runs}
    out.print(_summary(reports))
    for key, r in reports.items():
        if r.error:
            out.print(f"[red]{key} failed:[/] ", end="")
            out.print(r.error, markup=False)
    for run in runs:
        out.print(f"run {run.id} ({run.resource}): {run.status}")
    return 1 if failed(runs) else 0


def until_stopped(run: Coroutine[Any, Any, T]) -> T:
    """Run a sync; Ctrl-C or SIGTERM cancel it, the engine marks the run interrupted, and the command exits 130/143."""
    import asyncio

    async def cancellable() -> T:
        task = asyncio.current_task()
        assert task is not None
        if threading.current_thread() is threading.main_thread():  # signals reach only the main thread
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        return await run

    try:
        return asyncio.run(cancellable())
    # Departs from DESIGN §5's exit codes (0, 1, 2): 128 + the signal, as shells report a process
    # a signal stopped, so a script can tell "stopped, resumable" from "failed".
    except (KeyboardInterrupt, asyncio.CancelledError) as exc:
        typer.echo(
            "sync interrupted: its run is marked interrupted; sync again to resume from the checkpoint", err=True
        )
        raise typer.Exit(130 if isinstance(exc, KeyboardInterrupt) else 128 + signal.SIGTERM) from None
