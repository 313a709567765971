"""The ASGI server: OAuth install routes, the management API, health."""

from miniapp_sync.server.app import create_app

__all__ = ["create_app"]
