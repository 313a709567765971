"""The one place that knows which backend a store means, and what follows from it (D32, D36).

SQLite is the embedded default: one process owns the store, its jobs run in that process (the
in-process queue), store calls run inline in the event loop (a call is CPU plus an fsync: a
thread hand-off costs more), and each installation's rate budget lives in process memory.
PostgreSQL is the scale-out: jobs are shared through Procrastinate by every process, store calls
wait on the network (a thread each), and rate budgets live in the database (D34).

Everything else asks the ``Backend`` (``runtime.backend``) or receives the narrow value it
decided; nothing else reads ``store.dialect`` to guess the deployment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from miniapp_sync.provider.shared_budget import LimiterFactory
    from miniapp_sync.store import Store


@dataclass(frozen=True, slots=True)
class Backend:
    """What a store's kind decides: where jobs run, how store calls are made, where rate budgets live."""

    name: str  # "embedded" or "scale-out", for messages
    shared_queue: bool  # jobs go through Procrastinate to worker processes (else: this process runs them)
    inline_store_calls: bool  # call the store from the event loop itself (else: in a thread)
    store: Store = field(repr=False, compare=False)

    @classmethod
    def of(cls, store: Store) -> Backend:
        """Return the backend of ``store``: the embedded default on SQLite, the scale-out on PostgreSQL."""
        if store.dialect == "postgresql":
            return cls("scale-out", True, False, store)
        return cls("embedded", False, True, store)

    @property
    def limiters(self) -> LimiterFactory:
        """Return where each installation's rate budget lives: this process, or the database (D34)."""
        # Imported here: only a sync needs a limiter, and the provider package brings aiohttp.
        if self.shared_queue:
            from miniapp_sync.provider.shared_budget import shared_limiters

            return shared_limiters(self.store.database.engine)
        from miniapp_sync.provider.ratelimit import limiter_for

        return limiter_for
