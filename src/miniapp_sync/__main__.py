"""``python -m miniapp_sync``."""

from miniapp_sync.cli import run

run()
