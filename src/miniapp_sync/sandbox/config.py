"""What a sandbox store holds and how it behaves: sizes, seed, latency, rate limit and credentials.

One sandbox can stand for many stores (``tenants``), as a provider serves many merchants: store
``k`` has its own merchant id (``merchant_id + k``) and token pair (``access_token-k``; store 0
keeps the plain ones), so its own rate budget (the limiter counts per access token) and its own
webhook ``merchant``. The stores share one generated catalogue: a load test of N stores needs N
identities and budgets, not N copies of the same records in memory.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class SandboxConfig:
    """Settings of one sandbox provider; every field has a default that suits the tests and the demo."""

    products: int = 120
    customers: int = 80
    orders: int = 150
    carts: int = 30
    seed: int = 1
    latency: float = 0.0  # seconds added to every API response (real time)
    rate_limit: float | None = None  # requests per second per access token; None: unlimited
    per_page_max: int = 60
    # List endpoints answer whole records, as Shopify's and WooCommerce's do (orders with their
    # line items and amounts), instead of Salla's summaries; the benchmarks' nested-records case.
    full_lists: bool = False
    access_token: str = "sandbox-access-token"
    refresh_token: str = "sandbox-refresh-token"
    client_id: str = "sandbox-client"
    client_secret: str = "sandbox-secret"
    merchant_id: int = 1305146709
    webhook_secret: str = "sandbox-webhook-secret"
    tenants: int = 1  # stores served, each with its own merchant id, tokens and rate budget

    def merchant(self, tenant: int = 0) -> int:
        """Return the merchant (store) id of store ``tenant``."""
        return self.merchant_id + self._store_index(tenant)

    def tokens(self, tenant: int = 0) -> tuple[str, str]:
        """Return the (access, refresh) token pair store ``tenant`` starts with."""
        if self._store_index(tenant) == 0:
            return self.access_token, self.refresh_token
        return f"{self.access_token}-{tenant}", f"{self.refresh_token}-{tenant}"

    def _store_index(self, tenant: int) -> int:
        if not 0 <= tenant < self.tenants:
            raise ValueError(f"this sandbox serves stores 0 to {self.tenants - 1}, not {tenant!r}")
        return tenant

    def __post_init__(self) -> None:
        if self.rate_limit is not None and self.rate_limit <= 0:
            raise ValueError(f"rate_limit must be positive or None, not {self.rate_limit!r}")
        if self.per_page_max < 1:
            raise ValueError(f"per_page_max must be at least 1, not {self.per_page_max!r}")
        if self.tenants < 1:
            raise ValueError(f"tenants must be at least 1, not {self.tenants!r}")
        if self.latency < 0:
            raise ValueError(f"latency must not be negative, not {self.latency!r}")
