"""JSON Schema of the view models, written from their type hints (the OpenAPI 3.0 dialect).

The views are plain frozen dataclasses rather than pydantic models: DESIGN §3 confines pydantic
to ``definition/``, and what a view needs from a schema tool is small — field names in
camelCase, every field required (absent values are ``null``, never missing), ``Literal`` as an
enum, ``Timestamp`` as ``date-time``, and a ``$ref`` for a nested view.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from functools import cache
from typing import Any, Literal, NewType, Union, get_args, get_origin, get_type_hints

Timestamp = NewType("Timestamp", str)  # ISO 8601 UTC with milliseconds and a Z: 2026-01-31T12:00:00.000Z

REF_ROOT = "#/components/schemas/"


@cache
def camel(name: str) -> str:
    """Return a snake_case field name in camelCase, as every view shows it (D37)."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in schema:  # OpenAPI 3.0 ignores siblings of a $ref
        return {"allOf": [schema], "nullable": True}
    return {**schema, "nullable": True}


def type_schema(hint: Any) -> dict[str, Any]:
    """Return the schema of one type hint."""
    if hint is Timestamp:
        return {"type": "string", "format": "date-time"}
    if hint is Any:
        return {}
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        members = [a for a in get_args(hint) if a is not type(None)]
        inner = type_schema(members[0]) if len(members) == 1 else {"anyOf": [type_schema(m) for m in members]}
        return _nullable(inner) if len(members) < len(get_args(hint)) else inner
    if origin is Literal:
        values = list(get_args(hint))
        return {"type": "string", "enum": values}
    if origin is list:
        return {"type": "array", "items": type_schema(get_args(hint)[0])}
    if origin is dict:
        value = get_args(hint)[1]
        return {"type": "object", "additionalProperties": True if value is Any else type_schema(value)}
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return {"$ref": REF_ROOT + hint.__name__}
    simple = {str: "string", bool: "boolean", int: "integer", float: "number"}
    if hint in simple:
        return {"type": simple[hint]}
    raise TypeError(f"no JSON schema for the view field type {hint!r}")


@cache
def object_schema(view: type) -> dict[str, Any]:
    """Return the schema of a view dataclass: camelCase properties, all required, no others."""
    hints = get_type_hints(view, include_extras=False)
    properties = {camel(f.name): type_schema(hints[f.name]) for f in dataclasses.fields(view)}
    schema: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }
    if view.__doc__:
        schema["description"] = view.__doc__.strip().splitlines()[0]
    return schema


def components(views: typing.Iterable[type]) -> dict[str, Any]:
    """Return ``components.schemas`` for ``views`` and every view they nest."""
    out: dict[str, Any] = {}
    todo = list(views)
    while todo:
        view = todo.pop()
        if view.__name__ in out:
            continue
        out[view.__name__] = object_schema(view)
        hints = get_type_hints(view)
        todo.extend(_nested(hints[f.name]) for f in dataclasses.fields(view) if _nested(hints[f.name]))
    return dict(sorted(out.items()))


def _nested(hint: Any) -> Any:
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return hint
    for arg in get_args(hint):
        found = _nested(arg)
        if found is not None:
            return found
    return None
