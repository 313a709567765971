"""miniapp-sync: run the MiniApps ``sync`` block, and check definitions before submission."""

import importlib as _importlib
import typing as _typing

from miniapp_sync.errors import (
    DefinitionError,
    DefinitionInvalid,
    DefinitionSyntaxError,
    Finding,
    MappingError,
    MiniAppSyncError,
    PathSyntaxError,
    ProviderError,
    RecordRejected,
    StoreError,
    TransformError,
    WebhookError,
)

if _typing.TYPE_CHECKING:
    from miniapp_sync.definition import Definition, inspect_definition, load_definition
    from miniapp_sync.definition.rules import MISSING
    from miniapp_sync.mapping.compiler import Mapper
    from miniapp_sync.mapping.functions import FunctionRegistry
    from miniapp_sync.mapping.paths import compile_path
    from miniapp_sync.mapping.plan import MappingPlan, compile_plan, vocabulary
    from miniapp_sync.mapping.records import MappedRecord, Problem

__all__ = [
    "MISSING",
    "Definition",
    "DefinitionError",
    "DefinitionInvalid",
    "DefinitionSyntaxError",
    "Finding",
    "FunctionRegistry",
    "MappedRecord",
    "Mapper",
    "MappingError",
    "MappingPlan",
    "MiniAppSyncError",
    "PathSyntaxError",
    "Problem",
    "ProviderError",
    "RecordRejected",
    "StoreError",
    "TransformError",
    "WebhookError",
    "compile_path",
    "compile_plan",
    "inspect_definition",
    "load_definition",
    "vocabulary",
]

# Every command imports this package: pydantic, JSONPath and the mapping machinery load on first
# use of one of their names, not with the package (start-up of `--help` and of commands that do
# not need them).
_LAZY = {
    "Definition": "miniapp_sync.definition",
    "inspect_definition": "miniapp_sync.definition",
    "load_definition": "miniapp_sync.definition",
    "MISSING": "miniapp_sync.definition.rules",
    "Mapper": "miniapp_sync.mapping.compiler",
    "FunctionRegistry": "miniapp_sync.mapping.functions",
    "compile_path": "miniapp_sync.mapping.paths",
    "MappingPlan": "miniapp_sync.mapping.plan",
    "compile_plan": "miniapp_sync.mapping.plan",
    "vocabulary": "miniapp_sync.mapping.plan",
    "MappedRecord": "miniapp_sync.mapping.records",
    "Problem": "miniapp_sync.mapping.records",
}


def __getattr__(name: str) -> object:
    if name not in _LAZY:
        raise AttributeError(f"module 'miniapp_sync' has no attribute {name!r}")
    value = getattr(_importlib.import_module(_LAZY[name]), name)
    globals()[name] = value  # resolved once; later look-ups do not come here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
