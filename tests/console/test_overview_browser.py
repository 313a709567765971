"""Every overview figure leads to exactly the rows it counts, in a real browser (issue 17).

The store holds what an operator meets on a bad day: a backlog in each of its states (waiting,
being processed, waiting for a retry), deliveries given up on, records a bulk run could not
write, refusals, installations in error. Most of it belongs to ``zid``, a MiniApp this server
does not serve, so its processor leaves those rows as they are while the test reads them.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from miniapp_sync.runtime import Runtime
from miniapp_sync.sandbox import SandboxConfig
from miniapp_sync.store import Inbox, InboxEntry

from .conftest import ADMIN, Served, log_in

playwright_sync = pytest.importorskip("playwright.sync_api")
expect = playwright_sync.expect
Page = playwright_sync.Page

ROWS = "main tbody tr:not(:has(td[colspan]))"  # a list's rows, not its "no … matches" line
FAR = 4102444800.0  # 2100-01-01: a retry that stays waiting while the test runs


def seed_more(runtime: Runtime, config: SandboxConfig) -> dict[str, Any]:
    """Add a backlog in every state, dead deliveries and record dead letters to the conftest's store."""
    store = runtime.store
    acme = next(i for i in store.list_installations("salla") if i.tenant == "acme")
    zid = store.save_installation("bazaar", "zid", credentials=b"", metadata={}, user_input={}, status="connected")
    inbox = Inbox(store)

    def entry(ns: str, installation: str, status: Any, error: str | None = None) -> InboxEntry:
        return InboxEntry(ns, installation, "order.created", None, status, b'{"event":"order.created"}', error)

    inbox.add(
        [
            entry("zid", zid.id, "pending"),
            entry("zid", zid.id, "pending"),
            entry("zid", zid.id, "processing"),
            entry("zid", zid.id, "pending"),  # this one is made to wait for a retry below
            entry("zid", zid.id, "failed", "the mapping rejected the record"),
            entry("salla", acme.id, "failed", "the mapping rejected the record"),
        ]
    )
    retry = max(r.id for r in inbox.list(limit=100) if r.ns == "zid" and r.status == "pending")
    inbox.retry_at(retry, FAR, "the provider answered 503")
    run = store.list_runs(acme.id, limit=1)[0]
    for code in ("p-1", "p-2"):
        store.add_dead_letter(
            acme.id, kind="record", source="products", payload={"id": code, "price": "ten"},
            reason="price: expected a number", run_id=run.id,
        )  # fmt: skip
    return {}


def test_every_overview_figure_leads_to_a_list_of_as_many_rows(console_page: Page, served: Served) -> None:
    page = console_page
    log_in(page, served, ADMIN)
    links = page.locator("#live a.figure")
    figures = [(links.nth(n).get_attribute("aria-label") or "", links.nth(n).get_attribute("href") or "")
               for n in range(links.count())]  # fmt: skip
    labels = [label for label, _ in figures]
    for expected in (
        "zid inbox backlog: 4", "zid dead deliveries: 1", "salla dead deliveries: 1",
        "salla record dead letters: 2", "salla rejected bad signature: 1", "salla installations error: 1",
    ):  # fmt: skip
        assert expected in labels, labels
    for label, href in figures:
        count = int(label.rsplit(": ", 1)[1])
        page.goto(served.url + href)
        expect(page.locator(ROWS), f"{label} → {href}").to_have_count(count)
    page.screenshot(path=str(served.artifacts / "overview-figures.png"), full_page=True)


def test_the_backlog_link_keeps_its_three_states_through_the_filter_form(console_page: Page, served: Served) -> None:
    page = console_page
    log_in(page, served, ADMIN)
    page.get_by_role("link", name="zid inbox backlog: 4").click()
    expect(page).to_have_url(re.compile(r"status=pending&status=processing&status=failed"))
    expect(page.locator("tr.delivery")).to_have_count(4)
    page.get_by_role("button", name="Filter").click()  # the form sends the three states again
    expect(page.locator("tr.delivery")).to_have_count(4)
    assert sorted(page.locator("select[name=status]").evaluate("s => [...s.selectedOptions].map(o => o.value)")) == [
        "failed", "pending", "processing",
    ]  # fmt: skip


def test_a_record_dead_letter_shows_its_reason_masked_payload_and_run(console_page: Page, served: Served) -> None:
    page = console_page
    log_in(page, served, ADMIN)
    page.get_by_role("link", name="salla record dead letters: 2").click()
    rows = page.locator("tr.dead-letter")
    expect(rows).to_have_count(2)
    rows.first.locator("a").click()
    facts = page.locator(".facts")
    expect(facts).to_contain_text("price: expected a number")
    expect(facts).to_contain_text("bulk run")
    expect(page.locator("pre")).to_contain_text('"ten"')
    facts.locator("a[href*='/runs/']").click()
    expect(page.get_by_role("heading", name=re.compile("^Run "))).to_be_visible()
