"""Bulk sync: run a definition's resources for an installation into the store."""
