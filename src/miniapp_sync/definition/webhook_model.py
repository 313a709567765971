"""The typed model of the ``webhook`` block: event, tenant and customer extraction, verification,
transaction ids, the response and challenge answers (D24-D26, D28).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AliasChoices, Field, model_validator
from pydantic_core import PydanticCustomError

from miniapp_sync.definition.base import FieldMapping, Model


class ValueSource(Model):
    """Where a value is read from a delivery: body JSONPath, header name or query key."""

    source: Literal["body", "header", "query"] = "body"
    path: str = Field(min_length=1)


class CompositeStrategy(Model):
    """Several sources joined into one event name (GitHub, Slack)."""

    parts: list[ValueSource] = Field(min_length=1)
    separator: str = "."


class EventExtraction(Model):
    """How the event name is found in a delivery."""

    source: Literal["body", "header", "query"] = "body"
    path: str | None = None
    fallback: ValueSource | None = None
    composite_strategy: CompositeStrategy | None = None

    @model_validator(mode="after")
    def _needs_a_source(self) -> EventExtraction:
        if self.path is None and self.composite_strategy is None:
            raise PydanticCustomError("event_source", "eventExtraction needs 'path' or 'compositeStrategy'")
        return self


class Verification(Model):
    """How a delivery's authenticity is checked (D25)."""

    type: Literal["hmac-sha256", "hmac-sha1", "header-token", "none"]
    header_name: str | None = None
    secret_key: str | None = None
    timestamp_header: str | None = None
    encoding: Literal["hex", "base64"] = "hex"

    @model_validator(mode="after")
    def _complete(self) -> Verification:
        if self.type != "none" and (not self.header_name or not self.secret_key):
            raise PydanticCustomError(
                "verification_incomplete",
                "verification type {type!r} needs 'headerName' and 'secretKey'",
                {"type": self.type},
            )
        return self


class TransactionPaths(Model):
    """The paths whose values make a delivery's transaction id; ``path`` is the live docs' shape."""

    path: str | None = None
    paths: list[str] = []

    @property
    def all_paths(self) -> tuple[str, ...]:
        """Return ``paths``, with the single ``path`` first when both shapes are given."""
        return ((self.path,) if self.path else ()) + tuple(self.paths)


class TransactionId(TransactionPaths):
    """Delivery de-duplication (D26): both documented shapes are accepted."""

    separator: str = "_"
    fallback: Literal["generate"] | None = None
    overrides: dict[str, TransactionPaths] = {}


class CustomerOverride(Model):
    """A per-event ``basePath`` for customer extraction."""

    base_path: str


class CustomerExtraction(Model):
    """How the customer is found in a delivery and mapped onto ``core:customer`` (D28)."""

    base_path: str = "$"
    mapping: FieldMapping
    overrides: dict[str, CustomerOverride] = {}


class WebhookResponse(Model):
    """The acknowledgement sent for an accepted delivery."""

    status_code: int = Field(default=200, ge=200, le=299)
    body: Any = {"ok": True}
    headers: dict[str, str] = {}


class ChallengeResponse(Model):
    """A provider handshake answered instead of processing (Slack ``url_verification``)."""

    identify_field: str
    identify_value: Any
    challenge_path: str
    response_field: str | None = None


class TenantExtraction(Model):
    """How the tenant is found on the shared webhook route (D24)."""

    source: Literal["body", "header", "query"] = "body"
    path: str
    match_key: str


class Webhook(Model):
    """The ``webhook`` block: event, verification, de-duplication, customer, response."""

    event_extraction: EventExtraction | None = None
    verification: Verification | None = None
    transaction_id: TransactionId | None = None
    customer_extraction: CustomerExtraction | None = None
    response: WebhookResponse = WebhookResponse()
    challenge_response: ChallengeResponse | None = None
    tenant_extraction: TenantExtraction | None = Field(
        default=None, validation_alias=AliasChoices("tenantExtraction", "merchantExtraction")
    )
