"""Run forensics and steering: ``runs`` (filters), ``runs show ID``, ``pause`` and ``resume`` (issue #15)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from miniapp_sync.cli.app import (
    CursorOption,
    DefinitionArgument,
    FormatOption,
    LimitOption,
    OutputFormat,
    StoreOption,
    TenantOption,
    app,
    console,
    open_runtime,
    print_view,
    show_next,
    window,
)

if TYPE_CHECKING:
    from miniapp_sync.runtime import Runtime
    from miniapp_sync.store.run_search import RunFilter
    from miniapp_sync.views import RunView

runs_app = typer.Typer(
    name="runs",
    help="Sync runs: filter by tenant, MiniApp, resource, status and time; show one with its figures and error.",
)
app.add_typer(runs_app)

_WHEN = "an ISO 8601 date or time (UTC unless it says), or 24h, 7d, 30m, today, yesterday"


def _filter(
    runtime: Runtime,
    tenant: str | None,
    ns: str | None,
    resource: str | None,
    status: list[str] | None,
    since: str | None,
    until: str | None,
) -> RunFilter:
    """Return the run filter of the options; a bad status or time is bad usage naming the option."""
    from miniapp_sync.store.model import RUN_STATUSES
    from miniapp_sync.store.run_search import RunFilter
    from miniapp_sync.views import ParameterError, moment, queries

    unknown = [s for s in status or () if s not in RUN_STATUSES]
    if unknown:
        raise typer.BadParameter(
            f"expected one of {', '.join(sorted(RUN_STATUSES))}, found {unknown[0]!r}", param_hint="--status"
        )
    now = runtime.clock.now()
    try:
        start = None if since is None else moment(since, now, field="since")
        end = None if until is None else moment(until, now, field="until")
    except ParameterError as exc:
        raise typer.BadParameter(exc.message, param_hint=f"--{exc.field}") from None
    ids = (
        tuple(queries.installation_ids(runtime.store, tenant, ns)) if tenant else None
    )  # an unknown tenant is an error
    return RunFilter(ids, None, ns, resource, tuple(status or ()), start, end)  # type: ignore[arg-type]


@runs_app.callback(invoke_without_command=True)
def runs(
    ctx: typer.Context,
    tenant: Annotated[str | None, typer.Option("--tenant", "-t", help="Only this tenant's runs.")] = None,
    ns: Annotated[str | None, typer.Option(help="Only this MiniApp's runs.")] = None,
    resource: Annotated[str | None, typer.Option(help="Only the runs of this resource.")] = None,
    status: Annotated[
        list[str] | None,
        typer.Option(help="Only runs in this state (repeatable): running, succeeded, partial, failed, …"),
    ] = None,
    since: Annotated[str | None, typer.Option(help=f"Only runs started at or after: {_WHEN}.")] = None,
    until: Annotated[str | None, typer.Option(help=f"Only runs started before: {_WHEN}.")] = None,
    limit: LimitOption = 20,
    cursor: CursorOption = None,
    store: StoreOption = None,
    output: FormatOption = OutputFormat.text,
) -> None:
    """List sync runs, newest first: tenant, MiniApp, figures and the error of each."""
    if ctx.invoked_subcommand is not None:
        return
    from rich.table import Table
    from rich.text import Text

    from miniapp_sync.views import queries

    page_of = window(limit, cursor)
    with open_runtime(store) as runtime:
        page = queries.runs(runtime.store, page_of, _filter(runtime, tenant, ns, resource, status, since, until))
    if output is OutputFormat.json:
        print_view(page)
        return
    table = Table(title="Runs", title_justify="left")
    for column in ("id", "tenant", "ns", "resource", "status", "started", "seconds", "fetched", "error"):
        table.add_column(column)
    for r in page.items:
        table.add_row(
            r.id,
            Text(r.tenant or "?"),
            r.ns or "?",
            r.resource or "all",
            r.status,
            r.started_at,
            "—" if r.duration_seconds is None else f"{r.duration_seconds:.1f}",
            str(sum(f.fetched for f in r.resources)),
            Text(r.error or ""),  # Text: an error quoting [[storeId]] is no Rich markup
        )
    console().print(table)
    show_next(page)


@runs_app.command("show")
def show(
    run_id: Annotated[str, typer.Argument(metavar="ID", help="The run's id (the id `runs` shows).")],
    store: StoreOption = None,
    output: FormatOption = OutputFormat.text,
) -> None:
    """Show one run: per-resource figures, its error (page, redacted URL), progress and checkpoints."""
    from miniapp_sync.views import queries

    with open_runtime(store) as runtime:
        found = queries.run(runtime.store, run_id)
    if found is None:
        raise typer.BadParameter(f"no run {run_id[:60]!r}", param_hint="ID")
    if output is OutputFormat.json:
        print_view(found)
        return
    _print_run(found)


def _print_run(r: RunView) -> None:
    from rich.table import Table
    from rich.text import Text

    out = console()
    took = "" if r.duration_seconds is None else f" in {r.duration_seconds:.1f} s"
    out.print(Text(f"run {r.id}: {r.status}{took} — {r.tenant} / {r.ns} / {r.resource or 'all resources'}"))
    out.print(f"started {r.started_at}, finished {r.finished_at or '—'}" + (f", job {r.job_id}" if r.job_id else ""))
    p = r.progress
    if p.updated_at is not None:
        rate = "—" if p.rate is None else f"{p.rate:.1f}"
        out.print(
            f"progress at {p.updated_at}: {p.records} records, {p.pages} pages, {rate} records/s, {p.throttled} 429s"
        )
    columns = ("resource", "fetched", "created", "updated", "unchanged", "rejected", "pages", "requests", "retries")
    table = Table(title="Resources", title_justify="left")
    for column in (*columns, "429s", "seconds", "next run resumes from"):
        table.add_column(column)
    for f in r.resources:
        counts = (f.fetched, f.created, f.updated, f.unchanged, f.rejected, f.pages, f.requests, f.retries, f.throttled)
        table.add_row(f.resource, *map(str, counts), f"{f.seconds:.2f}", _state(f.resumes_from))
    out.print(table)
    for e in r.errors:
        where = ", ".join(x for x in (e.page and f"page {e.page}", e.status and f"status {e.status}") if x)
        out.print(Text(f"{e.resource} failed" + (f" ({where})" if where else "") + f": {e.message}", style="red"))
        if e.url:
            out.print(Text(f"  url: {e.url}"))
    if r.error and not r.errors:
        out.print(Text(r.error))


def _state(state: dict[str, Any] | None) -> str:
    return "the first page" if not state else ", ".join(f"{k}={v}" for k, v in state.items())


def _steer(definition: Any, tenant: str, store: str | None, output: OutputFormat, *, pause: bool) -> None:
    from miniapp_sync.runtime import load_miniapp
    from miniapp_sync.views import queries

    miniapp = load_miniapp(definition)
    with open_runtime(store) as runtime:
        found = runtime.installations.find(tenant, miniapp.ns)
        steer = runtime.installations.pause if pause else runtime.installations.resume
        view = queries.installation(runtime.store, steer(found.id).id)
    assert view is not None
    if output is OutputFormat.json:
        print_view(view)
    elif pause:
        console().print(f"paused the schedules of {miniapp.ns} for {tenant}; webhooks keep flowing")
    else:
        console().print(f"resumed the schedules of {miniapp.ns} for {tenant}")


@app.command()
def pause(
    definition: DefinitionArgument,
    tenant: TenantOption,
    store: StoreOption = None,
    output: FormatOption = OutputFormat.text,
) -> None:
    """Pause a tenant's scheduled syncs of a MiniApp (webhooks and `sync` still run)."""
    _steer(definition, tenant, store, output, pause=True)


@app.command()
def resume(
    definition: DefinitionArgument,
    tenant: TenantOption,
    store: StoreOption = None,
    output: FormatOption = OutputFormat.text,
) -> None:
    """Resume a tenant's paused scheduled syncs of a MiniApp."""
    _steer(definition, tenant, store, output, pause=False)
