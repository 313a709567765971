"""Deliveries in the console, in a real browser: refused, parked, replayed after the fix, assigned (issue 16).

One ``serve`` first runs a definition whose ``order.created`` mapping rejects every order, and
receives: a forged delivery, an order (dead-lettered), a delivery for no known store (unmatched),
one whose body and headers carry markup, and two product updates (a record with a webhook
history). Then ``serve`` restarts with the fixed definition over the same store: the tests find
all that from the console and act on it, as an operator would.
"""

from __future__ import annotations

import copy
import json
import re
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import pytest

from miniapp_sync.definition.loader import load_file
from miniapp_sync.runtime import Runtime, load_miniapp
from miniapp_sync.sandbox import SandboxConfig
from miniapp_sync.sandbox.webhooks import sign
from miniapp_sync.store import Inbox, Outbox
from miniapp_sync.testing import sandbox_thread
from miniapp_sync.views import record_id
from miniapp_sync.webhooks.delivery import seal

from .conftest import ADMIN, EXAMPLE, KEY, VIEWER, Client, Served, artifacts, log_in, serving

playwright_sync = pytest.importorskip("playwright.sync_api")
expect = playwright_sync.expect
Page = playwright_sync.Page

MARKUP = '<script>document.title="pwned"</script>"><img src=x onerror="document.title=\'pwned\'">'
STRANGER = 424242  # a merchant no installation has


class Subscriber(BaseHTTPRequestHandler):
    """A trigger subscriber on 127.0.0.1 that takes every event and remembers it."""

    received: list[dict[str, Any]]

    def do_POST(self) -> None:
        self.received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass


def _definitions(home: Path) -> tuple[Path, Path]:
    """Write the example definition twice: as is (fixed), and with an order.created code read from nowhere."""
    document, _ = load_file(EXAMPLE)
    fixed = home / "fixed.json"
    fixed.write_text(json.dumps(document))
    broken_document = copy.deepcopy(document)
    broken_document["sync"]["webhooks"]["handlers"]["order.created"]["mapping"]["code"] = "$.data.nope"
    broken = home / "broken.json"
    broken.write_text(json.dumps(broken_document))
    return broken, fixed


def _post(url: str, raw: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=raw, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def _ask_sandbox(sandbox_url: str, **ask: Any) -> dict[str, Any]:
    """Have the sandbox store send a signed delivery (POST /sandbox/webhooks); return what it says."""
    request = urllib.request.Request(f"{sandbox_url}/sandbox/webhooks", data=orjson.dumps(ask), method="POST")
    with urllib.request.urlopen(request, timeout=30) as answer:
        said: dict[str, Any] = orjson.loads(answer.read())
    assert said["status"] == 200, said
    return said


def _settled(store: Path) -> None:
    """Wait until serve has processed what it received (nothing pending or processing)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # waiting for serve's queue, not testing time
        runtime = Runtime.open(str(store), environ={"MINIAPP_SYNC_SECRET_KEY": KEY})
        try:
            if not [r for r in Inbox(runtime.store).list(limit=1000) if r.status in ("pending", "processing")]:
                return
        finally:
            runtime.close()
        time.sleep(0.1)
    raise AssertionError("serve did not process its deliveries within 60 s")


def _give_up_one(store: Path) -> int:
    """Record the first trigger delivery as given up on (as eight refused POSTs would have); return its event id."""
    runtime = Runtime.open(str(store), environ={"MINIAPP_SYNC_SECRET_KEY": KEY})
    try:
        outbox = Outbox(runtime.store)
        first = outbox.deliveries()[0]
        error = "gave up after 8 attempts; last: the subscriber answered 503"
        outbox.settle(first.event_id, first.subscription_id, status="failed", error=error)
        return first.event_id
    finally:
        runtime.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    home = tmp_path_factory.mktemp("deliveries")
    config = SandboxConfig(products=3, customers=3, orders=3, carts=1)
    Subscriber.received = []
    hooks = ThreadingHTTPServer(("127.0.0.1", 0), Subscriber)
    threading.Thread(target=hooks.serve_forever, daemon=True).start()
    broken, fixed = _definitions(home)
    with sandbox_thread(config) as (sandbox, sandbox_url):
        runtime = Runtime.open(str(home / "store.sqlite"), environ={"MINIAPP_SYNC_SECRET_KEY": KEY})
        try:
            runtime.add(load_miniapp(fixed))
            vault = runtime.installations.vault
            acme = runtime.store.save_installation(
                "acme", "salla", credentials=vault.encrypt({"accessToken": config.access_token}),
                metadata={"storeId": str(config.merchant_id)}, user_input={}, status="connected",
            )  # fmt: skip
            hook = f"http://127.0.0.1:{hooks.server_address[1]}/hooks"
            Outbox(runtime.store).subscribe("acme", "salla", hook, seal(vault, "subscriber secret"))
        finally:
            runtime.close()
        product = sandbox.data["products"][0]
        with serving(home, broken, sandbox_url, config, home / "broken.log") as url:
            to = f"{url}/miniapps/salla/webhooks"
            raw, headers = sandbox.webhook("order.status.updated")
            assert _post(to, raw, {**headers, "X-Salla-Signature": "f" * 64, "User-Agent": MARKUP}) == 401  # forged
            order = _ask_sandbox(sandbox_url, event="order.created", to=to)  # dead-lettered: its code is nowhere
            stranger = orjson.dumps({**orjson.loads(raw), "merchant": STRANGER})
            signed = {**headers, "X-Salla-Signature": sign(config.webhook_secret, stranger)}
            assert _post(to, stranger, signed) == 200  # verifies with the app's secret, for no known store
            marked = orjson.loads(raw)
            marked["data"]["notes"] = MARKUP
            body = orjson.dumps({**marked, "merchant": STRANGER})
            assert _post(to, body, {**headers, "X-Salla-Signature": sign(config.webhook_secret, body)}) == 200
            for sku in ("SKU-BEFORE", "SKU-AFTER"):
                _ask_sandbox(sandbox_url, event="product.updated", to=to, id=product["id"], changes={"sku": sku})
            _settled(home / "store.sqlite")
        given_up = _give_up_one(home / "store.sqlite")
        record = record_id(acme.id, "core:product", str(product["id"]))
        log = home / "fixed.log"
        with serving(home, fixed, sandbox_url, config, log) as url:
            extra = {
                "order": str(order["id"]), "product": str(product["id"]), "received": Subscriber.received,
                "given_up": given_up,
            }  # fmt: skip
            yield Served(url, acme.id, "", record, artifacts(), log, sandbox, extra)
    hooks.shutdown()
    hooks.server_close()


def test_a_forged_delivery_shows_why_it_was_refused(console_page: Page, served: Served) -> None:
    page = console_page
    log_in(page, served, VIEWER)
    page.get_by_role("link", name="salla rejected bad signature: 1").click()
    expect(page).to_have_url(f"{served.url}/console/deliveries?ns=salla&status=rejected&reason=bad_signature")
    rows = page.locator("tr.delivery")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("bad signature")
    rows.first.get_by_role("link").first.click()
    facts = page.locator(".facts")
    expect(facts).to_contain_text("rejected")
    expect(facts).to_contain_text("bad signature")
    expect(facts).to_contain_text("signature does not verify")
    expect(page.get_by_text("Not kept")).to_be_visible()  # a refusal keeps no body (D24a)
    expect(page.locator("tr", has_text="x-salla-signature")).to_contain_text("[redacted]")


def test_question_2_parked_webhooks_are_replayed_after_the_fix_and_fire_once(
    console_page: Page, served: Served
) -> None:
    """'Which webhooks were refused or parked, and can I replay them?' — from the overview, in a few clicks."""
    page = console_page
    received: list[dict[str, Any]] = served.extra["received"]
    log_in(page, served, ADMIN)
    page.get_by_role("link", name="salla dead deliveries: 1").click()
    rows = page.locator("tr.delivery")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("order.created")
    expect(rows.first).to_contain_text("rejected the record")
    page.get_by_role("button", name="Replay all matching…").click()
    expect(page.get_by_role("heading", name="Replay 1 delivery?")).to_be_visible()
    expect(page.locator(".facts").first).to_contain_text("order.created")
    expect(page.locator(".definition")).to_contain_text("version 1.0.0")
    assert not [e for e in received if e["event"] == "order.created"]  # a preview changes nothing
    page.get_by_role("button", name="Replay 1 now").click()
    expect(page.get_by_role("heading", name="Replay")).to_be_visible()
    expect(page.locator(".replay-status .status-done")).to_be_visible(timeout=60_000)  # the page polls its job
    expect(page.locator(".outcome")).to_contain_text("1 processed, 0 failed")
    page.locator("tbody a").first.click()
    expect(page.locator(".facts")).to_contain_text("processed")
    fired = page.locator("tr.fired")
    expect(fired).to_have_count(1)
    expect(fired).to_contain_text("order.created")
    expect(page.locator("tr.written")).to_have_count(1)
    expect(fired.locator(".status-delivered")).to_be_visible(timeout=60_000)
    assert [e["event"] for e in received].count("order.created") == 1  # its trigger event, once
    page.goto(f"{served.url}/console/deliveries?status=dead")
    expect(page.locator("tr.delivery")).to_have_count(0)


def test_assign_an_unmatched_delivery_to_an_installation(console_page: Page, served: Served) -> None:
    page = console_page
    log_in(page, served, ADMIN, "/console/deliveries?status=unmatched")
    rows = page.locator("tr.delivery")
    expect(rows).to_have_count(2)
    rows.last.get_by_role("link").first.click()  # the older: the plain one (the newer holds markup)
    expect(page.locator(".facts")).to_contain_text("unmatched")
    page.get_by_label("Installation").select_option(label="acme (connected)")
    page.get_by_role("button", name="Assign and process").click()
    expect(page.locator(".facts .status").first).not_to_have_text("unmatched")
    expect(page.locator(".facts")).to_contain_text("acme")
    expect(page.locator(".facts .status-processed")).to_be_visible(timeout=60_000)


def test_a_viewer_sees_no_action_and_a_forged_post_is_refused(console_page: Page, served: Served) -> None:
    page = console_page
    log_in(page, served, VIEWER, "/console/deliveries")
    expect(page.locator("tr.delivery").first).to_be_visible()
    expect(page.get_by_role("button", name="Replay selected…")).to_have_count(0)
    expect(page.get_by_role("button", name="Replay all matching…")).to_have_count(0)
    expect(page.locator("input[type=checkbox]")).to_have_count(0)
    page.goto(f"{served.url}/console/deliveries?status=unmatched")
    page.locator("tr.delivery a").first.click()
    expect(page.get_by_role("button", name="Assign and process")).to_have_count(0)
    delivery = page.url.rsplit("/", 1)[1]
    csrf = page.locator("input[name=csrf]").first.input_value()
    forged = {"csrf": csrf, "scope": "filter", "status": "dead", "confirm": "yes"}
    assert page.request.post(f"{served.url}/console/deliveries/replay", form=forged).status == 403
    assign = {"csrf": csrf, "installation": served.installation}
    assert page.request.post(f"{served.url}/console/deliveries/{delivery}/assign", form=assign).status == 403
    page.goto(f"{served.url}/console/events?tenant=acme")
    expect(page.locator("tr.event").first).to_be_visible()
    expect(page.get_by_role("button", name="Redeliver")).to_have_count(0)


def test_question_3_a_record_before_the_last_webhook_and_what_changed_it(console_page: Page, served: Served) -> None:
    """'What did record X look like before the last webhook, and what changed it?' — records, then the delivery."""
    page = console_page
    log_in(page, served, VIEWER, "/console/records")
    page.get_by_label("Code").fill(served.extra["product"])
    page.get_by_role("button", name="Look up").click()
    page.get_by_role("link", name=served.extra["product"]).click()
    newest = page.locator("li.change").first
    sku = newest.locator("tr", has_text="sku")
    expect(sku).to_contain_text("SKU-BEFORE")  # what it was
    expect(sku).to_contain_text("SKU-AFTER")
    newest.get_by_role("link", name="webhook delivery").click()  # what changed it
    expect(page.get_by_role("heading", name="Delivery")).to_be_visible()
    expect(page.locator(".facts")).to_contain_text("product.updated")
    expect(page.locator("details.body pre")).to_contain_text("SKU-AFTER")
    expect(page.locator("tr.written")).to_contain_text(served.extra["product"])


def test_markup_in_a_body_or_a_header_renders_as_text(console_page: Page, served: Served) -> None:
    page = console_page
    log_in(page, served, ADMIN, "/console/deliveries?q=onerror")
    rows = page.locator("tr.delivery")
    expect(rows).to_have_count(1)
    rows.first.get_by_role("link").first.click()
    body = page.locator("details.body pre")
    expect(body).to_contain_text("<script>document.title=")  # shown as text (JSON escapes its quotes)
    expect(body).to_contain_text("<img src=x onerror=")
    assert page.locator("main img, main script").count() == 0  # escaped: text, not elements
    page.goto(f"{served.url}/console/deliveries?status=rejected&reason=bad_signature")
    page.locator("tr.delivery a").first.click()
    expect(page.locator("tr", has_text="user-agent")).to_contain_text("onerror")
    assert page.locator("main img, main script").count() == 0
    assert "pwned" not in page.title()
    html = page.content()
    assert "&lt;script&gt;" in html
    assert "script-src 'self'" in page.request.get(page.url).headers["content-security-policy"]


def test_redeliver_a_trigger_event_the_subscriber_never_took(console_page: Page, served: Served) -> None:
    page = console_page
    received: list[dict[str, Any]] = served.extra["received"]
    event = str(served.extra["given_up"])
    before = [e["id"] for e in received].count(event)
    log_in(page, served, ADMIN, "/console/events?tenant=acme")
    row = page.locator(f"#event-{event}")
    expect(row.locator(".status-failed")).to_be_visible()
    expect(row).to_contain_text("gave up after 8 attempts")
    expect(page.get_by_role("button", name="Redeliver")).to_have_count(1)  # only the failed one offers it
    row.get_by_role("button", name="Redeliver").click()
    expect(page).to_have_url(re.compile(rf"/console/events\?tenant=acme#event-{event}$"))
    expect(page.locator(f"#event-{event} .status-delivered")).to_be_visible(timeout=60_000)  # the page polls
    assert [e["id"] for e in received].count(event) == before + 1
    expect(page.get_by_role("button", name="Redeliver")).to_have_count(0)


def test_a_filter_or_a_selection_that_cannot_be_used_is_a_clear_400(served: Served) -> None:
    client = Client(served.url)
    client.login(ADMIN)
    bad = client.request("GET", "/console/deliveries?since=last+tuesday")
    assert bad.status == 400
    assert "since: expected an ISO 8601 date or time" in bad.text  # or 24h, today… (views.runs.moment)
    assert client.request("GET", "/console/deliveries?status=lost").status == 400
    csrf = client.csrf("/console/deliveries")
    nothing = client.request("POST", "/console/deliveries/replay", {"csrf": csrf, "scope": "ids"})
    assert nothing.status == 400
    assert "no delivery is ticked" in nothing.text
    unknown = client.request("POST", "/console/deliveries/replay", {"csrf": csrf, "scope": "ids", "ids": "99999"})
    assert unknown.status == 404
    assert client.request("GET", "/console/deliveries/r99999").status == 404
    assert client.request("GET", "/console/deliveries/replays/no-such-job").status == 404
