"""Injected faults: failing, HTML and hanging responses, missing details and endless pagination.

Every method may be called from any thread while the server runs: tests arm faults from the
test body, the demo from a console thread.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Literal

from aiohttp import web

from miniapp_sync.sandbox.responses import error_code, error_response

# What a CDN or a login wall sends instead of JSON: the provider client must not parse it as data.
HTML_PAGE: Final = (
    '<!DOCTYPE html>\n<html lang="en"><head><title>Just a moment...</title></head>\n'
    "<body><h1>Checking your browser before accessing api.salla.dev</h1></body></html>\n"
)


@dataclass
class Fault:
    """One armed fault: what happens to the next ``remaining`` requests that match."""

    kind: Literal["fail", "html", "hang", "echo"]
    remaining: int
    path_prefix: str | None = None
    status: int = 503
    body: str | None = None
    retry_after: str | None = None
    seconds: float = 0.0

    def matches(self, path: str, api_path: str | None) -> bool:
        """Return whether a request to ``path`` (``api_path``: its part after /admin/v2) is affected."""
        if self.path_prefix is None:
            return api_path is not None
        return path.startswith(self.path_prefix) or (api_path is not None and api_path.startswith(self.path_prefix))

    def response(self) -> web.Response:
        """Return the response of a ``fail`` or ``html`` fault."""
        if self.kind == "html":
            return web.Response(text=self.body or HTML_PAGE, content_type="text/html")
        headers = {"Retry-After": self.retry_after} if self.retry_after is not None else None
        if self.body is None:
            return error_response(self.status, error_code(self.status), "Injected fault", headers=headers)
        is_json = self.body.lstrip().startswith(("{", "["))
        content_type = "application/json" if is_json else "text/html"
        return web.Response(text=self.body, status=self.status, headers=headers, content_type=content_type)

    def echo(self, request: web.Request) -> web.Response:
        """Return an ``echo`` fault's answer: an error quoting the credentials it was sent, as careless APIs do."""
        body = {"error": "forbidden", "message": "Injected fault", "received": request.headers.get("Authorization")}
        return web.json_response(body, status=self.status)


class Faults:
    """The armed faults of one sandbox."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: list[Fault] = []
        self.echoing = False  # read without the lock: a hint that an echo fault may be armed
        self._missing: dict[str, set[int]] = {}
        self._repeating: set[str] = set()

    def arm(self, fault: Fault) -> None:
        """Queue a fault behind those already armed."""
        if fault.remaining < 0:
            raise ValueError(f"count must not be negative, not {fault.remaining}")
        with self._lock:
            if fault.remaining:
                self._queue.append(fault)
                self.echoing |= fault.kind == "echo"

    def take(self, path: str, api_path: str | None, *, echo: bool = False) -> Fault | None:
        """Return the first armed fault that matches this request, using up one of its count.

        ``echo`` faults answer only requests that carry valid credentials, so they are taken apart
        (``echo=True``) once the credentials are checked; the others are taken before.
        """
        with self._lock:
            for fault in self._queue:
                if (fault.kind == "echo") == echo and fault.matches(path, api_path):
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self._queue.remove(fault)
                    return fault
        return None

    def clear(self) -> None:
        """Disarm every queued fault (failing, HTML, hanging, echoing responses): the provider answers again."""
        with self._lock:
            self._queue.clear()
            self.echoing = False

    def pending(self) -> int:
        """Return how many faulty responses are still armed."""
        with self._lock:
            return sum(fault.remaining for fault in self._queue)

    def hide(self, resource: str, ids: Iterable[int]) -> None:
        """Make the details of these records answer 404."""
        with self._lock:
            self._missing.setdefault(resource, set()).update(int(i) for i in ids)

    def is_hidden(self, resource: str, record_id: int) -> bool:
        """Return whether this record's detail must answer 404."""
        with self._lock:
            return record_id in self._missing.get(resource, ())

    def repeat(self, resource: str) -> None:
        """Make every page of a resource return page 1's records."""
        with self._lock:
            self._repeating.add(resource)

    def repeats(self, resource: str) -> bool:
        """Return whether a resource's pages all repeat page 1."""
        with self._lock:
            return resource in self._repeating
