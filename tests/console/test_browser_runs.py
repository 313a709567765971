"""The runs pages and the installation actions in a real browser, against a real ``serve`` and sandbox (D40).

Each test saves a full-page screenshot under test-artifacts/console/. The sandbox answers at most
two records a page here, so a sync has pages to watch; faults are armed from the test.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from miniapp_sync.runtime import Runtime
from miniapp_sync.sandbox import SandboxConfig

from .conftest import ADMIN, ERROR_TENANT, VIEWER, Served, log_in

playwright_sync = pytest.importorskip("playwright.sync_api")
expect = playwright_sync.expect
Page = playwright_sync.Page

SANDBOX = SandboxConfig(products=4, customers=5, orders=5, carts=2, per_page_max=2)
LEAVING = "leaving-store"
REVOKED = "the provider answered 401: token revoked"


def seed_more(runtime: Runtime, config: SandboxConfig) -> dict[str, Any]:
    """A tenant to uninstall, and a failed run of the error tenant this morning (with its page and URL)."""
    store, vault = runtime.store, runtime.installations.vault
    leaving = store.save_installation(
        LEAVING, "salla", credentials=vault.encrypt({"accessToken": config.access_token}), metadata={},
        user_input={}, status="connected",
    )  # fmt: skip
    (broken,) = [i for i in store.list_installations("salla") if i.tenant == ERROR_TENANT]
    run = store.start_run(broken.id, "products")
    url = "https://api.salla.dev/admin/v2/products?page=1&per_page=60"
    failure = {"page": 1, "url": url, "status": 401, "message": REVOKED}
    store.finish_run(run.id, status="failed", stats={"products": {"failure": failure}}, error=f"products: {REVOKED}")
    return {"leaving": leaving.id, "failed": run.id}


def sync_now(page: Page, resource: str) -> str:
    """Press "sync now" for one resource on an installation page; return the id of the run its job started."""
    page.get_by_label("Resource").select_option(resource)
    page.get_by_role("button", name="Sync now").click()
    link = page.locator("#jobs tr.job a")
    expect(link).to_have_count(1, timeout=30_000)  # the page polls until a worker starts the job
    return link.first.inner_text()


def test_a_sync_from_the_console_shows_live_progress_on_the_runs_page_until_it_succeeds(
    console_page: Page, served: Served
) -> None:
    page = console_page
    served.sandbox.hang_next(1, 0.0, path_prefix="/customers")  # page 1 at once
    served.sandbox.hang_next(1, 6.0, path_prefix="/customers")  # page 2 held: the run is seen mid-way
    log_in(page, served, ADMIN, f"/console/installations/{served.installation}")
    run_id = sync_now(page, "customers")
    page.get_by_role("link", name="all of this installation's runs →").click()
    expect(page).to_have_url(re.compile(r"/console/runs\?tenant=acme&ns=salla$"))
    page.get_by_label("Resource").select_option("customers")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"resource=customers"))
    row = page.locator("tr.run", has=page.get_by_role("link", name=run_id))
    expect(row.locator(".status-running")).to_be_visible()
    expect(row.locator(".progress")).to_contain_text("2 records · 1 pages")  # page 1 written, page 2 held
    # The list polls every few seconds: the same row reaches its end without a reload.
    expect(row.locator(".status-succeeded")).to_be_visible(timeout=60_000)
    expect(row.locator(".progress")).to_contain_text("5 records · 3 pages")
    row.get_by_role("link", name=run_id).click()
    figures = page.locator("tr.resource")
    expect(figures).to_have_count(1)
    expect(figures.first.locator("td").nth(0)).to_have_text("customers")
    expect(figures.first.locator("td").nth(1)).to_have_text("5")  # fetched
    expect(page.locator("table.checkpoints")).to_contain_text("customers")


def test_a_failing_resource_shows_its_error_and_its_retry_succeeds_once_the_fault_clears(
    console_page: Page, served: Served
) -> None:
    page = console_page
    served.sandbox.fail_next(100, status=503, retry_after="0", path_prefix="/orders")  # an outage of orders
    log_in(page, served, ADMIN, f"/console/installations/{served.installation}")
    failed = sync_now(page, "orders")
    job = page.locator("#jobs tr.job")
    expect(job.locator(".status-failed")).to_be_visible(timeout=60_000)
    page.locator("#jobs").get_by_role("link", name=failed).click()
    expect(page.locator(".facts")).to_contain_text("failed")
    error = page.locator("table.errors tr.error")
    expect(error).to_have_count(1)
    expect(error.locator("td").nth(0)).to_have_text("orders")
    expect(error.locator("td").nth(1)).to_have_text("1")  # the page
    expect(error.locator("td").nth(2)).to_have_text("503")
    expect(error.locator("code.url")).to_contain_text("/admin/v2/orders?")
    expect(error).to_contain_text("after 5 attempts")
    assert served.sandbox.config.access_token not in page.content()  # the URL is redacted (D30)
    served.sandbox.clear_faults()
    page.get_by_role("button", name="Retry").click()
    expect(page).to_have_url(re.compile(rf"/console/runs/{failed}\?job="))
    retried = page.locator("#jobs tr.job")
    expect(retried.locator(".status-succeeded")).to_be_visible(timeout=60_000)
    retried.get_by_role("link").click()
    expect(page.locator(".facts")).to_contain_text("succeeded")
    expect(page.locator("table.errors")).to_have_count(0)
    expect(page.locator("tr.resource").first.locator("td").nth(1)).to_have_text("5")


def test_pause_and_resume_an_installations_schedules(console_page: Page, served: Served) -> None:
    page = console_page
    log_in(page, served, ADMIN, f"/console/installations/{served.installation}")
    page.get_by_role("button", name="Pause schedules").click()
    expect(page.get_by_text("schedules paused")).to_be_visible()
    expect(page.get_by_role("button", name="Pause schedules")).to_have_count(0)
    page.get_by_role("button", name="Resume schedules").click()
    expect(page.get_by_text("schedules paused")).to_have_count(0)
    expect(page.get_by_role("button", name="Pause schedules")).to_be_visible()


def test_uninstall_asks_for_the_tenants_name_first(console_page: Page, served: Served) -> None:
    page = console_page
    leaving = served.extra["leaving"]
    log_in(page, served, ADMIN, f"/console/installations/{leaving}")
    page.get_by_role("link", name="Uninstall…").click()
    expect(page.get_by_role("heading", name=re.compile(f"Uninstall {LEAVING}"))).to_be_visible()
    page.get_by_label(re.compile("Type the tenant's name")).fill("acme")  # not this one
    page.get_by_role("button", name=f"Uninstall {LEAVING}").click()
    expect(page.get_by_role("alert")).to_contain_text(f"type the tenant's name exactly ({LEAVING})")
    expect(page.locator("h1 + p .status").first).to_have_text("connected")  # nothing changed
    page.get_by_label(re.compile("Type the tenant's name")).fill(LEAVING)
    page.get_by_role("button", name=f"Uninstall {LEAVING}").click()
    expect(page).to_have_url(re.compile(f"/console/installations/{leaving}$"))
    expect(page.locator("h1 + p .status").first).to_have_text("uninstalled")
    expect(page.get_by_role("link", name="Uninstall…")).to_have_count(0)


def test_a_viewer_sees_none_of_the_actions_and_a_forged_post_gets_403(console_page: Page, served: Served) -> None:
    page = console_page
    log_in(page, served, VIEWER, f"/console/runs/{served.extra['failed']}")
    expect(page.locator(".facts")).to_contain_text("failed")
    expect(page.get_by_role("button", name="Retry")).to_have_count(0)
    page.goto(f"{served.url}/console/installations/{served.installation}")
    for name in ("Sync now", "Pause schedules", "Resume schedules"):
        expect(page.get_by_role("button", name=name)).to_have_count(0)
    expect(page.get_by_role("link", name="Uninstall…")).to_have_count(0)
    csrf = page.locator("input[name=csrf]").first.input_value()  # the viewer's own token: the role still refuses
    base = f"{served.url}/console/installations/{served.installation}"
    for url, form in [
        (f"{base}/pause", {}),
        (f"{base}/resume", {}),
        (f"{base}/uninstall", {"tenant": "acme"}),
        (f"{base}/sync", {"resource": "products", "full": "true"}),
        (f"{served.url}/console/runs/{served.extra['failed']}/retry", {}),
    ]:
        answer = page.request.post(url, form={"csrf": csrf, **form})
        assert answer.status == 403, url
        assert "read-only" in answer.text()
    confirmation = page.request.get(f"{base}/uninstall")
    assert confirmation.status == 403
    assert "Not allowed" in confirmation.text()
    page.goto(base)
    expect(page.locator("h1 + p .status").first).to_have_text("connected")


def test_which_tenants_syncs_failed_today_and_why_from_the_console_alone(console_page: Page, served: Served) -> None:
    page = console_page
    log_in(page, served, VIEWER)
    cards = page.locator(".card")
    expect(cards.first).to_be_visible()
    # At 1280 px every figure stays inside its card: the columns wrap instead of overflowing.
    assert cards.evaluate_all("cs => cs.every(c => c.scrollWidth <= c.clientWidth)")
    page.get_by_role("link", name=re.compile(r"^salla runs failed: \d+$")).click()  # 1 click
    expect(page).to_have_url(re.compile(r"/console/runs\?ns=salla&status=failed&since=24h$"))
    expect(page.get_by_label("Status")).to_have_value("failed")
    expect(page.get_by_label(re.compile("Started since"))).to_have_value("24h")
    row = page.locator("tr.run", has_text=ERROR_TENANT)
    expect(row).to_have_count(1)
    expect(row.locator(".status-failed")).to_be_visible()
    expect(row.locator(".error")).to_contain_text(f"products, page 1: {REVOKED}")  # why, on the list
    row.get_by_role("link", name=served.extra["failed"]).click()  # 2 clicks: the whole error
    error = page.locator("table.errors tr.error")
    expect(error.locator("td").nth(2)).to_have_text("401")
    expect(error.locator("code.url")).to_have_text("https://api.salla.dev/admin/v2/products?page=1&per_page=60")
    expect(page.locator(".facts")).to_contain_text(ERROR_TENANT)
