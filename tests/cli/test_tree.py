"""The command tree of one command line: the invoked command is built in full, the others are stand-ins."""

from __future__ import annotations

import pytest
import typer.main
from typer._click import Command, Context
from typer.core import TyperGroup as Group

from miniapp_sync.cli import PROG_NAME, app
from miniapp_sync.cli.tree import command_for


def _help(command: Command, path: list[str]) -> str:
    """Return the help text of the command at ``path`` under the root ``command``, as --help prints it."""
    ctx = Context(command, info_name=PROG_NAME)
    for name in path:
        assert isinstance(command, Group)
        command = command.commands[name]
        ctx = Context(command, info_name=name, parent=ctx)
    return command.get_help(ctx)


@pytest.mark.parametrize("path", [[], ["sync"], ["records"], ["deadletters", "list"], ["db", "upgrade"]])
def test_help_of_the_invoked_command_is_the_full_trees(path: list[str]) -> None:
    full = typer.main.get_command(app)
    lean = command_for(app, [*path, "--help"], PROG_NAME, environ={})
    assert _help(lean, path) == _help(full, path)


def test_only_the_invoked_command_is_built_from_its_signature() -> None:
    lean = command_for(app, ["--log-level", "debug", "validate", "definition.json5"], PROG_NAME, environ={})
    assert isinstance(lean, Group)
    assert [p.name for p in lean.commands["validate"].params] == ["definition", "output", "functions", "profile"]
    assert list(lean.commands) == ["validate"]  # no sibling is built, not even as a stand-in
    assert [p.name for p in lean.params] == [p.name for p in typer.main.get_command(app).params]


@pytest.mark.parametrize("args", [[], ["--debug"], ["synk", "definition.json5"]])
def test_a_line_naming_no_known_command_gets_every_command_as_a_stand_in(args: list[str]) -> None:
    lean = command_for(app, args, PROG_NAME, environ={})
    full = typer.main.get_command(app)
    assert isinstance(lean, Group)
    assert isinstance(full, Group)
    assert list(lean.commands) == list(full.commands)  # "No such command" and its suggestion see them all
    assert lean.commands["sync"].params == []  # a stand-in: its name and help only
    assert _help(lean, []) == _help(full, [])


def test_shell_completion_gets_every_commands_options() -> None:
    tree = command_for(app, ["validate"], PROG_NAME, environ={"_MINIAPP_SYNC_COMPLETE": "bash_complete"})
    assert isinstance(tree, Group)
    assert tree.commands["sync"].params
