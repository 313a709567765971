"""Record commands: ``records`` lists or looks up stored records, ``records history ID`` shows a timeline (D39)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from miniapp_sync.cli.app import (
    CursorOption,
    FormatOption,
    LimitOption,
    OutputFormat,
    StoreOption,
    app,
    console,
    open_runtime,
    print_view,
    show_next,
    window,
)

if TYPE_CHECKING:
    from miniapp_sync.views import RecordView

records_app = typer.Typer(
    name="records",
    help="Stored records: list a tenant's, look one up by --code, show a record's history.",
)
app.add_typer(records_app)


def _preview(value: Any, width: int = 120) -> str:
    import json

    text = json.dumps(value, ensure_ascii=False)
    return text[:width] + ("…" if len(text) > width else "")


@records_app.callback(invoke_without_command=True)
def records(
    ctx: typer.Context,
    tenant: Annotated[
        str | None, typer.Option("--tenant", "-t", help="The tenant (workspace) id; optional with --code.")
    ] = None,
    content_type: Annotated[str | None, typer.Option("--type", help="A content type, e.g. core:product.")] = None,
    code: Annotated[
        str | None, typer.Option("--code", help="Only the records of this code (the provider's id).")
    ] = None,
    ns: Annotated[str | None, typer.Option(help="The MiniApp (when the tenant has several).")] = None,
    limit: LimitOption = 20,
    cursor: CursorOption = None,
    store: StoreOption = None,
    output: FormatOption = OutputFormat.text,
) -> None:
    """Show stored records of a tenant by content type and code, or every tenant's records of one --code."""
    if ctx.invoked_subcommand is not None:
        return
    from rich.table import Table

    from miniapp_sync.views import queries

    if tenant is None and code is None:
        raise typer.BadParameter("give the tenant whose records to show, or a --code to look up", param_hint="--tenant")
    page_of = window(limit, cursor)
    with open_runtime(store) as runtime:
        ids = queries.installation_ids(runtime.store, tenant, ns)
        page = queries.records(runtime.store, page_of, ids, content_type, code)
        total = sum(runtime.store.count_records(i, content_type, code=code) for i in ids)
    if output is OutputFormat.json:
        print_view(page)
        return
    table = Table(title=f"Records ({len(page.items)} of {total})", title_justify="left")
    for column in ("id", "type", "code", "source", "flags", "updated", "data"):
        table.add_column(column, overflow="fold")
    for r in page.items:
        flags = ",".join(f for f, on in (("partial", r.partial), ("deleted", r.deleted)) if on)
        table.add_row(r.id, r.content_type, r.code, r.source, flags, r.updated_at, _preview(r.data))
    console().print(table)
    show_next(page)


@records_app.command("history")
def history(
    record_id: Annotated[str, typer.Argument(metavar="ID", help="The record's id (the id `records` shows).")],
    limit: LimitOption = 20,
    cursor: CursorOption = None,
    store: StoreOption = None,
    output: FormatOption = OutputFormat.text,
) -> None:
    """Show a record and its history, newest first: each change, its source (run or delivery) and fields."""
    from rich.table import Table

    from miniapp_sync.views import queries

    page_of = window(limit, cursor)
    with open_runtime(store) as runtime:
        record = queries.record(runtime.store, record_id)
        page = None if record is None else queries.record_history(runtime.store, page_of, record_id)
    if record is None or page is None:
        raise typer.BadParameter(f"no record {record_id[:60]!r}", param_hint="ID")
    if output is OutputFormat.json:
        print_view(page)
        return
    _show_record(record)
    table = Table(title="History (newest first)", title_justify="left")
    for column in ("change", "when", "kind", "source", "version", "field", "old", "new"):
        table.add_column(column, overflow="fold")
    for change in page.items:
        source = f"{'run' if change.source == 'bulk' else 'delivery'} {change.source_id or '—'}"
        head = (change.id, change.changed_at, change.kind, source, change.version or "")
        if not change.fields:
            table.add_row(*head, "", "", "")
        for index, field in enumerate(change.fields):
            shown = head if index == 0 else ("",) * len(head)
            table.add_row(*shown, field.field, _preview(field.old, 40), _preview(field.new, 40))
    console().print(table)
    show_next(page)


def _show_record(r: RecordView) -> None:
    flags = ",".join(f for f, on in (("partial", r.partial), ("deleted", r.deleted)) if on)
    console().print(f"{r.content_type} {r.code} (installation {r.installation_id}){' ' + flags if flags else ''}")
    console().print(f"updated {r.updated_at} by {r.source}; data: {_preview(r.data, 400)}")
