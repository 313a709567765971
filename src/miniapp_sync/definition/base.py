"""The base of every block of the definition model, and how mapping rules are read and written.

A mapping rule (D12) is parsed once into a ``Rule`` (``definition/rules.py``); here it becomes a
pydantic field type that validates, serialises back and describes itself in the JSON Schema.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    PlainSerializer,
    PlainValidator,
    WithJsonSchema,
)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from miniapp_sync.definition.rules import MISSING, Rule, RuleError, parse_rule, thaw
from miniapp_sync.errors import preview


def _rule(raw: Any) -> Rule:
    if isinstance(raw, Rule):
        return raw
    try:
        return parse_rule(raw)
    except RuleError as exc:
        found = "" if exc.found is MISSING else preview(exc.found)
        ctx = {
            "reason": str(exc),
            "where": exc.where,
            "expected": exc.expected or "",
            "found": found,
            "hint": exc.hint or "",
        }
        raise PydanticCustomError("mapping_rule", "{reason}", ctx) from None


_RULE_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "string", "description": "a path: dot path relative to the record, or JSONPath starting with $"},
        {"type": ["number", "boolean", "null"], "description": "a literal value; text is written {value: 'text'}"},
        {
            "type": "object",
            "properties": {
                "path": {"type": "string"},
                "paths": {"type": "array", "items": {"type": "string"}},
                "transform": {"anyOf": [{"type": "string"}, {"type": "array"}, {"type": "object"}]},
                "fn": {"type": "string"},
                "args": {"type": "object"},
                "default": {},
                "value": {},
            },
        },
    ]
}


def _dump_rule(rule: Rule) -> Any:
    """Serialise a rule back to its document form (for model_dump)."""
    if rule.kind == "literal":
        return {"value": thaw(rule.value)}
    if rule.kind == "path" and not rule.transforms and rule.default is MISSING and not rule.options:
        return rule.paths[0]
    raw: dict[str, Any] = thaw(rule.options)
    if rule.kind == "path":
        raw["path"] = rule.paths[0]
    elif rule.kind == "paths":
        raw["paths"] = list(rule.paths)
    if rule.transforms:
        raw["transform"] = [{"name": s.name, **({"fn": s.fn} if s.fn else {})} for s in rule.transforms]
    if rule.default is not MISSING:
        raw["default"] = thaw(rule.default)
    return raw


MappingRule = Annotated[
    Rule, PlainValidator(_rule), PlainSerializer(_dump_rule, return_type=Any), WithJsonSchema(_RULE_SCHEMA)
]
FieldMapping = dict[str, MappingRule]


class Model(BaseModel):
    """Base of every block: frozen, camelCase aliases, unknown keys kept (D3)."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        frozen=True,
        extra="allow",
        validate_default=False,
    )
