"""Values are converted without pydantic exactly as Typer's own (pydantic) conversion converts them."""

from __future__ import annotations

import subprocess
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import pytest
import typer
import typer.main
from typer._click import Context
from typer._click.exceptions import BadParameter
from typer._coercion import build_runtime_param
from typer.core import _TyperParameter

from miniapp_sync.cli.conversion import PlainConversion, convert_plainly


class Colour(StrEnum):
    red = "red"
    green = "green"


def _command(tmp_path: Path) -> Any:
    app = typer.Typer()

    @app.command()
    def run(
        name: Annotated[str, typer.Option()] = "n",
        count: Annotated[int, typer.Option()] = 3,
        bounded: Annotated[int, typer.Option(min=1, max=1000)] = 1,
        ratio: Annotated[float, typer.Option(min=0)] = 0,
        colour: Annotated[Colour, typer.Option()] = Colour.red,
        anywhere: Annotated[Path | None, typer.Option()] = None,
        folder: Annotated[Path | None, typer.Option(file_okay=False)] = None,
        existing: Annotated[list[Path] | None, typer.Option(exists=True)] = None,
        many: Annotated[list[str] | None, typer.Option()] = None,
        flag: Annotated[bool, typer.Option("--flag")] = False,
    ) -> None:
        pass

    return typer.main.get_command(app)


# Each parameter with plainly valid values, and values only Typer's conversion takes or refuses.
CASES: dict[str, list[Any]] = {
    "name": ["x", "", " spaced ", "ünï", "-5"],
    "count": ["0", "7", "-12", "+4", "007", 3, "1_000", " 5", "5 ", "1.0", "1.5", "1e3", "abc", "", "9" * 30],
    "bounded": ["1", "1000", "0", "1001", "-1", "500", 1],
    "ratio": ["0", "0.5", "-0.5", "3", "1e-3", "inf", "nan", "x", "", 0, 2, 2.5, ".5", "5."],
    "colour": ["red", "green", "RED", "blue", "", Colour.green],
    "anywhere": ["a/b", "", ".", "~", "/no/such/path"],
    "folder": ["FILE", "DIR", "/no/such/dir"],
    "existing": [["FILE"], ["FILE", "DIR"], ["/no/such/file"], "FILE", ()],
    "many": [["a", "b"], [], "one", ("x",)],
    "flag": [True, False, "true", "no", "maybe"],
}


def _outcome(runtime: Any, value: Any, param: Any, ctx: Any) -> tuple[str, Any]:
    try:
        converted = runtime.coerce(value, param=param, ctx=ctx)
    except BadParameter as exc:
        return "refused", exc.format_message()
    return "converted", (type(converted).__name__, converted)


@pytest.mark.parametrize("name", sorted(CASES))
def test_plain_conversion_converts_and_refuses_as_typer_does(tmp_path: Path, name: str) -> None:
    (tmp_path / "FILE").write_text("x")
    (tmp_path / "DIR").mkdir()
    command = _command(tmp_path)
    convert_plainly(command)
    param = next(p for p in command.params if p.name == name)
    assert isinstance(param, _TyperParameter)
    plain = param.get_runtime_param()
    assert isinstance(plain, PlainConversion)
    typers = build_runtime_param(param.type_descriptor)
    ctx = Context(command)
    for raw in CASES[name]:
        value = [str(tmp_path / v) if v in ("FILE", "DIR") else v for v in raw] if isinstance(raw, list) else raw
        value = str(tmp_path / value) if value in ("FILE", "DIR") else value
        assert _outcome(plain, value, param, ctx) == _outcome(typers, value, param, ctx), value


def test_a_sync_command_line_is_converted_without_pydantic(tmp_path: Path) -> None:
    # The options of a sync, every kind given; the command is built and its values parsed, but not run.
    script = (
        "import sys\n"
        "from miniapp_sync.cli import app\n"
        "from miniapp_sync.cli.tree import command_for\n"
        "command = command_for(app, sys.argv[1:], 'miniapp-sync', {})\n"
        "with command.make_context('miniapp-sync', ['--log-level', 'info', 'sync']) as ctx:\n"
        "    sub = command.get_command(ctx, 'sync')\n"
        "    sub.make_context('sync', sys.argv[2:], parent=ctx)\n"
        "print('\\n'.join(sys.modules))\n"
    )
    definition = tmp_path / "d.json"
    definition.write_text("{}")
    args = ["sync", str(definition), "--tenant", "t", "--resource", "a", "--resource", "b", "--format", "json"]
    args += ["--max-in-flight", "8", "--max-retry-after", "2.5", "--store", "s.db", "--full"]
    done = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    loaded = set(done.stdout.splitlines())
    assert "typer" in loaded
    assert not loaded & {"pydantic", "typer._adapters"}
