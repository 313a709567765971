"""Credentials at rest, single-flight refresh, OAuth state scope, and the private-network guard (D29-D31)."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from miniapp_sync.errors import InstallationError
from miniapp_sync.installations import Vault

from .conftest import World, derive


def test_credentials_are_unreadable_without_the_key(tmp_path: Path) -> None:
    vault = Vault.from_environment(None, {"MINIAPP_SYNC_SECRET_KEY": "one key"})
    blob = vault.encrypt({"accessToken": "tok-123456"})
    assert b"tok-123456" not in blob
    assert vault.decrypt(blob) == {"accessToken": "tok-123456"}
    other = Vault.from_environment(None, {"MINIAPP_SYNC_SECRET_KEY": "another key"})
    with pytest.raises(InstallationError, match="cannot decrypt stored credentials"):
        other.decrypt(blob)


def test_the_generated_key_file_is_private_and_reused(tmp_path: Path) -> None:
    key_file = tmp_path / "store" / "secret.key"
    first = Vault.from_environment(key_file, {})
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    again = Vault.from_environment(key_file, {})
    assert again.decrypt(first.encrypt({"a": 1})) == {"a": 1}


def test_without_a_key_or_a_key_file_the_error_says_what_to_set() -> None:
    with pytest.raises(InstallationError, match="set MINIAPP_SYNC_SECRET_KEY"):
        Vault.from_environment(None, {})


async def test_concurrent_401s_refresh_once(world: World) -> None:
    app = derive()
    installation = await world.install(app)
    seen = world.runtime.installations.credentials(installation)["accessToken"]
    world.sandbox.expire_access_token()
    refresh = world.runtime.installations.refresh
    first, second = await asyncio.gather(
        refresh(app.definition, installation.id, seen_token=seen),
        refresh(app.definition, installation.id, seen_token=seen),
    )
    assert first["accessToken"] == second["accessToken"] != seen
    assert world.sandbox.stats.by_route["POST /oauth2/token"] == 1  # single-use refresh tokens survive


async def test_an_oauth_state_of_another_miniapp_is_refused(world: World) -> None:
    app = derive()
    world.runtime.add(app)
    world.runtime.store.put_oauth_state("state-1", tenant="acme", ns="zid", expires_at=world.clock.now() + 60)
    with pytest.raises(InstallationError, match="another MiniApp"):
        await world.runtime.installations.complete_oauth(app.definition, "state-1", "code")
    world.runtime.store.put_oauth_state("state-2", tenant="acme", ns="salla", expires_at=world.clock.now() + 60)
    world.clock.advance(61)
    with pytest.raises(InstallationError, match="expired or already used"):
        await world.runtime.installations.complete_oauth(app.definition, "state-2", "code")


def _tenant_base_url(document: dict[str, Any]) -> None:
    # WooCommerce-style: the store's own URL comes from the install form.
    document["sync"]["baseUrl"] = "{{storeUrl}}/admin/v2"


async def test_a_tenant_supplied_base_url_on_a_private_address_is_refused(world: World) -> None:
    app = derive(_tenant_base_url)
    world.runtime.add(app)
    installation = await world.runtime.installations.install(
        app.definition,
        "acme",
        credentials={"accessToken": world.sandbox.config.access_token},
        user_input={"storeUrl": world.sandbox.base_url},  # 127.0.0.1
    )
    report = await world.runtime.engine.run(app.definition, app.plan, installation, resources=["customers"])
    error = report.resources["customers"].error
    assert error is not None
    assert "private or local address" in error
    assert "--allow-private-network" in error

    world.runtime.installations.allow_private_network = True
    allowed = await world.runtime.engine.run(app.definition, app.plan, installation, resources=["customers"])
    assert allowed.status == "succeeded"
