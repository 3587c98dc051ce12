"""get_or_create and update_or_create: defaults, validation, and races won by another session."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, assert_type

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

import flash_db
from flash_db import FieldError, ValidationError, atomic
from flash_db.signals import pre_save
from flash_db.testing import CapturedQueries, assert_num_queries, capture_queries
from tests.models import Tag, User

TASKS = 50


@pytest.fixture
async def wide_database(
    backend_url: str, database: flash_db.Database
) -> AsyncIterator[flash_db.Database]:
    """A second Database on the backend whose pool holds a connection per task.

    SQLite serialises writers (atomic sends BEGIN IMMEDIATE) and a waiting writer
    polls with growing sleeps; with 50 of them the last waits seconds, close to
    Python's default 5 s busy timeout, so the timeout is raised here.
    """
    extra: dict[str, Any] = {}
    if database.backend == "sqlite":
        extra["connect_args"] = {"timeout": 60}
    wide = flash_db.Database(backend_url, pool_size=TASKS, max_overflow=0, **extra)
    try:
        yield wide
    finally:
        await wide.close()


def _inserts(captured: CapturedQueries) -> int:
    """Count the INSERT statements sent (to prove the race happened)."""
    return sum(sql.lstrip().upper().startswith("INSERT") for sql in captured.statements)


async def _race(database: flash_db.Database, call: Any) -> list[tuple[User, bool] | BaseException]:
    """Run ``call(db, i)`` in TASKS tasks, each on its own session, released together."""
    barrier = asyncio.Barrier(TASKS)

    async def one(i: int) -> tuple[User, bool]:
        async with database.session() as db:
            try:
                await db.connection()  # check the connection out before the start line
            except BaseException:
                await barrier.abort()  # the others must not wait for this task forever
                raise
            await barrier.wait()
            result: tuple[User, bool] = await call(db, i)
            return result

    return await asyncio.gather(*(one(i) for i in range(TASKS)), return_exceptions=True)


async def test_get_or_create_gets_then_creates(db: AsyncSession) -> None:
    user, created = await User.objects.get_or_create(
        db, email="a@x", defaults={"name": "Ann", "age": lambda: 30}
    )
    assert_type(user, User)
    assert created is True
    assert (user.name, user.age) == ("Ann", 30)
    async with assert_num_queries(db, 1):
        again, created = await User.objects.get_or_create(db, email="a@x", defaults={"name": "X"})
    assert created is False
    assert again.pk == user.pk
    assert again.name == "Ann"


async def test_get_or_create_ignores_lookups_with_double_underscores(db: AsyncSession) -> None:
    user, created = await User.objects.get_or_create(
        db, email__iexact="B@X", defaults={"email": "b@x", "name": "B"}
    )
    assert created is True
    assert user.email == "b@x"
    found, created = await User.objects.get_or_create(db, email__iexact="B@X")
    assert (found.pk, created) == (user.pk, False)


async def test_get_or_create_validates_and_writes_nothing_on_failure(
    db: AsyncSession, database: flash_db.Database
) -> None:
    with pytest.raises(ValidationError) as info:
        await User.objects.get_or_create(db, email="c@x", defaults={"name": "n" * 101})
    assert "name" in info.value.errors
    async with database.session() as fresh:
        assert await User.objects.count(fresh) == 0


async def test_get_or_create_rejects_unknown_defaults(db: AsyncSession) -> None:
    with pytest.raises(FieldError, match="'nmae'"):
        await User.objects.get_or_create(db, email="d@x", defaults={"nmae": "x"})


async def test_get_or_create_conflict_inside_atomic_keeps_the_transaction(
    db: AsyncSession, database: flash_db.Database
) -> None:
    if database.backend == "sqlite":
        pytest.skip("SQLite's BEGIN IMMEDIATE keeps other writers out of an open atomic block")
    sneaked: list[str] = []

    async def sneak_in_first(sender: type[Tag], instance: Tag, **kwargs: Any) -> None:
        # Runs after our lookup found nothing and before our INSERT: another
        # session commits the same name, so our INSERT hits the unique constraint.
        if kwargs["db"] is db and instance.name == "winner" and not sneaked:
            sneaked.append(instance.name)
            async with database.session() as other:
                await Tag.objects.create(other, name=instance.name)

    pre_save.connect(sneak_in_first, sender=Tag)
    try:
        async with atomic(db):
            await Tag.objects.create(db, name="mine")
            tag, created = await Tag.objects.get_or_create(db, name="winner")
            assert created is False
            assert tag.pk is not None
            await Tag.objects.create(db, name="after")
    finally:
        pre_save.disconnect(sneak_in_first, sender=Tag)
    assert sneaked == ["winner"]
    async with database.session() as fresh:
        names = await Tag.objects.order_by("name").values_list("name", flat=True).fetch(fresh)
    assert names == ["after", "mine", "winner"]


async def test_get_or_create_race_returns_one_row_to_everyone(
    database: flash_db.Database, wide_database: flash_db.Database
) -> None:
    async def call(db: AsyncSession, i: int) -> tuple[User, bool]:
        return await User.objects.get_or_create(db, email="race@x", defaults={"name": f"t{i}"})

    async with capture_queries(wide_database) as captured:
        results = await _race(wide_database, call)
    errors = [r for r in results if isinstance(r, BaseException)]
    assert errors == []
    pairs = [r for r in results if not isinstance(r, BaseException)]
    assert len(pairs) == TASKS
    assert sum(created for _, created in pairs) == 1
    assert len({user.pk for user, _ in pairs}) == 1
    async with database.session() as fresh:
        assert await User.objects.filter(email="race@x").count(fresh) == 1
    assert _inserts(captured) >= 1
    print(f"[{database.backend}] get_or_create race: {_inserts(captured)} INSERTs for 1 row")


async def test_update_or_create_race_returns_one_row_to_everyone(
    database: flash_db.Database, wide_database: flash_db.Database
) -> None:
    async def call(db: AsyncSession, i: int) -> tuple[User, bool]:
        return await User.objects.update_or_create(
            db, email="race@x", defaults={"age": i}, create_defaults={"name": "first", "age": i}
        )

    async with capture_queries(wide_database) as captured:
        results = await _race(wide_database, call)
    errors = [r for r in results if isinstance(r, BaseException)]
    assert errors == []
    pairs = [r for r in results if not isinstance(r, BaseException)]
    assert len(pairs) == TASKS
    assert sum(created for _, created in pairs) == 1
    assert len({user.pk for user, _ in pairs}) == 1
    async with database.session() as fresh:
        stored = await User.objects.get(fresh, email="race@x")
    assert stored.name == "first"
    assert stored.age in range(TASKS)
    assert _inserts(captured) >= 1
    print(f"[{database.backend}] update_or_create race: {_inserts(captured)} INSERTs for 1 row")


async def test_update_or_create_updates_only_defaults(
    db: AsyncSession, database: flash_db.Database
) -> None:
    user, created = await User.objects.update_or_create(
        db, email="u@x", defaults={"age": 1}, create_defaults={"name": "New", "age": 0}
    )
    assert_type(user, User)
    assert (created, user.name, user.age) == (True, "New", 0)
    before = user.updated_at
    again, created = await User.objects.update_or_create(db, email="u@x", defaults={"age": 2})
    assert (created, again.pk, again.age) == (False, user.pk, 2)
    async with database.session() as fresh:
        stored = await User.objects.get(fresh, email="u@x")
    assert (stored.name, stored.age) == ("New", 2)
    assert stored.updated_at > before


async def test_update_or_create_validation_failure_writes_nothing(
    db: AsyncSession, database: flash_db.Database
) -> None:
    await User.objects.create(db, name="ok", email="v@x")
    with pytest.raises(ValidationError) as info:
        await User.objects.update_or_create(db, email="v@x", defaults={"name": "x" * 200})
    assert list(info.value.errors) == ["name"]
    async with database.session() as fresh:
        assert (await User.objects.get(fresh, email="v@x")).name == "ok"
