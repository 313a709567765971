"""Tenants' installations of MiniApps: credentials (encrypted), metadata, install and refresh flows."""

from miniapp_sync.installations.service import Installations
from miniapp_sync.installations.vault import Vault

__all__ = ["Installations", "Vault"]
