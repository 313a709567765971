"""What ``/metrics`` and ``/readyz`` read from the store: backlog gauges and the schema's revision.

Read at scrape or probe time, a few aggregate queries: nothing on the write paths keeps them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import func, select, text

from miniapp_sync.errors import StoreError
from miniapp_sync.store.database import MIGRATIONS, Database
from miniapp_sync.store.tables import VERSION_TABLE, dead_letters, installations
from miniapp_sync.store.webhook_tables import webhook_inbox

UNPROCESSED = ("pending", "processing")  # a delivery still owed its handlers


@dataclass
class Gauges:
    """The store's figures a scrape reports, per MiniApp (never per tenant)."""

    rows: dict[str, int] = field(default_factory=dict)  # inbox rows by status
    backlog: dict[str, int] = field(default_factory=dict)  # ns → unprocessed deliveries
    oldest: dict[str, float] = field(default_factory=dict)  # ns → received_at of the oldest unprocessed one
    dead_letters: dict[tuple[str, str], int] = field(default_factory=dict)  # (ns, kind) → not yet replayed


def gauges(db: Database) -> Gauges:
    """Count inbox rows by state, the unprocessed backlog by MiniApp, and dead letters not replayed."""
    i, d, n = webhook_inbox.c, dead_letters.c, installations.c
    out = Gauges()
    with db.read("read the store's gauges") as conn:
        out.rows = {r[0]: int(r[1]) for r in conn.execute(select(i.status, func.count()).group_by(i.status))}
        query = select(i.ns, func.count(), func.min(i.received_at)).where(i.status.in_(UNPROCESSED)).group_by(i.ns)
        for ns, count, oldest in conn.execute(query):
            out.backlog[ns] = int(count)
            out.oldest[ns] = float(oldest)
        query = (
            select(n.ns, d.kind, func.count())
            .select_from(dead_letters.join(installations, d.installation_id == n.id))
            .where(d.replayed_at.is_(None))
            .group_by(n.ns, d.kind)
        )
        out.dead_letters = {(ns, kind): int(count) for ns, kind, count in conn.execute(query)}
    return out


def head_revision() -> str:
    """Return the revision this code's migrations end at."""
    # alembic (and mako, pygments under it) here, not at the top: every process that writes the
    # inbox imports this module through the webhook metrics, and only a probe reads the revision.
    from alembic.script import ScriptDirectory

    script = ScriptDirectory(str(MIGRATIONS))
    head = script.get_current_head()
    assert head is not None, "the store's migrations have no head"
    return head


def not_ready(db: Database) -> str | None:
    """Return why the store cannot serve (unreachable, or its schema not at this code's revision), or None."""
    from alembic.runtime.migration import MigrationContext

    try:
        with db.read("check the store") as conn:
            conn.execute(text("SELECT 1"))
            current = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()
    except StoreError as exc:
        return f"the store is not reachable: {exc}"
    head = head_revision()
    if current != head:
        return (
            f"the store's schema is at revision {current or 'none'}, this version needs {head}"
            " (hint: run `miniapp-sync db upgrade`)"
        )
    return None
