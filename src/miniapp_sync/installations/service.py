"""Installations: install (API key or OAuth 2.0), credentials, refresh, uninstall (D29–D31).

The lifecycle's first step: "Tenant installs MiniApp and completes OAuth / API key setup".
Everything a sync call or a webhook verification needs about a tenant comes from here.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson

from miniapp_sync.clock import Clock, SystemClock
from miniapp_sync.definition.model import Definition, Request
from miniapp_sync.errors import InstallationError
from miniapp_sync.installations.calls import CallResult, call
from miniapp_sync.installations.claims import refuse_capture, without_claims
from miniapp_sync.installations.oauth import OAuthInstalls, check_tenant
from miniapp_sync.installations.provider import secret_values
from miniapp_sync.installations.vault import Vault
from miniapp_sync.network import Egress, is_loopback_url
from miniapp_sync.store import Installation, Store
from miniapp_sync.templating import Context, render


class Installations:
    """Install MiniApps per tenant and keep their credentials usable."""

    def __init__(
        self,
        store: Store,
        vault: Vault,
        *,
        clock: Clock | None = None,
        egress: Egress | None = None,
        public_url: str = "http://127.0.0.1:8000",
        session: aiohttp.ClientSession | None = None,
        store_call: Callable[..., Awaitable[Any]] | None = None,
    ) -> None:
        self.store = store
        # How a token refresh, which a sync makes mid-run, calls the store: the backend's way
        # (inline; in a thread where a call waits on the network and would stall the event loop).
        self._store_call = store_call or _inline
        self.vault = vault
        self.clock = clock or SystemClock()
        self.egress = egress or Egress()
        self.public_url = public_url.rstrip("/")
        self._session = session
        self._refresh_locks: dict[str, asyncio.Lock] = {}
        self._config: dict[str, dict[str, Any]] = {}
        self.oauth = OAuthInstalls(self)

    def configure(self, ns: str, config: Mapping[str, Any]) -> None:
        """Set operator-held auth.config values of a MiniApp (client_id, client_secret, webhookSecret …).

        A submitted definition carries '' for them (no secrets in submissions); the operator
        supplies the real values at run time.
        """
        self._config[ns] = {**self._config.get(ns, {}), **config}

    def config(self, definition: Definition) -> dict[str, Any]:
        """Return auth.config with the operator's values over the definition's."""
        own = definition.auth.config if definition.auth else {}
        return {**own, **self._config.get(definition.ns or "", {})}

    # --- reading ----------------------------------------------------------------------------

    def get(self, installation_id: str) -> Installation:
        """Return an installation, or raise naming the id."""
        found = self.store.get_installation(installation_id)
        if found is None:
            raise InstallationError(f"no installation {installation_id!r}")
        return found

    def find(self, tenant: str, ns: str) -> Installation:
        """Return the installation of a MiniApp for a tenant, or raise saying how to create it."""
        found = self.store.find_installation(tenant, ns)
        if found is None:
            raise InstallationError(f"tenant {tenant!r} has not installed {ns!r} (run miniapp-sync install)")
        return found

    def credentials(self, installation: Installation) -> dict[str, Any]:
        """Return the decrypted credential bag."""
        return self.vault.decrypt(installation.credentials)

    def secrets_of(self, definition: Definition, installation: Installation) -> list[str]:
        """Return every secret value of an installation, for redaction (D30)."""
        return secret_values(definition, self.credentials(installation), self.config(definition))

    def context(self, definition: Definition, installation: Installation, **system: Any) -> Context:
        """Return the placeholder context of an installation (D29)."""
        return Context(
            credentials=self.credentials(installation),
            metadata=installation.metadata,
            user_input=installation.user_input,
            config=self.config(definition),
            system={**self._system(definition, installation.tenant), **system},
        )

    def redirect_uri(self, ns: str) -> str:
        """Return where the provider sends the browser back after an OAuth consent."""
        return f"{self.public_url}/miniapps/{ns}/oauth2"

    def _system(self, definition: Definition, tenant: str) -> dict[str, Any]:
        ns = definition.ns or "miniapp"
        return {
            "webhookUrl": f"{self.public_url}/miniapps/{ns}/webhooks",
            "redirect_uri": self.redirect_uri(ns),
            "subdomain": tenant,
            "tenant": tenant,
        }

    # --- API-key install --------------------------------------------------------------------

    async def install(
        self,
        definition: Definition,
        tenant: str,
        *,
        credentials: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        user_input: Mapping[str, Any] | None = None,
    ) -> Installation:
        """Install with pasted keys: get_token, userDetails, registrationRequests, then connected."""
        ns = self._ns(definition)
        check_tenant(tenant)  # as an OAuth link does: else "", "a\nb" or 100 KB was stored as a tenant id
        installation = self.store.save_installation(
            tenant,
            ns,
            credentials=self.vault.encrypt(dict(credentials or {})),
            metadata=dict(metadata or {}),
            user_input=dict(user_input or {}),
            status="pending",
        )
        if definition.auth is not None and definition.auth.get_token is not None and definition.auth.type != "oauth2":
            installation = await self._run_and_store(
                definition, installation, definition.auth.get_token, "auth.get_token"
            )
        return await self._connect(definition, installation)

    async def _connect(self, definition: Definition, installation: Installation) -> Installation:
        """Run test_token, userDetails and registrationRequests, then mark the installation connected."""
        try:
            ready = await self.prepare(definition, installation)
        except InstallationError as exc:
            # A refused install keeps no store id it could be routed deliveries by (D24).
            metadata = without_claims(definition, installation.metadata)
            self.store.update_installation(installation.id, status="error", error=str(exc), metadata=metadata)
            raise
        return self.store.update_installation(
            installation.id, credentials=ready.credentials, metadata=ready.metadata, status="connected", error=None
        )

    async def prepare(
        self, definition: Definition, draft: Installation, *, same_account_as: Installation | None = None
    ) -> Installation:
        """Run test_token, userDetails and registrationRequests on ``draft``; return it completed, unsaved.

        With ``same_account_as``, refuse (before any registration request) when userDetails names
        another provider account than that installation's metadata does (D31a).
        """
        auth = definition.auth
        # One store, one installation (D24): checked on what the install names, then on what the
        # provider says, before any registration request.
        refuse_capture(self.store, definition, draft, draft.metadata)
        if auth is not None and auth.test_token is not None:
            await self.send(definition, draft, auth.test_token, "auth.test_token")
        if auth is not None and auth.user_details is not None:
            result = await self.send(definition, draft, auth.user_details, "auth.userDetails")
            if same_account_as is not None:
                _same_account(definition, same_account_as, result)
            draft = dataclasses.replace(draft, metadata={**draft.metadata, **result.persisted})
            refuse_capture(self.store, definition, draft, draft.metadata)
        for index, request in enumerate(auth.registration_requests if auth else []):
            where = f"auth.registrationRequests[{index}]"
            self._refuse_unreachable_webhook_url(definition, draft, request, where)
            result = await self.send(definition, draft, request, where)
            if result.persisted:
                bag = {**self.credentials(draft), **result.persisted}
                draft = dataclasses.replace(draft, credentials=self.vault.encrypt(bag))
        return draft

    def _refuse_unreachable_webhook_url(
        self, definition: Definition, installation: Installation, request: Request, where: str
    ) -> None:
        """Refuse to hand a provider elsewhere a ``{{webhookUrl}}`` on this machine: it could never deliver."""
        if not is_loopback_url(self.public_url) or "{{webhookUrl}}" not in orjson.dumps(request.model_dump()).decode():
            return
        url = str(render(request.url, self.context(definition, installation), f"{where}.url"))
        target = self.egress.rewrites.apply(url)
        if is_loopback_url(target):
            return  # a provider on this machine (a sandbox) reaches a loopback URL
        host = urlsplit(target).hostname or target
        raise InstallationError(
            f"{where}: would register the webhook URL {self.public_url}/miniapps/{definition.ns}/webhooks with "
            f"{host}, which cannot reach this machine's loopback address; pass --public-url (or set "
            "MINIAPP_SYNC_PUBLIC_URL) to the URL the provider reaches this server at"
        )

    async def _run_and_store(
        self, definition: Definition, installation: Installation, request: Request, where: str
    ) -> Installation:
        result = await self.send(definition, installation, request, where)
        if not result.persisted:
            return installation
        bag = {**self.credentials(installation), **result.persisted}
        return self.store.update_installation(installation.id, credentials=self.vault.encrypt(bag))

    async def send(
        self, definition: Definition, installation: Installation, request: Request, where: str, **system: Any
    ) -> CallResult:
        """Run one auth request template for an installation (``system`` adds or overrides system values)."""
        session = self._session or aiohttp.ClientSession()
        try:
            return await call(
                session,
                request,
                self.context(definition, installation, **system),
                where=where,
                egress=self.egress,
                secrets=self.secrets_of(definition, installation),
            )
        finally:
            if self._session is None:
                await session.close()

    # --- refresh ------------------------------------------------------------------------------

    async def refresh(self, definition: Definition, installation_id: str, *, seen_token: Any = None) -> dict[str, Any]:
        """Refresh tokens once for concurrent callers (single-flight); return the fresh credentials.

        ``seen_token`` is the access token the caller was rejected with: when another caller has
        refreshed meanwhile, the stored token differs and is returned without a second refresh
        (refresh tokens are single-use at providers such as Salla).
        """
        auth = definition.auth
        if auth is None or auth.refresh_token is None or not auth.auto_refresh:
            raise InstallationError(
                "the provider answered 401 and auth.auto_refresh is off: reconnect the installation"
            )
        lock = self._refresh_locks.setdefault(installation_id, asyncio.Lock())
        async with lock:
            installation = await self._store_call(self.get, installation_id)
            bag = self.credentials(installation)
            if seen_token is not None and bag.get("accessToken") != seen_token:
                return bag
            try:
                result = await self.send(definition, installation, auth.refresh_token, "auth.refresh_token")
            except InstallationError as exc:
                reason = f"token refresh failed, reconnect the installation: {exc}"
                await self._store_call(self.store.update_installation, installation.id, status="error", error=reason)
                raise InstallationError(reason) from None
            if "accessToken" not in result.persisted:
                reason = "token refresh failed, reconnect the installation: the response mapped no accessToken"
                await self._store_call(self.store.update_installation, installation.id, status="error", error=reason)
                raise InstallationError(reason)
            bag = {**bag, **result.persisted}
            # Persist before anyone retries: the old refresh token may already be revoked.
            update = self.store.update_installation
            await self._store_call(update, installation.id, credentials=self.vault.encrypt(bag), status="connected")
            return bag

    # --- uninstall ----------------------------------------------------------------------------

    def uninstall(self, installation_id: str) -> Installation:
        """Mark uninstalled and forget the credentials (records stay, for audit and reinstall)."""
        self.get(installation_id)
        return self.store.update_installation(
            installation_id, status="uninstalled", credentials=self.vault.encrypt({}), error=None
        )

    def pause(self, installation_id: str) -> Installation:
        """Pause an installation's schedules: the scheduler skips it; webhooks and syncs asked for go on."""
        found = self.get(installation_id)
        if found.paused:
            return found  # paused since then: the first pause's time stays
        return self.store.update_installation(installation_id, paused_at=self.store.clock.now())

    def resume(self, installation_id: str) -> Installation:
        """Resume a paused installation's schedules (from their next tick)."""
        self.get(installation_id)
        return self.store.update_installation(installation_id, paused_at=None)

    @staticmethod
    def _ns(definition: Definition) -> str:
        if not definition.ns:
            raise InstallationError("the definition has no 'ns': a sync-only fragment cannot be installed")
        return definition.ns


async def _inline(function: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    return function(*args, **kwargs)


# Metadata keys that name the provider account (storeId, shop_id, merchantID), not a user or a label.
_ACCOUNT_KEY = re.compile(r"(?:Id|_id|ID)$")


def _same_account(definition: Definition, existing: Installation, result: CallResult) -> None:
    """Refuse userDetails that name another account than the one ``existing`` is connected to.

    The account is what webhooks find the tenant by (``webhook.tenantExtraction.matchKey``), else
    every id-like key; a renamed store or another admin user of the same store is the same account.
    """
    extraction = definition.webhook.tenant_extraction if definition.webhook else None
    keys = [extraction.match_key] if extraction else [k for k in result.persisted if _ACCOUNT_KEY.search(k)]
    differing = [
        k
        for k in keys
        if k in result.persisted and k in existing.metadata and str(existing.metadata[k]) != str(result.persisted[k])
    ]
    if differing:
        shown = ", ".join(f"{k} {existing.metadata[k]!r} → {result.persisted[k]!r}" for k in differing)
        raise InstallationError(
            f"auth.userDetails: this callback is for another provider account than tenant {existing.tenant!r} "
            f"is connected to ({shown}); nothing was changed (to move the tenant to another account, "
            "uninstall it and install again)"
        )
