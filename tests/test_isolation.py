"""Isolation levels of atomic blocks: from init_db(isolation_level=...) or atomic(db, ...)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

import flash_db
from flash_db import TransactionError, atomic
from flash_db.testing import assert_num_queries
from tests.models import User


async def _level(db: AsyncSession) -> str:
    return str((await db.execute(text("SHOW transaction_isolation"))).scalar_one())


@pytest.fixture
async def serializable(backend_url: str) -> AsyncIterator[flash_db.Database]:
    """A second Database on the backend whose atomic blocks run at SERIALIZABLE."""
    database = flash_db.Database(backend_url, isolation_level="SERIALIZABLE")
    try:
        yield database
    finally:
        await database.close()


async def test_blocks_run_at_the_configured_level_and_statements_outside_autocommit(
    serializable: flash_db.Database, database: flash_db.Database
) -> None:
    async with serializable.session() as db:
        if serializable.backend == "postgresql":
            assert await _level(db) == "read committed"  # outside a block: the default
            async with atomic(db):
                assert await _level(db) == "serializable"
                async with atomic(db):  # a savepoint, same transaction
                    assert await _level(db) == "serializable"
            assert await _level(db) == "read committed"
        async with atomic(db):
            await User.objects.create(db, name="in", email="in@x")
        await User.objects.create(db, name="out", email="out@x")  # commits on its own
    async with database.session() as fresh:
        assert await User.objects.order_by("name").values_list("name", flat=True).fetch(fresh) == [
            "in",
            "out",
        ]


async def test_a_block_names_its_own_level(db: AsyncSession, database: flash_db.Database) -> None:
    if database.backend == "postgresql":
        async with atomic(db, isolation_level="repeatable read"):
            assert await _level(db) == "repeatable read"
        async with atomic(db):
            assert await _level(db) == "read committed"  # the database's default
    else:
        async with atomic(db, isolation_level="SERIALIZABLE"):  # what SQLite always is
            await User.objects.create(db, name="a", email="a@x")
        with pytest.raises(ValueError, match="sqlite runs atomic blocks at 'SERIALIZABLE'"):
            async with atomic(db, isolation_level="READ COMMITTED"):
                pass  # pragma: no cover


async def test_a_nested_block_cannot_change_the_level(db: AsyncSession) -> None:
    level = "SERIALIZABLE"
    other = "REPEATABLE READ" if db.get_bind().dialect.name == "postgresql" else None
    async with atomic(db, isolation_level=level):
        async with atomic(db, isolation_level=level):  # the same level: a savepoint
            pass
        if other is not None:
            async with assert_num_queries(db, 0):
                with pytest.raises(TransactionError, match="cannot change the isolation level"):
                    async with atomic(db, isolation_level=other):
                        pass  # pragma: no cover
        await User.objects.create(db, name="a", email="a@x")
    assert await User.objects.count(db) == 1


@atomic(isolation_level="SERIALIZABLE")
async def _create(db: AsyncSession, name: str) -> User:
    return await User.objects.create(db, name=name, email=f"{name}@x")


async def test_the_decorator_takes_a_level(db: AsyncSession) -> None:
    user = await _create(db, "dec")
    assert await User.objects.filter(pk=user.pk).exists(db)


def test_init_db_refuses_a_level_the_database_does_not_run() -> None:
    with pytest.raises(ValueError, match="'READ COMMITTED', 'REPEATABLE READ', 'SERIALIZABLE'"):
        flash_db.init_db("postgresql://u@localhost/x", isolation_level="SNAPSHOT")
