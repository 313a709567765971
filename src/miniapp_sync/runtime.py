"""The runtime's parts wired together once: store, vault, installations, sync engine.

The CLI and the server both build one ``Runtime`` and only pass requests to it. Only the store
is opened up front: the installations (the vault, aiohttp) and the sync engine are built the
first time something asks for them, so a command that only reads the store (``records``,
``runs``, ``inbox``) imports neither the network stack nor the job queue.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from miniapp_sync.backend import Backend
from miniapp_sync.clock import Clock, SystemClock
from miniapp_sync.network import Egress, Rewrites
from miniapp_sync.store import Store
from miniapp_sync.store.history import DEFAULT_RETENTION_DAYS
from miniapp_sync.sync.runs import Processes, abandon_dead_runs

if TYPE_CHECKING:
    from miniapp_sync.definition import Definition
    from miniapp_sync.installations import Installations, Vault
    from miniapp_sync.mapping.functions import FunctionRegistry
    from miniapp_sync.mapping.plan import MappingPlan
    from miniapp_sync.sync.engine import SyncEngine


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
    return _load(path, functions, sync=False)


def load_for_sync(
    path: str | os.PathLike[str], resources: list[str] | None, functions: FunctionRegistry | None = None
) -> MiniApp:
    """Load and validate a definition file as ``load_miniapp``; compile only what a sync of ``resources`` maps.

    ``resources``: those named (None: every enabled one). For a process that runs just that
    sync (``miniapp-sync sync``): compiling the other mappings (other resources, webhook
    handlers, customer extraction, with phonenumbers) was most of its definition's start-up.
    """
    return _load(path, functions, sync=True, resources=resources)


def _load(
    path: str | os.PathLike[str],
    functions: FunctionRegistry | None,
    *,
    sync: bool,
    resources: list[str] | None = None,
) -> MiniApp:
    from miniapp_sync.definition import load_definition
    from miniapp_sync.mapping.functions import FunctionRegistry
    from miniapp_sync.mapping.plan import compile_plan, vocabulary
    from miniapp_sync.sync.resources import synced_resources

    functions = functions or FunctionRegistry.default()
    definition = load_definition(path, vocabulary=vocabulary(functions))
    only = synced_resources(definition, resources) if sync else None
    return MiniApp(definition, compile_plan(definition, functions, only=only), Path(path))


def key_file_for(store: Store) -> Path | None:
    """Return where the generated credentials key lives: beside the SQLite file (None for PostgreSQL)."""
    database = store.sqlite_path
    return None if database is None else database.parent / "secret.key"


@dataclass(frozen=True, slots=True)
class _Parts:
    """What the lazily built parts need, kept from ``Runtime.open``."""

    environ: Mapping[str, str]
    create: bool
    egress: Egress
    public_url: str
    max_retry_after: float | None


class Runtime:
    """Everything a command or a request needs, built once per process (the heavy parts on first use)."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        backend: Backend,
        parts: _Parts,
        *,
        processes: Processes | None = None,
        vault: Vault | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.backend = backend
        self.apps: dict[str, MiniApp] = {}
        self.processes = processes or Processes()
        self._parts = parts
        self._vault = vault

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
        """Open the store (migrating it); ``create=False``: only an existing one, and no key file is made.

        ``history_days``: how long record history is kept (D39; 0: none is written; None: 30 days).
        """
        clock = clock or SystemClock()
        days = DEFAULT_RETENTION_DAYS if history_days is None else history_days
        store = Store.open(store_url, clock=clock, create=create, environ=environ, history_days=days)
        egress = Egress(rewrites or Rewrites(), allow_private_network=allow_private_network)
        parts = _Parts(environ, create, egress, public_url, max_retry_after)
        runtime = cls(store, clock, Backend.of(store), parts)
        if create:  # a command that makes a store makes its key file with it (D29)
            runtime._vault = runtime._open_vault()
        # Runs left "running" by a process that died end as abandoned, here rather than never (D38).
        abandon_dead_runs(store, processes=runtime.processes)
        return runtime

    def _open_vault(self) -> Vault:
        from miniapp_sync.installations import Vault

        return Vault.from_environment(key_file_for(self.store), self._parts.environ, create=self._parts.create)

    @cached_property
    def installations(self) -> Installations:
        """Return the tenants' installations (opening the credentials vault)."""
        from miniapp_sync.installations import Installations
        from miniapp_sync.webhooks.concurrency import caller

        parts = self._parts
        vault = self._vault or self._open_vault()
        return Installations(
            self.store,
            vault,
            clock=self.clock,
            egress=parts.egress,
            public_url=parts.public_url,
            store_call=caller(self.backend.inline_store_calls),
        )

    @cached_property
    def engine(self) -> SyncEngine:
        """Return the bulk sync engine, with the backend's rate budgets and store calls."""
        from miniapp_sync.provider.retry import DEFAULT_MAX_RETRY_AFTER
        from miniapp_sync.sync.engine import SyncEngine

        cap = self._parts.max_retry_after
        return SyncEngine(
            self.store,
            self.installations,
            clock=self.clock,
            limiters=self.backend.limiters,
            inline_writes=self.backend.inline_store_calls,
            max_retry_after=DEFAULT_MAX_RETRY_AFTER if cap is None else cap,
            processes=self.processes,
        )

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
