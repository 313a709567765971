"""Operator settings reach the commands: a file in the working directory, --config-file, and bad files."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from miniapp_sync.cli import main
from miniapp_sync.sandbox import SandboxConfig
from miniapp_sync.testing import sandbox_thread

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = str(ROOT / "examples" / "salla" / "definition.json5")


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # where ./miniapp-sync.toml is looked for
    return tmp_path


def test_the_store_and_key_of_the_settings_file_are_used_by_every_command(
    here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (here / "miniapp-sync.toml").write_text('store = "data/app.sqlite"\nsecret_key = "env:APP_KEY"\n')
    environ = {"APP_KEY": "the operator's key"}
    assert main(["db", "upgrade"], environ=environ) == 0
    assert (here / "data" / "app.sqlite").is_file()
    capsys.readouterr()
    assert main(["installations", "--format", "json"], environ=environ) == 0
    assert json.loads(capsys.readouterr().out) == {"items": [], "next": None}
    assert not (here / "data" / "secret.key").exists()  # the key came from the settings, not a generated file


def test_rewrites_and_credentials_from_settings_let_install_reach_the_sandbox(
    here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with sandbox_thread(SandboxConfig(products=3, customers=1, orders=1, carts=1)) as (sandbox, url):
        origins = "".join(f'"https://{host}" = "{url}"\n' for host in ("api.salla.dev", "accounts.salla.sa"))
        (here / "ops.toml").write_text(f'store = "store.sqlite"\n[rewrites]\n{origins}')
        environ = {"MINIAPP_SYNC_SECRET_KEY": "k", "TOKEN": sandbox.config.access_token}
        command = [
            "--config-file",
            "ops.toml",
            "install",
            EXAMPLE,
            "--tenant",
            "acme",
            "--credential",
            "accessToken=env:TOKEN",
        ]
        code = main(command, environ=environ)
    out = capsys.readouterr().out
    assert code == 0, out
    assert "connected" in out


def test_a_bad_settings_file_is_bad_usage_with_its_line_and_help_still_works(
    here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (here / "miniapp-sync.toml").write_text('store = "a.sqlite"\nrewrite = []\n')
    assert main(["runs"], environ={}) == 2
    err = capsys.readouterr().err
    assert f"{here / 'miniapp-sync.toml'}:2: unknown setting 'rewrite'" in err
    assert "did you mean 'rewrites'?" in err
    assert "Traceback" not in err
    assert main(["runs", "--help"], environ={}) == 0  # help never reads the settings


def test_a_missing_config_file_given_by_flag_is_an_error(here: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config-file", "missing.toml", "runs"], environ={}) == 2
    assert "missing.toml: cannot read the settings file" in capsys.readouterr().err


def test_serve_takes_its_admin_token_from_the_settings_file_not_the_command_line(here: Path) -> None:
    (here / "miniapp-sync.toml").write_text('store = "store.sqlite"\nsecret_key = "k"\nadmin_token = "env:OPS_TOKEN"\n')
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OPS_TOKEN": "token-kept-out-of-ps"}
    env.pop("MINIAPP_SYNC_STORE", None)
    env.pop("MINIAPP_SYNC_ADMIN_TOKEN", None)
    command = [sys.executable, "-m", "miniapp_sync", "serve", "-d", EXAMPLE, "--port", "0"]
    with subprocess.Popen(
        command, cwd=here, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    ) as server:
        try:
            assert server.stdout is not None
            line = server.stdout.readline()
            found = re.search(r"on (http://127\.0\.0\.1:\d+)", line)
            assert found, line + (server.stderr.read() if server.stderr and server.poll() is not None else "")
            api = found.group(1) + "/api/installations"
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(api, timeout=10)
            assert refused.value.code == 401
            refused.value.close()
            request = urllib.request.Request(api, headers={"Authorization": "Bearer token-kept-out-of-ps"})
            with urllib.request.urlopen(request, timeout=10) as response:
                assert response.status == 200
        finally:
            server.send_signal(signal.SIGINT)
            server.wait(timeout=30)
