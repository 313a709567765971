"""``map``: dry-run a resource mapping on a list page, or a handler on a webhook payload."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from miniapp_sync import exactjson
from miniapp_sync.cli.app import (
    DefinitionArgument,
    FormatOption,
    FunctionsOption,
    OutputFormat,
    app,
    console,
    print_json,
    registry,
)


def read_json(path: Path) -> tuple[Any, bytes]:
    """Read a JSON input file; a syntax error names file:line:col (exit 2)."""

    from miniapp_sync.provider.errors import MAX_ANSWER_BYTES

    try:
        with path.open("rb") as file:  # no more than a provider answer may hold (/dev/zero ends too)
            raw = file.read(MAX_ANSWER_BYTES + 1)
    except OSError as exc:
        raise typer.BadParameter(f"cannot read {path}: {exc.strerror}", param_hint="--input") from None
    if len(raw) > MAX_ANSWER_BYTES:
        raise typer.BadParameter(
            f"{path} holds more than {MAX_ANSWER_BYTES:,} bytes, the most a provider answer may be",
            param_hint="--input",
        )
    try:
        return exactjson.loads(raw), raw  # as the receiver reads it: ids of any size exact
    except exactjson.JSONDecodeError:
        try:  # the stdlib parser says where
            json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            where = f"{path}:{exc.lineno}:{exc.colno}" if isinstance(exc, json.JSONDecodeError) else str(path)
            raise typer.BadParameter(
                f"{where}: not valid JSON: {getattr(exc, 'msg', exc)}", param_hint="--input"
            ) from None
        raise


def _print_records(results: list[dict[str, Any]], limit: int) -> None:
    from rich.table import Table
    from rich.text import Text

    from miniapp_sync.errors import preview

    out = console()
    for result in results[:limit]:
        state = "[red]rejected[/]" if result["rejected"] else "[green]ok[/]"
        table = Table(title=f"record #{result['index']} — {state}", title_justify="left", show_header=False)
        table.add_column("field", style="bold")
        table.add_column("value", overflow="fold")
        for name, value in result["data"].items():
            table.add_row(Text(name), Text(preview(value, 200)))
        out.print(table)
        for problem in result["problems"]:
            out.print("  [red]✗[/] ", end="")
            out.print(problem.render(), markup=False)
    if len(results) > limit:
        out.print(f"… {len(results) - limit} more records (use --limit or --format json)")
    rejected = sum(r["rejected"] for r in results)
    out.print(f"\n{len(results)} records mapped, {len(results) - rejected} ok, {rejected} would be rejected")


def _print_event(report: dict[str, Any], limit: int) -> None:
    out = console()
    out.print(f"[bold]event[/]          {report['event']}")
    if not report["eventMatches"]:
        out.print(
            f"[yellow]  eventExtraction found {report['extractedEvent']!r} in the payload, not {report['event']!r}[/]"
        )
    out.print(f"[bold]transaction id[/] {report['transactionId'] or '— (not de-duplicated)'}")
    handler = report["handler"]
    target = f"{handler['operation']} {handler['contentType']}" if handler else "[yellow]no handler for this event[/]"
    out.print(f"[bold]handler[/]        {target}")
    fires = "[green]yes[/]" if report["triggerFires"] else "[yellow]no trigger with this event[/]"
    out.print(f"[bold]trigger fires[/]  {fires}")
    if report["customer"] is not None:
        out.print("[bold]customer[/]")
        _print_records([report["customer"]], 1)
    if report["records"]:
        out.print("[bold]record[/]")
        _print_records(report["records"], limit)


@app.command("map")
def map_command(
    definition_path: DefinitionArgument,
    input_path: Annotated[
        Path, typer.Option("--input", "-i", help="A list page / record (with --resource) or a webhook body.")
    ],
    resource: Annotated[str | None, typer.Option(help="Map the input with this resource's apiMapping.")] = None,
    event: Annotated[
        str | None, typer.Option(help="Map the input with this event's handler (default: extract it).")
    ] = None,
    header: Annotated[
        list[str] | None, typer.Option(help="A delivery header 'Name: value' (for header events).")
    ] = None,
    limit: Annotated[int, typer.Option(help="Records to print in text output.")] = 20,
    output: FormatOption = OutputFormat.text,
    functions: FunctionsOption = None,
) -> int:
    """Dry-run mappings on a sample: the records produced, and what would be rejected and why."""
    if resource is not None and event is not None:
        raise typer.BadParameter("give --resource or --event, not both", param_hint="--event")
    from miniapp_sync.definition import load_definition
    from miniapp_sync.mapping.plan import compile_plan, vocabulary
    from miniapp_sync.submission.dry_run import map_event, map_resource

    compute = registry(functions)
    definition = load_definition(definition_path, vocabulary=vocabulary(compute))
    plan = compile_plan(definition, compute)
    document, raw = read_json(input_path)
    if resource is not None:
        report = map_resource(plan, definition, resource, document)
    else:
        headers = dict(_header(h) for h in header or ())
        report = map_event(plan, definition, event, document, raw, headers)
    rejected = any(r["rejected"] for r in report["records"])
    if output is OutputFormat.json:
        print_json(report)
    elif resource is not None:
        console().print(f"[bold]{resource}[/] → {report['contentType']}")
        _print_records(report["records"], limit)
    else:
        _print_event(report, limit)
    return 1 if rejected else 0


def _header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        raise typer.BadParameter(f"expected 'Name: value', found {text!r}", param_hint="--header")
    return name.strip(), value.strip()
