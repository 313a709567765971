"""The Typer application and the options every command shares."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console

from miniapp_sync.mapping.functions import FunctionRegistry

app = typer.Typer(
    name="miniapp-sync",
    help="Run the MiniApps sync block, and check definitions before submission.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


class OutputFormat(StrEnum):
    """How a command prints its result."""

    text = "text"
    json = "json"


FormatOption = Annotated[OutputFormat, typer.Option("--format", help="text for people, json for machines.")]
FunctionsOption = Annotated[
    list[Path] | None,
    typer.Option("--functions", help="A Python module whose public functions become compute functions.", exists=True),
]
DefinitionArgument = Annotated[
    Path,
    typer.Argument(
        metavar="DEFINITION", help="The MiniApp definition (.json, .json5, .js, .ts, .yaml).", show_default=False
    ),
]


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of internal errors.")] = False,
) -> None:
    """Run the MiniApps sync block, and check definitions before submission."""


def console() -> Console:
    """Return the console for results (stdout)."""
    return Console(highlight=False, soft_wrap=False)


def _jsonable(value: Any) -> Any:
    as_dict = getattr(value, "as_dict", None)  # findings, problems: they say how they look in JSON
    return as_dict() if callable(as_dict) else str(value)


def print_json(data: object) -> None:
    """Print data as indented JSON on stdout."""
    option = orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS
    typer.echo(orjson.dumps(data, option=option, default=_jsonable).decode())


def registry(modules: list[Path] | None) -> FunctionRegistry:
    """Return the built-in and entry-point compute functions plus those of ``--functions`` modules."""
    functions = FunctionRegistry.default()
    for module in modules or ():
        functions.load_module(module)
    return functions


# Commands register themselves on ``app`` when their modules are imported.
from miniapp_sync.cli import definitions, mapping, operations, scaling, serving, submission, webhooks  # noqa: E402, F401
