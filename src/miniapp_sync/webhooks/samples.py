"""Recorded sample payloads (``serve --record-samples DIR``): real deliveries for the submission package.

Each verified delivery's body is written as ``DIR/<event>.json`` (the latest one wins), with the
values of secret-looking fields blanked; headers, and so signatures, are never written.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson

from miniapp_sync.definition.lint import SECRET_NAME

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def _blank(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: "" if SECRET_NAME.search(str(k)) and v not in ("", None) else _blank(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_blank(v) for v in value]
    return value


class SampleRecorder:
    """Write each event's latest verified delivery body into a folder."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder

    def record(self, event: str, body: Any) -> Path:
        """Write the body as ``<event>.json`` (pretty, secret-looking values blanked); return the path."""
        path = self.folder / f"{_UNSAFE.sub('_', event)}.json"
        path.write_bytes(orjson.dumps(_blank(body), option=orjson.OPT_INDENT_2) + b"\n")
        return path
