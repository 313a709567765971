"""The Typer application and the options every command shares.

Start-up: ``--help`` and every command import this package, so command modules import at their
top only Typer and what their signatures name; the library (SQLAlchemy, aiohttp, pydantic, Rich
tables, …) is imported inside the command that uses it. ``tests/cli/test_imports.py`` guards it.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from miniapp_sync.settings import CONFIG_FILE_VARIABLE, FILE_NAME, Settings, load_settings
from miniapp_sync.settings import pairs as parse_pairs

if TYPE_CHECKING:
    from rich.console import Console

    from miniapp_sync.mapping.functions import FunctionRegistry
    from miniapp_sync.runtime import MiniApp, Runtime
    from miniapp_sync.views import Page, Window

app = typer.Typer(
    name="miniapp-sync",
    help="Run the MiniApps sync block, and check definitions before submission.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion
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


@dataclass
class Session:
    """What ``main`` hands every command: the environment (a seam for tests) and, once read, the settings."""

    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)
    config_file: Path | None = None
    help: bool = False  # the command line asks for --help: read no settings, set up nothing
    _settings: Settings | None = None
    _consoles: dict[bool, Console] = field(default_factory=dict)  # by stderr: one each per command

    def settings(self) -> Settings:
        """Return the settings of the file and the environment, read on first use (so --help never reads them)."""
        if self._settings is None:
            self._settings = load_settings(self.environ, config_file=self.config_file)
        return self._settings


# Set by the root callback, which runs before every command (Typer keeps its click context private).
_current: ContextVar[Session | None] = ContextVar("miniapp_sync_cli_session", default=None)


def session() -> Session:
    """Return the session of the command being run."""
    found = _current.get()
    if found is None:  # a command function called outside the app: the process environment
        found = Session()
        _current.set(found)
    return found


def settings() -> Settings:
    """Return the operator settings (file and environment; each command adds its flags)."""
    return session().settings()


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version  # ~15 ms of imports (email parsing): only for --version

        typer.echo(f"miniapp-sync {version('miniapp-sync')}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of internal errors.")] = False,
    config_file: Annotated[
        Path | None,
        typer.Option(
            "--config-file",
            help=f"Operator settings (TOML). Default: ./{FILE_NAME} when it exists; also {CONFIG_FILE_VARIABLE}.",
            dir_okay=False,
        ),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", help="Show the version and exit.", callback=_version, is_eager=True)
    ] = False,
    log_format: Annotated[
        str | None,
        typer.Option("--log-format", help="Logs on stderr: console (default) or json; also MINIAPP_SYNC_LOG_FORMAT."),
    ] = None,
    log_level: Annotated[
        str | None,
        typer.Option("--log-level", help="debug, info (default), warning or error; also MINIAPP_SYNC_LOG_LEVEL."),
    ] = None,
) -> None:
    """Run the MiniApps sync block, and check definitions before submission."""
    if not isinstance(ctx.obj, Session):
        ctx.obj = Session()  # run without main() (e.g. Typer's test runner): the process environment
    ctx.obj.config_file = config_file
    _current.set(ctx.obj)
    if ctx.obj.help:
        return
    # Logging is set once, here, for every command (structlog loads with the first line logged).
    from miniapp_sync import logs

    chosen = ctx.obj.settings().with_flags(log_format=log_format, log_level=log_level, environ=ctx.obj.environ)
    logs.configure(chosen.log_format, chosen.log_level)


def warn(message: str) -> None:
    """Print a warning on stderr (never on stdout, which may be JSON)."""
    console(stderr=True).print(f"[yellow]Warning:[/] {message}")


def console(*, stderr: bool = False) -> Console:
    """Return the command's console for results (stdout), or for errors and warnings (stderr, soft-wrapped)."""
    consoles = session()._consoles
    if stderr not in consoles:
        from rich.console import Console

        consoles[stderr] = Console(stderr=stderr, highlight=False, soft_wrap=stderr)
    return consoles[stderr]


def _jsonable(value: Any) -> Any:
    as_dict = getattr(value, "as_dict", None)  # findings, problems: they say how they look in JSON
    return as_dict() if callable(as_dict) else str(value)


def print_json(data: object) -> None:
    """Print data as indented JSON on stdout."""
    import orjson

    option = orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS
    try:
        text = orjson.dumps(data, option=option, default=_jsonable).decode()
    except orjson.JSONEncodeError:  # an integer past 64 bits (an id, D26): the standard library writes it exactly
        text = json.dumps(data, indent=2, ensure_ascii=False, default=_jsonable)
    typer.echo(text)


def print_view(view: object) -> None:
    """Print a view model (or a page of them) as JSON on stdout, in the shape the API answers (D37)."""
    from miniapp_sync.views import to_json

    print_json(to_json(view))


def print_error(code: int, type: str, message: str, *, hint: str | None = None, field: str | None = None) -> int:
    """Print ``{"error": {"type", "message", "hint", "field"}}`` on stderr (D37) and return the exit code."""
    import orjson

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
    from miniapp_sync.mapping.functions import FunctionRegistry

    functions = FunctionRegistry.default()
    for module in modules or ():
        functions.load_module(module)
    return functions


# ----------------------------------------------------------------- options shared by commands

StoreOption = Annotated[
    str | None,
    typer.Option("--store", help="Store URL: a SQLite path (default) or postgresql://… (also MINIAPP_SYNC_STORE)."),
]
RewriteOption = Annotated[
    list[str] | None,
    typer.Option("--rewrite", help="Send requests for an origin elsewhere: FROM=TO (e.g. a sandbox)."),
]
PrivateOption = Annotated[
    bool, typer.Option("--allow-private-network", help="Allow tenant-supplied URLs on private addresses.")
]
ConfigOption = Annotated[
    list[str] | None,
    typer.Option(
        "--config", help="An operator-held auth.config value (client_secret, webhookSecret): key=value or key=env:VAR."
    ),
]
TenantOption = Annotated[str, typer.Option("--tenant", "-t", help="The tenant (workspace) id.")]
DEFAULT_PUBLIC_URL = "http://127.0.0.1:8000"
PublicUrlOption = Annotated[
    str | None,
    typer.Option(
        "--public-url",
        help="The URL providers and browsers reach the server at: {{webhookUrl}} and the OAuth redirect_uri"
        " (also MINIAPP_SYNC_PUBLIC_URL, or public_url in the settings file).",
    ),
]
MaxRetryAfterOption = Annotated[
    float | None,
    typer.Option(
        "--max-retry-after",
        min=0,
        help="The longest Retry-After (seconds) a provider call waits, 300 unless set (also "
        "MINIAPP_SYNC_MAX_RETRY_AFTER); a longer one fails the attempt.",
        show_default=False,
    ),
]


@contextlib.contextmanager
def starting() -> Iterator[None]:
    """Pause the cyclic garbage collector while a command loads what it runs on; then freeze what it loaded.

    What start-up makes (modules, classes, the definition's model, the store's tables) lives as
    long as the process: the collections its allocations set off (~190 during a sync's start-up,
    one of them full) walk it and free nothing, ~50 ms CPU, a tenth of that start-up. Frozen
    (``gc.freeze``) when the block ends, it is left out of every later collection too; the
    collector runs as usual from there on, for however long the command works. The price: the
    few cycles start-up dropped (~1,400 objects for a sync) wait for the command to end
    (``main`` unfreezes what its command froze).
    """
    if not gc.isenabled():  # nested, or paused by the embedding program: leave it as it is
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()


def open_runtime(
    store: str | None,
    rewrite: list[str] | None = None,
    private: bool = False,
    public_url: str | None = None,
    *,
    config: list[str] | None = None,
    miniapps: Iterable[MiniApp] = (),
    create: bool = False,
    max_retry_after: float | None = None,
) -> Runtime:
    """Open the runtime for one command: the settings with its flags on top, its MiniApps added and configured.

    Only commands that make a store (install, serve, worker) pass ``create``; the others fail
    with a hint when there is none, instead of leaving an empty store and a key file behind.
    """
    given = settings().with_flags(
        store=store,
        rewrite=rewrite,
        config=config,
        public_url=public_url,
        max_retry_after=max_retry_after,
        environ=session().environ,
    )
    from miniapp_sync.runtime import Runtime

    runtime = Runtime.open(
        given.store,
        rewrites=given.rewrite_rules(),
        allow_private_network=private,
        public_url=given.public_url or DEFAULT_PUBLIC_URL,
        environ=given.vault_environ(),
        create=create,
        max_retry_after=given.max_retry_after,
        history_days=given.history_days,
    )
    for miniapp in miniapps:
        runtime.add(miniapp)
        runtime.installations.configure(miniapp.ns, given.config_for(miniapp.ns))
    return runtime


def pairs(values: list[str] | None, option: str) -> dict[str, Any]:
    """Parse key=value options; ``key=env:NAME`` reads the environment so secrets stay off the command line."""
    return dict(parse_pairs(values, option, session().environ))


# Commands register themselves on ``app`` when their modules are imported.
from miniapp_sync.cli import (  # noqa: E402, F401
    definitions,
    deliveries,
    mapping,
    operations,
    records,
    runs,
    scaling,
    serving,
    submission,
    webhooks,
)
