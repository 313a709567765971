"""The console in a real browser (Debian's Chromium through Playwright), against a real ``serve`` (D40).

Skipped unless Chromium is installed; ``MINIAPP_SYNC_BROWSER_TESTS=required`` (set by ``.ci/run``)
turns the skip into a failure. Each test saves a full-page screenshot under test-artifacts/console/.
"""

from __future__ import annotations

import re

import pytest

from .conftest import ADMIN, ERROR_TENANT, VIEWER, Served, log_in

playwright_sync = pytest.importorskip("playwright.sync_api")
expect = playwright_sync.expect
Page = playwright_sync.Page


def test_log_in_and_the_overview_figures_lead_to_their_filtered_list(console_page: Page, served: Served) -> None:
    page = console_page
    log_in(page, served, ADMIN)
    expect(page.get_by_role("heading", name="Overview", exact=True)).to_be_visible()
    response = page.request.get(served.url + "/console/")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    page.get_by_role("link", name="salla installations error: 1").click()
    expect(page).to_have_url(re.compile(r"/console/installations\?ns=salla&status=error$"))
    rows = page.locator("tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(ERROR_TENANT)
    expect(rows.first).to_contain_text("error")
    assert rows.first.locator("[dir=auto]").first.evaluate("e => getComputedStyle(e).direction") == "rtl"
    page.get_by_role("link", name="Overview").click()
    page.get_by_role("link", name="salla installations connected: 1").click()
    expect(page.locator("tbody tr")).to_have_count(1)
    expect(page.locator("tbody tr").first).to_contain_text("acme")


def test_sync_now_from_an_installation_and_watch_the_run_succeed(console_page: Page, served: Served) -> None:
    page = console_page
    log_in(page, served, ADMIN, f"/console/installations/{served.installation}")
    expect(page.get_by_role("heading", name=re.compile("acme"))).to_be_visible()
    page.get_by_label("Resource").select_option("products")
    page.get_by_role("button", name="Sync now").click()
    job = page.locator("#jobs tr.job")
    expect(job).to_have_count(1)
    # The page polls every few seconds: the run appears, then reaches its end.
    expect(job.locator(".status-succeeded")).to_be_visible(timeout=60_000)
    page.locator("#jobs a").first.click()
    expect(page.get_by_role("heading", name=re.compile("^Run "))).to_be_visible()
    expect(page.locator(".facts")).to_contain_text("succeeded")
    figures = page.locator("tr.resource")
    expect(figures).to_have_count(1)
    expect(figures.first.locator("td").nth(1)).to_have_text("12")  # fetched: every sandbox product


def test_pause_stops_the_polling_and_resume_starts_it_again(console_page: Page, served: Served) -> None:
    page = console_page
    log_in(page, served, VIEWER)
    pause = page.get_by_role("button", name="Pause updates")
    pause.click()
    expect(page.get_by_role("button", name="Resume updates")).to_have_attribute("aria-pressed", "true")
    polls: list[str] = []
    page.on("request", lambda r: polls.append(r.url) if r.headers.get("hx-request") else None)
    page.get_by_role("button", name="Resume updates").click()
    with page.expect_request(lambda r: r.headers.get("hx-request") == "true", timeout=15_000):
        pass
    assert polls


def test_look_a_record_up_by_code_and_read_its_timeline(console_page: Page, served: Served) -> None:
    page = console_page
    log_in(page, served, VIEWER, "/console/records")
    page.get_by_label("Tenant").select_option("acme")
    page.get_by_label("Code").fill("seed-1")
    page.get_by_role("button", name="Look up").click()
    page.get_by_role("link", name="seed-1").click()
    expect(page).to_have_url(re.compile(f"/console/records/{served.record}$"))
    expect(page.locator("pre").first).to_contain_text("كرسي")
    changes = page.locator("li.change")
    expect(changes).to_have_count(2)
    newest = changes.first
    expect(newest).to_contain_text("updated")
    name = newest.locator("tr", has_text="name")
    expect(name).to_contain_text("Old chair")
    expect(name).to_contain_text("كرسي")
    expect(newest.get_by_role("link")).to_have_count(1)  # the bulk run that changed it


def test_a_viewer_sees_no_action_and_a_forged_post_is_refused(console_page: Page, served: Served) -> None:
    page = console_page
    log_in(page, served, VIEWER, f"/console/installations/{served.installation}")
    expect(page.get_by_text("viewer (read-only)")).to_be_visible()
    expect(page.get_by_role("button", name="Sync now")).to_have_count(0)
    expect(page.get_by_role("button", name=re.compile("Reconnect"))).to_have_count(0)
    csrf = page.locator("input[name=csrf]").first.input_value()
    answer = page.request.post(
        f"{served.url}/console/installations/{served.installation}/sync", form={"csrf": csrf, "resource": ""}
    )
    assert answer.status == 403


def test_a_post_without_or_with_a_wrong_csrf_token_is_refused(console_page: Page, served: Served) -> None:
    page = console_page
    log_in(page, served, ADMIN, f"/console/installations/{served.installation}")
    expect(page.get_by_role("button", name="Sync now")).to_be_visible()
    url = f"{served.url}/console/installations/{served.installation}/sync"
    assert page.request.post(url, form={"resource": "products"}).status == 403
    assert page.request.post(url, form={"resource": "products", "csrf": "wrong"}).status == 403


def test_logout_ends_the_session(console_page: Page, served: Served) -> None:
    page = console_page
    log_in(page, served, ADMIN)
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    page.goto(f"{served.url}/console/installations")
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()


def test_the_overview_fits_a_phone(console_page: Page, served: Served) -> None:
    page = console_page
    page.set_viewport_size({"width": 390, "height": 844})
    log_in(page, served, VIEWER)
    expect(page.get_by_role("heading", name="Overview", exact=True)).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
