"""No secret lands anywhere (D30, D31b): CLI output (with --debug too), the store file's bytes, the package.

The provider here is careless on purpose: its errors quote the credentials they were sent (the
sandbox's ``echo_credentials_next``), after a refresh and after a ``get_token``, so every token
the runtime receives at run time has a way to reach a message. None may.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from miniapp_sync.cli import main
from miniapp_sync.definition.loader import load_file
from miniapp_sync.runtime import Runtime
from miniapp_sync.sandbox import Sandbox, SandboxConfig
from miniapp_sync.testing import sandbox_thread

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "salla" / "definition.json5"
SAMPLES = ROOT / "examples" / "salla" / "samples"
KEY = "secrets tests"
CONFIG = SandboxConfig(
    products=12,
    customers=6,
    orders=4,
    carts=2,
    access_token="initial-access-token-must-not-leak",
    refresh_token="initial-refresh-token-must-not-leak",
    client_secret="client-secret-must-not-leak",
)


class Scene:
    """The sandbox, a store file, and the CLI run with --debug, its output kept."""

    def __init__(self, sandbox: Sandbox, url: str, folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.sandbox = sandbox
        self.folder = folder
        self.store = folder / "store.sqlite"
        self.capsys = capsys
        self.outputs: list[str] = []
        self.rewrites = ["--rewrite", f"https://api.salla.dev={url}", "--rewrite", f"https://accounts.salla.sa={url}"]
        self.config = ["--config", f"client_id={CONFIG.client_id}", "--config", "client_secret=env:SALLA_SECRET"]

    def run(self, *args: str) -> tuple[int, str]:
        code = main(["--debug", *args])
        out, err = self.capsys.readouterr()
        self.outputs.append(out + err)
        return code, " ".join((out + err).split())

    def definition(self, name: str, change: Any = None) -> str:
        document, _ = load_file(EXAMPLE)
        document["sync"]["syncConfiguration"]["rateLimitPerSecond"] = 1000
        if change is not None:
            change(document)
        path = self.folder / name
        path.write_text(json.dumps(document))
        return str(path)

    def credentials(self, tenant: str, ns: str) -> dict[str, Any]:
        with Runtime.open(str(self.store), environ={"MINIAPP_SYNC_SECRET_KEY": KEY}) as runtime:
            return runtime.installations.credentials(runtime.installations.find(tenant, ns))

    def landed(self, secrets: list[str], *folders: Path) -> list[str]:
        """Return the secrets found in any output, in the store's files, or in a file under ``folders``."""
        places = {"output": "\n".join(self.outputs).encode()}
        files = [p for p in self.folder.glob("store.sqlite*") if p.is_file()]
        files += [p for folder in folders for p in folder.rglob("*") if p.is_file()]
        places |= {str(p): p.read_bytes() for p in files}
        return [
            f"{secret} in {where}" for secret in secrets for where, data in places.items() if secret.encode() in data
        ]


@pytest.fixture
def scene(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Scene]:
    monkeypatch.setenv("MINIAPP_SYNC_SECRET_KEY", KEY)
    monkeypatch.setenv("MINIAPP_SYNC_STORE", str(tmp_path / "store.sqlite"))
    monkeypatch.setenv("SALLA_SECRET", CONFIG.client_secret)
    monkeypatch.setenv("COLUMNS", "200")
    with sandbox_thread(CONFIG) as (sandbox, url):
        yield Scene(sandbox, url, tmp_path, capsys)


def _get_token_from_a_refresh_token(document: dict[str, Any]) -> None:
    # An API-key style install whose get_token trades a pasted refresh token for an access token.
    document["ns"] = "sallakey"
    for trigger in document["triggers"]:
        trigger["type"] = "miniapps:sallakey"
    auth = document["auth"]
    auth["type"] = "apikey"
    del auth["auth_url"]
    auth["get_token"]["body"] = {
        "client_id": "{{client_id}}",
        "client_secret": "{{client_secret}}",
        "grant_type": "refresh_token",
        "refresh_token": "[[refreshToken]]",
    }


def test_a_token_obtained_by_a_refresh_or_get_token_is_redacted_everywhere(scene: Scene) -> None:
    salla = scene.definition("salla.json")
    install = ["--credential", f"accessToken={CONFIG.access_token}", "--credential", "refreshToken=env:REFRESH"]
    install.append("--no-sync")  # the sync below makes the one run
    with pytest.MonkeyPatch.context() as env:
        env.setenv("REFRESH", CONFIG.refresh_token)
        code, out = scene.run("install", salla, "-t", "acme", *install, *scene.config, *scene.rewrites)
    assert code == 0, out

    # 401 → refresh → the provider's next error quotes the fresh token.
    scene.sandbox.expire_access_token()
    scene.sandbox.echo_credentials_next(1, path_prefix="/customers")
    code, out = scene.run("sync", salla, "-t", "acme", "--resource", "customers", *scene.config, *scene.rewrites)
    assert code == 1
    assert "answered 403" in out
    assert '"received": "Bearer ***"' in out
    refreshed = scene.credentials("acme", "salla")
    assert refreshed["accessToken"] != CONFIG.access_token
    for args in (["runs", "--format", "json"], ["runs", "-t", "acme"], ["installations", "--format", "json"]):
        assert scene.run(*args)[0] == 0
    (run,) = json.loads(scene.outputs[-3])["items"]
    assert run["status"] == "failed"
    assert "***" in run["error"]

    # get_token's tokens: the next call (userDetails) fails quoting the token get_token returned.
    sallakey = scene.definition("sallakey.json", _get_token_from_a_refresh_token)
    scene.sandbox.echo_credentials_next(1, path_prefix="/oauth2/user/info")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("REFRESH", refreshed["refreshToken"])
        pasted = ["--credential", "refreshToken=env:REFRESH"]
        code, out = scene.run("install", sallakey, "-t", "beta", *pasted, *scene.config, *scene.rewrites)
    assert code == 1
    assert "auth.userDetails" in out
    assert "answered 403" in out
    exchanged = scene.credentials("beta", "sallakey")
    assert exchanged["accessToken"] not in (CONFIG.access_token, refreshed["accessToken"])
    assert scene.run("installations", "--format", "json")[0] == 0

    secrets = [
        CONFIG.access_token,
        CONFIG.refresh_token,
        CONFIG.client_secret,
        refreshed["accessToken"],
        refreshed["refreshToken"],
        exchanged["accessToken"],
        exchanged["refreshToken"],
    ]
    assert scene.landed(secrets) == []


def test_the_package_folder_and_the_check_report_hold_no_credential(scene: Scene) -> None:
    salla = scene.definition("salla.json")
    credentials = scene.folder / "sandbox.env"
    credentials.write_text(f"accessToken={CONFIG.access_token}\nrefreshToken={CONFIG.refresh_token}\n")
    samples = scene.folder / "samples"
    shutil.copytree(SAMPLES, samples)
    common = [salla, "--credentials", str(credentials), "--samples", str(samples), *scene.config, *scene.rewrites]
    scene.sandbox.echo_credentials_next(2, path_prefix="/oauth2/user/info")  # userDetails quotes the token
    report = scene.folder / "reports" / "report.md"
    report.parent.mkdir()
    assert scene.run("check", *common, "--report", str(report), "--format", "json")[0] == 1
    out = scene.folder / "package"
    code, text = scene.run("package", *common, "--out", str(out), "--force")
    assert code == 0, text
    assert "Bearer ***" in (out / "check-report.md").read_text()
    secrets = [CONFIG.access_token, CONFIG.refresh_token, CONFIG.client_secret]
    assert scene.landed(secrets, out, report.parent) == []
