"""The Typer application and the options every command shares."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer
from rich.console import Console

from miniapp_sync.mapping.functions import FunctionRegistry

if TYPE_CHECKING:
    from miniapp_sync.views import Page, Window

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


def print_view(view: object) -> None:
    """Print a view model (or a page of them) as JSON on stdout, in the shape the API answers (D37)."""
    from miniapp_sync.views import to_json

    print_json(to_json(view))


def print_error(code: int, type: str, message: str, *, hint: str | None = None, field: str | None = None) -> int:
    """Print ``{"error": {"type", "message", "hint", "field"}}`` on stderr (D37) and return the exit code."""
    error = {"error": {"type": type, "message": message, "hint": hint, "field": field}}
    typer.echo(orjson.dumps(error).decode(), err=True)
    return code


LimitOption = Annotated[int, typer.Option("--limit", help="How many to show (1 to 1000).")]
CursorOption = Annotated[
    str | None, typer.Option("--cursor", help="Continue a list: pass the `next` printed by the previous page.")
]


def window(limit: int, cursor: str | None) -> Window:
    """Return the page a list command reads; a bad --limit or --cursor is a usage error."""
    from miniapp_sync.views import ParameterError, Window

    try:
        return Window.of(limit, cursor)
    except ParameterError as exc:
        raise typer.BadParameter(exc.message, param_hint=f"--{exc.field}") from None


def show_next(page: Page[Any]) -> None:
    """Tell a person how to read on, when a list has more."""
    if page.next is not None:
        console().print(f"more: --cursor {page.next}")


def registry(modules: list[Path] | None) -> FunctionRegistry:
    """Return the built-in and entry-point compute functions plus those of ``--functions`` modules."""
    functions = FunctionRegistry.default()
    for module in modules or ():
        functions.load_module(module)
    return functions


# Commands register themselves on ``app`` when their modules are imported.
from miniapp_sync.cli import definitions, mapping, operations, scaling, serving, submission, webhooks  # noqa: E402, F401
