"""miniapp-sync: run the MiniApps ``sync`` block, and check definitions before submission."""

from miniapp_sync.definition import Definition, inspect_definition, load_definition
from miniapp_sync.definition.rules import MISSING
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
