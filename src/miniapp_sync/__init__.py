"""miniapp-sync: run the MiniApps ``sync`` block, and check definitions before submission."""

from miniapp_sync.errors import MiniAppSyncError

__all__ = ["MiniAppSyncError"]
