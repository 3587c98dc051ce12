"""Tests of flash_db_fastapi and the example app."""
