"""Object state after bulk_create and bulk_update: stored rows, exactly the fields written."""

from __future__ import annotations

import gc

import pytest
from sqlalchemy import String, inspect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, column_property, mapped_column

import flash_db
from flash_db import Model, RelationNotLoaded
from flash_db.instances import changed_fields, is_stored
from flash_db.testing import assert_num_queries, capture_queries
from tests.models import Tag, User


class Scored(Model):
    """A model with a column attribute that no INSERT ... RETURNING covers."""

    __tablename__ = "bulk_state_scored"
    label: Mapped[str] = mapped_column(String(20))
    points: Mapped[int] = mapped_column()
    doubled: Mapped[int] = column_property(points * 2)


async def test_bulk_created_objects_are_stored_rows_with_nothing_to_write(
    db: AsyncSession,
) -> None:
    users = await User.objects.bulk_create(
        db, [User(name="a", email="a@x"), {"name": "b", "email": "b@x", "age": 3}]
    )
    for user in users:
        assert inspect(user).session is None  # held by no session
        assert is_stored(user)
        assert changed_fields(user) == []
        assert user.created_at is not None
    async with assert_num_queries(db, 0):
        await users[0].save(db)  # nothing changed: nothing to write
    users[1].name = "B"
    async with capture_queries(db) as captured:
        await users[1].save(db)
    (update,) = captured.statements
    assert update.lstrip().upper().startswith("UPDATE")
    assert "email" not in update  # only the changed column (and updated_at) is written


async def test_bulk_create_pairs_given_primary_keys_in_any_order(
    db: AsyncSession, database: flash_db.Database
) -> None:
    tags = await Tag.objects.bulk_create(
        db, [Tag(id=50, name="fifty"), Tag(id=30, name="thirty"), {"pk": 40, "name": "forty"}]
    )
    assert [(tag.pk, tag.name) for tag in tags] == [(50, "fifty"), (30, "thirty"), (40, "forty")]
    async with database.session() as fresh:
        stored = await Tag.objects.order_by("pk").values_list("pk", "name").fetch(fresh)
    assert stored == [(30, "thirty"), (40, "forty"), (50, "fifty")]


async def test_bulk_create_takes_each_object_once_and_only_new_ones(
    db: AsyncSession, database: flash_db.Database
) -> None:
    tag = Tag(name="once")
    with pytest.raises(ValueError, match="each object once"):
        await Tag.objects.bulk_create(db, [tag, Tag(name="other"), tag])
    assert not is_stored(tag)
    async with database.session() as fresh:
        assert await Tag.objects.count(fresh) == 0
    (stored,) = await Tag.objects.bulk_create(db, [tag])
    with pytest.raises(ValueError, match="already stored"):
        await Tag.objects.bulk_create(db, [stored])


async def test_bulk_create_leaves_uncovered_column_attributes_unloaded(db: AsyncSession) -> None:
    (scored,) = await Scored.objects.bulk_create(db, [Scored(label="s", points=4)])
    assert is_stored(scored)
    with pytest.raises(RelationNotLoaded, match=r"Scored\.doubled"):
        _ = scored.doubled  # not returned by the INSERT: as a deferred column
    await scored.refresh_from_db(db, fields=["doubled"])
    assert scored.doubled == 8
    assert (await Scored.objects.get(db, pk=scored.pk)).doubled == 8


async def test_bulk_update_writes_exactly_the_fields_named(
    db: AsyncSession, database: flash_db.Database
) -> None:
    await Tag.objects.bulk_create(db, [Tag(name=f"t{i}") for i in range(3)])
    tags = await Tag.objects.order_by("name").fetch(db)
    for tag in tags:
        tag.name = tag.name.upper()
    async with capture_queries(db) as captured:
        assert await Tag.objects.bulk_update(db, tags, ["name"]) == 3
    assert [sql.split()[0].upper() for sql in captured.statements] == ["UPDATE"]
    assert all(changed_fields(tag) == [] for tag in tags)
    async with assert_num_queries(db, 0):
        for tag in tags:
            await tag.save(db)


async def test_bulk_update_leaves_other_changes_unsaved(
    db: AsyncSession, database: flash_db.Database
) -> None:
    await User.objects.bulk_create(db, [User(name="a", email="a@x", age=1)])
    (user,) = await User.objects.fetch(db)
    stamp = user.updated_at
    user.name = "renamed"  # not among the fields written below
    user.age = 2
    assert await User.objects.bulk_update(db, [user], ["age"]) == 1
    assert user.updated_at > stamp
    async with database.session() as fresh:
        assert await User.objects.values_list("name", "age").fetch(fresh) == [("a", 2)]
    assert changed_fields(user) == ["name"]  # still changed, still unsaved
    await user.save(db)
    async with database.session() as fresh:
        assert await User.objects.values_list("name", "age").fetch(fresh) == [("renamed", 2)]


async def test_bulk_update_in_a_rolled_back_savepoint_writes_nothing(
    db: AsyncSession, database: flash_db.Database
) -> None:
    await Tag.objects.bulk_create(db, [Tag(name="a"), Tag(name="b")])
    tags = await Tag.objects.order_by("name").fetch(db)
    async with flash_db.atomic(db):
        with pytest.raises(RuntimeError):
            async with flash_db.atomic(db):
                for tag in tags:
                    tag.name = tag.name * 2
                await Tag.objects.bulk_update(db, tags, ["name"])
                raise RuntimeError("undo")
        await tags[0].refresh_from_db(db)
        assert tags[0].name == "a"
    async with database.session() as fresh:
        assert await Tag.objects.order_by("name").values_list("name", flat=True).fetch(fresh) == [
            "a",
            "b",
        ]


async def test_bulk_update_that_fails_leaves_the_objects_changed(db: AsyncSession) -> None:
    await Tag.objects.bulk_create(db, [Tag(name="a"), Tag(name="b")])
    tags = await Tag.objects.order_by("name").fetch(db)
    for tag in tags:
        tag.name = "same"  # unique
    with pytest.raises(IntegrityError):
        await Tag.objects.bulk_update(db, tags, ["name"])
    assert [tag.name for tag in tags] == ["same", "same"]
    assert all(changed_fields(tag) == ["name"] for tag in tags)  # not written
    assert await Tag.objects.order_by("name").values_list("name", flat=True).fetch(db) == [
        "a",
        "b",
    ]


async def test_bulk_writes_leave_the_garbage_collector_running(db: AsyncSession) -> None:
    tags = await Tag.objects.bulk_create(db, [Tag(name="a")])
    assert gc.isenabled()
    with pytest.raises(TypeError):
        await Tag.objects.bulk_create(db, [Tag(name="b"), object()])  # type: ignore[list-item]
    assert gc.isenabled()
    with pytest.raises(TypeError):
        await Tag.objects.bulk_update(db, [*tags, object()], ["name"])  # type: ignore[list-item]
    assert gc.isenabled()
    assert await Tag.objects.bulk_update(db, tags, ["name"]) == 1
    assert gc.isenabled()
