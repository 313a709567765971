"""Compute functions (D17): the registry of built-ins, entry-point functions and ``--functions`` modules.

A compute function is called as ``fn(value, **args)``; the built-ins are in ``mapping/compute.py``
and the value coercions they share with transforms in ``mapping/coercions.py``.

It must be a pure function of its arguments (the built-ins are): a compiled mapper may call it
up to three times for one record, when the optimistic function falls back to the careful one and
that one to the field-by-field path that words a failure (``mapping/compiler.py``). Its result is
used once; a side effect (a counter, a request) would happen once per call.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib.util
import inspect
import os
import re
import sys
from collections.abc import Iterable, Mapping
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from types import ModuleType
from typing import Final

from miniapp_sync.errors import TransformError, preview
from miniapp_sync.mapping.compute import BUILTIN_FUNCTIONS, ComputeFunction

ENTRY_POINT_GROUP: Final = "miniapp_sync.functions"
_IDENTIFIER: Final = re.compile(r"\W")


def unknown_name_error(kind: str, name: str, known: Iterable[str]) -> TransformError:
    """Build the error for an unknown name, with a 'did you mean' and the known names."""
    names = sorted(known)
    by_lower = {n.lower(): n for n in names}
    close = difflib.get_close_matches(str(name).lower(), list(by_lower), n=1)
    hint = f" (did you mean {by_lower[close[0]]!r}?)" if close else ""
    return TransformError(f"unknown {kind} {name!r}{hint}; known: {', '.join(names)}")


def _module_functions(module: ModuleType, origin: str) -> dict[str, ComputeFunction]:
    declared = getattr(module, "FUNCTIONS", None)
    if declared is None:
        return {
            name: obj
            for name, obj in vars(module).items()
            if not name.startswith("_") and inspect.isfunction(obj) and obj.__module__ == module.__name__
        }
    if not isinstance(declared, Mapping) or not all(
        isinstance(k, str) and k and callable(v) for k, v in declared.items()
    ):
        raise TransformError(f"{origin}: FUNCTIONS must map function names to callables, found {preview(declared)}")
    return dict(declared)


class FunctionRegistry:
    """The compute functions known by name: built-ins plus user functions (D17)."""

    __slots__ = ("_functions",)

    def __init__(self, functions: Mapping[str, ComputeFunction] | None = None) -> None:
        self._functions: dict[str, ComputeFunction] = dict(BUILTIN_FUNCTIONS)
        for name, fn in (functions or {}).items():
            self.register(name, fn)

    def register(self, name: str, fn: ComputeFunction) -> None:
        """Register ``fn`` under ``name``; a user function may replace a built-in of that name."""
        if not isinstance(name, str) or not name:
            raise TransformError(f"a compute function needs a non-empty name, found {preview(name)}")
        if not callable(fn):
            raise TransformError(f"compute function {name!r} must be callable, found {preview(fn)}")
        self._functions[name] = fn

    def get(self, name: str) -> ComputeFunction:
        """Return the function registered under ``name``."""
        try:
            return self._functions[name]
        except KeyError:
            raise unknown_name_error("compute function", name, self._functions) from None

    def names(self) -> list[str]:
        """Return the registered names, sorted."""
        return sorted(self._functions)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._functions

    @classmethod
    def default(cls) -> FunctionRegistry:
        """Return the built-ins plus the functions of the ``miniapp_sync.functions`` entry points."""
        registry = cls()
        registry.load_entry_points()
        return registry

    def load_entry_points(self, points: Iterable[EntryPoint] | None = None) -> list[str]:
        """Register the functions of entry points (default: the installed ``miniapp_sync.functions``)."""
        registered: list[str] = []
        for point in entry_points(group=ENTRY_POINT_GROUP) if points is None else points:
            origin = f"entry point {point.name!r} ({point.value}) in group {ENTRY_POINT_GROUP!r}"
            try:
                target = point.load()
            except Exception as exc:
                raise TransformError(f"{origin} failed to load: {type(exc).__name__}: {exc}") from exc
            if isinstance(target, ModuleType):
                found = _module_functions(target, origin)
            elif isinstance(target, Mapping):
                found = dict(target)
            elif callable(target):
                found = {point.name: target}
            else:
                raise TransformError(f"{origin} must be a function, a module or a dict, found {preview(target)}")
            for name, fn in found.items():
                self.register(name, fn)
            registered += found
        return registered

    def load_module(self, path: str | os.PathLike[str]) -> list[str]:
        """Import a Python file and register its public functions (or its FUNCTIONS dict)."""
        file = Path(path)
        where = f"functions module {str(file)!r}"
        if not file.is_file():
            raise TransformError(f"{where} not found")
        # A module name unique per file, so two 'functions.py' in different folders do not collide.
        digest = hashlib.sha256(str(file.resolve()).encode()).hexdigest()[:12]
        name = f"miniapp_sync_user_functions_{_IDENTIFIER.sub('_', file.stem)}_{digest}"
        spec = importlib.util.spec_from_file_location(name, file.resolve())
        if spec is None or spec.loader is None:
            raise TransformError(f"{where} is not a Python file")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses and pickling inside the module look it up there
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            sys.modules.pop(name, None)
            if isinstance(exc, SyntaxError):
                raise TransformError(f"{where}: syntax error at line {exc.lineno}: {exc.msg}") from exc
            raise TransformError(f"{where} failed to import: {type(exc).__name__}: {exc}") from exc
        found = _module_functions(module, where)
        if not found:
            raise TransformError(
                f"{where} defines no public functions"
                " (hint: define functions whose names do not start with '_', or a FUNCTIONS dict)"
            )
        for fn_name, fn in found.items():
            self.register(fn_name, fn)
        return list(found)
