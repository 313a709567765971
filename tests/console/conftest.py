"""A real ``miniapp-sync serve`` with the console on, over a seeded SQLite store, against the bundled sandbox.

Also the browser's fixtures (Playwright driving Debian's Chromium), for every browser test module here.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from miniapp_sync.network import Rewrites
from miniapp_sync.runtime import Runtime, load_miniapp
from miniapp_sync.sandbox import Sandbox, SandboxConfig
from miniapp_sync.store import RecordWrite
from miniapp_sync.store.rejections import Rejection, Rejections
from miniapp_sync.testing import sandbox_thread
from miniapp_sync.views import record_id

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("MINIAPP_SYNC_CHROMIUM", "/usr/lib/chromium/chromium"))
REQUIRED = os.environ.get("MINIAPP_SYNC_BROWSER_TESTS") == "required"
EXAMPLE = ROOT / "examples" / "salla" / "definition.json5"
ADMIN = "console-admin-token-for-tests"
VIEWER = "console-viewer-token-for-tests"
KEY = "console tests key"
ERROR_TENANT = "متجر الرياض"  # Arabic: rendered right to left by dir="auto"


@dataclass
class Served:
    """The server's URL and what the store was seeded with."""

    url: str
    installation: str  # acme's salla installation (connected, real sandbox credentials)
    broken: str  # the error installation
    record: str  # the id of a product with a two-step history
    artifacts: Path
    log: Path
    sandbox: Sandbox  # to arm faults from a test (the provider fails, then recovers)
    extra: dict[str, Any] = field(default_factory=dict)  # what the module's ``seed_more`` stored


SeedMore = Callable[[Runtime, SandboxConfig], dict[str, Any]]


def seed(
    store_path: Path, sandbox_url: str, config: SandboxConfig, more: SeedMore | None = None
) -> tuple[str, str, str, dict[str, Any]]:
    """Store two installations, a record changed twice, and a refused delivery (and what ``more`` adds)."""
    rewrites = Rewrites({"https://api.salla.dev": sandbox_url, "https://accounts.salla.sa": sandbox_url})
    runtime = Runtime.open(str(store_path), environ={"MINIAPP_SYNC_SECRET_KEY": KEY}, rewrites=rewrites)
    try:
        runtime.add(load_miniapp(EXAMPLE))
        store, vault = runtime.store, runtime.installations.vault
        secrets = {"accessToken": config.access_token, "refreshToken": config.refresh_token, "spare": ""}
        acme = store.save_installation(
            "acme", "salla", credentials=vault.encrypt(secrets), metadata={"storeId": str(config.merchant_id)},
            user_input={}, status="connected",
        )  # fmt: skip
        broken = store.save_installation(
            ERROR_TENANT, "salla", credentials=vault.encrypt({"accessToken": "revoked-token-SECRET"}),
            metadata={}, user_input={}, status="connected",
        )  # fmt: skip
        store.update_installation(broken.id, status="error", error="the provider answered 401: token revoked")
        first = store.start_run(acme.id, "products")
        store.write_records(acme.id, "core:product", [RecordWrite("seed-1", {"name": "Old chair", "price": 10})],
                            source="bulk", run_id=first.id)  # fmt: skip
        store.finish_run(first.id, status="succeeded", stats={"products": {"fetched": 1}})
        second = store.start_run(acme.id, "products")
        store.write_records(acme.id, "core:product", [RecordWrite("seed-1", {"name": "كرسي", "price": 12})],
                            source="bulk", run_id=second.id)  # fmt: skip
        store.finish_run(second.id, status="succeeded", stats={"products": {"fetched": 1}})
        Rejections(store).add(
            Rejection("salla", "/miniapps/salla/webhooks", None, 401, "bad_signature", 10, None, {}, time.time())
        )
        extra = more(runtime, config) if more is not None else {}
        return acme.id, broken.id, record_id(acme.id, "core:product", "seed-1"), extra
    finally:
        runtime.close()


@contextlib.contextmanager
def serving(home: Path, definition: Path, sandbox_url: str, config: SandboxConfig, log: Path) -> Iterator[str]:
    """Run ``miniapp-sync serve`` of ``definition`` over ``home``'s store (both tokens set); yield its URL."""
    exe = Path(sys.executable).with_name("miniapp-sync")
    args = [
        str(exe), "serve", "-d", str(definition), "--store", str(home / "store.sqlite"), "--port", "0",
        "--rewrite", f"https://api.salla.dev={sandbox_url}", "--rewrite", f"https://accounts.salla.sa={sandbox_url}",
        "--config", "webhookSecret=env:SALLA_WEBHOOK_SECRET", "--config", f"client_id={config.client_id}",
        "--config", "client_secret=env:SALLA_CLIENT_SECRET",
    ]  # fmt: skip
    environ = {
        **os.environ, "MINIAPP_SYNC_SECRET_KEY": KEY, "MINIAPP_SYNC_ADMIN_TOKEN": ADMIN,
        "MINIAPP_SYNC_VIEWER_TOKEN": VIEWER, "SALLA_WEBHOOK_SECRET": config.webhook_secret,
        "SALLA_CLIENT_SECRET": config.client_secret, "COLUMNS": "200",
    }  # fmt: skip
    with log.open("wb") as out:
        server = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=environ, cwd=home)
    try:
        yield _announced(server, log)
    finally:
        server.terminate()
        server.wait(20)


def artifacts() -> Path:
    """Return the folder screenshots go to."""
    folder = ROOT / "test-artifacts" / "console"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Served]:
    """Run ``miniapp-sync serve`` (admin and viewer tokens set) until the module's tests are done.

    A test module may set ``SANDBOX`` (its provider's config) and ``seed_more(runtime, config)``
    (more to store before serve starts; what it returns is ``Served.extra``).
    """
    home = tmp_path_factory.mktemp("console")
    config = getattr(request.module, "SANDBOX", None) or SandboxConfig(products=12, customers=5, orders=5, carts=2)
    with sandbox_thread(config) as (sandbox, sandbox_url):
        installation, broken, record, extra = seed(
            home / "store.sqlite", sandbox_url, config, getattr(request.module, "seed_more", None)
        )
        log = home / "serve.log"
        with serving(home, EXAMPLE, sandbox_url, config, log) as url:
            yield Served(url, installation, broken, record, artifacts(), log, sandbox, extra)


def _announced(server: subprocess.Popen[bytes], log: Path) -> str:
    """Return the origin ``serve`` says it listens on (it picks a free port: --port 0)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # waiting for a process to start, not testing time
        found = re.search(r"on (http://127\.0\.0\.1:\d+)", log.read_text(errors="replace"))
        if found:
            return found[1]
        if server.poll() is not None:
            raise RuntimeError(f"serve exited with {server.returncode}:\n{log.read_text(errors='replace')}")
        time.sleep(0.05)
    raise RuntimeError(f"serve did not start within 60 s:\n{log.read_text(errors='replace')}")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


@dataclass
class Answer:
    status: int
    headers: Any
    text: str

    def cookie(self, name: str) -> str | None:
        """Return the value a Set-Cookie header gives ``name`` (None: not set)."""
        for header in self.headers.get_all("Set-Cookie") or []:
            key, _, rest = header.partition("=")
            if key == name:
                return rest.split(";", 1)[0]
        return None


class Client:
    """A plain HTTP client that keeps the console's cookie and does not follow redirects."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.cookies: dict[str, str] = {}
        self.opener = urllib.request.build_opener(_NoRedirect)

    def request(self, method: str, path: str, form: dict[str, str] | None = None, **headers: str) -> Answer:
        data = None if form is None else urllib.parse.urlencode(form).encode()
        if data is not None:
            headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        request = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)
        try:
            with self.opener.open(request, timeout=30) as response:
                answer = Answer(response.status, response.headers, response.read().decode())
        except urllib.error.HTTPError as exc:
            answer = Answer(exc.code, exc.headers, exc.read().decode())
        for header in answer.headers.get_all("Set-Cookie") or []:
            key, _, rest = header.partition("=")
            value = rest.split(";", 1)[0]
            if value and "Max-Age=0" not in header and "expires=Thu, 01 Jan 1970" not in header:
                self.cookies[key] = value
            else:
                self.cookies.pop(key, None)
        return answer

    def login(self, token: str) -> Answer:
        """Log in through the form, as a browser does."""
        form = self.request("GET", "/console/login")
        form_token = re.search(r'name="form" value="([^"]+)"', form.text)
        assert form_token, form.text
        return self.request("POST", "/console/login", {"form": form_token[1], "token": token, "next": "/console/"})

    def csrf(self, path: str = "/console/") -> str:
        """Return the CSRF token a page's forms carry."""
        found = re.search(r'name="csrf" value="([^"]+)"', self.request("GET", path).text)
        assert found
        return found[1]


# -- the browser ---------------------------------------------------------------------------------


# pytest-playwright's playwright, browser type and browser live for the whole session, and the sync
# API leaves its event loop set on this thread for as long: later async tests could not start theirs.
# Here they live for one module only (one browser for all its tests).
@pytest.fixture(scope="module")
def playwright() -> Iterator[Any]:
    with pytest.importorskip("playwright.sync_api").sync_playwright() as driver:
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
def console_page(page: Any, served: Served, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A page that collects console errors (a CSP violation is one) and saves a screenshot at the end."""
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    page.screenshot(path=str(served.artifacts / f"{request.node.name}.png"), full_page=True)
    assert errors == [], "the page logged errors"


def log_in(page: Any, served: Served, token: str, path: str = "/console/") -> None:
    """Open ``path``, be sent to the login form, log in with ``token`` and come back."""
    expect = pytest.importorskip("playwright.sync_api").expect
    page.goto(served.url + path)
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    page.get_by_label("Token").fill(token)
    page.get_by_role("button", name="Log in").click()
