"""The testing kit: rollback_session (the flash_db_session fixture) and assert_num_queries."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

import flash_db
from flash_db import atomic
from flash_db.testing import assert_num_queries, capture_queries, rollback_session
from tests.models import Note, Tag, User


async def _count_tags(database: flash_db.Database) -> int:
    async with database.session() as fresh:
        return await Tag.objects.count(fresh)


async def test_every_kind_of_write_is_rolled_back(database: flash_db.Database) -> None:
    async with rollback_session() as db:
        await Tag.objects.create(db, name="autocommit")  # would commit on its own
        await Tag.objects.bulk_create(db, [Tag(name="bulk1"), Tag(name="bulk2")])
        await Tag.objects.get_or_create(db, name="goc")
        async with atomic(db):  # would COMMIT when outermost
            await Tag.objects.create(db, name="atomic")
            async with atomic(db):
                await Tag.objects.create(db, name="nested")
        db.add(Tag(name="explicit commit"))
        await db.commit()
        await Note.objects.create(db, text="n")
        await Note.objects.delete(db)
        assert await Tag.objects.count(db) == 7
        # Nothing is committed: another connection sees none of it.
        assert await _count_tags(database) == 0
    assert await _count_tags(database) == 0
    async with database.session() as fresh:
        assert await Note.all_objects.count(fresh) == 0


async def test_rolled_back_atomic_block_inside_the_test(database: flash_db.Database) -> None:
    async with rollback_session(database) as db:
        await Tag.objects.create(db, name="before")
        with pytest.raises(RuntimeError):
            async with atomic(db):
                await Tag.objects.create(db, name="inside")
                raise RuntimeError("undo")
        assert await Tag.objects.values_list("name", flat=True).fetch(db) == ["before"]
        assert await Tag.objects.filter(name="before").update(db, name="after") == 1
        assert await Tag.objects.values_list("name", flat=True).fetch(db) == ["after"]
    assert await _count_tags(database) == 0


async def test_rollback_session_leaves_no_open_transaction(database: flash_db.Database) -> None:
    for _ in range(3):  # the pooled connection comes back clean every time
        async with rollback_session() as db:
            await User.objects.create(db, name="u", email="u@x")
    async with database.session() as fresh:
        await User.objects.create(fresh, name="u", email="u@x")  # committed normally
        assert await User.objects.count(fresh) == 1


async def test_assert_num_queries_counts_statements_not_transaction_control(
    db: AsyncSession,
) -> None:
    async with assert_num_queries(db, 2), atomic(db):  # BEGIN/COMMIT are not counted
        await Tag.objects.create(db, name="a")
        await Tag.objects.count(db)


async def test_assert_num_queries_failure_lists_the_statements(db: AsyncSession) -> None:
    with pytest.raises(AssertionError) as info:
        async with assert_num_queries(db, 1):
            await Tag.objects.count(db)
            await Tag.objects.exists(db)
    message = str(info.value)
    assert message.startswith("2 queries executed, 1 expected.")
    assert "1. SELECT count(*)" in message
    assert "2. SELECT" in message


async def test_capture_queries_sees_only_its_sessions_statements(
    db: AsyncSession, database: flash_db.Database
) -> None:
    async with capture_queries(db) as captured:
        async with database.session() as other:
            await Tag.objects.count(other)
        await Tag.objects.exists(db)
    assert len(captured) == 1
