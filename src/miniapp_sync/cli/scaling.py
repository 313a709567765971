"""Running at scale: ``worker``, ``sync --enqueue``, ``jobs`` and ``db upgrade`` (PostgreSQL + Procrastinate, D32-D34).

Procrastinate is imported inside the commands that use it: it costs every other command of the
CLI a noticeable share of its start-up otherwise.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from miniapp_sync.cli.app import (
    ConfigOption,
    FormatOption,
    FunctionsOption,
    MaxRetryAfterOption,
    OutputFormat,
    PrivateOption,
    RewriteOption,
    StoreOption,
    app,
    console,
    open_runtime,
    print_json,
    print_view,
    registry,
    session,
    settings,
)
from miniapp_sync.cli.serving import DefaultScheduleOption, schedule_option
from miniapp_sync.errors import StoreError
from miniapp_sync.listening import listen

if TYPE_CHECKING:
    from miniapp_sync.jobs import Enqueued
    from miniapp_sync.jobs.procrastinate_queue import QueueStatus
    from miniapp_sync.runtime import MiniApp
    from miniapp_sync.webhooks.service import WebhookService

db = typer.Typer(name="db", help="The store's database: migrations and the job queue's schema.", no_args_is_help=True)
app.add_typer(db)


@app.command()
def worker(
    definition: Annotated[list[Path], typer.Option("--definition", "-d", help="A MiniApp to work for (repeatable).")],
    store: StoreOption = None,
    concurrency: Annotated[int, typer.Option(min=1, help="Jobs run at the same time by this worker.")] = 4,
    short: Annotated[
        int,
        typer.Option(
            "--short-slots",
            min=1,
            help="More slots that take only inbox drains, trigger deliveries and periodic work, never syncs.",
        ),
    ] = 2,
    name: Annotated[str | None, typer.Option(help="The worker's name in logs (default: host:pid).")] = None,
    heartbeat: Annotated[float, typer.Option(help="Seconds between this worker's heartbeats.")] = 10.0,
    stalled_after: Annotated[
        float, typer.Option(help="Seconds without a heartbeat after which a worker is dead and its jobs are retried.")
    ] = 30.0,
    metrics_port: Annotated[
        int | None,
        typer.Option(help="Serve this worker's Prometheus metrics (inbox processing, triggers) on PORT/metrics."),
    ] = None,
    metrics_host: Annotated[str, typer.Option(help="Address the metrics bind to.")] = "127.0.0.1",
    default_schedule: DefaultScheduleOption = None,
    config: ConfigOption = None,
    rewrite: RewriteOption = None,
    allow_private_network: PrivateOption = False,
    functions: FunctionsOption = None,
    max_retry_after: MaxRetryAfterOption = None,
) -> None:
    """Run jobs from the PostgreSQL queue: syncs, inbox drains, trigger deliveries, scheduled syncs."""
    import asyncio

    from miniapp_sync.jobs import Work
    from miniapp_sync.jobs.procrastinate_queue import Liveness, ProcrastinateQueue
    from miniapp_sync.runtime import load_miniapp
    from miniapp_sync.sync.metrics import SyncMetrics
    from miniapp_sync.webhooks.metrics import WebhookMetrics
    from miniapp_sync.webhooks.service import WebhookService

    cron = schedule_option(default_schedule)
    try:
        liveness = Liveness(heartbeat=heartbeat, stalled_after=stalled_after)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--heartbeat/--stalled-after") from None
    compute = registry(functions)
    miniapps = [load_miniapp(path, compute) for path in definition]
    name = name or f"{socket.gethostname()}:{os.getpid()}"
    with open_runtime(
        store,
        rewrite,
        allow_private_network,
        config=config,
        miniapps=miniapps,
        create=True,
        max_retry_after=max_retry_after,
    ) as runtime:
        # Drain jobs run this process's inbox processor, deliver jobs its trigger delivery (D33).
        # A worker exports what it owns: syncs, inbox processing, trigger deliveries; not receiving.
        metrics = WebhookMetrics(receiving=False)
        runtime.engine.metrics = SyncMetrics(metrics.registry)
        webhooks = WebhookService(runtime, metrics=metrics)
        work = Work(
            runtime,
            drain=webhooks.processor.drain_installation,
            deliver=webhooks.delivery.deliver_due,
            default_schedule=cron,
        )
        # The pool serves the workers' fetches, listens, heartbeats and job ends, not the jobs' own
        # work (that is the store's pool): a few connections serve hundreds of slots, and a fixed cap
        # keeps many workers within PostgreSQL's max_connections.
        queue = ProcrastinateQueue(work, liveness=liveness, pool_size=min(concurrency + short, 8) + 4)
        console().print(
            f"worker {name}: queues {', '.join(queue.queues)} of {runtime.store.url}, "
            f"{concurrency} jobs at a time and {short} more for drains, deliveries and periodic work"
        )

        async def run() -> None:
            try:
                async with queue, _metrics(webhooks, metrics_host, metrics_port):
                    await queue.run_worker(concurrency=concurrency, short=short, name=name)
            finally:
                await webhooks.stop()
                await webhooks.close()

        asyncio.run(run())


@contextlib.asynccontextmanager
async def _metrics(service: WebhookService, host: str, port: int | None) -> AsyncIterator[None]:
    """Serve ``GET /metrics`` for the block, when a port is given: the server's format, this worker's figures."""
    if port is None:
        yield
        return
    from aiohttp import web

    async def metrics(request: web.Request) -> web.Response:
        body = await service.scrape()
        return web.Response(body=body, content_type="text/plain", charset="utf-8")

    sock = listen(host, port, option="--metrics-port")
    app = web.Application()
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    console().print(f"metrics on http://{host}:{sock.getsockname()[1]}/metrics")
    try:
        yield
    finally:
        await runner.cleanup()


def enqueue_syncs(
    miniapp: MiniApp,
    tenant: str,
    resources: list[str] | None,
    store: str | None,
    output: OutputFormat,
    *,
    full: bool = False,
) -> None:
    """``sync --enqueue``: queue a sync of a tenant's installation for the workers, one job per resource."""
    import asyncio

    from miniapp_sync.jobs import Work, deployment_queue

    with open_runtime(store) as runtime:
        runtime.add(miniapp)
        installation = runtime.installations.find(tenant, miniapp.ns)
        if not runtime.backend.shared_queue:
            raise StoreError(
                f"--enqueue needs the scale-out queue (a PostgreSQL store), not {runtime.store.url}: on SQLite "
                "`serve` runs the jobs in its own process; start a sync there with "
                "POST /api/installations/{id}/sync, or run `sync` without --enqueue"
            )
        queue = deployment_queue(Work(runtime), pool_size=2)

        async def send() -> list[Enqueued]:
            async with queue:
                if not resources:
                    return await queue.sync(miniapp.ns, installation.id, full=full)
                return [r for key in resources for r in await queue.sync(miniapp.ns, installation.id, key, full=full)]

        receipts = asyncio.run(send())
    if output is OutputFormat.json:
        print_json([r.as_dict() for r in receipts])
        return
    out = console()
    for receipt in receipts:
        if receipt.duplicate:
            out.print(f"{receipt.job.resource}: already queued (that job will run it)")
        else:
            out.print(f"{receipt.job.resource}: queued as job {receipt.id}")


@app.command()
def jobs(store: StoreOption = None, output: FormatOption = OutputFormat.text) -> None:
    """Show the job queue: jobs by state, what runs where, and the workers' heartbeats (PostgreSQL)."""
    import asyncio

    from miniapp_sync.jobs import Work
    from miniapp_sync.jobs.procrastinate_queue import ProcrastinateQueue

    with open_runtime(store) as runtime:
        queue = ProcrastinateQueue(Work(runtime), pool_size=2)

        async def look() -> QueueStatus:
            async with queue:
                return await queue.status()

        status = asyncio.run(look())
    if output is OutputFormat.json:
        print_json(status.as_dict())
        return
    from rich.table import Table

    out = console()
    for title, rows in (("Jobs", status.counts), ("Running", status.running), ("Workers", status.workers)):
        table = Table(title=title, title_justify="left")
        columns = list(rows[0]) if rows else ["(none)"]
        for column in columns:
            table.add_column("silent (s)" if column == "silent" else column)
        for row in rows:
            table.add_row(*("" if row[c] is None else str(row[c]) for c in columns))
        out.print(table)


@db.command("upgrade")
def upgrade(
    store: StoreOption = None,
    create: Annotated[bool, typer.Option("--create", help="Create the PostgreSQL database if it is missing.")] = False,
    output: FormatOption = OutputFormat.text,
) -> None:
    """Apply the store's migrations and, on PostgreSQL, install or upgrade the job queue's schema."""
    from miniapp_sync.jobs.schema import upgrade_database
    from miniapp_sync.views import NotesView

    environ = session().environ
    url = settings().with_flags(store=store, environ=environ).store
    notes = upgrade_database(url, create=create, environ=environ)
    if output is OutputFormat.json:
        print_view(NotesView(notes))
        return
    for note in notes:
        console().print(note)
