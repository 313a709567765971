"""The management API: every parameter and body checked (issue 12 item 10), pages, one error shape, OpenAPI."""

from __future__ import annotations

import orjson
from openapi_spec_validator import validate
from tests.server.conftest import AUTH, Api

from miniapp_sync.runtime import Runtime

NESTED = b'{"ns": "salla", "tenant": "t", "metadata": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"


async def test_item_10_management_api_answers_bad_input_with_400_naming_the_field(api: Api) -> None:
    status, body = await api.get("/api/records", installation="x", limit="-1")
    assert (status, body["error"]["field"]) == (400, "limit")
    assert "from 1 to 1000, found -1" in body["error"]["message"]
    status, body = await api.get("/api/records", installation="x", cursor=str(10**20))
    assert (status, body["error"]["field"]) == (400, "cursor")
    status, body = await api.get("/api/records", installation="x", offset=str(10**20))  # pages go by cursor now
    assert (status, body["error"]["field"]) == (400, "offset")
    assert body["error"]["hint"] == "known: installation, type, code, limit, cursor"
    status, body = await api.get("/api/events", tenant="acme", after=str(10**20))
    assert (status, body["error"]["field"]) == (400, "after")
    status, body = await api.post("/api/installations", NESTED)
    assert (status, body["error"]["field"]) == (400, "body")
    credentials = orjson.dumps({"ns": "salla", "tenant": "t", "credentials": [1]})
    status, body = await api.post("/api/installations", credentials)
    assert (status, body["error"]["field"]) == (400, "credentials")
    assert "expected an object" in body["error"]["message"]
    nested_value = orjson.dumps({"ns": "salla", "tenant": "t", "credentials": {"accessToken": {"a": 1}}})
    status, body = await api.post("/api/installations", nested_value)
    assert (status, body["error"]["field"]) == (400, "credentials.accessToken")
    status, body = await api.post("/api/installations", orjson.dumps({"ns": "zid", "tenant": "t"}))
    assert (status, body["error"]["field"]) == (400, "ns")
    assert "expected one of salla" in body["error"]["message"]


async def test_a_failed_install_is_a_conflict_with_the_reason_not_a_server_error(api: Api) -> None:
    body = orjson.dumps({"ns": "salla", "tenant": "beta", "credentials": {"accessToken": "tok-new"}})
    status, answer = await api.post("/api/installations", body)
    assert status == 409
    assert answer["error"]["type"] == "install_failed"
    assert "tok-new" not in str(answer)


async def test_lists_are_pages_whose_next_cursor_reads_on_to_the_end(api: Api, seeded: tuple[Runtime, str]) -> None:
    _, installation_id = seeded
    codes: list[str] = []
    cursor: str | None = None
    for _ in range(5):
        params = {"installation": installation_id, "limit": "2", **({"cursor": cursor} if cursor else {})}
        status, page = await api.get("/api/records", **params)
        assert status == 200
        assert set(page) == {"items", "next"}
        codes += [r["code"] for r in page["items"]]
        cursor = page["next"]
        if cursor is None:
            break
    assert codes == ["p1", "p2", "p3"]


async def test_views_are_camel_case_with_utc_times_and_string_ids(api: Api, seeded: tuple[Runtime, str]) -> None:
    _, installation_id = seeded
    _, runs = await api.get("/api/runs", installation=installation_id)
    (run,) = runs["items"]
    assert run["installationId"] == installation_id
    assert run["startedAt"] == "2026-01-01T00:00:00.000Z"
    assert run["status"] == "succeeded"
    _, inbox = await api.get("/api/deliveries")
    assert [(d["id"], d["status"], d["tenant"]) for d in inbox["items"]] == [
        ("2", "dead", "acme"),
        ("1", "processed", "acme"),
    ]
    assert inbox["items"][0]["receivedAt"].endswith("Z")
    _, events = await api.get("/api/events", tenant="acme")
    (event,) = events["items"]
    assert event["id"] == "1"
    assert events["next"] == "1"
    status, one = await api.get(f"/api/installations/{installation_id}")
    assert status == 200
    assert one["createdAt"] == "2026-01-01T00:00:00.000Z"
    assert "credentials" not in one
    status, missing = await api.get("/api/runs/nope")
    assert (status, missing["error"]["type"]) == (404, "not_found")


async def test_openapi_document_is_valid_declares_bearer_and_is_served_without_the_token(api: Api) -> None:
    async with api.http.get(f"{api.url}/api/openapi.json") as response:
        assert response.status == 200
        document = await response.json()
    validate(document)
    assert document["components"]["securitySchemes"]["adminToken"] == {"type": "http", "scheme": "bearer"}
    run = document["paths"]["/api/runs/{id}"]["get"]
    assert run["security"] == [{"adminToken": []}]
    assert [p["name"] for p in run["parameters"] if p["in"] == "path"] == ["id"]
    assert run["responses"]["200"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/RunView"}
    async with api.http.get(f"{api.url}/api/runs") as response:
        assert response.status == 401  # the operations stay guarded
        assert (await response.json())["error"]["type"] == "unauthorized"


async def test_an_id_of_unicode_digits_is_not_found_not_a_server_error(api: Api) -> None:
    # '¹'.isdigit() is true but int('¹') raises: found by the schemathesis run.
    status, body = await api.get("/api/deadletters/%C2%B9")
    assert status == 404
    assert body["error"]["field"] == "id"


async def test_overview_counts_per_miniapp_what_the_store_holds(api: Api) -> None:
    status, body = await api.get("/api/overview")
    assert status == 200
    (salla,) = body["miniapps"]
    assert salla["ns"] == "salla"
    assert salla["installations"] == {"connected": 1}
    assert salla["runsLast24h"] == {"succeeded": 1}
    assert salla["inboxBacklog"] == 0
    assert salla["oldestUnprocessedAt"] is None
    assert salla["deadLetters"] == 2  # the failed delivery and the rejected record
    assert salla["rejections"] == {}
    assert body["generatedAt"] == "2026-01-01T00:00:00.000Z"


async def test_an_unknown_path_or_method_under_api_is_answered_in_the_one_error_shape(api: Api) -> None:
    # Starlette answered these itself, in plain text: a client parsing {"error": …} got no JSON.
    status, body = await api.get("/api/nope")
    assert (status, body["error"]["type"]) == (404, "not_found")
    assert body["error"]["message"] == 'no operation at "/api/nope"'
    async with api.http.put(f"{api.url}/api/runs", headers=AUTH) as response:
        assert response.status == 405
        assert response.headers["Allow"] == "GET, HEAD"
        body = await response.json()
    assert body["error"] == {
        "type": "method_not_allowed",
        "message": 'PUT is not an operation of "/api/runs"',
        "hint": "allowed: GET, HEAD",
        "field": None,
    }
    async with api.http.get(f"{api.url}/console-nope") as response:  # outside /api: as before
        assert (response.status, await response.text()) == (404, "Not Found")
