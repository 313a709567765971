"""The typed, immutable model of a MiniApp document, as the runtime uses it.

Attribute names are snake_case; the document's own names (camelCase, or snake_case for the
auth requests) are the aliases. Unknown keys are kept in ``model_extra`` and reported as
warnings by the linter (D3). Defaults follow D4 and D7.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    Field,
    model_validator,
)
from pydantic_core import PydanticCustomError

from miniapp_sync.definition.base import FieldMapping, Model
from miniapp_sync.definition.webhook_model import Webhook


class Request(Model):
    """An HTTP request template (auth requests, registration requests, actions)."""

    url: str
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "GET"
    headers: dict[str, Any] = {}
    query_params: dict[str, Any] = {}
    body_type: Literal["json", "x-www-form-urlencoded", "formData"] = "json"
    body: Any = None
    # An object mapping persists into credentials/metadata; a list forwards values only.
    mapping: dict[str, Any] | list[dict[str, Any]] | None = None


class Auth(Model):
    """The ``auth`` block: install type, secrets, and the requests that obtain credentials."""

    type: Literal["oauth2", "bearer_token", "apikey", "basic", "none"]
    sensitive_keys: list[str] = []
    config: dict[str, Any] = {}
    form: dict[str, Any] = {}
    user_details: Request | None = None
    auth_url: Request | str | None = Field(default=None, alias="auth_url")
    get_token: Request | None = Field(default=None, alias="get_token")
    refresh_token: Request | None = Field(default=None, alias="refresh_token")
    test_token: Request | None = Field(default=None, alias="test_token")
    auto_refresh: bool = Field(default=False, alias="auto_refresh")
    registration_requests: list[Request] = []


class Trigger(Model):
    """An automation trigger; ``event`` must equal the extracted webhook event exactly."""

    type: str
    event: str = Field(min_length=1)
    img: str | None = None
    icon: str | None = None
    label: str | None = None
    description: str | None = None
    is_custom: bool = False


class SyncConfiguration(Model):
    """Bulk-job tuning with the D4 defaults."""

    enabled: bool = True
    batch_size: int = Field(default=200, gt=0)
    rate_limit_per_second: float = Field(default=10, gt=0)
    timeout: int = Field(default=30000, gt=0, description="milliseconds per HTTP request")
    schedule: str | None = None


class Endpoint(Model):
    """A list or detail endpoint, relative to ``sync.baseUrl`` unless absolute."""

    url: str = Field(min_length=1)
    method: Literal["GET", "POST"] = "GET"
    query_params: dict[str, Any] = {}


class Endpoints(Model):
    """A resource's list endpoint and optional detail endpoint."""

    list: Endpoint
    details: Endpoint | None = None


class Pagination(Model):
    """Page-size parameters as documented, plus the D7 extensions."""

    param_name: str = "per_page"
    default_limit: int = Field(default=50, gt=0)
    max_limit: int | None = Field(default=None, gt=0)
    style: Literal["page", "offset", "cursor", "next"] = "page"
    page_param: str = "page"
    start_page: int = 1
    offset_param: str = "offset"
    cursor_param: str = "cursor"
    next_property: str | None = None

    @property
    def limit(self) -> int:
        """Return the page size asked of the provider: ``defaultLimit``, never above ``maxLimit`` (D6)."""
        return min(self.default_limit, self.max_limit) if self.max_limit else self.default_limit


class ResponseMapping(Model):
    """Where records and totals sit in a list response (D8)."""

    data_property: str = "data"
    total_property: str | None = None
    total_pages_property: str | None = None


class Incremental(Model):
    """Ask only for what changed since the last run: ``param`` gets the max ``cursorField`` seen."""

    param: str
    cursor_field: str


class Resource(Model):
    """One importable entity: endpoints, pagination, response mapping and ``apiMapping``."""

    name: str | None = None
    display_name: str | None = None
    description: str | None = None
    icon: str | None = None
    content_type: str = Field(min_length=1)
    enabled: bool = True
    expand_details: bool = False
    endpoints: Endpoints
    pagination: Pagination = Pagination()
    response_mapping: ResponseMapping = ResponseMapping()
    api_mapping: FieldMapping
    id_property: str = "id"
    detect_deletes: bool = False
    incremental: Incremental | None = None


RECORD_TYPES = {
    "order": "ecommerce:orders",
    "abandonedCart": "ecommerce:abandonedCarts",
    "customer": "core:customer",
    "product": "core:product",
}


class Handler(Model):
    """A realtime handler: shape A (``recordType`` + ``mapping``) or shape B (``resource`` + ``dataPath``) (D22)."""

    operation: Literal["create", "update", "upsert"]
    record_type: str | None = None
    mapping: FieldMapping | None = None
    resource: str | None = None
    data_path: str = "$"

    @model_validator(mode="after")
    def _one_shape(self) -> Handler:
        shape_a = self.record_type is not None or self.mapping is not None
        if shape_a and self.resource is not None:
            raise PydanticCustomError(
                "handler_shape",
                "a handler has either 'recordType' + 'mapping' (shape A) "
                "or 'resource' + 'dataPath' (shape B), not both",
            )
        if self.resource is None and (self.record_type is None or self.mapping is None):
            raise PydanticCustomError(
                "handler_shape",
                "a handler needs 'recordType' and 'mapping' (shape A) or 'resource' (shape B)",
            )
        return self


class SyncWebhooks(Model):
    """``sync.webhooks``: handlers keyed by the exact extracted event name."""

    handlers: dict[str, Handler] = {}


class Sync(Model):
    """The ``sync`` block."""

    base_url: str | None = None
    headers: dict[str, str] = {}
    sync_configuration: SyncConfiguration = SyncConfiguration()
    resources: dict[str, Resource] = {}
    webhooks: SyncWebhooks = SyncWebhooks()


class Definition(Model):
    """A whole MiniApp document. Identity fields are optional here; the linter requires them (D1)."""

    ns: str | None = None
    name: str | None = None
    type: str | None = None
    title: str | None = None
    label: str | None = None
    description: str | None = None
    short_description: str | None = None
    status: Literal["public", "private"] | None = None
    version: str | None = None
    category: str | None = None
    icon: str | None = None
    logo: str | None = None
    docs_url: str | None = None
    youtube_id: str | None = None
    auth: Auth | None = None
    actions: list[Any] = []
    triggers: list[Trigger] = []
    webhook: Webhook | None = None
    sync: Sync | None = None
    source: Any = None
    functions: Any = None
    dashboard_apps: Any = None

    def trigger_events(self) -> set[str]:
        """Return the set of ``triggers[].event`` strings."""
        return {t.event for t in self.triggers}

    def handlers(self) -> dict[str, Handler]:
        """Return ``sync.webhooks.handlers`` (empty when there is no sync block)."""
        return dict(self.sync.webhooks.handlers) if self.sync else {}
