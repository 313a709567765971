"""Compile mapping rules, once per definition, into plain callables (D12–D14, D19).

Each rule becomes a few lines of Python that leave its value (or MISSING) in ``v``. The lines
of all rules are joined into one straight-line function, the hot path: no per-record
dispatch, names-only dot paths read inline, one dict store per present value. The same lines
also become one function per field, which the mapper falls back to when a rule raises, so
that the problem names the field; both paths share one definition of what a rule means.

In front of them sits an optimistic function, generated from the same lines: each rule's first
path read by a plain subscript through objects checked to be exact dicts, and the required
fields tested as they are stored. It only ever returns what the straight-line function would;
on anything else (a missing key, an unexpected type, a failing step) it raises and the
straight-line function maps the record as if it had never run.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

from miniapp_sync.definition.content_types import ContentType
from miniapp_sync.definition.rules import MISSING, Rule, TransformStep, parse_rule, thaw
from miniapp_sync.errors import MappingError, preview
from miniapp_sync.mapping.expressions import step_expression
from miniapp_sync.mapping.functions import FunctionRegistry
from miniapp_sync.mapping.items import MAX_ITEMS
from miniapp_sync.mapping.paths import compile_path
from miniapp_sync.mapping.records import MappedRecord, Problem, missing_required
from miniapp_sync.mapping.transforms import build_transform, is_empty

Getter = Callable[[Any], Any]
_new_record = tuple.__new__
# After FALLBACK_LIMIT records the optimistic function could not map (a provider that leaves a
# primary path out of most records would pay for both functions), a mapper rests it: it maps
# RESTING records carefully only, then tries it again from a count of 0. A long-running serve
# thus gets the fast path back after a bad burst (before, it stopped trying for good). Both counts
# are kept on the fallback path only: a count per record cost ~390 instructions of the ~36,500 a
# product takes (callgrind), more than a rare rest costs. Records that keep falling back pay for
# both functions on FALLBACK_LIMIT of every FALLBACK_LIMIT + RESTING; a steady 1% that falls back
# costs a rest of RESTING every 100,000 records.
FALLBACK_LIMIT = 1000
RESTING = 10 * FALLBACK_LIMIT
# is_empty() inlined: JSON gives exact types, and a call per path would cost a third of the rule.
# Only a value of another class (a dict or str subclass, a Mapping) takes the call. Text, then
# numbers, are tested by identity before the set: ~110 fewer instructions per text value (callgrind).
EMPTY = (
    "v is MISSING or v is None or (not v if (k := v.__class__) is str else k is not int and k is not float"
    " and (not v if k in SIZED else k is not bool and is_empty(v)))"
)
EMPTY_PRESENT = EMPTY.removeprefix("v is MISSING or ")  # the test of a value that is never MISSING
NAMES_ONLY = re.compile(r"[^.\[\]$][^.\[\]]*(?:\.[^.\[\]]+)*")
# '$.data.id' (shorthand names only) selects what the dot path 'data.id' does: the same accessor.
PLAIN_JSONPATH = re.compile(r"\$((?:\.[A-Za-z_][A-Za-z0-9_]*)+)")


def _names(path: str) -> list[str] | None:
    """Return the keys of a names-only dot path (or its shorthand JSONPath), or None when it needs its getter."""
    if plain := PLAIN_JSONPATH.fullmatch(path):
        path = plain[1][1:]
    elif not NAMES_ONLY.fullmatch(path):
        return None
    return path.split(".")


def _walk_code(path: str) -> str | None:
    """Return an inline expression reading a names-only dot path, or None when it needs its getter.

    The expression reads from ``src``, the record when it is a dict and an empty dict when not;
    an intermediate miss reads as None, which is no dict, so the walk ends in MISSING as the
    getter's does.
    """
    if (keys := _names(path)) is None:
        return None
    *inner, last = keys
    if not inner:
        return f"src.get({last!r}, MISSING)"
    expr = f"src.get({inner[0]!r})"
    for key in inner[1:]:
        expr = f"(w.get({key!r}) if isinstance(w := {expr}, dict) else None)"
    return f"w.get({last!r}, MISSING) if isinstance(w := {expr}, dict) else MISSING"


class Prefixes:
    """The objects a mapping's paths pass through, read once per record by the straight-line function.

    Most rules of a mapping read under a few objects (an order's ``amounts``, ``customer``): each
    such object becomes a local, read at the top of the function and replaced by an empty dict
    when it is no dict, so a path under it is one ``get`` — the same MISSING the walk would find.
    """

    name = "p"  # the locals' prefix

    def __init__(self) -> None:
        self._locals: dict[tuple[str, ...], str] = {}
        self._lines: list[str] = []

    def read(self, path: str) -> str | None:
        """Return an expression reading ``path`` through the shared locals, or None when it needs its getter."""
        if (keys := _names(path)) is None:
            return None
        return self._key(self._local(tuple(keys[:-1])), keys[-1])

    def _key(self, obj: str, key: str) -> str:
        return f"{obj}.get({key!r}, MISSING)"

    def _bind(self, name: str, parent: str, key: str) -> list[str]:
        return [
            f"{name} = {parent}.get({key!r})",
            # An exact dict (what JSON decodes to) passes the first test without a call.
            f"if {name}.__class__ is not dict and not isinstance({name}, dict): {name} = NOTHING",
        ]

    def _local(self, keys: tuple[str, ...]) -> str:
        if not keys:
            return "src"
        if keys not in self._locals:
            parent = self._local(keys[:-1])  # its lines come first
            name = self._locals[keys] = f"{self.name}{len(self._locals)}"
            self._lines += self._bind(name, parent, keys[-1])
        return self._locals[keys]

    def lines(self) -> list[str]:
        """Return the lines that read every shared object, parents before children."""
        return list(self._lines)


class Subscripts(Prefixes):
    """The optimistic function's reads: plain subscripts of objects checked once to be exact dicts.

    A missing key raises KeyError and an object that is no exact dict raises Fallback; either
    way the mapper runs the careful function instead, so these reads never decide a value.
    """

    name = "q"

    def _key(self, obj: str, key: str) -> str:
        return f"{obj}[{key!r}]"

    def _bind(self, name: str, parent: str, key: str) -> list[str]:
        return [f"{name} = {parent}[{key!r}]", f"if {name}.__class__ is not dict: raise Fallback"]


class Fallback(Exception):
    """Raised by the optimistic function where the careful one must decide."""


class RuleCode(NamedTuple):
    """A rule's lines for the three functions; an ending says whether ``v`` may be MISSING after them."""

    careful: list[str]
    field: list[str]
    ending: str
    optimistic: list[str]
    optimistic_ending: str


def _rule_code(
    index: int,
    rule: Rule,
    functions: FunctionRegistry,
    names: dict[str, Any],
    prefixes: Prefixes,
    subscripts: Subscripts,
) -> RuleCode:
    """Return lines leaving rule ``index``'s value (or MISSING) in ``v``; bind what they use in ``names``.

    The lines come three times: for the careful straight-line function (reading through
    ``prefixes``), for the field's own (see ``step_expression``) and for the optimistic function
    (its first path subscripted through ``subscripts``, the others read as the field's are). An
    ending says how lines end: "present" when ``v`` is never MISSING after them, "guarded" when
    the last line is ``if v is not MISSING: …`` and leaves a value, "maybe" else.
    """
    if rule.kind == "literal":
        names[f"c{index}"] = thaw(rule.value)
        line = [f"v = c{index}"]
        return RuleCode(line, line, "present", line, "present")
    steps = list(rule.transforms)
    getters = [f"g{index}_{number}" for number in range(len(rule.paths))]
    for getter, path in zip(getters, rule.paths, strict=True):
        names[getter] = compile_path(path).get  # compiled even when inlined: it validates the path
    coalesce = rule.kind == "paths" and (not steps or steps[0].name == "coalesce")
    if coalesce:
        steps = steps[1:]

    def reading(walk: Callable[[str], str | None], rest: Callable[[str], str | None] | None = None) -> list[str]:
        walks = [walk, *[rest or walk] * (len(getters) - 1)][: len(getters)]
        if rule.kind == "paths" and not coalesce:
            walks = [walk] * len(getters)  # every value is read: each its own primary path
        reads = [
            read(path) or f"{getter}(record)" for read, getter, path in zip(walks, getters, rule.paths, strict=True)
        ]
        if rule.kind == "path":
            return [f"v = {reads[0]}"]
        if coalesce:  # without building a list: read the next path only while the value is empty (D15)
            # After the optimistic function's subscript (it has ``rest``), v is never MISSING.
            first = EMPTY_PRESENT if rest is not None and _names(rule.paths[0]) is not None else EMPTY
            tests = [first, *[EMPTY] * (len(reads) - 1)]
            # Each test nests under the one before: a value found non-empty is not tested again.
            lines, indent = [f"v = {reads[0]}"], ""
            for test, read in zip(tests, reads[1:], strict=False):
                lines += [f"{indent}if {test}:", f"{indent}    v = {read}"]
                indent += "    "
            return [*lines, f"{indent}if {tests[-1]}: v = MISSING"]
        if rule.kind == "paths":  # a list of the values, an absent one null there
            return [f"v = [{', '.join(f'(None if (x := {read}) is MISSING else x)' for read in reads)}]"]
        return ["v = record"]  # compute with no path: the function sees the whole record (or webhook body)

    lines, field_lines = reading(prefixes.read), reading(_walk_code)
    optimistic = reading(subscripts.read, _walk_code)
    # A subscript never reads MISSING: the optimistic lines need no test until a step may give it.
    present = rule.kind in ("path", "paths") and not coalesce and bool(rule.paths)
    present = present and all(_names(path) is not None for path in rule.paths)
    # Steps run one after the other while the value is present; a run of steps that never
    # yield MISSING shares one test (the transforms receive present values only, D15).
    run: list[tuple[str, str, str]] = []
    ending, optimistic_ending = "maybe", "present" if present else "maybe"
    for number, step in enumerate(steps):
        fast, field, hopeful, may_be_missing = _step_code(f"t{index}_{number}", step, functions, names)
        run.append((f"v = {fast}", f"v = {field}", f"v = {hopeful}"))
        if may_be_missing or number == len(steps) - 1:
            lines.append(f"if v is not MISSING: {'; '.join(fast for fast, _, _ in run)}")
            field_lines.append(f"if v is not MISSING: {'; '.join(field for _, field, _ in run)}")
            hopeful_run = "; ".join(hopeful for _, _, hopeful in run)
            optimistic.append(hopeful_run if optimistic_ending == "present" else f"if v is not MISSING: {hopeful_run}")
            ending = "maybe" if may_be_missing else "guarded"
            if optimistic_ending != "present" or may_be_missing:
                optimistic_ending = ending
            run = []
    if rule.default is not MISSING:
        names[f"d{index}"] = thaw(rule.default)
        lines.append(f"if v is MISSING or v is None: v = d{index}")
        field_lines.append(lines[-1])
        optimistic.append(lines[-1])
        ending = optimistic_ending = "present"
    return RuleCode(lines, field_lines, ending, optimistic, optimistic_ending)


def _step_code(
    name: str, step: TransformStep, functions: FunctionRegistry, names: dict[str, Any]
) -> tuple[str, str, str, bool]:
    """Return the step's expressions (straight-line, per field, optimistic) and whether it may give MISSING."""
    item_mapping = step.options.get("itemMapping") if step.name == "mapItems" else None
    if item_mapping is None:
        fast, field, may_be_missing = step_expression(
            step, name, build_transform(step, functions=functions), names, functions
        )
        return fast, field, fast, may_be_missing
    inner = Mapper.compile({k: parse_rule(thaw(v)) for k, v in item_mapping.items()}, functions=functions)
    transform = build_transform(step, functions=functions, item_mapper=inner.map_strict)
    lists = (inner.optimistic_list_function(), inner.list_function())
    fast, field, may_be_missing = step_expression(step, name, transform, names, functions, lists)
    if step.options.get("currency") is not None:
        return fast, field, fast, may_be_missing
    # The items' optimistic loop called straight, not through the step: when it raises, the
    # whole record takes the careful path, whose step tries it again and then decides.
    names[f"{name}o"] = lists[0]
    return fast, field, f"{name}o(v) if v.__class__ is list else {fast}", may_be_missing


def _define(source: list[str], names: dict[str, Any], function: str) -> Getter:
    exec("\n".join(source), names)
    defined: Getter = names[function]
    return defined


class Mapper:
    """A compiled field mapping: ``mapper(record) -> MappedRecord``."""

    def __init__(self, rules: Mapping[str, Rule], functions: FunctionRegistry, target: ContentType | None) -> None:
        self.rules = MappingProxyType(dict(rules))
        self.content_type = target
        self._required = target.required if target is not None else ()
        self._paths = {name: ", ".join(rule.paths) or None for name, rule in rules.items()}
        # NOTHING stands in for a record that is no dict: every path read from it finds nothing.
        names: dict[str, Any] = {
            "MISSING": MISSING,
            "SIZED": frozenset({str, list, tuple, dict}),
            "is_empty": is_empty,
            "NOTHING": {},
        }
        head = "    src = record if record.__class__ is dict or isinstance(record, dict) else NOTHING"
        fast: list[str] = []
        optimistic: list[str] = []
        fields: list[tuple[str, Getter]] = []
        prefixes, subscripts = Prefixes(), Subscripts()
        for index, (name, rule) in enumerate(rules.items()):
            try:
                code = _rule_code(index, rule, functions, names, prefixes, subscripts)
            except MappingError as exc:
                raise MappingError(f"field {name!r}: {exc}") from exc
            body = [f"    {line}" for line in code.field]
            fields.append((name, _define([f"def f{index}(record):", head, *body, "    return v"], names, f"f{index}")))
            fast += _stored(code.careful, code.ending, name)
            optimistic += _stored(code.optimistic, code.optimistic_ending, name)
            if name in self._required:
                # missing_required's test on the value just stored (v is MISSING when none was):
                # the careful path words the problem.
                optimistic.append('    if v is MISSING or v is None or v == "": raise Fallback')
        shared = [f"    {line}" for line in prefixes.lines()]
        self._body = [head, *shared, "    out = {}", *fast]
        checked = [f"    {line}" for line in subscripts.lines()]
        self._optimistic_body = [
            "    if record.__class__ is not dict: raise Fallback",
            "    src = record",
            *checked,
            "    out = {}",
            *optimistic,
        ]
        names["Fallback"] = Fallback
        self._names = names
        self._fast = _define(["def fast(record):", *self._body, "    return out"], names, "fast")
        self._optimistic = _define(
            ["def optimistic(record):", *self._optimistic_body, "    return out"], names, "optimistic"
        )
        self._hopeful = self._optimistic
        self._fallbacks = 0  # since the optimistic function was (re)started; resting, up from FALLBACK_LIMIT - RESTING
        self._fields = tuple(fields)

    def list_function(self) -> Getter:
        """Return the straight-line function over a list: each entry's data, or None when one is no exact dict.

        One call per list (an order's line items) instead of one per entry: the entries' code
        runs inline in the loop. An entry that fails raises, as the straight-line function does.
        """
        loop = ["    mapped = []", "    for record in records:", "        if record.__class__ is not dict: return None"]
        body = [f"    {line}" for line in self._body]
        source = ["def fast_list(records):", *loop, *body, "        mapped.append(out)", "    return mapped"]
        return _define(source, self._names, "fast_list")

    def optimistic_list_function(self) -> Getter:
        """Return the optimistic function over a list; it raises where the careful list function must decide."""
        body = [f"    {line}" for line in self._optimistic_body]
        head = ["def optimistic_list(records):", f"    if len(records) > {MAX_ITEMS}: raise Fallback"]
        source = [*head, "    mapped = []", "    for record in records:", *body]
        source += ["        mapped.append(out)", "    return mapped"]
        return _define(source, self._names, "optimistic_list")

    @classmethod
    def compile(
        cls,
        rules: Mapping[str, Rule],
        *,
        functions: FunctionRegistry | None = None,
        target: ContentType | None = None,
    ) -> Mapper:
        """Compile rules into a mapper; raise MappingError naming the field whose rule is bad."""
        return cls(rules, functions or FunctionRegistry.default(), target)

    def __call__(self, record: Any) -> MappedRecord:
        """Map one record; a failing rule leaves its field out and becomes a problem."""
        optimistic = self._optimistic
        # Resting, it is not called: a fallback all the same, without the raise and catch of its
        # Fallback, ~0.4 µs a record (Salla's list products lack updated_at: a run without details).
        if optimistic is not _careful_only:
            try:  # tuple.__new__ skips the NamedTuple's own __new__, a Python function call per record
                return _new_record(MappedRecord, (optimistic(record), (), False))
            except Exception:  # any failure: the careful function decides, as if the optimistic never ran
                pass
        self._fallbacks += 1
        if self._fallbacks >= FALLBACK_LIMIT:
            self._turn()
        try:
            data = self._fast(record)
        except Exception:
            return self._slow(record)
        for name in self._required:  # missing_required's test, without its call and list per record
            value = data.get(name)
            if value is None or value == "":
                problems = missing_required(data, self.content_type, self._paths)  # type: ignore[arg-type]
                return MappedRecord(data, tuple(problems), rejected=True)
        # tuple.__new__ skips the NamedTuple's own __new__, a Python function call per record.
        return _new_record(MappedRecord, (data, (), False))

    def _turn(self) -> None:
        """Rest the optimistic function after FALLBACK_LIMIT fallbacks, or try it again after RESTING records."""
        if self._optimistic is _careful_only:
            self._optimistic, self._fallbacks = self._hopeful, 0
        else:  # counted from FALLBACK_LIMIT - RESTING: every record resting falls back, one by one
            self._optimistic, self._fallbacks = _careful_only, FALLBACK_LIMIT - RESTING

    def map_strict(self, record: Any) -> dict[str, Any]:
        """Map one record and return the data; raise MappingError when anything failed."""
        # The line items of an order take this path one by one: skip building a MappedRecord
        # when the straight-line function succeeds and nothing required is missing.
        data: dict[str, Any] | None
        try:
            optimistic: dict[str, Any] = self._optimistic(record)  # it checks the required fields itself
        except Exception:  # the careful function below decides
            pass
        else:
            return optimistic
        try:
            data = self._fast(record)
        except Exception:
            data = None
        if data is not None and (
            self.content_type is None or not missing_required(data, self.content_type, self._paths)
        ):
            return data
        result = self(record)
        if result.problems:
            raise MappingError("; ".join(p.render() for p in result.problems))
        return result.data

    def _slow(self, record: Any) -> MappedRecord:
        data: dict[str, Any] = {}
        problems = []
        for name, field in self._fields:
            try:
                value = field(record)
            except Exception as exc:  # a transform or user function failed: report it, never crash the run
                problems.append(
                    Problem(name, _reason(exc), self._paths[name], _input_preview(self.rules[name], record))
                )
                continue
            if value is not MISSING:
                data[name] = value
        if self.content_type is not None:
            problems += missing_required(data, self.content_type, self._paths)
        # Any failed field rejects the record whole: a record is never half-written (D19).
        return MappedRecord(data, tuple(problems), rejected=bool(problems))


def _stored(lines: list[str], ending: str, name: str) -> list[str]:
    """Return a rule's lines indented, ending in the store of ``v`` under ``name`` when it is present."""
    lines = [f"    {line}" for line in lines]
    if ending == "guarded":  # store under the test that guards the last steps
        lines[-1] += f"; out[{name!r}] = v"
    else:
        lines.append(f"    {'' if ending == 'present' else 'if v is not MISSING: '}out[{name!r}] = v")
    return lines


def _careful_only(record: Any) -> Any:
    raise Fallback


def _reason(exc: Exception) -> str:
    return str(exc) if isinstance(exc, MappingError) else f"{type(exc).__name__}: {exc}"


def _input_preview(rule: Rule, record: Any) -> str | None:
    if rule.kind != "path":
        return None
    try:
        value = compile_path(rule.paths[0]).get(record)
    except Exception:  # the preview is best effort; the problem itself is already recorded
        return None
    return None if value is MISSING else preview(value)
