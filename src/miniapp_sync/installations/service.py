"""Installations: install (API key or OAuth 2.0), credentials, refresh, uninstall (D29–D31).

The lifecycle's first step: "Tenant installs MiniApp and completes OAuth / API key setup".
Everything a sync call or a webhook verification needs about a tenant comes from here.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import aiohttp

from miniapp_sync.clock import Clock, SystemClock
from miniapp_sync.definition.lint import SECRET_NAME
from miniapp_sync.definition.model import Definition, Request
from miniapp_sync.errors import InstallationError
from miniapp_sync.installations.calls import call
from miniapp_sync.installations.vault import Vault
from miniapp_sync.network import Rewrites
from miniapp_sync.store import Installation, Store
from miniapp_sync.templating import Context, render

STATE_TTL = 600.0  # seconds an OAuth state stays valid


class Installations:
    """Install MiniApps per tenant and keep their credentials usable."""

    def __init__(
        self,
        store: Store,
        vault: Vault,
        *,
        clock: Clock | None = None,
        rewrites: Rewrites | None = None,
        public_url: str = "http://127.0.0.1:8000",
        allow_private_network: bool = False,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.store = store
        self.vault = vault
        self.clock = clock or SystemClock()
        self.rewrites = rewrites or Rewrites()
        self.public_url = public_url.rstrip("/")
        self.allow_private_network = allow_private_network
        self._session = session
        self._refresh_locks: dict[str, asyncio.Lock] = {}
        self._config: dict[str, dict[str, Any]] = {}

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
        bag = self.credentials(installation)
        values = [str(v) for v in bag.values() if isinstance(v, str | int) and v != ""]
        sensitive = set(definition.auth.sensitive_keys) if definition.auth else set()
        values += [
            v
            for k, v in self.config(definition).items()
            if isinstance(v, str) and v and (k in sensitive or SECRET_NAME.search(k)) and k != "client_id"
        ]
        return values

    def context(self, definition: Definition, installation: Installation, **system: Any) -> Context:
        """Return the placeholder context of an installation (D29)."""
        return Context(
            credentials=self.credentials(installation),
            metadata=installation.metadata,
            user_input=installation.user_input,
            config=self.config(definition),
            system={**self._system(definition, installation.tenant), **system},
        )

    def _system(self, definition: Definition, tenant: str) -> dict[str, Any]:
        ns = definition.ns or "miniapp"
        return {
            "webhookUrl": f"{self.public_url}/miniapps/{ns}/webhooks",
            "redirect_uri": f"{self.public_url}/miniapps/{ns}/oauth2",
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
        """Run userDetails and registrationRequests, then mark the installation connected."""
        auth = definition.auth
        try:
            if auth is not None and auth.test_token is not None:
                await self._call(definition, installation, auth.test_token, "auth.test_token")
            if auth is not None and auth.user_details is not None:
                result = await self._call(definition, installation, auth.user_details, "auth.userDetails")
                installation = self.store.update_installation(
                    installation.id, metadata={**installation.metadata, **result.persisted}
                )
            for index, request in enumerate(auth.registration_requests if auth else []):
                installation = await self._run_and_store(
                    definition, installation, request, f"auth.registrationRequests[{index}]"
                )
        except InstallationError as exc:
            self.store.update_installation(installation.id, status="error", error=str(exc))
            raise
        return self.store.update_installation(installation.id, status="connected", error=None)

    async def _run_and_store(
        self, definition: Definition, installation: Installation, request: Request, where: str
    ) -> Installation:
        result = await self._call(definition, installation, request, where)
        if not result.persisted:
            return installation
        bag = {**self.credentials(installation), **result.persisted}
        return self.store.update_installation(installation.id, credentials=self.vault.encrypt(bag))

    async def _call(
        self, definition: Definition, installation: Installation, request: Request, where: str, **system: Any
    ) -> Any:
        session = self._session or aiohttp.ClientSession()
        try:
            return await call(
                session,
                request,
                self.context(definition, installation, **system),
                where=where,
                rewrites=self.rewrites,
                allow_private_network=self.allow_private_network,
                secrets=self.secrets_of(definition, installation),
            )
        finally:
            if self._session is None:
                await session.close()

    # --- OAuth 2.0 ----------------------------------------------------------------------------

    def begin_oauth(self, definition: Definition, tenant: str) -> str:
        """Return the provider's authorize URL, carrying a fresh single-use state for this tenant."""
        auth = definition.auth
        if auth is None or auth.type != "oauth2" or auth.auth_url is None:
            raise InstallationError(f"{definition.ns!r} has no OAuth 2.0 auth_url to start from")
        ns = self._ns(definition)
        state = secrets.token_urlsafe(24)
        self.store.put_oauth_state(state, tenant=tenant, ns=ns, expires_at=self.clock.now() + STATE_TTL)
        context = Context(config=self.config(definition), system=self._system(definition, tenant))
        template = auth.auth_url if isinstance(auth.auth_url, Request) else Request(url=auth.auth_url)
        url = self.rewrites.apply(str(render(template.url, context, "auth.auth_url.url")))
        params = {k: str(v) for k, v in render(template.query_params, context, "auth.auth_url.queryParams").items()}
        parts = urlsplit(url)
        query = "&".join(q for q in (parts.query, urlencode({**params, "state": state})) if q)
        return urlunsplit(parts._replace(query=query))

    async def complete_oauth(self, definition: Definition, state: str, code: str) -> Installation:
        """Finish the redirect back: check the state once, exchange the code, then connect."""
        ns = self._ns(definition)
        taken = self.store.take_oauth_state(state)
        if taken is None:
            raise InstallationError("the OAuth state is unknown, expired or already used: start the install again")
        tenant, state_ns = taken
        if state_ns != ns:
            raise InstallationError("the OAuth state was issued for another MiniApp: start the install again")
        auth = definition.auth
        if auth is None or auth.get_token is None:
            raise InstallationError(f"{ns!r} has no auth.get_token to exchange the code with")
        existing = self.store.find_installation(tenant, ns)
        installation = self.store.save_installation(
            tenant,
            ns,
            credentials=existing.credentials if existing else self.vault.encrypt({}),
            metadata=existing.metadata if existing else {},
            user_input=existing.user_input if existing else {},
            status="pending",
        )
        try:
            result = await self._call(definition, installation, auth.get_token, "auth.get_token", code=code)
        except InstallationError as exc:
            self.store.update_installation(installation.id, status="error", error=str(exc))
            raise
        if "accessToken" not in result.persisted:
            reason = "auth.get_token: the token response mapped no accessToken"
            self.store.update_installation(installation.id, status="error", error=reason)
            raise InstallationError(reason)
        bag = {**self.credentials(installation), **result.persisted}
        installation = self.store.update_installation(installation.id, credentials=self.vault.encrypt(bag))
        return await self._connect(definition, installation)

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
            installation = self.get(installation_id)
            bag = self.credentials(installation)
            if seen_token is not None and bag.get("accessToken") != seen_token:
                return bag
            try:
                result = await self._call(definition, installation, auth.refresh_token, "auth.refresh_token")
            except InstallationError as exc:
                reason = f"token refresh failed, reconnect the installation: {exc}"
                self.store.update_installation(installation.id, status="error", error=reason)
                raise InstallationError(reason) from None
            if "accessToken" not in result.persisted:
                reason = "token refresh failed, reconnect the installation: the response mapped no accessToken"
                self.store.update_installation(installation.id, status="error", error=reason)
                raise InstallationError(reason)
            bag = {**bag, **result.persisted}
            # Persist before anyone retries: the old refresh token may already be revoked.
            self.store.update_installation(installation.id, credentials=self.vault.encrypt(bag), status="connected")
            return bag

    # --- uninstall ----------------------------------------------------------------------------

    def uninstall(self, installation_id: str) -> Installation:
        """Mark uninstalled and forget the credentials (records stay, for audit and reinstall)."""
        self.get(installation_id)
        return self.store.update_installation(
            installation_id, status="uninstalled", credentials=self.vault.encrypt({}), error=None
        )

    @staticmethod
    def _ns(definition: Definition) -> str:
        if not definition.ns:
            raise InstallationError("the definition has no 'ns': a sync-only fragment cannot be installed")
        return definition.ns
