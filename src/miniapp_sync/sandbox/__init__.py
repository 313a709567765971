"""A bundled Salla-shaped provider for tests, the demo and benchmarks (Admin API v2 + OAuth 2.0).

``Sandbox.api_url`` (``http://127.0.0.1:PORT/admin/v2``) stands in for ``https://api.salla.dev/admin/v2``
and ``Sandbox.base_url`` for ``https://accounts.salla.sa`` (``/oauth2/auth``, ``/oauth2/token``,
``/oauth2/user/info``).
"""

from miniapp_sync.sandbox.config import SandboxConfig
from miniapp_sync.sandbox.runner import run, serve_forever
from miniapp_sync.sandbox.server import Sandbox
from miniapp_sync.sandbox.stats import SandboxStats

__all__ = ["Sandbox", "SandboxConfig", "SandboxStats", "run", "serve_forever"]
