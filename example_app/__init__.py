"""The example blog app (built in a later issue)."""
