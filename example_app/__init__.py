"""The example blog app built on Flash DB and flash_db_fastapi (``python -m example_app``)."""
