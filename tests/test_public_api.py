"""The public surface is exactly what ``__all__`` lists: nothing leaks in, nothing drops out."""

from __future__ import annotations

from types import ModuleType

import miniapp_sync

EXPECTED = [
    "Definition",
    "DefinitionError",
    "DefinitionInvalid",
    "DefinitionSyntaxError",
    "Finding",
    "FunctionRegistry",
    "MISSING",
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


def _isort_key(name: str) -> tuple[int, str]:
    # ruff's RUF022 order: CONSTANTS, then Classes, then functions, each alphabetical.
    return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)


def test_all_is_sorted_and_complete() -> None:
    assert miniapp_sync.__all__ == sorted(miniapp_sync.__all__, key=_isort_key)
    assert sorted(miniapp_sync.__all__) == sorted(EXPECTED)


def test_every_public_name_is_importable_and_nothing_else_is_public() -> None:
    for name in miniapp_sync.__all__:
        assert getattr(miniapp_sync, name) is not None
    # Submodules become attributes once anything imports them; they are not names of the API.
    public = {n for n, v in vars(miniapp_sync).items() if not n.startswith("_") and not isinstance(v, ModuleType)}
    assert public == set(miniapp_sync.__all__)
