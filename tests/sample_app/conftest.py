"""A user's conftest: configure Flash DB with init_db(); the plugin provides flash_db_session.

The project's own backend fixtures supply the URL (and the tables), so the
sample runs on SQLite and on PostgreSQL like every other test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

import flash_db


@pytest.fixture(autouse=True)
async def configured_database(backend_url: str) -> AsyncIterator[flash_db.Database]:
    """What a user writes: init_db() before each test, close_db() after."""
    database = flash_db.init_db(backend_url)
    yield database
    await flash_db.close_db()
