"""Recorded sample payloads (``serve --record-samples DIR``): real deliveries for the submission package.

Each verified delivery's body is written as ``DIR/<event>.json`` (the latest one wins), with the
values of secret-looking fields blanked; headers, and so signatures, are never written. The
event name becomes a file name by ``sample_name``, the one mapping ``check`` and ``package`` read
samples back with.

Recording is a side effect of a delivery that is already stored: nothing about a body (nesting
deeper than JSON can be written back, a full disk) fails the delivery. What cannot be recorded is
logged and skipped.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Final

import orjson

from miniapp_sync.definition.lint import SECRET_NAME

__all__ = ["MAX_SAMPLE_DEPTH", "SampleRecorder", "sample_name"]

log = logging.getLogger("miniapp_sync.webhooks")

_UNSAFE: Final = re.compile(r"[^A-Za-z0-9._-]")
# orjson writes at most 255 levels; a body nested deeper is no useful sample anyway.
MAX_SAMPLE_DEPTH: Final = 200


def sample_name(event: str) -> str:
    """Return the file name of an event's sample: one path component, whatever the event name holds.

    Every character but letters, digits, ``.``, ``_`` and ``-`` becomes ``_`` (Shopify's
    ``orders/create`` → ``orders_create.json``), so ``../../x`` or ``/etc/x`` name a file inside
    the samples folder, never a path out of it; and the ``.json`` suffix keeps it from being
    ``.`` or ``..``.
    """
    return f"{_UNSAFE.sub('_', event)}.json"


class _TooDeep(Exception):
    pass


def _blank(value: Any, depth: int = 0) -> Any:
    if depth > MAX_SAMPLE_DEPTH:
        raise _TooDeep
    if isinstance(value, dict):
        return {
            k: "" if SECRET_NAME.search(str(k)) and v not in ("", None) else _blank(v, depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_blank(v, depth + 1) for v in value]
    return value


class SampleRecorder:
    """Write each event's latest verified delivery body into a folder."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder

    def record(self, event: str, body: Any) -> Path | None:
        """Write the body as ``sample_name(event)`` (pretty, secrets blanked); return the path, None if skipped."""
        path = self.folder / sample_name(event)
        try:
            data = orjson.dumps(_blank(body), option=orjson.OPT_INDENT_2) + b"\n"
        except (_TooDeep, orjson.JSONEncodeError):
            log.warning("not recorded as a sample: a %r body nested deeper than %d levels", event, MAX_SAMPLE_DEPTH)
            return None
        try:
            # A temporary file renamed over the sample: a reader never sees half a sample.
            fd, temporary = tempfile.mkstemp(dir=self.folder, prefix=".sample-", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                os.replace(temporary, path)
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise
        except OSError as exc:
            log.warning("not recorded as a sample: cannot write %s: %s", path, exc.strerror or exc)
            return None
        return path
