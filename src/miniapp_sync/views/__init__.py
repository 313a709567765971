"""The view models of D37: one JSON shape for the CLI's ``--format json``, the management API and the console."""

import importlib as _importlib
import typing as _typing

if _typing.TYPE_CHECKING:
    from miniapp_sync.views.deliveries import DeliveryDetailView, DeliveryReplayView, DeliveryView, ReplayPreviewView
    from miniapp_sync.views.ids import record_id, record_key
    from miniapp_sync.views.jobs import JobRunView, JobView
    from miniapp_sync.views.models import (
        DeadLetterView,
        ErrorDetail,
        ErrorView,
        FieldChangeView,
        InstallationView,
        LastRunView,
        NewSubscriptionView,
        NotesView,
        OAuthLinkView,
        PackageView,
        RecordChangeView,
        RecordView,
        RemovedView,
        ReplayView,
        SubscriptionView,
        TriggerEventView,
        maybe_timestamp,
        timestamp,
        to_json,
    )
    from miniapp_sync.views.overview import MiniAppOverview, OverviewView
    from miniapp_sync.views.pages import (
        MAX_LIMIT,
        Page,
        ParameterError,
        Window,
        check_limit,
        decode_cursor,
        encode_cursor,
    )
    from miniapp_sync.views.runs import (
        ProgressView,
        ResourceFiguresView,
        RunFailureView,
        RunView,
        moment,
    )
    from miniapp_sync.views.schema import Timestamp, camel, components, object_schema, type_schema

__all__ = [
    "MAX_LIMIT",
    "DeadLetterView",
    "DeliveryDetailView",
    "DeliveryReplayView",
    "DeliveryView",
    "ErrorDetail",
    "ErrorView",
    "FieldChangeView",
    "InstallationView",
    "JobRunView",
    "JobView",
    "LastRunView",
    "MiniAppOverview",
    "NewSubscriptionView",
    "NotesView",
    "OAuthLinkView",
    "OverviewView",
    "PackageView",
    "Page",
    "ParameterError",
    "ProgressView",
    "RecordChangeView",
    "RecordView",
    "RemovedView",
    "ReplayPreviewView",
    "ReplayView",
    "ResourceFiguresView",
    "RunFailureView",
    "RunView",
    "SubscriptionView",
    "Timestamp",
    "TriggerEventView",
    "Window",
    "camel",
    "check_limit",
    "components",
    "decode_cursor",
    "encode_cursor",
    "maybe_timestamp",
    "moment",
    "object_schema",
    "record_id",
    "record_key",
    "timestamp",
    "to_json",
    "type_schema",
]

# The CLI imports this package for its lightest parts (Window, to_json) and its command modules
# must not load the store with it (``--help``): each name is imported from its module on first use.
_LAZY = {
    "ReplayPreviewView": "miniapp_sync.views.deliveries",
    "DeliveryReplayView": "miniapp_sync.views.deliveries",
    "DeliveryDetailView": "miniapp_sync.views.deliveries",
    "DeliveryView": "miniapp_sync.views.deliveries",
    "DeadLetterView": "miniapp_sync.views.models",
    "ErrorDetail": "miniapp_sync.views.models",
    "ErrorView": "miniapp_sync.views.models",
    "FieldChangeView": "miniapp_sync.views.models",
    "InstallationView": "miniapp_sync.views.models",
    "JobRunView": "miniapp_sync.views.jobs",
    "JobView": "miniapp_sync.views.jobs",
    "LastRunView": "miniapp_sync.views.models",
    "ProgressView": "miniapp_sync.views.runs",
    "ResourceFiguresView": "miniapp_sync.views.runs",
    "RunFailureView": "miniapp_sync.views.runs",
    "moment": "miniapp_sync.views.runs",
    "NewSubscriptionView": "miniapp_sync.views.models",
    "NotesView": "miniapp_sync.views.models",
    "OAuthLinkView": "miniapp_sync.views.models",
    "PackageView": "miniapp_sync.views.models",
    "RecordChangeView": "miniapp_sync.views.models",
    "RecordView": "miniapp_sync.views.models",
    "RemovedView": "miniapp_sync.views.models",
    "ReplayView": "miniapp_sync.views.models",
    "RunView": "miniapp_sync.views.runs",
    "SubscriptionView": "miniapp_sync.views.models",
    "TriggerEventView": "miniapp_sync.views.models",
    "maybe_timestamp": "miniapp_sync.views.models",
    "timestamp": "miniapp_sync.views.models",
    "to_json": "miniapp_sync.views.models",
    "MiniAppOverview": "miniapp_sync.views.overview",
    "OverviewView": "miniapp_sync.views.overview",
    "record_id": "miniapp_sync.views.ids",
    "record_key": "miniapp_sync.views.ids",
    "MAX_LIMIT": "miniapp_sync.views.pages",
    "Page": "miniapp_sync.views.pages",
    "ParameterError": "miniapp_sync.views.pages",
    "Window": "miniapp_sync.views.pages",
    "check_limit": "miniapp_sync.views.pages",
    "decode_cursor": "miniapp_sync.views.pages",
    "encode_cursor": "miniapp_sync.views.pages",
    "Timestamp": "miniapp_sync.views.schema",
    "camel": "miniapp_sync.views.schema",
    "components": "miniapp_sync.views.schema",
    "object_schema": "miniapp_sync.views.schema",
    "type_schema": "miniapp_sync.views.schema",
}


def __getattr__(name: str) -> object:
    if name not in _LAZY:
        raise AttributeError(f"module 'miniapp_sync.views' has no attribute {name!r}")
    value = getattr(_importlib.import_module(_LAZY[name]), name)
    globals()[name] = value  # resolved once; later look-ups do not come here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
