"""Fixtures every test folder shares: the PostgreSQL server of the test machine; Hypothesis's settings."""

from __future__ import annotations

import os

import psycopg
import pytest
from hypothesis import settings

# No per-example deadline: it is a timing assertion, and on a loaded machine (CI shares two cores)
# a 200 ms deadline failed an example that passes (toNumberOrNull, 252 ms once). Speed is bench/'s.
settings.register_profile("miniapp-sync", deadline=None)
settings.load_profile("miniapp-sync")

ADMIN_URL = os.environ.get("MINIAPP_SYNC_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    """Return the test server's URL, or skip (fail when CI=true) when no server answers."""
    try:
        with psycopg.connect(ADMIN_URL, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        reason = f"PostgreSQL not reachable at {ADMIN_URL} ({type(exc).__name__}: {' '.join(str(exc).split())})"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; it is required when CI=true")
        pytest.skip(reason)
    return ADMIN_URL
