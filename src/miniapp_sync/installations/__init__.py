"""Tenants' installations of MiniApps: credentials (encrypted), metadata, install and refresh flows.

Names load on first use (``miniapp_sync/exports.py``): the OAuth start links a view shows do
not bring the install flows' aiohttp.
"""

from typing import TYPE_CHECKING

from miniapp_sync.exports import lazy_exports

if TYPE_CHECKING:
    from miniapp_sync.installations.service import Installations
    from miniapp_sync.installations.vault import Vault

__getattr__ = lazy_exports(__name__, {"service": ("Installations",), "vault": ("Vault",)})

__all__ = ["Installations", "Vault"]
