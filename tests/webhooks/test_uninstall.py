"""An uninstall takes effect at once in a running server, wherever it was made (issue 12 item 12)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.webhooks.conftest import KEY, Harness

from miniapp_sync.cli import main
from miniapp_sync.store import Inbox, InboxEntry, Store
from miniapp_sync.testing import FakeClock, temporary_database


async def test_item_12_uninstall_in_another_process_stops_webhooks_at_once_in_a_running_serve(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    installation = harness.install()
    first, second = harness.sandbox.data["orders"][:2]
    assert (await harness.send("order.created", first))[0] == 200  # the server now holds the installation
    store = harness.runtime.store.sqlite_path
    assert store is not None
    monkeypatch.setenv("MINIAPP_SYNC_SECRET_KEY", KEY["MINIAPP_SYNC_SECRET_KEY"])
    # The CLI is another process as far as the server knows: it shares only the database.
    assert main(["uninstall", "--tenant", "acme", "--ns", "salla", "--store", str(store)]) == 0
    capsys.readouterr()
    # No time passes on the server's clock: nothing it cached has expired.
    assert (await harness.send("order.created", second))[0] == 200  # a 2xx all the same: no resends
    await harness.process()
    kept, turned_away = harness.rows()
    assert (kept.installation_id, kept.status) == (installation.id, "done")
    assert (turned_away.installation_id, turned_away.status) == (None, "unmatched")
    assert turned_away.error == f"installation {installation.id} is uninstalled"
    assert harness.record(installation, "ecommerce:orders", second["id"]) is None
    assert harness.record(installation, "ecommerce:orders", first["id"]) is not None


async def test_a_reinstall_receives_webhooks_again(harness: Harness) -> None:
    installation = harness.install()
    harness.runtime.installations.uninstall(installation.id)
    assert (await harness.send("order.created"))[0] == 200
    again = harness.install()
    assert again.id == installation.id
    assert (await harness.send("order.created", harness.sandbox.data["orders"][0]))[0] == 200
    assert [r.status for r in harness.rows()] == ["unmatched", "pending"]


@pytest.fixture(scope="module")
def postgres_url(postgres_admin_url: str) -> Iterator[str]:
    with temporary_database(postgres_admin_url, "miniapp_sync_uninstall") as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    url = str(tmp_path / "store.sqlite") if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    with Store.open(url, clock=FakeClock()) as opened:
        yield opened


def test_the_inbox_keeps_deliveries_of_an_uninstalled_installation_as_unmatched(store: Store) -> None:
    tenant = f"t{len(store.list_installations())}"  # the PostgreSQL database is shared by the module
    live = store.save_installation(tenant, "salla", credentials=b"", metadata={}, user_input={}, status="connected")
    gone = store.save_installation(tenant, "zid", credentials=b"", metadata={}, user_input={}, status="connected")
    store.update_installation(gone.id, status="uninstalled")
    inbox = Inbox(store)
    entries = [
        InboxEntry("salla", live.id, "order.created", "k1", "pending", b"{}"),
        InboxEntry("zid", gone.id, "order.created", "k1", "pending", b"{}"),
        InboxEntry("zid", gone.id, "order.created", "k2", "ignored", b"{}", "no handler"),
    ]
    assert inbox.add(entries) == ["new", "new", "new"]
    rows = [r for r in inbox.list(limit=1000) if r.body == b"{}" and r.transaction_id in ("k1", "k2")][-3:]
    assert [(r.installation_id, r.status) for r in rows] == [
        (live.id, "pending"),
        (None, "unmatched"),
        (None, "unmatched"),
    ]
    assert rows[1].error == f"installation {gone.id} is uninstalled"
