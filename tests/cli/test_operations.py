"""install / sync / runs / records / installations from the command line, and no secret in any output."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from miniapp_sync.cli import main
from miniapp_sync.definition.loader import load_file
from miniapp_sync.sandbox import Sandbox, SandboxConfig
from miniapp_sync.testing import sandbox_thread

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "examples" / "salla" / "definition.json5"
TOKEN = "sandbox-access-token-that-must-not-leak"
REFRESH = "sandbox-refresh-token-that-must-not-leak"


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The example with a budget that does not bind, so the tests do not wait on 10 requests/s."""
    document, _ = load_file(SOURCE)
    document["sync"]["syncConfiguration"]["rateLimitPerSecond"] = 1000
    path = tmp_path_factory.mktemp("definition") / "salla.json"
    path.write_text(json.dumps(document))
    return str(path)


@pytest.fixture
def sandbox() -> Iterator[tuple[Sandbox, str]]:
    config = SandboxConfig(products=30, customers=10, orders=12, carts=3, access_token=TOKEN, refresh_token=REFRESH)
    with sandbox_thread(config) as running:
        yield running


@pytest.fixture
def cli(
    sandbox: tuple[Sandbox, str], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[object]:
    monkeypatch.setenv("MINIAPP_SYNC_SECRET_KEY", "cli tests")
    monkeypatch.setenv("COLUMNS", "200")  # Rich tables at full width, as in a wide terminal
    monkeypatch.setenv("MINIAPP_SYNC_STORE", str(tmp_path / "store.sqlite"))
    _, url = sandbox
    rewrites = ["--rewrite", f"https://api.salla.dev={url}", "--rewrite", f"https://accounts.salla.sa={url}"]
    outputs: list[str] = []

    def run(*args: str, rewrite: bool = False) -> tuple[int, str, str]:
        code = main([*args, *(rewrites if rewrite else [])])
        out, err = capsys.readouterr()
        outputs.append(out + err)
        return code, out, err

    run.outputs = outputs  # type: ignore[attr-defined]
    yield run
    # Whatever ran, no credential value reached the output (D30).
    everything = "\n".join(outputs)
    assert TOKEN not in everything
    assert REFRESH not in everything


def test_install_sync_and_look_at_the_results(cli: object, sandbox: tuple[Sandbox, str], example: str) -> None:
    run = cli  # type: ignore[assignment]
    credentials = ["--credential", f"accessToken={TOKEN}", "--credential", f"refreshToken={REFRESH}"]
    code, out, _ = run("install", example, "--tenant", "acme", *credentials, "--no-sync", rewrite=True)  # type: ignore[operator]
    assert code == 0, out
    assert "connected" in out

    code, out, _ = run("installations", "--format", "json")  # type: ignore[operator]
    (row,) = json.loads(out)["items"]
    assert row["status"] == "connected"
    assert "credentials" not in row

    switching = sys.getswitchinterval()
    code, out, _ = run("sync", example, "--tenant", "acme", "--format", "json", rewrite=True)  # type: ignore[operator]
    assert code == 0
    assert sys.getswitchinterval() == switching  # the sync's own 0.5 ms is given back to its caller
    report = json.loads(out)
    assert report["status"] == "succeeded"
    runs = {run["resource"]: run for run in report["items"]}  # one job, one run, per enabled resource
    assert runs["products"]["resources"][0]["created"] == len(sandbox[0].data["products"])
    assert all(run["jobId"] and run["status"] == "succeeded" for run in runs.values())

    code, out, _ = run("sync", example, "--tenant", "acme", rewrite=True)  # type: ignore[operator]
    assert code == 0
    assert "Sync summary" in out
    assert "unchanged" in out

    code, out, _ = run("runs", "--tenant", "acme", "--format", "json")  # type: ignore[operator]
    found = json.loads(out)["items"]
    assert {r["status"] for r in found} == {"succeeded"}
    assert len(found) == 2 * len(runs)

    code, out, _ = run("records", "--tenant", "acme", "--type", "core:product", "--limit", "5", "--format", "json")  # type: ignore[operator]
    listed = json.loads(out)
    assert len(listed["items"]) == 5
    codes = [r["code"] for r in listed["items"]]
    while listed["next"] is not None:  # the cursor reads on to the last record
        args = ("records", "--tenant", "acme", "--type", "core:product", "--limit", "5", "--cursor", listed["next"])
        code, out, _ = run(*args, "--format", "json")  # type: ignore[operator]
        listed = json.loads(out)
        codes += [r["code"] for r in listed["items"]]
    assert len(set(codes)) == len(codes) == len(sandbox[0].data["products"])


def test_a_failed_resource_exits_1_and_says_why(cli: object, sandbox: tuple[Sandbox, str], example: str) -> None:
    run = cli  # type: ignore[assignment]
    credentials = ["--credential", f"accessToken={TOKEN}"]
    assert run("install", example, "--tenant", "acme", *credentials, "--no-sync", rewrite=True)[0] == 0  # type: ignore[operator]
    sandbox[0].html_next(1, path_prefix="/customers")
    code, out, _ = run("sync", example, "--tenant", "acme", "--resource", "customers", rewrite=True)  # type: ignore[operator]
    assert code == 1
    assert "customers failed" in out
    assert "expected JSON" in out


def test_sync_max_in_flight_caps_detail_requests_and_is_checked(
    cli: object, sandbox: tuple[Sandbox, str], example: str
) -> None:
    run = cli
    credentials = ["--credential", f"accessToken={TOKEN}", "--no-sync"]
    assert run("install", example, "--tenant", "acme", *credentials, rewrite=True)[0] == 0  # type: ignore[operator]
    code, _, err = run("sync", example, "--tenant", "acme", "--max-in-flight", "0", rewrite=True)  # type: ignore[operator]
    assert code == 2
    assert "--max-in-flight" in err
    code, out, _ = run(  # type: ignore[operator]
        "sync",
        example,
        "--tenant",
        "acme",
        "--resource",
        "orders",
        "--max-in-flight",
        "1",
        "--format",
        "json",
        rewrite=True,
    )
    assert code == 0
    (orders,) = json.loads(out)["items"]
    assert orders["resources"][0]["created"] == 12


def test_sync_of_an_unknown_tenant_is_a_clear_error(cli: object, example: str) -> None:
    credentials = ["--credential", f"accessToken={TOKEN}"]
    assert cli("install", example, "--tenant", "acme", *credentials, rewrite=True)[0] == 0  # type: ignore[operator]
    code, _, err = cli("sync", example, "--tenant", "nobody")  # type: ignore[operator]
    assert code == 1
    assert "has not installed 'salla'" in err
    assert "Traceback" not in err


def test_install_reads_secrets_from_the_environment(cli: object, monkeypatch: pytest.MonkeyPatch, example: str) -> None:
    monkeypatch.setenv("SALLA_TOKEN", TOKEN)
    code, out, _ = cli(
        "install", example, "--tenant", "acme", "--credential", "accessToken=env:SALLA_TOKEN", rewrite=True
    )  # type: ignore[operator]
    assert code == 0, out
    code, _, err = cli("install", example, "--tenant", "b", "--credential", "accessToken=env:NOT_SET_ANYWHERE")  # type: ignore[operator]
    assert code == 2
    assert "NOT_SET_ANYWHERE" in err


def test_an_unresolved_placeholder_shows_its_key_in_sync_and_runs(cli: object, tmp_path: Path, example: str) -> None:
    run = cli  # type: ignore[assignment]
    document = json.loads(Path(example).read_text())
    document["auth"]["sensitiveKeys"].append("storeRef")  # a key pasted at install: validates
    document["sync"]["headers"]["Store-Ref"] = "[[storeRef]]"
    definition = tmp_path / "app.json"
    definition.write_text(json.dumps(document))
    credentials = ["--credential", f"accessToken={TOKEN}", "--no-sync"]  # … but this install does not paste it
    assert run("install", str(definition), "--tenant", "acme", *credentials, rewrite=True)[0] == 0  # type: ignore[operator]
    code, out, err = run("sync", str(definition), "--tenant", "acme", "--resource", "products", rewrite=True)  # type: ignore[operator]
    assert code == 1
    assert "unresolved placeholder [[storeRef]]" in out + err  # not "placeholder []" (Rich markup)
    code, out, _ = run("runs", "--tenant", "acme")  # type: ignore[operator]
    assert "[[storeRef]]" in out


def test_install_runs_the_initial_import_of_every_enabled_resource(
    cli: object, sandbox: tuple[Sandbox, str], example: str
) -> None:
    run = cli  # type: ignore[assignment]
    credentials = ["--credential", f"accessToken={TOKEN}"]
    code, out, _ = run("install", example, "--tenant", "acme", *credentials, rewrite=True)  # type: ignore[operator]
    assert code == 0, out
    assert "installed salla for acme" in out
    assert "Sync summary" in out  # the lifecycle: install → initial sync, with progress
    code, out, _ = run("records", "--tenant", "acme", "--type", "core:product", "--limit", "1000", "--format", "json")  # type: ignore[operator]
    assert len(json.loads(out)["items"]) == len(sandbox[0].data["products"])
    code, out, _ = run("runs", "--tenant", "acme", "--format", "json")  # type: ignore[operator]
    document, _ = load_file(SOURCE)
    enabled = {k for k, r in document["sync"]["resources"].items() if r.get("enabled", True)}
    assert {r["resource"] for r in json.loads(out)["items"]} == enabled


def test_install_no_sync_installs_without_importing(cli: object, example: str) -> None:
    run = cli  # type: ignore[assignment]
    credentials = ["--credential", f"accessToken={TOKEN}"]
    code, out, _ = run(
        "install", example, "--tenant", "acme", *credentials, "--no-sync", "--format", "json", rewrite=True
    )  # type: ignore[operator]
    assert code == 0, out
    assert json.loads(out)["initialSync"] is None
    code, out, _ = run("runs", "--tenant", "acme", "--format", "json")  # type: ignore[operator]
    assert json.loads(out)["items"] == []


@contextlib.contextmanager
def aiohttp_thread(app: web.Application) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1 from a thread of its own (the CLI runs its own event loop); yield its URL."""
    ready, stop, urls = threading.Event(), threading.Event(), []

    async def serve() -> None:
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        urls.append(f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}")  # type: ignore[union-attr]
        ready.set()
        while not stop.is_set():
            await asyncio.sleep(0.02)
        await runner.cleanup()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        yield urls[0]
    finally:
        stop.set()
        thread.join(10)


@pytest.fixture
def registering(tmp_path: Path, example: str) -> Iterator[tuple[str, list[dict[str, object]], str]]:
    """The example with a registration request that hands {{webhookUrl}} to a provider; the bodies it got."""
    received: list[dict[str, object]] = []

    async def register(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.json_response({"id": "hook-1"})

    app = web.Application()
    app.router.add_post("/webhooks/subscribe", register)
    with aiohttp_thread(app) as url:
        document = json.loads(Path(example).read_text())
        document["auth"]["registrationRequests"] = [
            {"url": "https://hooks.provider.example/webhooks/subscribe", "method": "POST",
             "body": {"event": "order.created", "url": "{{webhookUrl}}"}},
        ]  # fmt: skip
        path = tmp_path / "registering.json"
        path.write_text(json.dumps(document))
        yield str(path), received, url


def test_install_hands_the_provider_the_public_url_as_webhook_url(
    cli: object, registering: tuple[str, list[dict[str, object]], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, received, url = registering
    monkeypatch.setenv("MINIAPP_SYNC_PUBLIC_URL", "https://sync.example.com")
    credentials = ["--credential", f"accessToken={TOKEN}", "--no-sync"]
    hooks = ["--rewrite", f"https://hooks.provider.example={url}"]
    code, out, err = cli("install", path, "--tenant", "acme", *credentials, *hooks, rewrite=True)  # type: ignore[operator]
    assert code == 0, out + err
    assert received == [{"event": "order.created", "url": "https://sync.example.com/miniapps/salla/webhooks"}]
    # --public-url wins over the environment (another tenant: the store moved, D24).
    assert cli("uninstall", "--tenant", "acme", "--ns", "salla")[0] == 0  # type: ignore[operator]
    more = ["--public-url", "https://other.example.com/"]
    code, out, err = cli("install", path, "--tenant", "globex", *credentials, *hooks, *more, rewrite=True)  # type: ignore[operator]
    assert code == 0, out + err
    assert received[-1]["url"] == "https://other.example.com/miniapps/salla/webhooks"


def test_install_refuses_to_register_a_loopback_webhook_url_with_a_remote_provider(
    cli: object, registering: tuple[str, list[dict[str, object]], str]
) -> None:
    path, received, _ = registering
    credentials = ["--credential", f"accessToken={TOKEN}", "--no-sync"]
    code, _, err = cli("install", path, "--tenant", "acme", *credentials, rewrite=True)  # type: ignore[operator]
    assert code == 1
    message = " ".join(err.split())
    assert (
        "auth.registrationRequests[0]: would register the webhook URL http://127.0.0.1:8000/miniapps/salla/webhooks"
        in message
    )
    assert "hooks.provider.example" in message
    assert "--public-url" in message
    assert "MINIAPP_SYNC_PUBLIC_URL" in message
    assert received == []  # refused before anything was sent


def test_serve_refuses_a_default_schedule_off_the_cron_ticks(cli: object, example: str) -> None:
    code, _, err = cli("serve", "-d", example, "--default-schedule", "7m")  # type: ignore[operator]
    assert code == 2
    assert "does not fall on cron ticks" in " ".join(err.split())


def test_serve_refuses_a_concurrency_below_one(cli: object, example: str) -> None:
    code, _, err = cli("serve", "-d", example, "--concurrency", "0")  # type: ignore[operator]
    assert code == 2
    assert "--concurrency" in err


def test_sync_enqueue_on_sqlite_says_that_serve_runs_the_jobs(cli: object, example: str) -> None:
    credentials = ["--credential", f"accessToken={TOKEN}", "--no-sync"]
    assert cli("install", example, "--tenant", "acme", *credentials, rewrite=True)[0] == 0  # type: ignore[operator]
    code, _, err = cli("sync", "--enqueue", example, "--tenant", "acme")  # type: ignore[operator]
    assert code == 1
    message = " ".join(err.split())
    assert "--enqueue needs the scale-out queue" in message
    assert "POST /api/installations/{id}/sync" in message


def test_the_default_schedule_comes_from_the_settings_file_too(
    cli: object, example: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "ops.toml").write_text('default_schedule = "7m"\n')
    monkeypatch.setenv("MINIAPP_SYNC_CONFIG_FILE", str(tmp_path / "ops.toml"))
    code, _, err = cli("serve", "-d", example)  # type: ignore[operator]
    assert code == 2  # read, and refused like the flag: it never starts serving
    assert "does not fall on cron ticks" in " ".join(err.split())


def test_retry_after_of_a_day_fails_the_sync_instead_of_sleeping(
    cli: object, sandbox: tuple[Sandbox, str], example: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = cli  # type: ignore[assignment]
    install = ("install", example, "--tenant", "acme", "--credential", f"accessToken={TOKEN}", "--no-sync")
    assert run(*install, rewrite=True)[0] == 0  # type: ignore[operator]
    sandbox[0].fail_next(1, status=429, retry_after="86400", path_prefix="/customers")
    code, out, _ = run("sync", example, "--tenant", "acme", "--resource", "customers", rewrite=True)  # type: ignore[operator]
    assert code == 1
    assert "asked to wait 86400 s (Retry-After: 86400)" in " ".join(out.split())

    # The cap is the deployment's: the option, or its environment variable.
    sandbox[0].fail_next(1, status=429, retry_after="20", path_prefix="/customers")
    code, out, _ = run("sync", example, "-t", "acme", "--resource", "customers", "--max-retry-after", "5", rewrite=True)  # type: ignore[operator]
    assert code == 1
    assert "longer than the 5 s this deployment waits" in " ".join(out.split())
    monkeypatch.setenv("MINIAPP_SYNC_MAX_RETRY_AFTER", "7")
    sandbox[0].fail_next(1, status=429, retry_after="20", path_prefix="/customers")
    code, out, _ = run("sync", example, "-t", "acme", "--resource", "customers", rewrite=True)  # type: ignore[operator]
    assert "longer than the 7 s this deployment waits" in " ".join(out.split())


def test_sync_logs_one_json_object_a_line_with_its_run_context_and_no_secret(
    cli: object, monkeypatch: pytest.MonkeyPatch, example: str
) -> None:
    run = cli  # type: ignore[assignment]
    credentials = ["--credential", f"accessToken={TOKEN}", "--credential", f"refreshToken={REFRESH}", "--no-sync"]
    assert run("install", example, "--tenant", "acme", *credentials, rewrite=True)[0] == 0  # type: ignore[operator]
    monkeypatch.setenv("MINIAPP_SYNC_LOG_LEVEL", "info")  # the variable, and the flag anywhere on the line
    code, _, err = run("sync", example, "--tenant", "acme", "--log-format", "json", rewrite=True)  # type: ignore[operator]
    assert code == 0
    lines = [json.loads(line) for line in err.splitlines() if line.strip()]
    finished_lines = [line for line in lines if line["event"] == "sync run finished"]
    assert len(finished_lines) == len(json.loads(run("runs", "--format", "json")[1])["items"]) > 0  # type: ignore[operator]
    for finished in finished_lines:  # one run per resource: the sync's jobs (D36)
        assert finished["level"] == "info"
        assert finished["logger"] == "miniapp_sync.sync"
        assert finished["tenant"] == "acme"
        assert finished["status"] == "succeeded"
        assert finished["time"].endswith("Z")
        assert {"run_id", "installation"} <= set(finished)
    # The fixture checks that no token reached stdout or stderr.


def test_a_bad_log_format_is_bad_usage_naming_the_flag(cli: object) -> None:
    run = cli  # type: ignore[assignment]
    code, _, err = run("runs", "--log-format", "xml")  # type: ignore[operator]
    assert code == 2
    assert '--log-format: expected one of console, json, found "xml"' in err


def test_installing_a_tenant_with_another_tenant_s_store_id_is_refused_naming_the_first(
    cli: object, sandbox: tuple[Sandbox, str], example: str
) -> None:
    run = cli  # type: ignore[assignment]
    credentials = ["--credential", f"accessToken={TOKEN}", "--credential", f"refreshToken={REFRESH}"]
    code, out, _ = run("install", example, "--tenant", "acme", *credentials, "--format", "json", rewrite=True)  # type: ignore[operator]
    assert code == 0, out
    first = json.loads(out)
    store_id = str(sandbox[0].config.merchant_id)
    assert str(first["metadata"]["storeId"]) == store_id
    # userDetails gives tenant C the same storeId (the same Salla store): refused, naming acme's installation.
    code, out, err = run("install", example, "--tenant", "capture", *credentials, rewrite=True)  # type: ignore[operator]
    assert code == 1
    assert f"storeId '{store_id}' already belongs to installation {first['id']} of tenant 'acme'" in out + err
    code, out, _ = run("installations", "--format", "json")  # type: ignore[operator]
    rows = {row["tenant"]: row for row in json.loads(out)["items"]}
    assert rows["acme"]["status"] == "connected"
    assert rows["capture"]["status"] == "error"
    assert "storeId" not in rows["capture"]["metadata"]  # it can never be routed acme's deliveries
    # The same store explicitly named with --metadata is refused too.
    code, out, err = run("install", example, "--tenant", "other", "--metadata", f"storeId={store_id}", *credentials)  # type: ignore[operator]
    assert code == 1


@pytest.mark.parametrize("terminal", [False, True])
def test_progress_bars_are_drawn_on_a_terminal_only(
    cli: object, sandbox: tuple[Sandbox, str], example: str, monkeypatch: pytest.MonkeyPatch, terminal: bool
) -> None:
    run = cli  # type: ignore[assignment]
    credentials = ["--credential", f"accessToken={TOKEN}", "--no-sync"]
    assert run("install", example, "--tenant", "acme", *credentials, rewrite=True)[0] == 0  # type: ignore[operator]
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.setenv("TTY_COMPATIBLE", "1" if terminal else "0")  # Rich's switch: stdout is a terminal or not
    _, url = sandbox
    args = ["sync", example, "--tenant", "acme", "--resource", "products", "--rewrite", f"https://api.salla.dev={url}"]
    script = (
        "import sys\n"
        "from miniapp_sync.cli import main\n"
        "code = main(sys.argv[1:])\n"
        "print('\\n'.join(sys.modules), file=sys.stderr)\n"
        "raise SystemExit(code)\n"
    )
    done = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Sync summary" in done.stdout
    assert (" pages · " in done.stdout) is terminal  # a bar: records, pages and request rate
    assert ("rich.progress" in done.stderr.splitlines()) is terminal


def test_a_sync_run_in_process_leaves_the_garbage_collector_as_it_found_it(cli: object, example: str) -> None:
    import gc

    run = cli  # type: ignore[assignment]
    credentials = ["--credential", f"accessToken={TOKEN}"]
    assert run("install", example, "--tenant", "acme", *credentials, "--no-sync", rewrite=True)[0] == 0  # type: ignore[operator]
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0
    code, out, _ = run("sync", example, "--tenant", "acme", "--resource", "products", rewrite=True)  # type: ignore[operator]
    assert code == 0, out
    # The command paused the collector while it loaded and froze what it loaded (cli.app.starting):
    # in a longer-lived program (this one), main gives the collector all of it back.
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0


@pytest.mark.parametrize("tenant", ["", " ", "a\nb", "x" * 201])
def test_install_refuses_a_tenant_id_an_oauth_link_and_the_api_refuse(
    cli: object, sandbox: tuple[Sandbox, str], example: str, tenant: str
) -> None:
    # Before, the API-key flow stored any text as the tenant: a blank one, one with a newline (a
    # forged line in every log that names it), or one past the 200 characters the other ways allow.
    run = cli  # type: ignore[assignment]
    code, _, err = run("install", example, "--tenant", tenant, "--credential", f"accessToken={TOKEN}", rewrite=True)  # type: ignore[operator]
    assert code != 0
    assert "tenant: " in err
    assert "internal error" not in err
    assert sandbox[0].stats.responses == {}  # refused before any request
    code, out, _ = run("installations", "--format", "json")  # type: ignore[operator]
    assert (code, json.loads(out)["items"]) == (0, [])  # nothing stored
