"""Log lines: structlog is loaded without Rich's traceback and pretty renderers; tracebacks are written plainly."""

from __future__ import annotations

import subprocess
import sys


def test_an_error_is_logged_with_its_plain_traceback_and_neither_rich_traceback_nor_pretty_is_loaded() -> None:
    script = (
        "import logging, sys\n"
        "from miniapp_sync import logs\n"
        "logs.configure('console', 'info', stream=sys.stdout)\n"
        "try:\n"
        "    raise ValueError('boom')\n"
        "except ValueError:\n"
        "    logging.getLogger('miniapp_sync.test').exception('it failed', extra={'tenant': 'acme'})\n"
        "print('rich.traceback' in sys.modules, 'rich.pretty' in sys.modules, 'structlog' in sys.modules)\n"
        "import rich.traceback\n"  # Rich's own tracebacks (--debug) still load afterwards
        "print(rich.traceback.Traceback.__name__)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "it failed" in lines[0]
    assert "tenant=acme" in lines[0]
    assert "Traceback (most recent call last):" in done.stdout
    assert "ValueError: boom" in done.stdout
    assert lines[-2:] == ["False False True", "Traceback"]
