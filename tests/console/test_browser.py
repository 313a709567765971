"""The console in a real browser (Debian's Chromium through Playwright), against a real ``serve`` (D40).

Skipped unless Chromium is installed; ``MINIAPP_SYNC_BROWSER_TESTS=required`` (set by ``.ci/run``)
turns the skip into a failure. Each test saves a full-page screenshot under test-artifacts/console/.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import ADMIN, ERROR_TENANT, VIEWER, Served

CHROMIUM = Path(os.environ.get("MINIAPP_SYNC_CHROMIUM", "/usr/lib/chromium/chromium"))
REQUIRED = os.environ.get("MINIAPP_SYNC_BROWSER_TESTS") == "required"

playwright_sync = pytest.importorskip("playwright.sync_api")
expect = playwright_sync.expect
Page = playwright_sync.Page


# pytest-playwright's playwright, browser type and browser live for the whole session, and the sync
# API leaves its event loop set on this thread for as long: later async tests could not start theirs.
# Here they live for this module only (one browser for all its tests).
@pytest.fixture(scope="module")
def playwright() -> Iterator[Any]:
    with playwright_sync.sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser_type(playwright: Any, browser_name: str) -> Any:
    return getattr(playwright, browser_name)


@pytest.fixture(scope="module")
def browser(browser_type: Any, browser_type_launch_args: dict[str, Any]) -> Iterator[Any]:
    launched = browser_type.launch(**browser_type_launch_args)
    yield launched
    launched.close()


@pytest.fixture(scope="module")
def browser_context_args() -> dict[str, Any]:
    return {"viewport": {"width": 1280, "height": 800}}  # the desktop width the console is laid out for


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    """Launch Debian's Chromium (Playwright cannot download its own here); as root, without its sandbox."""
    if not CHROMIUM.is_file():
        reason = (
            f"no Chromium at {CHROMIUM} (apt-get install chromium; or set MINIAPP_SYNC_CHROMIUM to the binary"
            " that `dpkg -L chromium` lists)"
        )
        if REQUIRED:
            pytest.fail(f"{reason}; browser tests are required (MINIAPP_SYNC_BROWSER_TESTS=required)")
        pytest.skip(f"{reason}; set MINIAPP_SYNC_BROWSER_TESTS=required to make this a failure")
    root = hasattr(os, "geteuid") and os.geteuid() == 0
    return {**browser_type_launch_args, "executable_path": str(CHROMIUM), "chromium_sandbox": not root}


@pytest.fixture
def console_page(page: Page, served: Served, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A page that collects console errors (a CSP violation is one) and saves a screenshot at the end."""
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    page.screenshot(path=str(served.artifacts / f"{request.node.name}.png"), full_page=True)
    assert errors == [], "the page logged errors"


def log_in(page: Page, served: Served, token: str, path: str = "/console/") -> None:
    page.goto(served.url + path)
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    page.get_by_label("Token").fill(token)
    page.get_by_role("button", name="Log in").click()


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
    expect(page.locator("pre")).to_contain_text('"fetched"')


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
