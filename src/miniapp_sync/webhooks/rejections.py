"""The rejection trail (D24a): a metadata-only row for each refused delivery, capped per ns and hour.

A delivery nobody can verify for no known tenant (404), a bad signature or stale timestamp (401)
and a body over the limit (413) are answered without storing the body. What an operator needs to
see what was refused and why is kept: time, route, size, the body's SHA-256, the headers with
every value outside a short list of harmless ones masked, the answer and the reason. Past
``per_hour`` rows for one ns in one clock hour, further refusals are only counted (metrics) and
logged once, so a flood of junk costs a bounded number of small rows.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Mapping
from typing import Final

from miniapp_sync.clock import Clock
from miniapp_sync.store import Store
from miniapp_sync.store.rejections import Rejection, Rejections
from miniapp_sync.webhooks.concurrency import Call

log = logging.getLogger("miniapp_sync.webhooks")

# Header values shown as received; every other value may be a signature, token or cookie (D30).
_SHOWN: Final = frozenset({"content-type", "content-length", "user-agent", "x-forwarded-for", "x-real-ip"})
MASK: Final = "[redacted]"
_INSTALLATION_ID: Final = re.compile(r"[0-9a-f]{1,32}")


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Return the headers with the value of every one not known harmless masked."""
    return {name: value if name.lower() in _SHOWN else MASK for name, value in headers.items()}


class RejectionTrail:
    """Keep refused deliveries' metadata, at most ``per_hour`` rows per ns and clock hour (per process)."""

    def __init__(self, store: Store, clock: Clock, call: Call, *, per_hour: int = 1000) -> None:
        self._rejections = Rejections(store)
        self._clock = clock
        self._call = call
        self._per_hour = per_hour
        self._hour = -1
        self._counts: dict[str, int] = {}

    async def record(
        self,
        ns: str,
        installation_id: str | None,
        status: int,
        reason: str,
        *,
        size: int,
        body: bytes | None,
        headers: Mapping[str, str],
    ) -> bool:
        """Keep one refusal unless the ns is over its hourly cap; return whether a row was written."""
        now = self._clock.now()
        hour = int(now // 3600)
        if hour != self._hour:
            self._hour, self._counts = hour, {}
        count = self._counts[ns] = self._counts.get(ns, 0) + 1
        if count > self._per_hour:
            if count == self._per_hour + 1:
                log.warning(
                    "more than %d refused %s deliveries this hour: the rest are not recorded", self._per_hour, ns
                )
            return False
        if installation_id is not None and not _INSTALLATION_ID.fullmatch(installation_id):
            installation_id, shown = None, "/<not an installation id>"  # URL text: never stored as given
        else:
            shown = f"/{installation_id}" if installation_id else ""
        route = f"/miniapps/{ns}/webhooks{shown}"
        digest = hashlib.sha256(body).hexdigest() if body is not None else None
        rejection = Rejection(ns, route, installation_id, status, reason, size, digest, redact_headers(headers), now)
        await self._call(self._rejections.add, rejection)
        return True
