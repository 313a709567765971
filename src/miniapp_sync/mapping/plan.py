"""A whole definition's mappings, compiled once: resources, handlers and customer extraction."""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from typing import Any, Literal

from miniapp_sync.definition.content_types import content_type
from miniapp_sync.definition.lint import Vocabulary
from miniapp_sync.definition.model import RECORD_TYPES, Definition
from miniapp_sync.definition.rules import MISSING
from miniapp_sync.errors import MappingError, preview
from miniapp_sync.mapping.compiler import Mapper
from miniapp_sync.mapping.functions import FunctionRegistry
from miniapp_sync.mapping.paths import check_path, compile_path
from miniapp_sync.mapping.records import MappedRecord, Problem
from miniapp_sync.mapping.transforms import TRANSFORM_NAMES


def vocabulary(functions: FunctionRegistry | None = None) -> Vocabulary:
    """Return what validation needs to know of transforms, functions and path syntax."""
    functions = functions or FunctionRegistry.default()
    return Vocabulary(frozenset(TRANSFORM_NAMES), frozenset(functions.names()), check_path)


@dataclass(frozen=True)
class ResourcePlan:
    """How one resource's records are mapped."""

    key: str
    content_type: str
    mapper: Mapper


@dataclass(frozen=True)
class HandlerPlan:
    """How one webhook event's body becomes a record operation (D22)."""

    event: str
    content_type: str
    operation: Literal["create", "update", "upsert"]
    data_path: str  # where the record object sits in the body ('$': the body itself)
    mapper: Mapper

    def map(self, body: Any) -> MappedRecord:
        """Map a webhook body; a data path that finds no object rejects the delivery's record."""
        record = compile_path(self.data_path).get(body)
        if not isinstance(record, dict):
            found = "nothing" if record is MISSING else preview(record)
            problem = Problem(
                "(record)", f"dataPath {self.data_path!r} found no object in the body", self.data_path, found
            )
            return MappedRecord({}, (problem,), rejected=True)
        return self.mapper(record)


@dataclass(frozen=True)
class CustomerPlan:
    """``webhook.customerExtraction``: where the customer sits per event, and its mapping (D28)."""

    base: Callable[[Any], Any]
    overrides: dict[str, Callable[[Any], Any]]
    mapper: Mapper

    def extract(self, event: str, body: Any) -> MappedRecord | None:
        """Map the customer of a delivery, or None when the delivery carries none."""
        found = self.overrides.get(event, self.base)(body)
        if not isinstance(found, dict):
            return None
        return self.mapper(found)


@dataclass(frozen=True)
class MappingPlan:
    """Every compiled mapping of one definition."""

    resources: dict[str, ResourcePlan]
    handlers: dict[str, HandlerPlan]
    customer: CustomerPlan | None


def _compile(rules: Any, functions: FunctionRegistry, type_name: str, where: str, partial: bool = False) -> Mapper:
    target = content_type(type_name)
    if partial:
        # An update carries only what changed: it needs the key, not the full required set (D22).
        target = replace(target, required=("code",))
    try:
        return Mapper.compile(rules, functions=functions, target=target)
    except MappingError as exc:
        raise MappingError(f"{where}: {exc}") from exc


def compile_plan(
    definition: Definition, functions: FunctionRegistry | None = None, *, only: Collection[str] | None = None
) -> MappingPlan:
    """Compile every mapping of a validated definition; raise MappingError naming the bad rule.

    ``only``: compile just these resources' mappings, and no handler or customer extraction:
    what a bulk sync of them maps (``miniapp-sync sync``), at a fraction of the start-up cost.
    """
    functions = functions or FunctionRegistry.default()
    resources: dict[str, ResourcePlan] = {}
    sync = definition.sync
    for key, resource in sync.resources.items() if sync is not None else ():
        if only is not None and key not in only:
            continue
        where = f"sync.resources.{key}.apiMapping"
        mapper = _compile(resource.api_mapping, functions, resource.content_type, where)
        resources[key] = ResourcePlan(key, resource.content_type, mapper)
    if only is not None:
        return MappingPlan(resources, {}, None)
    handlers: dict[str, HandlerPlan] = {}
    if sync is not None:
        for event, handler in sync.webhooks.handlers.items():
            where = f"sync.webhooks.handlers.{event}"
            partial = handler.operation == "update"
            if handler.resource is not None:
                if handler.resource not in resources:
                    raise MappingError(f"{where}.resource: no resource {handler.resource!r} in sync.resources")
                base = resources[handler.resource]
                type_name = base.content_type
                mapper = _compile(base.mapper.rules, functions, type_name, where, partial)
            else:
                assert handler.record_type is not None  # the model ensures shape A has both
                assert handler.mapping is not None
                type_name = RECORD_TYPES.get(handler.record_type, handler.record_type)
                mapper = _compile(handler.mapping, functions, type_name, f"{where}.mapping", partial)
            handlers[event] = HandlerPlan(event, type_name, handler.operation, handler.data_path, mapper)
    customer = None
    extraction = definition.webhook.customer_extraction if definition.webhook else None
    if extraction is not None:
        mapper = _compile(extraction.mapping, functions, "core:customer", "webhook.customerExtraction.mapping")
        overrides = {event: compile_path(o.base_path).get for event, o in extraction.overrides.items()}
        customer = CustomerPlan(compile_path(extraction.base_path).get, overrides, mapper)
    return MappingPlan(resources, handlers, customer)
