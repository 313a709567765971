"""The console's templates and static files ship in the wheel (pyproject's package-data covers each)."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "miniapp_sync"


def test_package_data_covers_every_console_template_and_static_file() -> None:
    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["miniapp_sync"]
    shipped = {path for pattern in globs for path in PACKAGE.glob(pattern)}
    files = [p for folder in ("templates", "static") for p in (PACKAGE / "console" / folder).iterdir() if p.is_file()]
    assert files
    assert [str(p.relative_to(PACKAGE)) for p in files if p not in shipped] == []
    assert (PACKAGE / "console" / "static" / "htmx.min.js") in shipped
    assert "Zero-Clause BSD" in (PACKAGE / "console" / "static" / "htmx.LICENSE.txt").read_text()
