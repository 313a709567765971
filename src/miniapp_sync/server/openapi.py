"""The management API's operations: their parameters checked on every request, and the OpenAPI document.

Each handler is declared with ``@operation(...)``: a summary, its parameters, its body schema
and its responses as view models. The same declaration parses a request (``parse``), so what
the document promises and what the server checks cannot drift apart: a parameter out of range,
a cursor not ours or a body of the wrong shape is a 400 that names the field, never a 500.
The document (OpenAPI 3.0.3) is generated from the declarations and the view models' schemas,
declares the bearer scheme on every operation, and is served without the token.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from miniapp_sync.views import ErrorView, ParameterError, components, decode_cursor, to_json, type_schema
from miniapp_sync.views.pages import CURSOR_PATTERN

Handler = Callable[[Request], Awaitable[Response]]
Kind = Literal["string", "integer", "cursor"]

MAX_TEXT: Final = 200  # characters of a query value that names something (an id, a tenant, a type)
SECURITY_SCHEME: Final = "adminToken"


@dataclass(frozen=True, slots=True)
class Param:
    """A path or query parameter: its kind, bounds and whether it is required."""

    name: str
    description: str
    kind: Kind = "string"
    location: Literal["query", "path"] = "query"
    required: bool = False
    default: int | None = None
    minimum: int | None = None
    maximum: int | None = None
    enum: tuple[str, ...] | None = None
    repeated: bool = False
    pattern: str | None = None  # a string's regular expression: what every value must match

    def schema(self) -> dict[str, Any]:
        """Return the parameter's JSON schema."""
        one: dict[str, Any]
        if self.kind == "integer":
            bounds = {"minimum": self.minimum, "maximum": self.maximum, "default": self.default}
            one = {"type": "integer", **{k: v for k, v in bounds.items() if v is not None}}
        elif self.enum is not None:
            one = {"type": "string", "enum": list(self.enum)}
        elif self.kind == "cursor":
            one = {"type": "string", "pattern": CURSOR_PATTERN}
        else:
            one = {"type": "string", "minLength": 1, "maxLength": MAX_TEXT}
            if self.pattern is not None:
                one["pattern"] = self.pattern
        return {"type": "array", "items": one} if self.repeated else one

    def document(self) -> dict[str, Any]:
        """Return the parameter object of the OpenAPI document."""
        out: dict[str, Any] = {"name": self.name, "in": self.location, "description": self.description}
        out["schema"] = self.schema()
        out["required"] = self.required or self.location == "path"
        if self.repeated:
            out |= {"style": "form", "explode": True}
        return out

    def parse(self, values: Sequence[str]) -> Any:
        """Return the parameter's value from what the request carried; raise ParameterError when it is unusable."""
        if not values:
            if self.required or self.location == "path":
                raise ParameterError(self.name, "is required", f"pass ?{self.name}=…")
            return [] if self.repeated else self.default
        parsed = [self._one(v) for v in values]
        return parsed if self.repeated else parsed[-1]

    def _one(self, value: str) -> Any:
        if self.kind == "integer":
            text = value.strip()
            digits = text.removeprefix("-")
            if not digits.isascii() or not digits.isdigit() or len(digits) > 18:
                raise ParameterError(self.name, f"expected a whole number, found {value[:40]!r}")
            number = int(text)
            low, high = self.minimum, self.maximum
            if (low is not None and number < low) or (high is not None and number > high):
                raise ParameterError(self.name, f"expected a whole number from {low} to {high}, found {number}")
            return number
        if self.kind == "cursor":
            decode_cursor(value, field=self.name)  # checked now; the handler decodes it again where it reads
            return value
        if self.enum is not None and value not in self.enum:
            raise ParameterError(self.name, f"expected one of {', '.join(self.enum)}, found {value[:40]!r}")
        if not value or len(value) > MAX_TEXT:
            raise ParameterError(self.name, f"expected 1 to {MAX_TEXT} characters, found {len(value)}")
        if self.pattern is not None and not re.search(self.pattern, value):
            raise ParameterError(self.name, f"expected {self.description.rstrip('.')}, found {value[:40]!r}")
        return value


LIMIT: Final = Param("limit", "Items per page.", "integer", default=100, minimum=1, maximum=1000)
CURSOR: Final = Param("cursor", "Where to continue: the `next` of the previous page.", "cursor")


@dataclass(frozen=True, slots=True)
class Reply:
    """A documented response: its description and, for JSON, the view (or page of views) it holds."""

    description: str
    view: type | None = None
    page: bool = False


@dataclass(frozen=True, slots=True)
class Operation:
    """What the OpenAPI document says about one handler, and what a request to it must satisfy."""

    summary: str
    params: tuple[Param, ...] = ()
    body: dict[str, Any] | None = None
    responses: dict[int, Reply] = field(default_factory=dict)

    def parse(self, request: Request) -> dict[str, Any]:
        """Return the handler's parameters by name, checked; raise ParameterError on the first bad one."""
        known = [p.name for p in self.params if p.location == "query"]
        unknown = sorted(set(request.query_params) - set(known))
        if unknown:  # a misspelt limit or filter would otherwise be ignored without a word
            hint = f"known: {', '.join(known)}" if known else "this operation takes no query parameters"
            raise ParameterError(unknown[0][:40], "is not a parameter of this operation", hint)
        out: dict[str, Any] = {}
        for param in self.params:
            if param.location == "path":
                values = [request.path_params[param.name]]
            else:
                values = request.query_params.getlist(param.name)
            out[param.name] = param.parse(values)
        return out


def error(status: int, type: str, message: str, *, hint: str | None = None, field: str | None = None) -> Response:
    """Return an error in the one error shape (D37)."""
    return JSONResponse(to_json(ErrorView.of(type, message, hint, field)), status)


def bad_request(exc: ParameterError) -> Response:
    """Return the 400 of a parameter or body field that cannot be used."""
    return error(400, "bad_request", str(exc), hint=exc.hint, field=exc.field)


def operation(
    summary: str,
    *,
    params: Sequence[Param] = (),
    body: dict[str, Any] | None = None,
    responses: dict[int, Reply],
) -> Callable[[Callable[..., Awaitable[Response]]], Handler]:
    """Declare a handler ``(request, **params)``: its parameters are parsed and checked before it runs."""
    spec = Operation(summary, tuple(params), body, responses)

    def wrap(handler: Callable[..., Awaitable[Response]]) -> Handler:
        async def endpoint(request: Request) -> Response:
            try:
                return await handler(request, **spec.parse(request))
            except ParameterError as exc:
                return bad_request(exc)

        endpoint.__name__ = handler.__name__
        endpoint.__doc__ = summary
        endpoint.operation = spec  # type: ignore[attr-defined]  # read by ``document``
        return endpoint

    return wrap


def _content(reply: Reply) -> dict[str, Any]:
    if reply.view is None:
        return {"description": reply.description}
    schema = type_schema(reply.view)
    if reply.page:
        items = {"type": "array", "items": schema}
        next_ = {"type": "string", "nullable": True, "description": "The cursor of the next page; null on the last."}
        schema = {
            "type": "object",
            "properties": {"items": items, "next": next_},
            "required": ["items", "next"],
            "additionalProperties": False,
        }
    return {"description": reply.description, "content": {"application/json": {"schema": schema}}}


GUARD_REPLIES: Final = {
    400: Reply("a parameter or body field cannot be used (`error.field` names it)", ErrorView),
    401: Reply("the admin token is missing or wrong", ErrorView),
    403: Reply("the management API is closed: the server has no admin token", ErrorView),
}


def document(routes: Sequence[BaseRoute], *, title: str, version: str) -> dict[str, Any]:
    """Return the OpenAPI 3.0.3 document of the declared operations among ``routes``."""
    paths: dict[str, dict[str, Any]] = {}
    views: set[type] = {ErrorView}
    for route in routes:
        spec: Operation | None = getattr(getattr(route, "endpoint", None), "operation", None)
        if not isinstance(route, Route) or spec is None or not route.include_in_schema:
            continue
        replies = {**GUARD_REPLIES, **spec.responses}
        views.update(r.view for r in replies.values() if r.view is not None and dataclasses.is_dataclass(r.view))
        for method in sorted((route.methods or set()) - {"HEAD"}):
            entry: dict[str, Any] = {
                "operationId": route.name,
                "summary": spec.summary,
                "parameters": [p.document() for p in spec.params],
                "security": [{SECURITY_SCHEME: []}],
                "responses": {str(status): _content(reply) for status, reply in sorted(replies.items())},
            }
            if spec.body is not None:
                entry["requestBody"] = {"required": True, "content": {"application/json": {"schema": spec.body}}}
            paths.setdefault(route.path, {})[method.lower()] = entry
    return {
        "openapi": "3.0.3",
        "info": {"title": title, "version": version},
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": components(views),
            "securitySchemes": {SECURITY_SCHEME: {"type": "http", "scheme": "bearer"}},
        },
    }


def ok(view: Any, status: int = 200) -> Response:
    """Return a view (or a page of views) as JSON."""
    return JSONResponse(to_json(view), status)
