"""The runtime's parts wired together once: store, vault, installations, sync engine.

The CLI and the server both build one ``Runtime`` and only pass requests to it.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from miniapp_sync.backend import Backend
from miniapp_sync.clock import Clock, SystemClock
from miniapp_sync.definition import Definition, load_definition
from miniapp_sync.installations import Installations, Vault
from miniapp_sync.mapping.functions import FunctionRegistry
from miniapp_sync.mapping.plan import MappingPlan, compile_plan, vocabulary
from miniapp_sync.network import Egress, Rewrites
from miniapp_sync.provider.retry import DEFAULT_MAX_RETRY_AFTER
from miniapp_sync.store import Store
from miniapp_sync.store.history import DEFAULT_RETENTION_DAYS
from miniapp_sync.sync.engine import SyncEngine
from miniapp_sync.sync.runs import abandon_dead_runs


@dataclass(frozen=True)
class MiniApp:
    """A loaded definition with its compiled mappings."""

    definition: Definition
    plan: MappingPlan
    path: Path | None = None

    @property
    def ns(self) -> str:
        """Return the MiniApp's namespace."""
        return self.definition.ns or ""

    @cached_property
    def digest(self) -> str:
        """Return a short digest of the loaded definition: two loads of one document agree, any change shows."""
        document = self.definition.model_dump_json(by_alias=True).encode()
        return hashlib.sha256(document).hexdigest()[:12]


def load_miniapp(path: str | os.PathLike[str], functions: FunctionRegistry | None = None) -> MiniApp:
    """Load, validate and compile a definition file (raises DefinitionInvalid listing every error)."""
    functions = functions or FunctionRegistry.default()
    definition = load_definition(path, vocabulary=vocabulary(functions))
    return MiniApp(definition, compile_plan(definition, functions), Path(path))


def key_file_for(store: Store) -> Path | None:
    """Return where the generated credentials key lives: beside the SQLite file (None for PostgreSQL)."""
    database = store.sqlite_path
    return None if database is None else database.parent / "secret.key"


@dataclass
class Runtime:
    """Everything a command or a request needs, built once per process."""

    store: Store
    installations: Installations
    engine: SyncEngine
    clock: Clock
    backend: Backend
    apps: dict[str, MiniApp] = field(default_factory=dict)

    @classmethod
    def open(
        cls,
        store_url: str | None = None,
        *,
        clock: Clock | None = None,
        rewrites: Rewrites | None = None,
        public_url: str = "http://127.0.0.1:8000",
        allow_private_network: bool = False,
        environ: Mapping[str, str] = os.environ,
        create: bool = True,
        max_retry_after: float | None = None,
        history_days: float | None = None,
    ) -> Runtime:
        """Open the store (migrating it) and build the parts around it; ``create=False``: only an existing one.

        ``history_days``: how long record history is kept (D39; 0: none is written; None: 30 days).
        """
        clock = clock or SystemClock()
        days = DEFAULT_RETENTION_DAYS if history_days is None else history_days
        store = Store.open(store_url, clock=clock, create=create, environ=environ, history_days=days)
        vault = Vault.from_environment(key_file_for(store), environ, create=create)
        installations = Installations(
            store,
            vault,
            clock=clock,
            egress=Egress(rewrites or Rewrites(), allow_private_network=allow_private_network),
            public_url=public_url,
        )
        backend = Backend.of(store)
        cap = DEFAULT_MAX_RETRY_AFTER if max_retry_after is None else max_retry_after
        engine = SyncEngine(
            store,
            installations,
            clock=clock,
            limiters=backend.limiters,
            inline_writes=backend.inline_store_calls,
            max_retry_after=cap,
        )
        # Runs left "running" by a process that died end as abandoned, here rather than never (D38).
        abandon_dead_runs(store, processes=engine.processes)
        return cls(store, installations, engine, clock, backend)

    def add(self, app: MiniApp) -> MiniApp:
        """Serve a MiniApp (keyed by its ns)."""
        self.apps[app.ns] = app
        return app

    def close(self) -> None:
        """Close the store."""
        self.store.close()

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
