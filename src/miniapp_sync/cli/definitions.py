"""``validate`` and ``schema``: what a definition holds and what is wrong with it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

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
from miniapp_sync.definition.compatibility import Profile

if TYPE_CHECKING:
    from miniapp_sync.definition import LoadedDefinition
    from miniapp_sync.errors import Finding

SEVERITY_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}
ProfileOption = Annotated[
    Profile,
    typer.Option(
        "--profile",
        help="karzoun: also report every feature beyond the documented vocabulary (the hosted runtime may not run it).",
    ),
]


def _summary(loaded: LoadedDefinition) -> dict[str, Any]:
    definition = loaded.definition
    sync = definition.sync if definition else None
    triggers = definition.trigger_events() if definition else set()
    return {
        "ns": definition.ns if definition else None,
        "version": definition.version if definition else None,
        "resources": {
            key: {
                "contentType": r.content_type,
                "enabled": r.enabled,
                "list": r.endpoints.list.url,
                "details": r.endpoints.details.url if r.expand_details and r.endpoints.details else None,
                "fields": sorted(r.api_mapping),
            }
            for key, r in (sync.resources.items() if sync else ())
        },
        "handlers": {
            event: {
                "shape": "resource" if h.resource else "mapping",
                "operation": h.operation,
                "target": h.resource or h.record_type,
                "trigger": event in triggers,
            }
            for event, h in (sync.webhooks.handlers.items() if sync else ())
        },
        "triggers": sorted(triggers),
    }


def _print_findings(findings: tuple[Finding, ...]) -> None:
    out = console()
    for severity in ("error", "warning", "info"):
        group = [f for f in findings if f.severity == severity]
        if not group:
            continue
        out.print(f"\n[{SEVERITY_STYLE[severity]}]{severity.capitalize()}s ({len(group)})[/]")
        for finding in group:
            out.print(f"  [{SEVERITY_STYLE[severity]}]•[/] ", end="")
            out.print(finding.render(), markup=False)


def _print_summary(loaded: LoadedDefinition, summary: dict[str, Any]) -> None:
    from rich.table import Table
    from rich.text import Text

    out = console()
    title = f"{summary['ns'] or '(no ns)'} {summary['version'] or ''}".strip()
    out.print(Text.assemble((title, "bold"), f" — {loaded.source.filename}"))
    if summary["resources"]:
        table = Table(title="Resources", title_justify="left")
        for column in ("resource", "content type", "list", "details", "fields"):
            table.add_column(column)
        for key, r in summary["resources"].items():
            name = key if r["enabled"] else f"{key} (disabled)"
            cells = (name, r["contentType"], r["list"], r["details"] or "—", str(len(r["fields"])))
            table.add_row(*map(Text, cells))  # Text: a url with [[storeId]] is no Rich markup
        out.print(table)
    if summary["handlers"]:
        table = Table(title="Webhook handlers", title_justify="left")
        for column in ("event", "shape", "operation", "target", "trigger"):
            table.add_column(column)
        for event, h in summary["handlers"].items():
            cells = (event, h["shape"], h["operation"], str(h["target"]), "✓" if h["trigger"] else "✗ missing")
            table.add_row(*map(Text, cells))
        out.print(table)
    out.print(f"Triggers: {', '.join(summary['triggers']) or '—'}", markup=False)


@app.command()
def validate(
    definition: DefinitionArgument,
    output: FormatOption = OutputFormat.text,
    functions: FunctionsOption = None,
    profile: ProfileOption = Profile.default,
) -> int:
    """Validate a definition: all problems at once, each with its path (exit 2 when invalid)."""
    from miniapp_sync.definition import inspect_definition
    from miniapp_sync.mapping.plan import vocabulary

    loaded = inspect_definition(definition, vocabulary=vocabulary(registry(functions)), profile=profile)
    summary = _summary(loaded)
    counts = {s: sum(f.severity == s for f in loaded.findings) for s in ("error", "warning", "info")}
    if output is OutputFormat.json:
        print_json(
            {
                "file": loaded.source.filename,
                "profile": profile.value,
                "valid": loaded.valid,
                "counts": counts,
                "summary": summary,
                "findings": list(loaded.findings),
            }
        )
    else:
        _print_summary(loaded, summary)
        _print_findings(loaded.findings)
        verdict = "[bold green]valid[/]" if loaded.valid else "[bold red]invalid[/]"
        console().print(f"\n{verdict}: {counts['error']} errors, {counts['warning']} warnings, {counts['info']} notes")
    return 0 if loaded.valid else 2


@app.command()
def schema() -> None:
    """Print the JSON Schema of a MiniApp definition (for editor completion)."""
    from miniapp_sync.definition import Definition

    document = Definition.model_json_schema(by_alias=True, mode="validation")
    document["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    document["title"] = "MiniApp definition"
    print_json(document)
