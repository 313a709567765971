"""The click command tree for one command line: the invoked command in full, and no other.

Typer builds a click command from every registered function's signature (``inspect.signature``
and ``get_type_hints`` over each ``Annotated`` option) before it parses anything: about a third of
``--help``'s and ``validate``'s CPU time for forty commands, of which a command line runs one.
So a line that names a command gets the root with that command alone, built from its function;
a line that names none, or an unknown one, gets every command as a stand-in (name, help,
hidden: all the root's help and "No such command" need). Shell completion needs every
command's options, so it gets the whole tree.
"""

from __future__ import annotations

import copy
import inspect
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import typer
import typer.core
import typer.main
from typer.models import CommandInfo, TyperInfo

from miniapp_sync.cli.conversion import convert_plainly

if TYPE_CHECKING:
    from typer._click import Command  # Typer's own copy of click


def command_for(
    app: typer.Typer, args: Sequence[str], prog_name: str, environ: Mapping[str, str] = os.environ
) -> Command:
    """Return ``app``'s click command for ``args``, building in full only the command they invoke.

    Its values are converted without pydantic where they plainly can be (``conversion.py``).
    """
    command = _built_for(app, args, prog_name, environ)
    convert_plainly(command)
    return command


def _built_for(app: typer.Typer, args: Sequence[str], prog_name: str, environ: Mapping[str, str]) -> Command:
    if f"_{prog_name.replace('-', '_').upper()}_COMPLETE" in environ:
        return typer.main.get_command(app)
    # The root's own options first: they say where the command's name is on the line.
    group = typer.main.get_command(_stand_ins(app, commands=False))
    assert isinstance(group, typer.core.TyperGroup)  # the app has a callback: its command is a group
    name = _invoked(group, args)
    if name is None or name not in _names(app):  # the root's help, or its usage error: stand-ins say all of it
        return typer.main.get_command(_stand_ins(app))
    # A command that runs needs no sibling: building their stand-ins (a signature read each) was
    # ~5 ms of every command's start-up.
    for info in app.registered_commands:
        if _command_name(info) == name:
            group.commands[name] = typer.main.get_command_from_info(
                info, pretty_exceptions_short=app.pretty_exceptions_short, rich_markup_mode=app.rich_markup_mode
            )
    for group_info in app.registered_groups:
        if typer.main.solve_typer_info_defaults(group_info).name == name:
            group.commands[name] = typer.main.get_group_from_info(
                group_info,
                pretty_exceptions_short=app.pretty_exceptions_short,
                rich_markup_mode=app.rich_markup_mode,
                suggest_commands=app.suggest_commands,
            )
    return group


def _stand_ins(app: typer.Typer, *, commands: bool = True) -> typer.Typer:
    """Return a copy of ``app`` whose commands and groups keep their names and help but take no options.

    ``commands=False``: a copy with none of them (the root's options and help alone).
    """
    lean = copy.copy(app)
    lean.registered_commands = [_stand_in_command(info) for info in app.registered_commands] if commands else []
    lean.registered_groups = [_stand_in_group(info) for info in app.registered_groups] if commands else []
    return lean


def _names(app: typer.Typer) -> set[str]:
    """Return the names of ``app``'s commands and groups, as a command line names them."""
    groups = (typer.main.solve_typer_info_defaults(info).name for info in app.registered_groups)
    return {_command_name(info) for info in app.registered_commands} | {name for name in groups if name}


def _stand_in_command(info: CommandInfo) -> CommandInfo:
    assert info.callback is not None
    stand_in = copy.copy(info)
    stand_in.name = _command_name(info)
    stand_in.help = inspect.getdoc(info.callback) if info.help is None else info.help
    stand_in.callback = _never_invoked
    return stand_in


def _stand_in_group(info: TyperInfo) -> TyperInfo:
    assert isinstance(info.typer_instance, typer.Typer)
    sub = copy.copy(info.typer_instance)
    sub.registered_commands, sub.registered_groups = [], []
    stand_in = copy.copy(info)
    stand_in.typer_instance = sub
    return stand_in


def _never_invoked() -> None:
    # _invoked reads the line as click does, so the command it names is the one click runs.
    raise RuntimeError("a stand-in command was invoked: the command line was read differently from click")


def _command_name(info: CommandInfo) -> str:
    assert info.callback is not None
    return info.name or typer.main.get_command_name(info.callback.__name__)


def _invoked(group: Command, args: Sequence[str]) -> str | None:
    """Return the command ``args`` name after the group's own options (a group parses options first), if any."""
    takes_value = {
        opt
        for param in group.params
        if param.param_type_name == "option" and not getattr(param, "is_flag", False)
        for opt in param.opts
    }
    items = iter(args)
    for arg in items:
        if arg == "--":
            return next(items, None)
        if not arg.startswith("-"):
            return arg
        if arg in takes_value:
            next(items, None)
    return None
