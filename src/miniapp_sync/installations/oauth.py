"""OAuth 2.0 installs (D31a): an operator's signed start link, a bound single-use state, a callback that
changes nothing unless it succeeds.

1. ``issue_link``: an operator (management API, CLI, console) asks for a start link for
   (tenant, ns[, reconnect], install-form values). It is sealed with a key derived from the
   credentials key (no second secret) and expires after ``LINK_TTL`` seconds.
2. ``start``: the public start route opens the link (a forged, altered or expired one is refused),
   stores a fresh state bound to (tenant, ns, redirect_uri, reconnect, form values), and answers
   the provider's authorize URL. Form values that land in its host are host labels (D31).
3. ``complete``: the provider's redirect brings the state back. It is taken once; the code is
   exchanged, userDetails and registrationRequests run on an unsaved draft, and only a complete
   success is written. A tenant that already has the MiniApp is changed only by a reconnect link,
   and only when userDetails names the account it is connected to.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlencode, urlsplit, urlunsplit

from miniapp_sync.definition.model import Definition, Request
from miniapp_sync.errors import InstallationConflict, InstallationError, preview
from miniapp_sync.store import Installation
from miniapp_sync.templating import render

if TYPE_CHECKING:
    from miniapp_sync.installations.service import Installations

LINK_TTL: Final = 600.0  # seconds a start link can be used (D31a: 10 minutes)
STATE_TTL: Final = 600.0  # seconds between the start and the provider's redirect back
_LINK: Final = "oauth-start-link"  # the purpose its seal is keyed for
_MAX_TENANT: Final = 200


@dataclass(frozen=True)
class StartLink:
    """A signed OAuth start link for one tenant and MiniApp, and when it stops working."""

    url: str
    tenant: str
    ns: str
    reconnect: bool
    expires_at: float


class OAuthInstalls:
    """The OAuth 2.0 install flow of an ``Installations``."""

    def __init__(self, installations: Installations) -> None:
        self._installations = installations

    # --- 1. the operator's link ---------------------------------------------------------------

    def issue_link(
        self,
        definition: Definition,
        tenant: str,
        *,
        reconnect: bool = False,
        user_input: Mapping[str, Any] | None = None,
    ) -> StartLink:
        """Return a signed start link; refuse what its start would refuse, so the operator hears it first."""
        ns = self._flow(definition)
        form = _form(user_input)
        check_tenant(tenant)
        existing = self._existing(tenant, ns)
        if existing is not None and not reconnect:
            raise InstallationConflict(
                f"tenant {tenant!r} already has {ns!r} installed ({existing.status}); a new OAuth flow would replace "
                "its tokens, so it needs a reconnect link (--reconnect, or reconnect: true)"
            )
        if existing is None and reconnect:
            raise InstallationError(
                f"tenant {tenant!r} has no installation of {ns!r} to reconnect: ask for an install link"
            )
        self._authorize_url(definition, tenant, form, state="-")  # every placeholder resolves, every host is valid
        installations = self._installations
        now = installations.clock.now()
        token = installations.vault.seal(
            _LINK, {"tenant": tenant, "ns": ns, "reconnect": reconnect, "userInput": form}, now=now
        )
        url = f"{installations.public_url}/miniapps/{ns}/oauth2?{urlencode({'start': token})}"
        return StartLink(url, tenant, ns, reconnect, now + LINK_TTL)

    # --- 2. the public start route ------------------------------------------------------------

    def start(self, definition: Definition, token: str) -> str:
        """Open a start link (raise SealError when forged, altered or expired); return the authorize URL."""
        ns = self._flow(definition)
        installations = self._installations
        link = installations.vault.unseal(_LINK, token, now=installations.clock.now(), ttl=LINK_TTL)
        tenant, reconnect, form = str(link.get("tenant")), bool(link.get("reconnect")), _form(link.get("userInput"))
        if link.get("ns") != ns:
            raise InstallationError(f"this start link is for {link.get('ns')!r}, not {ns!r}: ask for a link for {ns!r}")
        if not reconnect and self._existing(tenant, ns) is not None:
            raise InstallationConflict(
                f"tenant {tenant!r} has installed {ns!r} since this link was issued; it needs a reconnect link"
            )
        state = secrets.token_urlsafe(24)
        authorize = self._authorize_url(definition, tenant, form, state)
        installations.store.put_oauth_state(
            state,
            tenant=tenant,
            ns=ns,
            expires_at=installations.clock.now() + STATE_TTL,
            redirect_uri=installations.redirect_uri(ns),
            reconnect=reconnect,
            user_input=form,
        )
        return authorize

    def _authorize_url(self, definition: Definition, tenant: str, form: Mapping[str, Any], state: str) -> str:
        auth = definition.auth
        assert auth is not None
        assert auth.auth_url is not None
        context = self._installations.context(definition, self._draft(tenant, definition, user_input=form))
        template = auth.auth_url if isinstance(auth.auth_url, Request) else Request(url=auth.auth_url)
        url = self._installations.egress.target(template.url, context, "auth.auth_url.url").url
        params = {k: str(v) for k, v in render(template.query_params, context, "auth.auth_url.queryParams").items()}
        parts = urlsplit(url)
        query = "&".join(q for q in (parts.query, urlencode({**params, "state": state})) if q)
        return urlunsplit(parts._replace(query=query))

    # --- 3. the provider's redirect back ------------------------------------------------------

    async def complete(self, definition: Definition, state: str, code: str) -> Installation:
        """Finish a flow: take the state once, exchange the code, connect; write only a complete success."""
        ns = self._flow(definition)
        installations = self._installations
        taken = installations.store.take_oauth_state(state)
        if taken is None:
            raise InstallationError("the OAuth state is unknown, expired or already used: start the install again")
        if taken.ns != ns:
            raise InstallationError("the OAuth state was issued for another MiniApp: start the install again")
        redirect_uri = installations.redirect_uri(ns)
        if taken.redirect_uri != redirect_uri:
            raise InstallationError(
                f"the OAuth state was issued for redirect_uri {taken.redirect_uri!r}, not {redirect_uri!r}: "
                "start the install again from a link of this server"
            )
        existing = self._existing(taken.tenant, ns)
        if existing is not None and not taken.reconnect:
            raise InstallationConflict(
                f"tenant {taken.tenant!r} already has {ns!r} installed and this flow was not a reconnect: "
                "nothing was changed"
            )
        auth = definition.auth
        assert auth is not None
        assert auth.get_token is not None
        draft = self._draft(
            taken.tenant,
            definition,
            credentials=installations.credentials(existing) if existing else {},
            metadata=existing.metadata if existing else {},
            user_input={**(existing.user_input if existing else {}), **taken.user_input},
        )
        result = await installations.send(
            definition, draft, auth.get_token, "auth.get_token", code=code, redirect_uri=redirect_uri
        )
        if "accessToken" not in result.persisted:
            raise InstallationError("auth.get_token: the token response mapped no accessToken; nothing was changed")
        bag = {**installations.credentials(draft), **result.persisted}
        draft = await installations.prepare(
            definition,
            dataclasses.replace(draft, credentials=installations.vault.encrypt(bag)),
            same_account_as=existing,
        )
        saved = installations.store.save_installation(
            taken.tenant,
            ns,
            credentials=draft.credentials,
            metadata=draft.metadata,
            user_input=draft.user_input,
            status="connected",
        )
        return saved

    # --- shared -------------------------------------------------------------------------------

    def _flow(self, definition: Definition) -> str:
        auth = definition.auth
        if auth is None or auth.type != "oauth2" or auth.auth_url is None or auth.get_token is None:
            raise InstallationError(
                f"{definition.ns!r} has no OAuth 2.0 flow: it needs auth.type 'oauth2', auth.auth_url, auth.get_token"
            )
        if not definition.ns:
            raise InstallationError("the definition has no 'ns': a sync-only fragment cannot be installed")
        return definition.ns

    def _existing(self, tenant: str, ns: str) -> Installation | None:
        found = self._installations.store.find_installation(tenant, ns)
        return None if found is None or found.status == "uninstalled" else found

    def _draft(
        self,
        tenant: str,
        definition: Definition,
        *,
        credentials: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        user_input: Mapping[str, Any] | None = None,
    ) -> Installation:
        # An installation that exists only in memory: requests run for it, nothing is stored.
        installations = self._installations
        now = installations.clock.now()
        return Installation(
            id="",
            tenant=tenant,
            ns=definition.ns or "",
            status="pending",
            credentials=installations.vault.encrypt(dict(credentials or {})),
            metadata=dict(metadata or {}),
            user_input=dict(user_input or {}),
            error=None,
            created_at=now,
            updated_at=now,
        )


def check_tenant(tenant: Any) -> None:
    if not isinstance(tenant, str) or not tenant.strip() or len(tenant) > _MAX_TENANT:
        raise InstallationError(f"tenant: expected a tenant id of 1–{_MAX_TENANT} characters, found {preview(tenant)}")
    if any(ord(c) < 32 or ord(c) == 127 for c in tenant):
        raise InstallationError(f"tenant: control characters are not allowed, found {preview(tenant)}")


def _form(values: Any) -> dict[str, Any]:
    """Return install-form values: an object of text, number or boolean values."""
    if values is None:
        return {}
    if not isinstance(values, Mapping):
        raise InstallationError(f"userInput: expected an object of install-form values, found {preview(values)}")
    for key, value in values.items():
        if not isinstance(key, str) or not isinstance(value, str | int | float | bool):
            raise InstallationError(f"userInput.{key}: expected text, a number or a boolean, found {preview(value)}")
    return dict(values)
