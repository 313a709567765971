"""A running sandbox per test (small store, real HTTP on 127.0.0.1), a client with its token, and helpers."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from miniapp_sync.sandbox import Sandbox, SandboxConfig
from miniapp_sync.testing import FakeClock

SAMPLES = Path(__file__).parents[2] / "examples" / "salla" / "samples"
SMALL = SandboxConfig(products=37, customers=20, orders=25, carts=9)
PATHS = {"products": "/products", "customers": "/customers", "orders": "/orders", "abandonedCarts": "/carts/abandoned"}

GetJson = Callable[..., Awaitable[tuple[int, Any]]]


def sample(name: str) -> Any:
    """Load a sample payload of examples/salla/samples."""
    return json.loads((SAMPLES / name).read_text(encoding="utf-8"))


def shape_diff(expected: Any, found: Any, where: str = "$") -> list[str]:
    """List where ``found`` lacks or adds object keys compared with ``expected``, at any depth."""
    if isinstance(expected, dict) and isinstance(found, dict):
        problems = []
        if set(expected) != set(found):
            missing, extra = sorted(set(expected) - set(found)), sorted(set(found) - set(expected))
            problems.append(f"{where}: missing {missing}, extra {extra}")
        for key in set(expected) & set(found):
            problems += shape_diff(expected[key], found[key], f"{where}.{key}")
        return problems
    if isinstance(expected, list) and isinstance(found, list) and expected and found:
        return [p for item in found for p in shape_diff(expected[0], item, f"{where}[]")]
    return []  # scalars, nulls and empty lists say nothing about shape


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with Sandbox(SMALL) as running:
        yield running


@pytest.fixture
async def http(sandbox: Sandbox) -> AsyncIterator[aiohttp.ClientSession]:
    headers = {"Authorization": f"Bearer {sandbox.config.access_token}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        yield session


@pytest.fixture
def get_json(http: aiohttp.ClientSession) -> GetJson:
    """Return ``get(url, **kwargs) -> (status, decoded body)`` on the authorised session."""

    async def get(url: str, **kwargs: Any) -> tuple[int, Any]:
        async with http.get(url, **kwargs) as response:
            return response.status, await response.json(content_type=None)

    return get


async def fetch_all(get: GetJson, url: str, per_page: int, **params: str) -> list[dict[str, Any]]:
    """Follow ``pagination.links.next`` from page 1 and return every record listed."""
    status, body = await get(url, params={"per_page": str(per_page), **params})
    records = []
    while True:
        assert status == 200, body
        records += body["data"]
        following = body["pagination"]["links"].get("next")
        if following is None:
            return records
        status, body = await get(following)
