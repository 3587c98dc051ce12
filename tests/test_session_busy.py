"""SessionBusy: one session used by two tasks at once fails clearly in the second task."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

import flash_db
from flash_db import SessionBusy, atomic
from tests.models import Tag, User


async def _names(database: flash_db.Database) -> list[str]:
    async with database.session() as fresh:
        return list(await User.objects.order_by("name").values_list("name", flat=True).fetch(fresh))


async def test_gather_of_two_reads_on_one_session(db: AsyncSession) -> None:
    await User.objects.create(db, name="Ann", email="ann@x.io")
    first, second = await asyncio.gather(
        User.objects.filter(name="Ann").fetch(db),
        User.objects.count(db),
        return_exceptions=True,
    )
    assert isinstance(first, list)
    assert [u.name for u in first] == ["Ann"]
    assert isinstance(second, SessionBusy)
    message = str(second)
    assert "already running a query in another task" in message
    assert "open one session per task" in message
    # The session is still usable afterwards.
    assert await User.objects.count(db) == 1


async def test_gather_of_two_writes_on_one_session(
    database: flash_db.Database, db: AsyncSession
) -> None:
    results = await asyncio.gather(
        User.objects.create(db, name="Ann", email="ann@x.io"),
        User.objects.create(db, name="Bob", email="bob@x.io"),
        return_exceptions=True,
    )
    assert isinstance(results[0], User)
    assert isinstance(results[1], SessionBusy)
    assert await _names(database) == ["Ann"]  # the refused write left nothing behind
    await User.objects.create(db, name="Cid", email="cid@x.io")
    assert await _names(database) == ["Ann", "Cid"]


async def test_gather_inside_atomic(database: flash_db.Database, db: AsyncSession) -> None:
    async with atomic(db):
        results = await asyncio.gather(
            Tag.objects.create(db, name="a"),
            Tag.objects.filter(name="a").exists(db),
            return_exceptions=True,
        )
    assert isinstance(results[0], Tag)
    assert isinstance(results[1], SessionBusy)
    async with database.session() as fresh:
        assert await Tag.objects.count(fresh) == 1


async def test_raw_execute_is_guarded_too(db: AsyncSession) -> None:
    backend = db.get_bind().dialect.name
    sleep = "SELECT pg_sleep(0.05)" if backend == "postgresql" else "SELECT 1"
    results = await asyncio.gather(
        db.execute(text(sleep)), db.scalar(text("SELECT 2")), return_exceptions=True
    )
    assert not isinstance(results[0], BaseException)
    assert isinstance(results[1], SessionBusy)


async def test_one_session_per_task_works(database: flash_db.Database) -> None:
    async def create(name: str) -> User:
        async with database.session() as db:
            return await User.objects.create(db, name=name, email=f"{name}@x.io")

    async def count() -> int:
        async with database.session() as db:
            return await User.objects.count(db)

    users = await asyncio.gather(create("Ann"), create("Bob"), count())
    assert (users[0].name, users[1].name, users[2]) == ("Ann", "Bob", users[2])
    assert await _names(database) == ["Ann", "Bob"]


async def test_tasks_may_use_one_session_one_after_the_other(db: AsyncSession) -> None:
    await asyncio.create_task(User.objects.create(db, name="Ann", email="ann@x.io"))
    assert await asyncio.create_task(User.objects.count(db)) == 1
    assert await User.objects.count(db) == 1


async def test_session_busy_is_a_flash_db_error() -> None:
    error = SessionBusy()
    assert isinstance(error, flash_db.FlashDBError)
    with pytest.raises(SessionBusy, match="one session per task"):
        raise error
