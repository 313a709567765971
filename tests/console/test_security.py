"""The console's guard over real HTTP: sessions, roles, CSRF, headers, and no secret on a page (D40)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from miniapp_sync.network import Rewrites
from miniapp_sync.runtime import Runtime, load_miniapp
from miniapp_sync.server import create_app

from .conftest import ADMIN, EXAMPLE, VIEWER, Client, Served


def test_a_server_without_the_console_loads_neither_jinja2_nor_itsdangerous(tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "from miniapp_sync.runtime import Runtime\n"
        "from miniapp_sync.server import create_app\n"
        f"runtime = Runtime.open({str(tmp_path / 's.sqlite')!r}, environ={{'MINIAPP_SYNC_SECRET_KEY': 'k'}})\n"
        "create_app(runtime, admin_token='a')\n"
        "print(sorted({'jinja2', 'itsdangerous'} & set(sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "['itsdangerous', 'jinja2']"  # the admin token turns the console on
    done = subprocess.run(
        [sys.executable, "-c", script.replace("admin_token='a'", "")], capture_output=True, text=True, timeout=60
    )
    assert done.stdout.strip() == "[]", done.stderr


def test_the_console_is_off_without_a_token(tmp_path: Path) -> None:
    runtime = Runtime.open(str(tmp_path / "s.sqlite"), environ={"MINIAPP_SYNC_SECRET_KEY": "k"}, rewrites=Rewrites())
    try:
        runtime.add(load_miniapp(EXAMPLE))
        paths = [getattr(r, "path", "") for r in create_app(runtime).routes]
        assert not [p for p in paths if p.startswith("/console")]
        on = [getattr(r, "path", "") for r in create_app(runtime, viewer_token="v").routes]
        assert "/console/" in on
    finally:
        runtime.close()


def test_a_page_without_a_session_leads_to_the_login_and_back(served: Served) -> None:
    client = Client(served.url)
    answer = client.request("GET", f"/console/installations/{served.installation}")
    assert answer.status == 303
    assert answer.headers["Location"] == f"/console/login?next=%2Fconsole%2Finstallations%2F{served.installation}"
    poll = client.request("GET", "/console/installations", **{"HX-Request": "true"})
    assert (poll.status, poll.headers["HX-Redirect"]) == (204, "/console/login?next=%2Fconsole%2Finstallations")


def test_login_sets_a_strict_http_only_cookie_and_a_wrong_token_sets_none(served: Served) -> None:
    client = Client(served.url)
    wrong = client.login("not-the-token")
    assert wrong.status == 401
    assert "not the admin or the viewer token" in wrong.text
    assert not client.cookies
    right = client.login(ADMIN)
    assert right.status == 303
    assert right.headers["Location"] == "/console/"
    (cookie,) = [h for h in right.headers.get_all("Set-Cookie") if h.startswith("miniapp_console=")]
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie or "SameSite=Strict" in cookie
    assert "Path=/console" in cookie
    assert "Max-Age=" in cookie
    assert ADMIN not in cookie  # the cookie is a signed session, not the token
    log = served.log.read_text()
    assert "console login refused: wrong token" in log
    assert "not-the-token" not in log
    assert ADMIN not in log


def test_a_login_post_without_the_form_token_is_refused(served: Served) -> None:
    answer = Client(served.url).request("POST", "/console/login", {"token": ADMIN})
    assert answer.status == 403
    assert "miniapp_console" not in (answer.headers.get("Set-Cookie") or "")


def test_the_login_never_sends_the_browser_to_another_site(served: Served) -> None:
    client = Client(served.url)
    page = client.request("GET", "/console/login?next=//evil.example/console/")
    token = re.search(r'name="form" value="([^"]+)"', page.text)
    assert token
    answer = client.request("POST", "/console/login", {"form": token[1], "token": ADMIN, "next": "//evil.example/"})
    assert answer.headers["Location"] == "/console/"


def test_pages_carry_a_strict_content_security_policy_and_are_not_cached(served: Served) -> None:
    client = Client(served.url)
    client.login(ADMIN)
    for path in ("/console/", "/console/login", f"/console/installations/{served.installation}"):
        answer = client.request("GET", path)
        assert answer.status in (200, 303), path
        csp = answer.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp
        assert "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp
        assert "unsafe-eval" not in csp
        assert answer.headers["X-Frame-Options"] == "DENY"
        assert answer.headers["Cache-Control"] == "no-store"
    page = client.request("GET", "/console/").text
    assert "<script>" not in page  # only <script src=…> of our own
    scripts = re.findall(r"<script src=\"([^\"]+)\"", page)
    assert scripts == ["/console/static/htmx.min.js", "/console/static/console.js"]


def test_a_post_without_or_with_a_wrong_csrf_token_is_refused(served: Served) -> None:
    client = Client(served.url)
    client.login(ADMIN)
    path = f"/console/installations/{served.installation}/sync"
    assert client.request("POST", path, {"resource": "products"}).status == 403
    assert client.request("POST", path, {"resource": "products", "csrf": "forged"}).status == 403
    other = Client(served.url)
    other.login(ADMIN)
    assert client.request("POST", path, {"resource": "products", "csrf": other.csrf()}).status == 403  # not its own
    assert client.request("POST", path, {"resource": "nope", "csrf": client.csrf()}).status == 400


def test_a_viewer_sees_no_action_and_a_forged_post_is_refused(served: Served) -> None:
    client = Client(served.url)
    assert client.login(VIEWER).status == 303
    page = client.request("GET", f"/console/installations/{served.installation}")
    assert page.status == 200
    assert "Sync now" not in page.text
    assert "Reconnect" not in page.text
    assert "viewer (read-only)" in page.text
    for action in ("Pause schedules", "Resume schedules", "Uninstall", "Retry"):
        assert action not in page.text
    csrf = client.csrf()
    for action in ("sync", "reconnect", "pause", "resume", "uninstall"):
        answer = client.request("POST", f"/console/installations/{served.installation}/{action}", {"csrf": csrf})
        assert answer.status == 403
        assert "read-only" in answer.text
    runs = client.request("GET", "/console/runs?tenant=acme&resource=products")
    (run_id, *_) = re.findall(r'href="/console/runs/([0-9a-f]+)"', runs.text)
    assert client.request("POST", f"/console/runs/{run_id}/retry", {"csrf": csrf}).status == 403
    assert client.request("GET", f"/console/installations/{served.installation}/uninstall").status == 403
    assert "connected" in client.request("GET", f"/console/installations/{served.installation}").text


def test_logout_ends_the_session_even_for_a_kept_copy_of_the_cookie(served: Served) -> None:
    client = Client(served.url)
    client.login(ADMIN)
    kept = dict(client.cookies)
    answer = client.request("POST", "/console/logout", {"csrf": client.csrf()})
    assert answer.status == 303
    assert "miniapp_console" not in client.cookies
    assert client.request("GET", "/console/").status == 303
    client.cookies = kept  # someone kept the cookie: it opens nothing any more
    assert client.request("GET", "/console/").status == 303


def test_no_secret_reaches_a_page_credentials_show_as_set_or_unset(served: Served) -> None:
    client = Client(served.url)
    client.login(ADMIN)
    for installation in (served.installation, served.broken):
        page = client.request("GET", f"/console/installations/{installation}").text
        assert "sandbox-access-token" not in page
        assert "revoked-token-SECRET" not in page
        assert ADMIN not in page
    page = client.request("GET", f"/console/installations/{served.installation}").text
    assert re.search(r"<td>accessToken</td><td><span class=\"status status-set\">set</span>", page)
    assert re.search(r"<td>spare</td><td><span class=\"status status-unset\">unset</span>", page)


def test_the_overview_page_shows_the_api_overview_figures(served: Served) -> None:
    client = Client(served.url)
    api = client.request("GET", "/api/overview", Authorization=f"Bearer {ADMIN}")
    assert api.status == 200
    client.login(VIEWER)
    page = client.request("GET", "/console/").text
    assert 'href="/console/installations?ns=salla&amp;status=error"' in page
    assert "bad_signature" in page


def test_reconnect_issues_a_signed_start_link_to_copy(served: Served) -> None:
    client = Client(served.url)
    client.login(ADMIN)
    answer = client.request("POST", f"/console/installations/{served.installation}/reconnect", {"csrf": client.csrf()})
    assert answer.status == 201, answer.text
    link = re.search(r'id="link" class="copy" type="text" readonly value="([^"]+)"', answer.text)
    assert link
    assert link[1].startswith(f"{served.url}/miniapps/salla/oauth2?start=")


def test_the_runs_list_reads_its_filters_from_the_query_and_refuses_bad_ones(served: Served) -> None:
    client = Client(served.url)
    client.login(VIEWER)
    listed = client.request("GET", "/console/runs?tenant=acme&ns=salla&resource=products&status=succeeded&since=today")
    assert listed.status == 200
    assert len(re.findall(r'<tr class="run">', listed.text)) == 2  # the two seeded runs of acme's products
    assert '<option value="succeeded" selected>' in listed.text  # the filter shows as chosen
    assert client.request("GET", "/console/runs?tenant=nobody").text.count('<tr class="run">') == 0
    for query, named in [("since=last+tuesday", "since"), ("status=lost", "status"), ("ns=shopify", "ns")]:
        refused = client.request("GET", f"/console/runs?{query}")
        assert refused.status == 400
        assert f"The {named} filter" in refused.text
    assert client.request("GET", "/console/runs?cursor=not-ours").status == 400
    assert client.request("GET", "/console/runs/no-such-run").status == 404


def test_an_uninstall_whose_confirmation_names_another_tenant_changes_nothing(served: Served) -> None:
    client = Client(served.url)
    client.login(ADMIN)
    path = f"/console/installations/{served.installation}/uninstall"
    confirm = client.request("GET", path)
    assert confirm.status == 200
    assert "Type the tenant's name" in confirm.text
    wrong = client.request("POST", path, {"csrf": client.csrf(), "tenant": "ACME"})
    assert "Not uninstalled" in wrong.text
    assert client.request("POST", path, {"csrf": client.csrf()}).text.count("Not uninstalled") == 1
    assert "uninstalled" not in client.request("GET", f"/console/installations/{served.installation}").text


def test_the_dead_letters_pages_refuse_hostile_filters_and_ids_and_echo_nothing_raw(served: Served) -> None:
    client = Client(served.url)
    client.login(VIEWER)
    assert client.request("GET", "/console/dead-letters?kind=record").status == 200
    refused = client.request("GET", "/console/dead-letters?kind=%3Cscript%3Ealert(1)%3C/script%3E")
    assert refused.status == 400
    assert "Unknown kind in the filter" in refused.text
    assert "<script>alert(1)" not in refused.text
    assert client.request("GET", "/console/dead-letters?cursor=not-ours").status == 400
    for id in ("%C2%B9", "99999999999999999999999", "%3Cimg%20src%3Dx%3E", "0"):  # '¹' is isdigit(), and no int
        missing = client.request("GET", f"/console/dead-letters/{id}")
        assert missing.status == 404
        assert "<img src=x>" not in missing.text
