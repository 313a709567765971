"""Logs: stdlib logging routed through structlog, one event per line (DESIGN §3, issue 15 item 6).

The library logs with ``logging.getLogger("miniapp_sync.…")`` and structured fields in
``extra=``; ``configure`` (once, at CLI start) renders every record, ours and our dependencies',
as one line with time (ISO 8601 UTC), level, logger, the event and its context: JSON for
machines, ``key=value`` for people. Context that holds for a stretch of work (tenant,
installation, run id, delivery id) is bound with ``bound(...)`` and lands on every line logged
inside it, tasks started inside it included.

structlog is imported by ``configure`` only: commands that never log (``--help``) do not load it.
Fields are values we chose to log; a secret is never one of them (tests grep the output).
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator, MutableMapping
from contextvars import ContextVar
from types import ModuleType
from typing import Any, Final, TextIO

FORMATS: Final = ("console", "json")
LEVELS: Final = ("debug", "info", "warning", "error")

_context: ContextVar[dict[str, Any] | None] = ContextVar("miniapp_sync_log_context", default=None)


@contextlib.contextmanager
def bound(**fields: Any) -> Iterator[None]:
    """Add ``fields`` to every line logged inside the block (and in tasks it starts)."""
    token = _context.set({**(_context.get() or {}), **fields})
    try:
        yield
    finally:
        _context.reset(token)


def _merge_context(logger: Any, method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, value in (_context.get() or {}).items():
        event.setdefault(key, value)
    return event


def configure(format: str = "console", level: str = "info", *, stream: TextIO | None = None) -> None:
    """Route all logging to ``stream`` (stderr) as one line per event, in ``format``, from ``level`` up.

    Cheap to call: structlog is imported when the first line is written.
    """
    if format not in FORMATS:
        raise ValueError(f"log format: expected one of {', '.join(FORMATS)}, found {format!r}")
    if level not in LEVELS:
        raise ValueError(f"log level: expected one of {', '.join(LEVELS)}, found {level!r}")
    root = logging.getLogger()
    root.handlers = [_Handler(stream, format)]
    # Our loggers at the level asked for; the libraries' (alembic, procrastinate, aiohttp) from
    # warning up unless debugging: their info lines are chatter to an operator.
    root.setLevel(level.upper() if level in ("debug", "error") else logging.WARNING)
    logging.getLogger("miniapp_sync").setLevel(level.upper())
    # uvicorn's loggers would keep handlers of their own (two formats on one stream); its access
    # log shows query strings: ours (miniapp_sync.access) shows the route template instead.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler whose structlog formatter is built on first use; without a stream, today's stderr."""

    def __init__(self, stream: TextIO | None, format: str) -> None:
        self._fixed = stream
        super().__init__(stream)
        self.format_name = format

    @property
    def stream(self) -> TextIO:
        # sys.stderr as it is when a line is written: it is replaced under test runners and pagers.
        return self._fixed or sys.stderr

    @stream.setter
    def stream(self, value: TextIO | None) -> None:
        self._fixed = value if value is not sys.stderr else None

    def format(self, record: logging.LogRecord) -> str:
        if self.formatter is None:
            self.setFormatter(_formatter(self.format_name))
        return super().format(record)


def _import_structlog() -> ModuleType:
    """Import structlog without the Rich renderers it loads when Rich is installed.

    structlog.dev imports rich.traceback (and Pygments) for a renderer we never use: it prints
    local variables, which may hold secrets, so console lines take plain_traceback. And
    structlog.tracebacks imports rich.pretty for the locals of its dict tracebacks, which we do
    not make either (format_exc_info writes the plain text). With each marked absent while
    structlog loads (None in sys.modules: the import system's "not there"), structlog falls
    back as without Rich: ~0.07 G instructions (~25 ms) less for rich.traceback, ~15 ms CPU for
    rich.pretty (2 ms where Rich's console is loaded already, as at the end of a sync), for
    every command that logs. Rich itself is untouched: --debug still prints its tracebacks
    (cli.main), importing rich.traceback then. A module already loaded is left as it is.
    """
    if "structlog" not in sys.modules:
        absent = [name for name in ("rich.traceback", "rich.pretty") if name not in sys.modules]
        for name in absent:
            sys.modules[name] = None  # type: ignore[assignment]
        try:
            import structlog
        finally:
            for name in absent:
                del sys.modules[name]
    import structlog

    return structlog


def _formatter(format: str) -> logging.Formatter:
    structlog = _import_structlog()
    shared: list[Any] = [
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        _merge_context,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="time"),
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if format == "json"
        # Plain tracebacks: the default rich one prints local variables, which may hold secrets.
        else structlog.dev.ConsoleRenderer(
            colors=False, pad_event_to=0, timestamp_key="time", exception_formatter=structlog.dev.plain_traceback
        )
    )
    formatter: logging.Formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    return formatter
