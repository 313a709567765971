"""Realtime webhooks: identify deliveries, verify them, and apply handlers."""
