"""The ``miniapp-sync`` command: thin wiring over the library; maps errors to exit codes.

Exit codes: 0 success, 1 a runtime failure, 2 bad usage or an invalid definition.
Tracebacks are shown only with ``--debug``.
"""

from __future__ import annotations

import atexit
import gc
import itertools
import os
import sys
import threading
from collections.abc import Mapping, Sequence
from typing import NoReturn

import typer

from miniapp_sync.cli.app import Session, app, console, print_error
from miniapp_sync.cli.tree import command_for
from miniapp_sync.errors import DefinitionError, MiniAppSyncError, UsageError

__all__ = ["app", "main"]

PROG_NAME = "miniapp-sync"


def main(argv: Sequence[str] | None = None, *, environ: Mapping[str, str] | None = None) -> int:
    """Run the CLI and return its exit code (never raise on user input); ``environ`` defaults to the process's."""
    frozen = gc.get_freeze_count()
    try:
        return _main(argv, environ)
    finally:
        # A command may freeze what it loaded (cli.app.starting); run in a longer-lived program
        # (tests, an embedding one), the collector gets it back when the command is done.
        if not frozen and gc.get_freeze_count():
            gc.unfreeze()


def _main(argv: Sequence[str] | None, environ: Mapping[str, str] | None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    # --debug is accepted anywhere on the line, not only before the command.
    debug = "--debug" in args
    if debug:
        args = ["--debug", *(a for a in args if a != "--debug")]
    args = _hoisted(args, ("--log-format", "--log-level"))
    as_json = _json_wanted(args)
    try:
        session = Session() if environ is None else Session(environ)
        session.help = "--help" in args
        command = command_for(app, args, PROG_NAME, session.environ)
        result = command.main(args=args, prog_name=PROG_NAME, standalone_mode=False, obj=session)
    except typer.Exit as exc:
        return int(exc.exit_code)
    except SystemExit as exc:  # Typer's --show-completion / --install-completion and completion requests exit
        return exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
    except typer.Abort:
        if as_json:
            return print_error(1, "aborted", "aborted")
        console(stderr=True).print("Aborted.")
        return 1
    except typer.TyperException as exc:  # usage errors: bad option, missing argument, bad parameter
        code = int(getattr(exc, "exit_code", 2))
        if as_json:
            hint = getattr(exc, "param_hint", None)
            field = hint if isinstance(hint, str) else None
            message = exc.format_message()
            return print_error(code, "usage", message, field=field, hint="see --help")
        exc.show(file=sys.stderr)  # type: ignore[attr-defined]
        return code
    except MiniAppSyncError as exc:
        from rich.text import Text  # Rich loads only when there is something to say

        err = console(stderr=True)
        if debug:
            err.print_exception()
        code = 2 if isinstance(exc, DefinitionError | UsageError) else 1
        if as_json:
            return print_error(code, type(exc).__name__, str(exc), hint=getattr(exc, "hint", None))
        # Text, not markup: a message quoting [[storeId]] must show it, not a Rich tag.
        err.print(Text.assemble(("Error:", "bold red"), " ", str(exc)))
        return code
    except Exception as exc:  # a bug, not bad input: say so plainly, trace only on request
        from rich.text import Text

        err = console(stderr=True)
        if debug:
            err.print_exception()
        hint = "run again with --debug for the traceback, and report it"
        if as_json:
            return print_error(1, "internal", f"internal error: {type(exc).__name__}: {exc}", hint=hint)
        err.print(Text.assemble(("Error:", "bold red"), f" internal error: {type(exc).__name__}: {exc}"))
        if not debug:
            err.print(hint[0].upper() + hint[1:] + ".")
        return 1
    return int(result) if isinstance(result, int) else 0


def _hoisted(args: list[str], options: tuple[str, ...]) -> list[str]:
    """Move ``--option value`` (or ``--option=value``) of the root's ``options`` to the front, wherever given."""
    front: list[str] = []
    rest: list[str] = []
    items = iter(args)
    for arg in items:
        if arg in options:
            front += [arg, next(items, "")]
        elif arg.partition("=")[0] in options:
            front.append(arg)
        else:
            rest.append(arg)
    return [*front, *rest]


def _json_wanted(args: list[str]) -> bool:
    """Return whether the command line asks for ``--format json`` (errors then come as JSON too, D37)."""
    return "--format=json" in args or any(a == "--format" and b == "json" for a, b in itertools.pairwise(args))


def run() -> None:
    """Console-script entry point (and ``python -m miniapp_sync``)."""
    code = main()
    # The process ends here, its work done and its store closed. The interpreter's exit would
    # still walk every object start-up made (modules, classes, the definition model) in full
    # garbage collections: ~0.45 s CPU after a sync, a sixth of the process. Frozen, they are
    # skipped.
    gc.freeze()
    _exit(code)


def _exit(code: int) -> NoReturn:
    """End the process with ``code`` as the interpreter would, without tearing its modules down.

    After the collections (``run``), the interpreter's exit still frees every module, class and
    function one by one: ~30 ms wall (~10 ms CPU) after a sync, for a process about to vanish.
    What an exit must do is done here: the ``atexit`` handlers run (logging's flush and close
    among them), then stdout and stderr are flushed. Files are written in ``with`` blocks and
    the store's commits are durable when ``main`` returns (its connections closed, its committer
    joined), so nothing is left for a destructor to finish. Only when no other thread is alive:
    the interpreter would wait for one that is not a daemon, so then it exits as usual; nor under
    ``python -i`` (its prompt follows the command); and if a flush fails (a closed pipe), the
    interpreter reports it as usual too.
    """
    if threading.active_count() > 1 or sys.flags.inspect:
        raise SystemExit(code)
    atexit._run_exitfuncs()
    try:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
    except (OSError, ValueError):
        raise SystemExit(code) from None
    os._exit(code)
