"""`make demo` runs to the end: the main job on the embedded default, as a user on a fresh clone runs it.

The demo runs from a temporary folder holding a copy of ``examples/`` (its root is the folder above
``examples/``, so its ``.demo/`` store lands there), with this checkout's ``miniapp-sync``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_make_demo_runs_every_step_to_the_end(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    environ = {key: value for key, value in os.environ.items() if not key.startswith("MINIAPP_SYNC_")}
    done = subprocess.run(
        [sys.executable, str(tmp_path / "examples" / "salla" / "demo.py")],
        cwd=tmp_path,
        env=environ,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    # Every stage printed its command: validate, install + initial sync, records, serve, the guide-only definition.
    for step in ("$ miniapp-sync validate", "$ miniapp-sync install", "$ miniapp-sync serve", "$ miniapp-sync events"):
        assert step in done.stdout, step
    assert "$ miniapp-sync deliveries --status rejected" in done.stdout
    assert "guide-store" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr
