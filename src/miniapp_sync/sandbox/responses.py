"""Salla's response envelopes, encoded with orjson."""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

import orjson
from aiohttp import web


def json_response(payload: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    """Return ``payload`` as a JSON response."""
    return web.Response(body=orjson.dumps(payload), status=status, headers=headers, content_type="application/json")


def error_code(status: int) -> str:
    """Return a snake_case error code for an HTTP status ('too_many_requests')."""
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        return "error"


def error_body(status: int, code: str, message: str, fields: Mapping[str, list[str]] | None = None) -> dict[str, Any]:
    """Return Salla's error envelope."""
    error: dict[str, Any] = {"code": code, "message": message}
    if fields:
        error["fields"] = dict(fields)
    return {"status": status, "success": False, "error": error}


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    fields: Mapping[str, list[str]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    """Return Salla's error envelope as a response."""
    return json_response(error_body(status, code, message, fields), status, headers)


def unauthorized(message: str) -> web.Response:
    """Return the 401 an API call without a valid bearer token gets."""
    challenge = {"WWW-Authenticate": 'Bearer error="invalid_token"'}
    return error_response(401, "Unauthorized", message, headers=challenge)
