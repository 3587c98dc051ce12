"""FastAPI integration for Flash DB."""
