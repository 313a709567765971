"""Transform steps written as Python expressions, which the compiler puts in place of calls (D15).

A call costs more than most transforms' work: ``toString`` of an int, ``trim`` of a string or
``toNumberOrNull`` of a float are one type test and one operation. Each expression here handles
the exact types JSON decoding gives (``str``, ``int``, ``float``, ``bool``, ``None``) in line and
calls the transform it stands for with anything else, so its result is that transform's by
construction; ``tests/mapping/test_expressions.py`` checks the two agree on generated values.

Expressions read the value from ``v`` and may use ``k`` as a scratch name; the transform itself
is bound under the name given, extra values under that name plus a suffix.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from miniapp_sync.definition.rules import TransformStep, thaw
from miniapp_sync.mapping.compute import discount_total, lookup, salla_status
from miniapp_sync.mapping.functions import FunctionRegistry
from miniapp_sync.mapping.items import item_list
from miniapp_sync.mapping.transforms import iso_date_options, to_iso_date

# ``v.__class__ is int`` is False for bools (their class is bool), as the transforms' own tests are.
_TEMPLATES: Final[dict[str, str]] = {
    "toString": "v if (k := v.__class__) is str else str(v) if k is int else {t}(v)",
    "trim": "v.strip() if v.__class__ is str else v",
    "lowercase": "v.lower() if v.__class__ is str else v",
    # A float is finite exactly when v - v is 0 (inf - inf and nan - nan are nan).
    "toNumberOrNull": (
        "v if (k := v.__class__) is int or (k is float and v - v == 0.0) else None if v is None else {t}(v)"
    ),
    "toInteger": "v if v.__class__ is int else {t}(v)",
    "toBoolean": "v if v.__class__ is bool else {t}(v)",
    # Most orders carry no discount code: join_codes([]) is None.
    "joinCodes": "None if v.__class__ is list and not v else {t}(v)",
}
# Built-in compute functions without args, inlined the same way while the registry holds the
# built-in itself (``{t}`` is the step's own callable, which words a failure). None of them
# returns MISSING. sallaStatus: a status object's slug, stripped, when it is non-empty text.
_COMPUTE_TEMPLATES: Final[dict[Callable[..., Any], str]] = {
    salla_status: (
        "(k if (k := v.get('slug')).__class__ is str and (k := k.strip()) else {t}(v))"
        " if v.__class__ is dict else {t}(v)"
    ),
    discount_total: "0 if v.__class__ is list and not v else {t}(v)",  # most orders have no discount
}
# The steps whose result may be MISSING (coalesce of nothing, a user function returning it); the
# compiler guards the steps after them, and the field's store, with a test for MISSING.
_MAY_BE_MISSING: Final = frozenset({"coalesce", "compute"})


def step_expression(
    step: TransformStep,
    name: str,
    transform: Callable[[Any], Any],
    names: dict[str, Any],
    functions: FunctionRegistry,
    lists: tuple[Callable[[Any], Any], Callable[[Any], Any]] | None = None,
) -> tuple[str, str, bool]:
    """Return expressions of ``v`` applying ``step`` (straight-line, per field) and whether it may give MISSING.

    ``transform`` is the step's built callable, bound as ``name``; ``lists`` are the optimistic
    and the careful straight-line functions of a ``mapItems`` step's ``itemMapping``, looped over
    a list. The two expressions differ only where the straight-line one skips the wrapper that
    words a compute function's error: when it raises, the mapper maps the record again field by
    field, through the wrapper.
    """
    names[name] = transform
    call = f"{name}(v)"
    if step.name in _TEMPLATES:
        expression = _TEMPLATES[step.name].format(t=name)
        return expression, expression, False
    if step.name == "toISODate":
        # The step's own closure adds a call per value; bind its options and call the function.
        names[f"{name}z"], names[f"{name}f"] = iso_date_options(step)
        names[f"{name}d"] = to_iso_date
        return f"{name}d(v, {name}z, {name}f)", call, False
    if step.name == "mapItems" and lists is not None:
        names[f"{name}i"] = item_list(*lists, transform, step.options.get("currency"))
        return f"{name}i(v)", f"{name}i(v)", False
    if step.name == "compute" and step.fn is not None:
        if _plain_lookup(step, functions, names, name):
            # The built-in lookup of a text key is one dict read: the table's value, or the default.
            expression = f"{name}l.get(v, {name}o) if v.__class__ is str else {name}(v)"
            return expression, expression, False
        if not step.options.get("args") and (template := _COMPUTE_TEMPLATES.get(functions.get(step.fn))):
            expression = template.format(t=f"{name}c")
            names[f"{name}c"] = functions.get(step.fn)
            return expression, template.format(t=name), False
        if not step.options.get("args"):
            names[f"{name}c"] = functions.get(step.fn)
            return f"{name}c(v)", call, True
    return call, call, step.name in _MAY_BE_MISSING


def _plain_lookup(step: TransformStep, functions: FunctionRegistry, names: dict[str, Any], name: str) -> bool:
    """Bind the table and default of a call of the built-in lookup; False for anything else."""
    if step.fn is None or functions.get(step.fn) is not lookup:
        return False
    args = thaw(step.options.get("args", {}))
    if not isinstance(args, dict) or type(args.get("table")) is not dict or not set(args) <= {"table", "default"}:
        return False
    names[f"{name}l"], names[f"{name}o"] = args["table"], args.get("default")
    return True
