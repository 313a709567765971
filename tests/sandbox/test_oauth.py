"""Bearer auth on the API, and the OAuth 2.0 server: code flow, single-use codes, refresh rotation, expiry."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from yarl import URL

from miniapp_sync.sandbox import Sandbox
from miniapp_sync.sandbox.oauth import EXPIRES_IN
from miniapp_sync.testing import FakeClock

from .conftest import SMALL, sample

REDIRECT = "https://app.example.com/miniapps/salla/oauth2"


@pytest.fixture
async def plain() -> AsyncIterator[aiohttp.ClientSession]:
    """A session without credentials."""
    async with aiohttp.ClientSession() as session:
        yield session


async def api_status(session: aiohttp.ClientSession, sandbox: Sandbox, token: str | None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with session.get(sandbox.api_url + "/customers", headers=headers) as response:
        return response.status, await response.json()


async def authorize(session: aiohttp.ClientSession, sandbox: Sandbox, **params: str) -> URL:
    query = {"client_id": sandbox.config.client_id, "redirect_uri": REDIRECT, "response_type": "code"} | params
    async with session.get(sandbox.base_url + "/oauth2/auth", params=query, allow_redirects=False) as response:
        assert response.status == 302
        return URL(response.headers["Location"])


async def token(session: aiohttp.ClientSession, sandbox: Sandbox, form: bool = False, **fields: str) -> tuple[int, Any]:
    body = {"client_id": sandbox.config.client_id, "client_secret": sandbox.config.client_secret} | fields
    kwargs: dict[str, Any] = {"data": body} if form else {"json": body}
    async with session.post(sandbox.base_url + "/oauth2/token", **kwargs) as response:
        return response.status, await response.json()


async def code_flow(session: aiohttp.ClientSession, sandbox: Sandbox) -> dict[str, Any]:
    code = (await authorize(session, sandbox)).query["code"]
    status, body = await token(session, sandbox, grant_type="authorization_code", code=code, redirect_uri=REDIRECT)
    assert status == 200, body
    return dict(body)


@pytest.mark.parametrize("header", [None, "Bearer wrong-token", "Basic c2FuZGJveDpzZWNyZXQ=", "Bearer"])
async def test_api_calls_without_a_valid_bearer_token_answer_401(
    sandbox: Sandbox, plain: aiohttp.ClientSession, header: str | None
) -> None:
    headers = {"Authorization": header} if header is not None else {}
    async with plain.get(sandbox.api_url + "/products/1", headers=headers) as response:
        assert response.status == 401
        body = await response.json()
    assert body["status"] == 401
    assert body["success"] is False
    assert body["error"]["code"] == "Unauthorized"
    assert sandbox.stats.responses[401] == 1


async def test_code_flow_redirects_with_a_code_and_state_then_issues_working_tokens(
    sandbox: Sandbox, plain: aiohttp.ClientSession
) -> None:
    location = await authorize(plain, sandbox, state="xyz-42", scope="offline_access")
    assert str(location).startswith(REDIRECT + "?")
    assert location.query["state"] == "xyz-42"
    code = location.query["code"]
    status, body = await token(plain, sandbox, grant_type="authorization_code", code=code, redirect_uri=REDIRECT)
    assert status == 200
    assert set(body) == set(sample("oauth/token.json"))
    assert (body["expires_in"], body["token_type"], body["scope"]) == (EXPIRES_IN, "bearer", "offline_access")
    assert (await api_status(plain, sandbox, body["access_token"]))[0] == 200
    assert (await api_status(plain, sandbox, sandbox.config.access_token))[0] == 200  # other installs keep theirs


async def test_an_authorization_code_works_once(sandbox: Sandbox, plain: aiohttp.ClientSession) -> None:
    code = (await authorize(plain, sandbox)).query["code"]
    first, _ = await token(plain, sandbox, grant_type="authorization_code", code=code)
    again, body = await token(plain, sandbox, grant_type="authorization_code", code=code)
    assert (first, again) == (200, 400)
    assert body["error"] == "invalid_grant"


async def test_an_authorization_code_expires_after_ten_minutes(clock: FakeClock, plain: aiohttp.ClientSession) -> None:
    async with Sandbox(SMALL, clock=clock) as sandbox:
        code = (await authorize(plain, sandbox)).query["code"]
        clock.advance(601)
        status, body = await token(plain, sandbox, grant_type="authorization_code", code=code)
    assert (status, body["error"]) == (400, "invalid_grant")
    assert "expired" in body["error_description"]


async def test_the_token_endpoint_takes_form_bodies_and_basic_client_credentials(
    sandbox: Sandbox, plain: aiohttp.ClientSession
) -> None:
    code = (await authorize(plain, sandbox)).query["code"]
    status, _ = await token(plain, sandbox, form=True, grant_type="authorization_code", code=code)
    assert status == 200
    cfg = sandbox.config
    basic = {"Authorization": "Basic " + base64.b64encode(f"{cfg.client_id}:{cfg.client_secret}".encode()).decode()}
    fields = {"grant_type": "refresh_token", "refresh_token": cfg.refresh_token}
    async with plain.post(sandbox.base_url + "/oauth2/token", data=fields, headers=basic) as response:
        assert response.status == 200
        assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    ("fields", "status", "error"),
    [
        ({"client_secret": "wrong", "grant_type": "refresh_token"}, 401, "invalid_client"),
        ({"grant_type": "password"}, 400, "unsupported_grant_type"),
        ({"grant_type": "authorization_code", "code": "made-up"}, 400, "invalid_grant"),
        ({"grant_type": "refresh_token", "refresh_token": "made-up"}, 400, "invalid_grant"),
    ],
)
async def test_the_token_endpoint_refuses_bad_requests_with_oauth_errors(
    sandbox: Sandbox, plain: aiohttp.ClientSession, fields: dict[str, str], status: int, error: str
) -> None:
    found, body = await token(plain, sandbox, **fields)
    assert (found, body["error"]) == (status, error)


async def test_a_code_is_refused_for_another_redirect_uri(sandbox: Sandbox, plain: aiohttp.ClientSession) -> None:
    code = (await authorize(plain, sandbox)).query["code"]
    status, body = await token(plain, sandbox, grant_type="authorization_code", code=code, redirect_uri="https://evil")
    assert (status, body["error"]) == (400, "invalid_grant")


async def test_authorize_refuses_unknown_clients_and_redirects_other_response_types_with_an_error(
    sandbox: Sandbox, plain: aiohttp.ClientSession
) -> None:
    query = {"client_id": "someone-else", "redirect_uri": REDIRECT, "response_type": "code"}
    async with plain.get(sandbox.base_url + "/oauth2/auth", params=query, allow_redirects=False) as response:
        assert response.status == 400
        assert (await response.json())["error"] == "invalid_client"
    location = await authorize(plain, sandbox, response_type="token", state="s")
    assert dict(location.query) == {"state": "s", "error": "unsupported_response_type"}


async def test_refresh_rotates_the_pair_and_the_old_access_token_stops_working(
    sandbox: Sandbox, plain: aiohttp.ClientSession
) -> None:
    first = await code_flow(plain, sandbox)
    status, second = await token(plain, sandbox, grant_type="refresh_token", refresh_token=first["refresh_token"])
    assert status == 200
    assert second["refresh_token"] != first["refresh_token"]
    assert (await api_status(plain, sandbox, second["access_token"]))[0] == 200
    assert (await api_status(plain, sandbox, first["access_token"]))[0] == 401


async def test_reusing_a_refresh_token_is_invalid_grant_and_revokes_the_pair_issued_from_it(
    sandbox: Sandbox, plain: aiohttp.ClientSession
) -> None:
    first = await code_flow(plain, sandbox)
    _, second = await token(plain, sandbox, grant_type="refresh_token", refresh_token=first["refresh_token"])
    status, body = await token(plain, sandbox, grant_type="refresh_token", refresh_token=first["refresh_token"])
    assert (status, body) == (400, {"error": "invalid_grant", "error_description": body["error_description"]})
    assert (await api_status(plain, sandbox, second["access_token"]))[0] == 401
    refused, _ = await token(plain, sandbox, grant_type="refresh_token", refresh_token=second["refresh_token"])
    assert refused == 400


async def test_an_expired_access_token_answers_401_until_refreshed(
    sandbox: Sandbox, plain: aiohttp.ClientSession
) -> None:
    cfg = sandbox.config
    sandbox.expire_access_token()
    status, body = await api_status(plain, sandbox, cfg.access_token)
    assert status == 401
    assert "expired" in body["error"]["message"]
    _, fresh = await token(plain, sandbox, grant_type="refresh_token", refresh_token=cfg.refresh_token)
    assert (await api_status(plain, sandbox, fresh["access_token"]))[0] == 200
    assert (await api_status(plain, sandbox, cfg.access_token))[0] == 401


async def test_access_tokens_expire_after_expires_in(clock: FakeClock, plain: aiohttp.ClientSession) -> None:
    async with Sandbox(SMALL, clock=clock) as sandbox:
        clock.advance(EXPIRES_IN - 1)
        assert (await api_status(plain, sandbox, sandbox.config.access_token))[0] == 200
        clock.advance(1)
        assert (await api_status(plain, sandbox, sandbox.config.access_token))[0] == 401


async def test_user_info_returns_the_merchant_in_the_sample_shape(
    sandbox: Sandbox, plain: aiohttp.ClientSession
) -> None:
    headers = {"Authorization": f"Bearer {sandbox.config.access_token}"}
    async with plain.get(sandbox.base_url + "/oauth2/user/info", headers=headers) as response:
        assert response.status == 200
        body = await response.json()
    expected = sample("oauth/user.info.json")
    assert set(body) == set(expected)
    assert set(body["data"]) == set(expected["data"])
    assert set(body["data"]["merchant"]) == set(expected["data"]["merchant"])
    assert body["data"]["merchant"]["id"] == sandbox.config.merchant_id
    async with plain.get(sandbox.base_url + "/oauth2/user/info") as response:
        assert response.status == 401
