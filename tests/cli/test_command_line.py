"""The command line itself: --version, shell completion, and credential options named alike everywhere."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

import pytest
import typer

from miniapp_sync.cli import app, main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = str(ROOT / "examples" / "salla" / "definition.json5")


def test_version_prints_the_installed_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"miniapp-sync {version('miniapp-sync')}"


def test_shell_completion_can_be_shown_for_bash(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--show-completion", "bash"]) == 0
    script = capsys.readouterr().out
    assert "_MINIAPP_SYNC_COMPLETE" in script
    assert "complete " in script


@pytest.mark.parametrize("command", ["install", "check", "package"])
def test_credential_options_are_named_the_same_on_every_command_that_takes_credentials(command: str) -> None:
    click_command = typer.main.get_command(app).commands[command]  # type: ignore[attr-defined]
    names = {opt for param in click_command.params for opt in param.opts if not getattr(param, "hidden", False)}
    assert {"--credential", "--credentials-file"} <= names
    assert "--credentials" not in names  # the old name of check and package is a hidden alias now


def test_check_without_credentials_is_bad_usage_naming_both_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", EXAMPLE]) == 2
    err = capsys.readouterr().err
    assert "--credential key=value" in err
    assert "--credentials-file PATH" in err
