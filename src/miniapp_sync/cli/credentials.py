"""The credential options, named the same on every command that takes credentials (install, check, package).

``--credential key=value`` (repeatable; ``key=env:VAR`` reads the environment) and
``--credentials-file PATH`` (a JSON object or a KEY=VALUE .env file); ``--credential`` wins over
the file. ``check`` and ``package`` took the file as ``--credentials`` before: that name still
works, hidden, with a deprecation warning on stderr.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from miniapp_sync.cli.app import session, warn
from miniapp_sync.settings import pairs

CredentialOption = Annotated[
    list[str] | None, typer.Option("--credential", help="A credential key=value (or key=env:VAR).")
]
CredentialsFileOption = Annotated[
    Path | None, typer.Option("--credentials-file", help="A JSON or KEY=VALUE (.env) file of credentials.")
]
DeprecatedCredentialsOption = Annotated[
    Path | None, typer.Option("--credentials", hidden=True, help="Deprecated: use --credentials-file.")
]


def gather_credentials(
    credential: list[str] | None,
    credentials_file: Path | None,
    deprecated_file: Path | None = None,
    *,
    required: bool = False,
) -> dict[str, Any]:
    """Return the credentials of a command's options (``--credential`` over the file)."""
    if deprecated_file is not None:
        warn("--credentials is deprecated: use --credentials-file (the same file)")
        if credentials_file is not None:
            raise typer.BadParameter("give the file once, as --credentials-file", param_hint="--credentials")
        credentials_file = deprecated_file
    bag = {**read_credentials(credentials_file), **pairs(credential, "--credential", session().environ)}
    if required and not bag:
        raise typer.BadParameter(
            "no credentials given: pass --credential key=value or --credentials-file PATH",
            param_hint="--credential/--credentials-file",
        )
    return bag


def read_credentials(path: Path | None) -> dict[str, Any]:
    """Read a JSON object or a KEY=VALUE (.env) file of credentials."""
    if path is None:
        return {}
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise typer.BadParameter(f"cannot read {path}: {exc.strerror}", param_hint="--credentials-file") from None
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise typer.BadParameter(f"{path}: not valid JSON ({exc})", param_hint="--credentials-file") from None
        if not isinstance(data, dict):
            raise typer.BadParameter(f"{path}: expected a JSON object", param_hint="--credentials-file")
        return data
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return {k.strip(): v.strip().strip("'\"") for k, _, v in (line.partition("=") for line in lines)}
