"""The submission checklist and package (the Sync guide's last section)."""
