"""What a sandbox store holds and how it behaves: sizes, seed, latency, rate limit and credentials."""

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

    def __post_init__(self) -> None:
        if self.rate_limit is not None and self.rate_limit <= 0:
            raise ValueError(f"rate_limit must be positive or None, not {self.rate_limit!r}")
        if self.per_page_max < 1:
            raise ValueError(f"per_page_max must be at least 1, not {self.per_page_max!r}")
        if self.latency < 0:
            raise ValueError(f"latency must not be negative, not {self.latency!r}")
