"""One sandbox serving many stores: each its own merchant id, token pair, rate budget and webhooks."""

from __future__ import annotations

import aiohttp
import orjson
import pytest

from miniapp_sync.sandbox import Sandbox, SandboxConfig
from miniapp_sync.testing import FakeClock

from .test_oauth import token
from .test_ratelimit import get


def stores(count: int, clock: FakeClock, **config: object) -> Sandbox:
    return Sandbox(SandboxConfig(products=5, customers=2, orders=2, carts=1, tenants=count, **config), clock=clock)  # type: ignore[arg-type]


async def merchant_of(session: aiohttp.ClientSession, sandbox: Sandbox, access: str) -> int:
    headers = {"Authorization": f"Bearer {access}"}
    async with session.get(sandbox.base_url + "/oauth2/user/info", headers=headers) as response:
        assert response.status == 200
        return int((await response.json())["data"]["merchant"]["id"])


async def test_each_store_has_its_own_token_and_merchant_and_a_refresh_stays_with_its_store(clock: FakeClock) -> None:
    async with stores(3, clock) as sandbox, aiohttp.ClientSession() as session:
        cfg = sandbox.config
        assert cfg.tokens(0) == (cfg.access_token, cfg.refresh_token)  # store 0: the single store's tokens
        for tenant in range(3):
            access, _ = cfg.tokens(tenant)
            assert (await get(session, sandbox, access)).status == 200
            assert await merchant_of(session, sandbox, access) == cfg.merchant_id + tenant
        status, fresh = await token(session, sandbox, grant_type="refresh_token", refresh_token=cfg.tokens(2)[1])
        assert status == 200
        assert await merchant_of(session, sandbox, fresh["access_token"]) == cfg.merchant_id + 2
        assert (await get(session, sandbox, cfg.tokens(2)[0])).status == 401  # rotated away
        assert (await get(session, sandbox, cfg.tokens(1)[0])).status == 200  # the other stores keep theirs


async def test_each_store_has_its_own_rate_budget_and_the_stats_count_per_store(clock: FakeClock) -> None:
    async with stores(2, clock, rate_limit=1) as sandbox, aiohttp.ClientSession() as session:
        first, second = sandbox.config.tokens(0)[0], sandbox.config.tokens(1)[0]
        assert (await get(session, sandbox, first)).status == 200
        assert (await get(session, sandbox, second)).status == 200  # the same instant: store 1's own budget
        assert (await get(session, sandbox, second)).status == 429
        stats = sandbox.stats
        assert dict(stats.by_tenant) == {0: 1, 1: 2}
        assert dict(stats.limited_by_tenant) == {1: 1}
        assert stats.rate_limited == 1
        assert (await get(session, sandbox, "not-a-token")).status == 401
        assert sum(stats.by_tenant.values()) == 3  # refused before any store's budget


def test_a_store_s_webhook_names_its_merchant(clock: FakeClock) -> None:
    sandbox = stores(4, clock)
    raw, headers = sandbox.webhook("order.created", tenant=3)
    assert orjson.loads(raw)["merchant"] == sandbox.config.merchant_id + 3
    assert headers["X-Salla-Signature"] == sandbox.sign(raw)
    assert orjson.loads(sandbox.webhook("order.created")[0])["merchant"] == sandbox.config.merchant_id


@pytest.mark.parametrize("tenant", [-1, 4])
def test_a_store_outside_the_sandbox_is_refused(clock: FakeClock, tenant: int) -> None:
    config = stores(4, clock).config
    with pytest.raises(ValueError, match="stores 0 to 3"):
        config.tokens(tenant)
    with pytest.raises(ValueError, match="stores 0 to 3"):
        config.merchant(tenant)


def test_a_sandbox_serves_at_least_one_store() -> None:
    with pytest.raises(ValueError, match="tenants must be at least 1"):
        SandboxConfig(tenants=0)
