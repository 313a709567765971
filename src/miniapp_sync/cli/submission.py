"""``check`` (the submission checklist against a sandbox store) and ``package`` (the submission)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from miniapp_sync.cli.app import (
    ConfigOption,
    DefinitionArgument,
    FormatOption,
    FunctionsOption,
    OutputFormat,
    PrivateOption,
    RewriteOption,
    app,
    console,
    pairs,
    print_error,
    print_json,
    print_view,
    registry,
    session,
    settings,
)
from miniapp_sync.cli.credentials import (
    CredentialOption,
    CredentialsFileOption,
    DeprecatedCredentialsOption,
    gather_credentials,
)

if TYPE_CHECKING:
    from miniapp_sync.definition import LoadedDefinition
    from miniapp_sync.submission.checks import Report

SamplesOption = Annotated[
    Path | None,
    typer.Option(
        "--samples",
        help="A folder of <event>.json webhook samples (in the name, any character but letters, digits, "
        "'.', '_' and '-' is '_'); only regular files inside it are read.",
        file_okay=False,
    ),
]
MetadataOption = Annotated[list[str] | None, typer.Option("--metadata", help="A metadata key=value (e.g. storeId=…).")]
STYLE = {"pass": "[green]pass[/]", "warn": "[yellow]warn[/]", "fail": "[bold red]fail[/]"}


def _check(
    definition: Path,
    credentials: dict[str, Any],
    samples: Path | None,
    metadata: list[str] | None,
    config: list[str] | None,
    rewrite: list[str] | None,
    functions: list[Path] | None,
    allow_private_network: bool,
) -> tuple[Report, LoadedDefinition]:
    import asyncio

    from miniapp_sync.definition import inspect_definition
    from miniapp_sync.errors import DefinitionInvalid
    from miniapp_sync.mapping.plan import compile_plan, vocabulary
    from miniapp_sync.submission.checks import SandboxAccess, run_checklist

    compute = registry(functions)
    loaded = inspect_definition(definition, vocabulary=vocabulary(compute))
    if not loaded.valid or loaded.definition is None:
        raise DefinitionInvalid(loaded.findings, filename=loaded.source.filename)
    given = settings().with_flags(rewrite=rewrite, config=config, environ=session().environ)
    access = SandboxAccess(
        credentials=credentials,
        metadata=pairs(metadata, "--metadata"),
        config=given.config_for(loaded.definition.ns or ""),
        rewrites=given.rewrite_rules(),
        allow_private_network=allow_private_network,
    )
    plan = compile_plan(loaded.definition, compute)
    return asyncio.run(run_checklist(loaded, plan, access, samples)), loaded


def _show(report: Report) -> None:
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"Submission checklist — {report.ns} {report.version}", title_justify="left", show_lines=True)
    table.add_column("item")
    table.add_column("result")
    table.add_column("evidence", overflow="fold")
    for item in report.items:
        table.add_row(item.name, STYLE[item.status], Text("\n".join(item.evidence)))  # evidence quotes [[keys]]
    console().print(table)


@app.command()
def check(
    definition: DefinitionArgument,
    credential: CredentialOption = None,
    credentials_file: CredentialsFileOption = None,
    credentials: DeprecatedCredentialsOption = None,
    samples: SamplesOption = None,
    metadata: MetadataOption = None,
    config: ConfigOption = None,
    rewrite: RewriteOption = None,
    allow_private_network: PrivateOption = False,
    report_path: Annotated[Path | None, typer.Option("--report", help="Also write the report as Markdown.")] = None,
    output: FormatOption = OutputFormat.text,
    functions: FunctionsOption = None,
) -> int:
    """Run the Sync guide's submission checklist against a sandbox store (exit 1 when an item fails)."""
    bag = gather_credentials(credential, credentials_file, credentials, required=True)
    report, _ = _check(definition, bag, samples, metadata, config, rewrite, functions, allow_private_network)
    if report_path is not None:
        report_path.write_text(report.markdown(), encoding="utf-8")
    if output is OutputFormat.json:
        print_json(report.as_dict())
    else:
        _show(report)
    return 0 if report.passed else 1


@app.command()
def package(
    definition: DefinitionArgument,
    out: Annotated[Path, typer.Option("--out", help="The folder to write the package into.", file_okay=False)],
    credential: CredentialOption = None,
    credentials_file: CredentialsFileOption = None,
    credentials: DeprecatedCredentialsOption = None,
    samples: SamplesOption = None,
    metadata: MetadataOption = None,
    config: ConfigOption = None,
    rewrite: RewriteOption = None,
    allow_private_network: PrivateOption = False,
    force: Annotated[bool, typer.Option(help="Package even when the checklist fails.")] = False,
    functions: FunctionsOption = None,
    output: FormatOption = OutputFormat.text,
) -> int:
    """Build the submission package; refuse when the checklist fails unless --force."""
    bag = gather_credentials(credential, credentials_file, credentials, required=True)
    report, loaded = _check(definition, bag, samples, metadata, config, rewrite, functions, allow_private_network)
    if output is OutputFormat.text:
        _show(report)
    if not report.passed and not force:
        message, hint = "not packaged: the checklist fails", "fix it, or --force to package anyway"
        if output is OutputFormat.json:
            return print_error(1, "checklist_failed", message, hint=hint)
        console().print(f"[bold red]Not packaged:[/] the checklist fails ({hint}).")
        return 1
    assert loaded.definition is not None  # _check raised otherwise
    from miniapp_sync.submission.package import write_package
    from miniapp_sync.views import PackageView

    files = write_package(loaded.definition, loaded.document, report, samples, out, functions=registry(functions))
    if output is OutputFormat.json:
        print_view(PackageView(str(out), [str(f) for f in files], report.passed))
    else:
        console().print(f"packaged {len(files)} files into {out}")
    return 0
