"""The READMEs' commands run as written: every block marked runnable, against the bundled sandbox.

The convention: a fenced ``sh`` block whose first line starts with ``# runnable`` is run, as a
bash script with ``set -euo pipefail``, from a temporary folder holding a copy of ``examples/``
(as a fresh clone's top folder would), with a real store, ``miniapp-sync`` on the PATH running
this checkout, and no ``MINIAPP_SYNC_*`` variables. A README's runnable blocks run in order in
one script, so a sandbox or a variable one block starts serves the next. Background jobs
(``… &``) are ended when the script ends. The one change made to the text: the sandbox's port,
8765 in the README, is replaced with a free one, so runs on a shared machine do not collide.
Blocks without the marker (``make demo``, commands that need PostgreSQL, an operator's own
definition) are examples, not tests.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
READMES = [ROOT / "README.md", ROOT / "examples" / "salla" / "README.md"]
MARKER = "# runnable"
PORT = "8765"
_BLOCK = re.compile(r"^```sh\n(.*?)^```", re.MULTILINE | re.DOTALL)


def runnable_blocks(text: str) -> list[str]:
    """Return the bodies of the fenced sh blocks whose first line starts with the marker."""
    return [body for body in _BLOCK.findall(text) if body.startswith(MARKER)]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _environment(bin_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MINIAPP_SYNC_")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(ROOT / "src")
    return env


def test_the_marker_convention_finds_only_marked_blocks() -> None:
    text = "```sh\n# runnable\nminiapp-sync validate x\n```\n\n```sh\nmake demo\n```\n"
    assert runnable_blocks(text) == ["# runnable\nminiapp-sync validate x\n"]


@pytest.mark.parametrize("readme", READMES, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_runnable_commands_of_the_readme_run_as_written(readme: Path, tmp_path: Path) -> None:
    blocks = runnable_blocks(readme.read_text(encoding="utf-8"))
    assert blocks, f"{readme.name} marks no block {MARKER!r}"
    work = tmp_path / "clone"
    shutil.copytree(ROOT / "examples", work / "examples")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "miniapp-sync"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m miniapp_sync "$@"\n')
    shim.chmod(0o755)
    script = "\n".join(block.replace(PORT, str(_free_port())) for block in blocks)
    # Each command's failure ends the script; the jobs it started in the background end with it.
    prologue = "set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n"
    done = subprocess.run(
        ["bash", "-c", prologue + script],
        cwd=work,
        env=_environment(bin_dir),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, f"{readme.name}: exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    if readme.name == "README.md" and readme.parent == ROOT:
        assert (work / "miniapp.schema.json").stat().st_size > 1000  # schema > miniapp.schema.json
        assert (work / "submission" / "check-report.md").exists()  # the checklist passed, so it packaged
