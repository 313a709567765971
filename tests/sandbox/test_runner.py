"""The foreground runner behind ``miniapp-sync sandbox`` and ``python -m miniapp_sync.sandbox``."""

from __future__ import annotations

import asyncio
import contextlib
import re

import aiohttp
import pytest

from miniapp_sync.sandbox import SandboxConfig, serve_forever
from miniapp_sync.sandbox.__main__ import main


async def test_serve_forever_announces_its_urls_and_serves_until_cancelled() -> None:
    lines: list[str] = []
    config = SandboxConfig(products=3, customers=2, orders=2, carts=1, access_token="tok")
    task = asyncio.create_task(serve_forever(config, "127.0.0.1", 0, echo=lines.append))

    async def announced() -> None:
        while not lines:
            await asyncio.sleep(0.001)

    await asyncio.wait_for(announced(), timeout=5)
    match = re.search(r"at (http://127\.0\.0\.1:\d+)", lines[0])
    assert match is not None
    assert any("Bearer tok" in line for line in lines)
    async with aiohttp.ClientSession(headers={"Authorization": "Bearer tok"}) as http:
        async with http.get(match[1] + "/admin/v2/products") as response:
            assert response.status == 200
            assert (await response.json())["pagination"]["total"] == 3
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        with pytest.raises(aiohttp.ClientConnectionError):
            await http.get(match[1] + "/admin/v2/products")


def test_the_module_entry_point_documents_its_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "--rate-limit" in out
    assert "--latency" in out
    assert "--tenants" in out


async def test_a_sandbox_of_several_stores_announces_how_to_reach_each() -> None:
    lines: list[str] = []
    config = SandboxConfig(products=3, customers=2, orders=2, carts=1, access_token="tok", tenants=3)
    task = asyncio.create_task(serve_forever(config, "127.0.0.1", 0, echo=lines.append))

    async def announced() -> None:
        while not any("stores:" in line for line in lines):
            await asyncio.sleep(0.001)

    try:
        await asyncio.wait_for(announced(), timeout=5)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    (stores,) = [line for line in lines if "stores:" in line]
    assert "3 (store k: merchant 1305146709+k, token tok-k" in stores
    assert "the last: tok-2" in stores
