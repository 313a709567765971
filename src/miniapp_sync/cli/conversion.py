"""Option and argument values converted without pydantic, as Typer would convert them.

Typer 0.29 converts every value a command line gives through a pydantic ``TypeAdapter`` built
for its parameter: importing pydantic and building the adapters cost about a tenth of a second
of every command's start-up (more than the conversion of a few strings is worth), and commands
that need no definition model would import pydantic for it alone. So the command a line invokes
gets, for the kinds of parameters our commands declare (str, int, float, bool, Path, an enum,
lists of them), a conversion of the values that are plainly valid; any other value (and any
other kind of parameter) goes to Typer's own conversion, so what is accepted and every error
message stay Typer's. ``tests/cli/test_conversion.py`` compares both on the same inputs.

This reaches into Typer's parameter class (``_runtime_param``, ``RuntimeParam``), as
``tree.py`` reaches into its command building; the test fails first if a Typer release changes either.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, get_args, get_origin

from typer._click import Context
from typer._coercion import RuntimeParam, TypeDescriptor, build_runtime_param
from typer._param_types import coerce_cli_choice, coerce_cli_path
from typer.core import _TyperParameter
from typer.models import ParameterInfo

if TYPE_CHECKING:
    from typer._click import Command

# Plain decimal numbers: what int() and float() read exactly as pydantic does. Anything else
# (underscores, exponents, "inf", surrounding spaces) is left to Typer's conversion.
_INTEGER: Final = re.compile(r"[+-]?[0-9]{1,18}")
_DECIMAL: Final = re.compile(r"[+-]?[0-9]{1,15}(\.[0-9]{1,15})?")


class _NotPlain(Exception):
    """The value is not plainly valid: Typer's own conversion decides (and words any error)."""


@dataclass(frozen=True)
class PlainConversion(RuntimeParam):
    """Convert plainly valid values here; hand every other one to Typer's (pydantic) conversion."""

    descriptor: TypeDescriptor = field(compare=False)
    _typer: list[RuntimeParam] = field(default_factory=list, compare=False, repr=False)

    def _coerce_value(self, value: Any, param: _TyperParameter, ctx: Context) -> Any:
        annotation: Any = self.annotation
        try:
            if get_origin(annotation) is list:
                (item,) = get_args(annotation)
                items = value if isinstance(value, list | tuple) else [value]
                return [_convert(item, self.parameter_info, v, param, ctx) for v in items]
            return _convert(annotation, self.parameter_info, value, param, ctx)
        except (_NotPlain, ValueError):
            if not self._typer:  # built once, on the first value that needs it
                self._typer.append(build_runtime_param(self.descriptor))
            return self._typer[0]._coerce_value(value, param=param, ctx=ctx)


def _convert(annotation: Any, info: ParameterInfo, value: Any, param: _TyperParameter, ctx: Context) -> Any:
    """Return ``value`` converted to ``annotation``, or raise ``_NotPlain``/``ValueError``."""
    kind = type(value)
    if annotation is str and kind is str:
        return value
    if annotation is bool and kind is bool:
        return value
    if annotation is int and (kind is int or (kind is str and _INTEGER.fullmatch(value))):
        return _in_range(int(value), info)  # a default (int) or a plain decimal integer
    if annotation is float and (kind in (int, float) or (kind is str and _DECIMAL.fullmatch(value))):
        return _in_range(float(value), info)
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        # Typer's own choice matching (case, normalisation); a miss raises ValueError.
        return coerce_cli_choice(value, choices=tuple(annotation), case_sensitive=info.case_sensitive, ctx=ctx)
    if annotation is Path and isinstance(value, str | Path) and info.path_type is None:
        # Typer's own checks (exists, file_okay, …), given a Path so it needs no adapter of its own.
        return coerce_cli_path(Path(value), info, path_type=Path, param=param, ctx=ctx)
    raise _NotPlain


def _in_range(number: float, info: ParameterInfo) -> float:
    if info.clamp or (info.min is not None and number < info.min) or (info.max is not None and number > info.max):
        raise _NotPlain  # out of range: Typer's message says which bound
    return number


_PLAIN: Final = (str, bool, int, float, Path)


def _convertible(annotation: Any) -> bool:
    if get_origin(annotation) is list:
        args = get_args(annotation)
        return len(args) == 1 and _convertible(args[0])
    return annotation in _PLAIN or (isinstance(annotation, type) and issubclass(annotation, Enum))


def convert_plainly(command: Command, parent: Context | None = None) -> None:
    """Give ``command``'s parameters (and its built subcommands') the plain conversion where it applies."""
    # The --help option is made on first use, from the names its context allows: made here in a
    # context set up as click's make_context sets it up, so it is converted plainly too.
    ctx = Context(command, parent=parent, **command.context_settings)
    help_option = command.get_help_option(ctx)
    for param in [*command.params, *([help_option] if help_option else [])]:
        if not isinstance(param, _TyperParameter) or param._runtime_param is not None:
            continue
        descriptor = param.type_descriptor
        info = descriptor.parameter_info
        if descriptor.file_annotation is None and info.parser is None and _convertible(descriptor.annotation):
            param._runtime_param = PlainConversion(info, descriptor.annotation, descriptor)
    for sub in getattr(command, "commands", {}).values():
        convert_plainly(sub, ctx)
