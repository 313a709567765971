"""Which installation a delivery is for (D24), and the secrets its signature is checked with.

The receiver must not query the store for every delivery: installations and their decrypted
webhook secrets are held in memory, reloaded every ``reload_every`` seconds, and on a miss at
most once per ``miss_every`` seconds, so a flood of deliveries for unknown stores cannot become
a flood of queries. Metadata values are compared as text, folded (``providers.fold``): Salla's
integer ``merchant`` matches a ``storeId`` stored as a string, a WooCommerce site URL matches with
or without its scheme and trailing slash.
"""

from __future__ import annotations

import asyncio
from typing import Any

from miniapp_sync.clock import Clock
from miniapp_sync.installations import Installations
from miniapp_sync.runtime import MiniApp
from miniapp_sync.store import Installation, Store
from miniapp_sync.webhooks.identify import as_text
from miniapp_sync.webhooks.providers import fold
from miniapp_sync.webhooks.verification import resolve_secrets


class Directory:
    """The installations of every MiniApp, indexed by id and by metadata value."""

    def __init__(
        self,
        store: Store,
        installations: Installations,
        clock: Clock,
        *,
        reload_every: float = 30.0,
        miss_every: float = 1.0,
    ) -> None:
        self._store = store
        self._installations = installations
        self._clock = clock
        self._reload_every = reload_every
        self._miss_every = miss_every
        self._loaded_at: float | None = None
        self._by_id: dict[str, Installation] = {}
        self._by_value: dict[tuple[str, str, str], Installation] = {}
        self._by_ns: dict[str, list[Installation]] = {}
        self._secrets: dict[tuple[str, float], tuple[bytes, ...]] = {}
        self._global: dict[tuple[str, str], tuple[bytes, ...]] = {}  # (ns, configured value) -> secrets
        self._lock = asyncio.Lock()

    def forget(self) -> None:
        """Drop what is cached, so the next delivery reads installations afresh (after an install here)."""
        self._loaded_at = None

    async def by_id(self, ns: str, installation_id: str) -> Installation | None:
        """Return the live installation with this id if it belongs to ``ns``."""
        for miss in (False, True):
            await self._refresh(miss=miss)
            found = self._by_id.get(installation_id)
            if found is not None:
                return found if found.ns == ns else None
        return None

    async def match(self, ns: str, key: str, value: Any) -> Installation | None:
        """Return the live installation of ``ns`` whose ``metadata[key]`` equals ``value`` as text."""
        return await self.match_any(ns, (key,), value)

    async def match_any(self, ns: str, keys: tuple[str, ...], value: Any) -> Installation | None:
        """Return the live installation of ``ns`` whose metadata holds ``value`` under one of ``keys``."""
        text = as_text(value)
        if text is None:
            return None
        folded = fold(text)
        for miss in (False, True):
            await self._refresh(miss=miss)
            found = next((i for key in keys if (i := self._by_value.get((ns, key, folded))) is not None), None)
            if found is not None:
                return found
        return None

    async def of_ns(self, ns: str) -> list[Installation]:
        """Return the live installations of ``ns``."""
        await self._refresh(miss=True)
        return self._by_ns.get(ns, [])

    def secrets(self, app: MiniApp, installation: Installation | None) -> tuple[bytes, ...]:
        """Return the secrets a delivery for ``installation`` (None: unknown) may be signed with."""
        own = self.own_secrets(app, installation) if installation is not None else ()
        return own or self.app_secrets(app)

    def own_secrets(self, app: MiniApp, installation: Installation) -> tuple[bytes, ...]:
        """Return the secrets in the installation's own credentials (none: it uses the MiniApp's)."""
        webhook = app.definition.webhook
        verification = webhook.verification if webhook else None
        if verification is None or verification.type == "none":
            return ()
        key = (installation.id, installation.updated_at)
        own = self._secrets.get(key)
        if own is None:
            own = resolve_secrets(verification, self._installations.credentials(installation), {})
            self._secrets[key] = own
        return own

    def app_secrets(self, app: MiniApp) -> tuple[bytes, ...]:
        """Return the MiniApp-wide secrets (``auth.config``), which verify a delivery for any tenant."""
        webhook = app.definition.webhook
        verification = webhook.verification if webhook else None
        if verification is None or verification.type == "none":
            return ()
        # The MiniApp-wide value can be reconfigured at any time: it is the cache key.
        value = self._installations.config(app.definition).get(verification.secret_key or "")
        cached = self._global.get((app.ns, repr(value)))
        if cached is None:
            cached = resolve_secrets(verification, {}, {verification.secret_key or "": value})
            self._global[(app.ns, repr(value))] = cached
        return cached

    async def _refresh(self, *, miss: bool) -> None:
        now = self._clock.monotonic()
        if self._loaded_at is not None and now - self._loaded_at < (self._miss_every if miss else self._reload_every):
            return
        async with self._lock:
            if self._loaded_at is not None and self._clock.monotonic() - self._loaded_at < self._miss_every:
                return  # another request reloaded while this one waited
            found = await asyncio.to_thread(self._store.list_installations)
            self._loaded_at = self._clock.monotonic()
        live = [i for i in found if i.status != "uninstalled"]
        self._by_id = {i.id: i for i in live}
        self._by_value = {
            (i.ns, key, fold(text)): i
            for i in live
            for key, value in i.metadata.items()
            if (text := as_text(value)) is not None
        }
        self._by_ns = {}
        for i in live:
            self._by_ns.setdefault(i.ns, []).append(i)
        current = {(i.id, i.updated_at) for i in live}
        self._secrets = {k: v for k, v in self._secrets.items() if k in current}
