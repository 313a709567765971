"""OAuth states in the store: single-use, expiring, bound to what the start request asked (D31a)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import and_, delete, insert, update

from miniapp_sync.store.model import OAuthState
from miniapp_sync.store.rows import Rows
from miniapp_sync.store.tables import oauth_states


class OAuthStateRows(Rows):
    """The Store's OAuth states."""

    def put_oauth_state(
        self,
        state: str,
        *,
        tenant: str,
        ns: str,
        expires_at: float,
        redirect_uri: str | None = None,
        reconnect: bool = False,
        user_input: Mapping[str, Any] | None = None,
    ) -> None:
        """Remember an OAuth ``state`` for (tenant, ns) until ``expires_at``, with what it is bound to."""
        now = self._clock.now()
        values = {
            "state": state,
            "tenant": tenant,
            "ns": ns,
            "created_at": now,
            "expires_at": expires_at,
            "redirect_uri": redirect_uri,
            "reconnect": reconnect,
            "user_input": dict(user_input or {}),
        }
        with self._db.write("save an OAuth state") as conn:
            # Expired states can never be taken again; dropping them here keeps the table small.
            conn.execute(delete(oauth_states).where(oauth_states.c.expires_at <= now))
            conn.execute(insert(oauth_states).values(values))

    def take_oauth_state(self, state: str) -> OAuthState | None:
        """Return a live ``state`` and mark it used; None when unknown, expired or used."""
        o = oauth_states.c
        now = self._clock.now()
        # One conditional UPDATE: of two concurrent callbacks with the same state, only one matches.
        stmt = (
            update(oauth_states)
            .where(and_(o.state == state, o.used_at.is_(None), o.expires_at > now))
            .values(used_at=now)
            .returning(o.tenant, o.ns, o.redirect_uri, o.reconnect, o.user_input)
        )
        with self._db.write("take an OAuth state") as conn:
            row = conn.execute(stmt).first()
        if row is None:
            return None
        return OAuthState(row[0], row[1], row[2], bool(row[3]), dict(row[4] or {}))
