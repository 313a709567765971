"""Typed mapping rules (D12), parsed from the raw rule values of a definition.

A rule is one of:

- ``'data.id'``                                       a path (a string is always a path)
- ``42``, ``true``, ``null``                          a literal: any value that is no string or object
- ``{path, transform?, default?, ...options}``        a path, then transforms
- ``{paths: [...], transform: 'coalesce'}``           several paths, then transforms
- ``{value: <literal>}``                              a literal
- ``{transform: 'compute', fn, path?/paths?, args?}`` a compute function

``transform`` may be a name, ``{name, ...options}`` or a list of those, applied left to
right. Keys that are not part of the rule grammar (``separator``, ``itemMapping``,
``country``, ``format`` …) are options shared by the rule's transforms.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, Literal


class _Missing:
    """The sentinel for 'no value here' (distinct from JSON null)."""

    __slots__ = ()
    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False

    def __reduce__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()

RuleKind = Literal["path", "paths", "literal", "compute"]
RULE_KEYS: Final = frozenset({"path", "paths", "transform", "default", "value", "fn"})
# The guide lists "literals" among rule kinds without a syntax; a bare string stays a path
# (the documented examples are all paths), so text has to say it is a literal. Bare numbers,
# booleans and null as literals go beyond D12's list (which names only {value}): issue #13 item 7.
LITERAL_STRING_HINT: Final = "a literal string is written { value: 'text' }; a bare string is read as a path"
EMPTY: Final[Mapping[str, Any]] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class TransformStep:
    """One transform applied to a value; ``fn`` names the function of ``compute``."""

    name: str
    fn: str | None = None
    options: Mapping[str, Any] = field(default_factory=lambda: EMPTY)


@dataclass(frozen=True, slots=True)
class Rule:
    """One target field's rule: where to read, how to transform, what if nothing is found."""

    kind: RuleKind
    paths: tuple[str, ...] = ()
    transforms: tuple[TransformStep, ...] = ()
    default: Any = MISSING
    value: Any = MISSING
    options: Mapping[str, Any] = field(default_factory=lambda: EMPTY)

    @property
    def path(self) -> str | None:
        """Return the single path of a ``path`` rule (else None)."""
        return self.paths[0] if self.kind == "path" else None


class RuleError(ValueError):
    """A raw rule does not fit the grammar; ``where`` is the key inside the rule."""

    def __init__(
        self,
        message: str,
        *,
        where: str = "",
        expected: str | None = None,
        found: Any = MISSING,
        hint: str | None = None,
    ) -> None:
        self.where = where
        self.expected = expected
        self.found = found
        self.hint = hint
        super().__init__(message)


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return MappingProxyType({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


def thaw(value: Any) -> Any:
    """Turn frozen rule values back into plain JSON dicts and lists."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [thaw(v) for v in value]
    return value


def _steps(raw: Any, fn: Any, options: Mapping[str, Any]) -> tuple[TransformStep, ...]:
    items = raw if isinstance(raw, list) else [raw]
    steps = []
    for index, item in enumerate(items):
        where = f"transform[{index}]" if isinstance(raw, list) else "transform"
        if isinstance(item, str):
            name, own = item, EMPTY
        elif isinstance(item, dict) and isinstance(item.get("name"), str):
            name = item["name"]
            own = _freeze({k: v for k, v in item.items() if k not in ("name", "fn")})
            fn = item.get("fn", fn)
        else:
            raise RuleError(
                "a transform must be a name or {name, ...options}",
                where=where,
                expected="string or {name: string}",
                found=item,
            )
        step_fn = None
        if name == "compute":
            if not isinstance(fn, str) or not fn:
                raise RuleError(
                    "transform 'compute' needs 'fn', the name of a compute function",
                    where="fn",
                    expected="a function name",
                    found=fn,
                )
            step_fn = fn
        merged = {**options, **own} if own else options
        steps.append(TransformStep(name=name, fn=step_fn, options=MappingProxyType(dict(merged))))
    return tuple(steps)


def parse_rule(raw: Any) -> Rule:
    """Parse one raw rule value (D12); raise RuleError saying what does not fit."""
    if isinstance(raw, str):
        if not raw:
            raise RuleError(
                "a path rule must not be empty",
                expected="a path such as 'data.id'",
                found=raw,
                hint=LITERAL_STRING_HINT,
            )
        return Rule(kind="path", paths=(raw,))
    if raw is None or isinstance(raw, bool | int | float):
        return Rule(kind="literal", value=raw)
    if not isinstance(raw, dict):
        raise RuleError(
            "a mapping rule must be a path string, a literal number, boolean or null, or an object",
            expected="'path', 42, true, null or {path|paths|value, transform?, default?}",
            found=raw,
            hint="a literal list or text is written { value: … }",
        )
    if "value" in raw:
        extra = sorted(set(raw) & {"path", "paths", "transform", "fn"})
        if extra:
            raise RuleError(
                f"a literal rule {{value: …}} cannot also have {', '.join(map(repr, extra))}",
                where=extra[0],
                expected="only 'value'",
            )
        return Rule(kind="literal", value=_freeze(raw["value"]))

    options = _freeze({k: v for k, v in raw.items() if k not in RULE_KEYS})
    path, paths = raw.get("path", MISSING), raw.get("paths", MISSING)
    if path is not MISSING and paths is not MISSING:
        raise RuleError("a rule takes either 'path' or 'paths', not both", where="paths")
    if path is not MISSING and (not isinstance(path, str) or not path):
        raise RuleError("'path' must be a non-empty string", where="path", expected="a path", found=path)
    if paths is not MISSING and (
        not isinstance(paths, list) or not paths or not all(isinstance(p, str) and p for p in paths)
    ):
        raise RuleError(
            "'paths' must be a non-empty list of path strings",
            where="paths",
            expected="['a.b', 'c.d']",
            found=paths,
        )
    transforms = _steps(raw["transform"], raw.get("fn"), options) if "transform" in raw else ()
    if "fn" in raw and not any(s.name == "compute" for s in transforms):
        raise RuleError("'fn' is only used with transform 'compute'", where="fn", expected="transform: 'compute'")
    if "args" in raw:
        if not isinstance(raw["args"], dict):
            raise RuleError(
                "'args' must be an object of keyword arguments",
                where="args",
                expected="{name: value}",
                found=raw["args"],
            )
        if not any(s.name == "compute" for s in transforms):
            raise RuleError(
                "'args' is only used with transform 'compute'", where="args", expected="transform: 'compute'"
            )
    default = _freeze(raw["default"]) if "default" in raw else MISSING

    if isinstance(paths, list):
        return Rule(kind="paths", paths=tuple(paths), transforms=transforms, default=default, options=options)
    if isinstance(path, str):
        return Rule(kind="path", paths=(path,), transforms=transforms, default=default, options=options)
    if any(s.name == "compute" for s in transforms):
        return Rule(kind="compute", transforms=transforms, default=default, options=options)
    if default is not MISSING and not transforms:
        return Rule(kind="literal", value=default)
    raise RuleError(
        "a rule needs 'path', 'paths', 'value' or transform 'compute'",
        expected="one of path, paths, value, transform: 'compute'",
        found=raw,
    )
