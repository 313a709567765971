"""Installations in the store: a MiniApp installed for a tenant, saved, found, listed and changed."""

from __future__ import annotations

import uuid
from types import EllipsisType
from typing import Any

from sqlalchemy import select

from miniapp_sync.store import dialects
from miniapp_sync.store.model import INSTALLATION_STATUSES, Installation, InstallationStatus, check_allowed
from miniapp_sync.store.rows import Rows, from_row
from miniapp_sync.store.tables import installations


class InstallationRows(Rows):
    """The Store's installations."""

    def save_installation(
        self,
        tenant: str,
        ns: str,
        *,
        credentials: bytes,
        metadata: dict[str, Any],
        user_input: dict[str, Any],
        status: InstallationStatus = "pending",
    ) -> Installation:
        """Insert the installation of ``ns`` for ``tenant``, or replace its credentials, metadata and input."""
        check_allowed(status, INSTALLATION_STATUSES, "installation status")
        now = self._clock.now()
        values = {"credentials": credentials, "metadata": metadata, "user_input": user_input, "status": status}
        stmt = dialects.insert(self._db.dialect, installations).values(
            id=uuid.uuid4().hex, tenant=tenant, ns=ns, error=None, created_at=now, updated_at=now, **values
        )
        # A re-install starts clean: the previous error no longer applies.
        stmt = stmt.on_conflict_do_update(
            index_elements=[installations.c.tenant, installations.c.ns],
            set_={**values, "error": None, "updated_at": now},
        )
        with self._db.write(f"save the installation of {ns!r} for tenant {tenant!r}") as conn:
            conn.execute(stmt)
            row = conn.execute(
                select(installations).where(installations.c.tenant == tenant, installations.c.ns == ns)
            ).one()
        return from_row(Installation, row)

    def get_installation(self, id: str) -> Installation | None:
        """Return the installation with this id, or None."""
        with self._db.read("read an installation") as conn:
            row = conn.execute(select(installations).where(installations.c.id == id)).first()
        return None if row is None else from_row(Installation, row)

    def find_installation(self, tenant: str, ns: str) -> Installation | None:
        """Return the installation of ``ns`` for ``tenant``, or None."""
        query = select(installations).where(installations.c.tenant == tenant, installations.c.ns == ns)
        with self._db.read("find an installation") as conn:
            row = conn.execute(query).first()
        return None if row is None else from_row(Installation, row)

    def list_installations(self, ns: str | None = None) -> list[Installation]:
        """Return every installation (of ``ns`` when given), ordered by tenant and ns."""
        query = select(installations).order_by(installations.c.tenant, installations.c.ns)
        if ns is not None:
            query = query.where(installations.c.ns == ns)
        with self._db.read("list installations") as conn:
            return [from_row(Installation, row) for row in conn.execute(query)]

    def update_installation(
        self,
        id: str,
        *,
        status: InstallationStatus | None = None,
        error: str | EllipsisType | None = ...,
        credentials: bytes | None = None,
        metadata: dict[str, Any] | None = None,
        user_input: dict[str, Any] | None = None,
        paused_at: float | EllipsisType | None = ...,
    ) -> Installation:
        """Change the given fields of an installation (``error=None`` clears it, ``paused_at=None`` resumes it)."""
        values: dict[str, Any] = {"updated_at": self._clock.now()}
        if status is not None:
            check_allowed(status, INSTALLATION_STATUSES, "installation status")
            values["status"] = status
        if error is not ...:
            values["error"] = error
        if paused_at is not ...:
            values["paused_at"] = paused_at
        for name, value in (("credentials", credentials), ("metadata", metadata), ("user_input", user_input)):
            if value is not None:
                values[name] = value
        row = self._update_one(installations, id, values, f"update installation {id!r}", "installation")
        return from_row(Installation, row)
