"""Flash DB's statements run as Core statements on the session's connection, beside its ORM."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import ORMExecuteState

from flash_db import Count, atomic
from flash_db.testing import capture_queries
from tests.models import Company


async def test_sqlalchemy_pending_objects_are_not_flushed_by_flash_queries(
    db: AsyncSession,
) -> None:
    async with atomic(db):
        db.add(Company(name="acme"))  # SQLAlchemy's unit of work
        assert await Company.objects.count(db) == 0  # no autoflush: nothing was written
        await db.flush()  # SQLAlchemy's own write, in the block's transaction
        assert await Company.objects.count(db) == 1
        assert await Company.objects.filter(name="acme").exists(db)
        assert await Company.objects.values_list("name", flat=True).fetch(db) == ["acme"]
        assert await Company.objects.aggregate(db, n=Count("id")) == {"n": 1}
    assert await Company.objects.count(db) == 1


async def test_rolled_back_rows_are_not_counted(db: AsyncSession) -> None:
    class Boom(Exception):
        pass

    try:
        async with atomic(db):
            await Company.objects.create(db, name="acme")
            assert await Company.objects.count(db) == 1
            raise Boom
    except Boom:
        pass
    assert await Company.objects.count(db) == 0
    await Company.objects.create(db, name="globex")
    assert await Company.objects.values("name").fetch(db) == [{"name": "globex"}]


async def test_orm_execute_listeners_do_not_see_flash_statements_engine_listeners_do(
    db: AsyncSession,
) -> None:
    await Company.objects.create(db, name="acme")
    seen: list[Any] = []

    def listener(state: ORMExecuteState) -> None:
        seen.append(state.statement)

    event.listen(db.sync_session, "do_orm_execute", listener)
    try:
        async with capture_queries(db) as queries:  # before_cursor_execute on the engine
            assert await Company.objects.filter(name="acme").count(db) == 1
            assert [c.name for c in await Company.objects.fetch(db)] == ["acme"]
            assert await Company.objects.values("name").fetch(db) == [{"name": "acme"}]
    finally:
        event.remove(db.sync_session, "do_orm_execute", listener)
    assert seen == []  # none went through the Session's ORM execution
    assert len(queries) == 3
