"""Delivery commands (issue 15): ``deliveries`` lists the inbox and the refusals, ``show`` one, ``replay`` in bulk."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from miniapp_sync.cli.app import (
    CursorOption,
    FormatOption,
    FunctionsOption,
    LimitOption,
    OutputFormat,
    StoreOption,
    app,
    console,
    open_runtime,
    print_view,
    registry,
    show_next,
    window,
)

if TYPE_CHECKING:
    from miniapp_sync.store.deliveries import DeliveryFilter
    from miniapp_sync.views.deliveries import DeliveryDetailView, DeliveryView

deliveries_app = typer.Typer(
    name="deliveries",
    help="Webhook deliveries: what was received or refused and why; show one; replay dead or failed ones.",
)
app.add_typer(deliveries_app)

TenantFilter = Annotated[str | None, typer.Option("--tenant", "-t", help="Only this tenant's.")]
NsFilter = Annotated[str | None, typer.Option("--ns", help="Only this MiniApp's.")]
EventFilter = Annotated[str | None, typer.Option("--event", help="Only this event.")]
StatusFilter = Annotated[
    list[str] | None,
    typer.Option(
        "--status",
        help="processed, reused_id, duplicate, ignored, unmatched, pending, processing, failed (retrying), "
        "dead (dead-lettered), ping or rejected (refused at the door); repeat it for any of several"
        " (the overview's backlog: --status pending --status processing --status failed).",
    ),
]
ReasonFilter = Annotated[
    str | None,
    typer.Option("--reason", help="Refusals for this reason: bad_signature, stale, too_large, unknown_tenant."),
]
SinceFilter = Annotated[
    str | None, typer.Option("--since", help="Received at or after: ISO 8601 (2026-12-03T10:00Z), 24h, 7d or today.")
]
UntilFilter = Annotated[str | None, typer.Option("--until", help="Received before (as --since).")]
SearchFilter = Annotated[
    str | None, typer.Option("--search", "-q", help="Text in the body (the 5,000 newest that pass the other filters).")
]


def _filter(now: float, **given: Any) -> DeliveryFilter:
    from miniapp_sync.views import ParameterError
    from miniapp_sync.views.deliveries import delivery_filter

    try:
        return delivery_filter(**given, now=now)
    except ParameterError as exc:
        option = "--search" if exc.field == "q" else f"--{exc.field}"
        raise typer.BadParameter(exc.message, param_hint=option) from None


def _age(view: DeliveryView, now: float) -> str:
    seconds = max(0, int(now - datetime.fromisoformat(view.received_at).timestamp()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@deliveries_app.callback(invoke_without_command=True)
def list_deliveries(
    ctx: typer.Context,
    tenant: TenantFilter = None,
    ns: NsFilter = None,
    event: EventFilter = None,
    status: StatusFilter = None,
    reason: ReasonFilter = None,
    since: SinceFilter = None,
    until: UntilFilter = None,
    search: SearchFilter = None,
    limit: LimitOption = 50,
    cursor: CursorOption = None,
    store: StoreOption = None,
    output: FormatOption = OutputFormat.text,
) -> None:
    """List webhook deliveries newest first: inbox rows and refusals at the door, with what became of them."""
    if ctx.invoked_subcommand is not None:
        return
    from rich.table import Table
    from rich.text import Text

    from miniapp_sync.views.deliveries import deliveries

    page_of = window(limit, cursor)
    with open_runtime(store) as runtime:
        now = runtime.clock.now()
        chosen = _filter(
            now, tenant=tenant, ns=ns, event=event, status=status, reason=reason, since=since, until=until, q=search
        )
        page = deliveries(runtime, page_of, chosen)
    if output is OutputFormat.json:
        print_view(page)
        return
    table = Table(title="Webhook deliveries (newest first)", title_justify="left")
    for column in ("id", "tenant", "ns", "event", "status", "age", "attempts", "error"):
        table.add_column(column, overflow="fold")
    for d in page.items:
        state = f"{d.status} ({d.reason})" if d.reason else d.status
        cells = (d.tenant or "—", d.ns, d.event or "—", state, _age(d, now), str(d.attempts))
        table.add_row(d.id, *cells, Text((d.error or "").splitlines()[0] if d.error else ""))  # not Rich markup
    console().print(table)
    show_next(page)


@deliveries_app.command("show")
def show_delivery(
    id: Annotated[str, typer.Argument(metavar="ID", help="The delivery's id: 42 (inbox) or r7 (refused).")],
    store: StoreOption = None,
    output: FormatOption = OutputFormat.text,
) -> None:
    """Show one delivery: its body or redacted headers, its outcome, the records it wrote, the events it fired."""
    from miniapp_sync.views.deliveries import delivery

    with open_runtime(store) as runtime:
        found = delivery(runtime, id)
    if found is None:
        raise typer.BadParameter(f"no delivery {id[:60]!r}", param_hint="ID")
    if output is OutputFormat.json:
        print_view(found)
        return
    _print_detail(found)


def _print_detail(found: DeliveryDetailView) -> None:
    import json

    from rich.text import Text

    out = console()
    d = found.delivery
    state = f"{d.status} ({d.reason})" if d.reason else d.status
    out.print(Text(f"delivery {d.id}: {d.ns} {d.event or '(no event)'} — {state}"))
    out.print(Text(f"tenant {d.tenant or '—'}, installation {d.installation_id or '—'}, {d.size} bytes"))
    out.print(Text(f"received {d.received_at}, processed {d.processed_at or '—'}, attempts {d.attempts}"))
    if d.transaction_id:
        out.print(Text(f"transaction id {d.transaction_id}"))
    if d.error:
        out.print(Text(f"error: {d.error}"))
    if found.dead_letter_id:
        out.print(
            Text(f"dead letter {found.dead_letter_id}: replay with `miniapp-sync deliveries replay {d.id} -d DEF`")
        )
    if found.route:
        out.print(Text(f"route {found.route}, body sha256 {found.digest or '—'} (the body was not kept)"))
    if found.headers is not None:
        out.print(Text("headers:\n" + "\n".join(f"  {k}: {v}" for k, v in found.headers.items())))
    if found.body is not None:
        shown = found.body if isinstance(found.body, str) else json.dumps(found.body, indent=2, ensure_ascii=False)
        out.print(Text("body:\n" + shown))
    for change in found.records:
        fields = ", ".join(f.field for f in change.fields)
        out.print(Text(f"wrote: {change.kind} {change.record_id} ({fields})"))
    for fired in found.events:
        posts = ", ".join(f"{p.url}: {p.status} after {p.attempts}" for p in fired.deliveries) or "no subscriber"
        out.print(Text(f"fired: {fired.event.event} (event {fired.event.id}); {posts}"))


def _selection(ids: list[str] | None, chosen: DeliveryFilter) -> dict[str, Any]:
    if ids:
        if chosen.as_dict():
            raise typer.BadParameter("give delivery ids or filters, not both", param_hint="ID")
        return {"ids": ids}
    return {"filter": chosen.as_dict()}


@deliveries_app.command("replay")
def replay_deliveries(
    ids: Annotated[
        list[str] | None, typer.Argument(metavar="[ID]...", help="Delivery ids; none: all that match.")
    ] = None,
    definition: Annotated[
        Path | None, typer.Option("--definition", "-d", help="The current MiniApp definition to replay them through.")
    ] = None,
    tenant: TenantFilter = None,
    ns: NsFilter = None,
    event: EventFilter = None,
    status: StatusFilter = None,
    since: SinceFilter = None,
    until: UntilFilter = None,
    search: SearchFilter = None,
    preview: Annotated[bool, typer.Option("--preview", help="Say what would be replayed, and change nothing.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Replay without asking.")] = False,
    store: StoreOption = None,
    functions: FunctionsOption = None,
    output: FormatOption = OutputFormat.text,
) -> int:
    """Replay dead or failed deliveries, by id or all matching the filters, as a job (exit 1 when one fails again)."""
    import asyncio

    from miniapp_sync.runtime import load_miniapp
    from miniapp_sync.views.deliveries import ReplayPreviewView
    from miniapp_sync.webhooks import bulk_replay

    if preview and yes:
        raise typer.BadParameter("--preview changes nothing; --yes replays: give one", param_hint="--preview")
    if output is OutputFormat.json and not (preview or yes):
        raise typer.BadParameter(
            "with --format json, give --preview or --yes (there is nobody to ask)", param_hint="--yes"
        )
    if definition is None:
        raise typer.BadParameter("the definition to replay through is needed", param_hint="--definition")
    miniapp = load_miniapp(definition, registry(functions))
    with open_runtime(store, miniapps=[miniapp]) as runtime:
        chosen = _filter(
            runtime.clock.now(), tenant=tenant, ns=ns, event=event, status=status, since=since, until=until, q=search
        )
        selection = _selection(ids, chosen)
        planned = ReplayPreviewView.of(bulk_replay.preview(runtime, selection))
        if preview or not yes:
            if output is OutputFormat.json:
                print_view(planned)
                return 0
            _print_preview(planned)
            if preview or planned.count == 0 or not typer.confirm(f"replay {planned.count} deliveries now?"):
                return 0
        replay = asyncio.run(_run(runtime, selection))
    if output is OutputFormat.json:
        print_view(replay)
    else:
        _print_report(replay)
    report = replay.report
    return 1 if report is None or report.failed else 0


async def _run(runtime: Any, selection: dict[str, Any]) -> Any:
    """Run the replay as a job of the in-process queue (D36), tried once: the operator is watching."""
    import asyncio

    from miniapp_sync.jobs import JobRetry, LocalQueue, Work
    from miniapp_sync.store.replays import Replays
    from miniapp_sync.views.deliveries import DeliveryReplayView
    from miniapp_sync.webhooks import bulk_replay

    queue = LocalQueue(Work(runtime), retry=JobRetry(attempts=1))
    queued = await bulk_replay.queue(runtime, queue, selection)
    await queue.run_until_idle()
    replay = await asyncio.to_thread(Replays(runtime.store).get, queued.id)
    assert replay is not None
    return DeliveryReplayView.of(replay)


def _print_preview(p: Any) -> None:
    from rich.text import Text

    out = console()
    out.print(f"would replay {p.count} deliveries ({p.refused} refused, {p.skipped} skipped)")
    for version in p.definitions:
        out.print(f"  against {version.ns} version {version.version or '—'} (definition digest {version.digest})")
    for event, count in p.by_event.items():
        out.print(f"  {event}: {count}")
    for entry in p.by_installation:
        out.print(f"  installation {entry.installation_id} ({entry.tenant or '—'}): {entry.count}")
    for item in p.items:
        if item.outcome != "replay":
            out.print(Text(f"  {item.id} {item.outcome}: {item.detail}"))


def _print_report(replay: Any) -> None:
    from rich.text import Text

    out = console()
    r = replay.report
    if r is None:
        out.print(f"replay {replay.id} is {replay.status} (job {replay.job_id})")
        return
    out.print(
        f"replay {replay.id} (job {replay.job_id}): {r.processed} processed, {r.failed} failed again "
        f"({r.still_dead} still dead), {r.refused} refused, {r.skipped} skipped"
    )
    for item in r.items:
        out.print(Text(f"  {item.id} {item.outcome}: {item.detail}"))
    if r.gone:
        out.print(Text(f"  purged before the job ran: {', '.join(r.gone)}"))
