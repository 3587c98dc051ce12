"""atomic() when the database connection dies inside the block (found by tests/reliability)."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

import flash_db
from flash_db import atomic
from tests.models import Company


async def _kill_backend(database: flash_db.Database, db: AsyncSession) -> None:
    """Terminate the PostgreSQL backend serving ``db``, from another connection."""
    pid = (await db.execute(text("SELECT pg_backend_pid()"))).scalar_one()
    async with database.engine.connect() as other:
        await other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})


async def test_atomic_on_a_killed_connection_raises_the_database_error(
    database: flash_db.Database, db: AsyncSession
) -> None:
    """The block's own DBAPIError propagates (not the driver's error from ROLLBACK)."""
    if database.backend != "postgresql":
        pytest.skip("needs pg_terminate_backend")
    with pytest.raises(DBAPIError) as caught:
        async with atomic(db):
            await Company.objects.create(db, name="lost")
            await _kill_backend(database, db)
            await Company.objects.create(db, name="lost too")
    assert caught.value.connection_invalidated
    # The session stays usable: it gets a fresh connection, and nothing was committed.
    assert await Company.objects.count(db) == 0
    await Company.objects.create(db, name="kept")
    async with database.session() as fresh:
        assert await Company.objects.count(fresh) == 1


async def test_failed_commit_on_a_killed_connection_leaves_the_session_usable(
    database: flash_db.Database, db: AsyncSession
) -> None:
    """A COMMIT that cannot reach the server raises, nothing is stored, the session recovers."""
    if database.backend != "postgresql":
        pytest.skip("needs pg_terminate_backend")
    committed = False
    try:
        async with atomic(db):
            await Company.objects.create(db, name="lost")
            await _kill_backend(database, db)
        committed = True
    except DBAPIError:  # COMMIT goes through SQLAlchemy, so its error is wrapped
        pass
    assert not committed
    assert await Company.objects.count(db) == 0
    await Company.objects.create(db, name="kept")
    assert await Company.objects.count(db) == 1
