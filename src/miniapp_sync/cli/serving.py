"""``serve`` (the ASGI server) and ``sandbox`` (the bundled provider emulator)."""

from __future__ import annotations

import enum
import functools
import gc
import socket
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from miniapp_sync.cli.app import (
    ConfigOption,
    FunctionsOption,
    MaxRetryAfterOption,
    PrivateOption,
    PublicUrlOption,
    RewriteOption,
    StoreOption,
    app,
    console,
    open_runtime,
    registry,
    session,
    settings,
)
from miniapp_sync.errors import ProcessorDied
from miniapp_sync.listening import Stop, listen
from miniapp_sync.listening import serve as serve_on
from miniapp_sync.sync.collector import RUN_GC_THRESHOLD
from miniapp_sync.webhooks.settings import WebhookSettings

if TYPE_CHECKING:
    from miniapp_sync.jobs.separate import ProcessorProcess
    from miniapp_sync.runtime import Runtime


class Processing(enum.StrEnum):
    """Where ``serve`` runs the inbox processing on the embedded store (D36: the same jobs either way)."""

    separate = "separate"
    inline = "inline"


DefaultScheduleOption = Annotated[
    str | None,
    typer.Option(
        "--default-schedule",
        help="Sync every installation this often (30m, 6h, 1d or cron) when its definition has no schedule"
        " (also MINIAPP_SYNC_DEFAULT_SCHEDULE, or default_schedule in the settings file).",
    ),
]


def schedule_option(value: str | None) -> str | None:
    """Return the cron expression of ``--default-schedule`` (or the settings'), or raise a usage error."""
    from miniapp_sync.jobs.schedules import cron_for  # croniter: only for the commands that schedule

    value = settings().with_flags(default_schedule=value, environ=session().environ).default_schedule
    try:
        return None if value is None else cron_for(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--default-schedule") from None


@app.command()
def serve(
    definition: Annotated[list[Path], typer.Option("--definition", "-d", help="A MiniApp to serve (repeatable).")],
    store: StoreOption = None,
    host: Annotated[str, typer.Option(help="Address to bind; 127.0.0.1 unless you mean it (D31).")] = "127.0.0.1",
    port: int = 8000,
    public_url: PublicUrlOption = None,
    admin_token: Annotated[
        str | None,
        typer.Option(
            help="Bearer token of the management API (better: MINIAPP_SYNC_ADMIN_TOKEN or the settings file,"
            " which ps does not show)."
        ),
    ] = None,
    viewer_token: Annotated[
        str | None,
        typer.Option(
            help="Read-only login of the console at /console (better: MINIAPP_SYNC_VIEWER_TOKEN or the settings"
            " file). The console is on when an admin or a viewer token is set.",
        ),
    ] = None,
    config: ConfigOption = None,
    rewrite: RewriteOption = None,
    allow_private_network: PrivateOption = False,
    functions: FunctionsOption = None,
    max_body_bytes: Annotated[
        int, typer.Option(min=1, help="Webhook deliveries larger than this are refused with 413.")
    ] = WebhookSettings.max_body_bytes,
    default_schedule: DefaultScheduleOption = None,
    record_samples: Annotated[
        Path | None,
        typer.Option(
            help="Write each verified delivery's body as DIR/<event>.json (for the submission).", file_okay=False
        ),
    ] = None,
    max_retry_after: MaxRetryAfterOption = None,
    concurrency: Annotated[
        int,
        typer.Option(
            min=1,
            help="Jobs run at the same time on SQLite (syncs, inbox drains); a sync waiting on"
            " its rate budget holds one, so give at least one per installation and resource synced at once."
            " On PostgreSQL `worker` processes run the jobs (their own --concurrency).",
        ),
    ] = 4,
    processor: Annotated[
        Processing,
        typer.Option(
            help="On SQLite, run the jobs (inbox processing, trigger delivery, syncs, schedules) in a separate"
            " child process, so acknowledgements never wait behind mapping, or inline in the server's process."
            " On PostgreSQL `worker` processes run them.",
        ),
    ] = Processing.separate,
) -> None:
    """Serve webhooks, OAuth installs, the management API and the console for one or several MiniApps."""
    from miniapp_sync.runtime import load_miniapp
    from miniapp_sync.server import create_app

    cron = schedule_option(default_schedule)
    compute = registry(functions)
    miniapps = [load_miniapp(path, compute) for path in definition]
    chosen = settings().with_flags(admin_token=admin_token, viewer_token=viewer_token, environ=session().environ)
    token, viewer = chosen.admin_token, chosen.viewer_token
    # Bound first, so that with --port 0 the links this server issues name the port it got.
    sock = listen(host, port)
    origin = f"http://{host}:{sock.getsockname()[1]}"
    public = public_url or settings().public_url or origin
    opening = functools.partial(
        open_runtime,
        store,
        rewrite,
        allow_private_network,
        public,
        config=config,
        miniapps=miniapps,
        create=True,
        max_retry_after=max_retry_after,
    )
    try:
        runtime = opening()
    except BaseException:
        sock.close()
        raise
    child: ProcessorProcess | None = None
    try:
        webhooks = WebhookSettings(
            max_body_bytes=max_body_bytes, record_samples=str(record_samples) if record_samples else None
        )
        # What is loaded now lives as long as the server: keep the cyclic collector from walking
        # it on every full collection (~120k objects; 50-150 ms pauses of the event loop otherwise).
        # Before the fork, too: the child then shares these pages instead of copying them.
        gc.collect()
        gc.freeze()
        # A delivery's body decodes into ~300 container objects, both here and in the processor (which
        # inherits this through the fork): at the default young threshold (700) the collector ran every
        # few deliveries and promoted the ones in hand, as bulk runs did (sync/collector.py). Measured
        # ~5% less CPU a delivery for the receiver and the processor each; the young generation is
        # still collected every 10,000 objects, a few MB at most.
        gc.set_threshold(RUN_GC_THRESHOLD, *gc.get_threshold()[1:])
        queue = None
        stop = Stop()
        if processor is Processing.separate and not runtime.backend.shared_queue:
            from miniapp_sync.jobs import Work
            from miniapp_sync.jobs.separate import ForwardingQueue

            child = _fork_processor(opening, runtime, sock, webhooks, cron, concurrency)
            # The server's Work runs nothing; it knows the schedules, to say when each next syncs (the API).
            queue = ForwardingQueue(Work(runtime, default_schedule=cron), child, on_death=stop)
        app = create_app(
            runtime,
            admin_token=token,
            viewer_token=viewer,
            webhooks=webhooks,
            default_schedule=cron,
            concurrency=concurrency,
            queue=queue,
        )
        announce = f"serving {', '.join(runtime.apps)} on {origin}"
        if token or viewer:
            announce += f"; the console is at {origin}/console/"
        if child is not None:
            announce += f" (inbox processor: pid {child.pid})"
        # access_log=False: uvicorn's access logger is disabled (logs.py: ours logs the route template),
        # but uvicorn still formatted its client and path for it on every response (~0.7 us).
        serve_on(
            app,
            sock,
            on_started=lambda: console().print(announce),
            stop=stop,
            log_level="warning",
            log_config=None,
            access_log=False,
        )
    finally:
        if child is not None:
            child.stop()  # the server stopped without its lifespan (it did not start): the child goes too
        runtime.close()
    if child is not None and child.died:
        raise ProcessorDied(f"{child.died}; serve stopped (hint: its log above says why; start serve again)")


def _fork_processor(
    opening: Callable[[], Runtime],
    runtime: Runtime,
    sock: socket.socket,
    webhooks: WebhookSettings,
    cron: str | None,
    concurrency: int,
) -> ProcessorProcess:
    """Fork the inbox processor; in the child, let go of the server's socket and store connections first."""
    from miniapp_sync.jobs.separate import ProcessorPlan, ProcessorProcess

    def inherited() -> None:
        sock.close()
        runtime.store.database.engine.dispose(close=False)  # the server's connections stay the server's

    return ProcessorProcess.start(ProcessorPlan(opening, webhooks, cron, concurrency), inherited)


@app.command()
def sandbox(
    host: str = "127.0.0.1",
    port: int = 8765,
    products: int = 120,
    customers: int = 80,
    orders: int = 150,
    carts: int = 30,
    latency: Annotated[float, typer.Option(help="Seconds added to every API response.")] = 0.0,
    rate_limit: Annotated[float | None, typer.Option(help="Requests/second per store before 429.")] = None,
    tenants: Annotated[
        int, typer.Option(min=1, help="Stores served, each with its own merchant id, tokens and rate budget.")
    ] = 1,
) -> None:
    """Run the bundled Salla-shaped sandbox provider (API under /admin/v2, OAuth under /oauth2)."""
    import asyncio

    from miniapp_sync.sandbox import SandboxConfig, serve_forever

    config = SandboxConfig(
        products=products,
        customers=customers,
        orders=orders,
        carts=carts,
        latency=latency,
        rate_limit=rate_limit,
        tenants=tenants,
    )
    asyncio.run(serve_forever(config, host, port))
