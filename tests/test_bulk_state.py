"""Object state after bulk_create and bulk_update: what their fast paths promise."""

from __future__ import annotations

import gc

import pytest
from sqlalchemy import String, event, inspect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, column_property, mapped_column

import flash_db
from flash_db import Model
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
        state = inspect(user)
        assert state.detached  # as after a query whose session is gone: stored, no session
        assert state.identity == (user.pk,)
        assert not state.modified
        assert not state.expired_attributes
        assert not state.committed_state
        assert state.attrs.name.history.unchanged == [user.name]
        assert state.attrs.created_at.history.unchanged == [user.created_at]
    db.add_all(users)
    async with assert_num_queries(db, 0):
        await db.flush()  # nothing pending: every attribute is committed
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
    assert [inspect(tag).identity for tag in tags] == [(50,), (30,), (40,)]
    async with database.session() as fresh:
        stored = await Tag.objects.order_by("pk").values_list("pk", "name").fetch(fresh)
    assert stored == [(30, "thirty"), (40, "forty"), (50, "fifty")]


async def test_bulk_create_takes_each_object_once(
    db: AsyncSession, database: flash_db.Database
) -> None:
    tag = Tag(name="once")
    with pytest.raises(ValueError, match="each object once"):
        await Tag.objects.bulk_create(db, [tag, Tag(name="other"), tag])
    assert inspect(tag).transient
    async with database.session() as fresh:
        assert await Tag.objects.count(fresh) == 0


async def test_bulk_create_leaves_uncovered_column_attributes_expired(db: AsyncSession) -> None:
    (scored,) = await Scored.objects.bulk_create(db, [Scored(label="s", points=4)])
    state = inspect(scored)
    assert state.identity == (scored.pk,)
    assert not state.modified
    assert state.expired_attributes == {"doubled"}  # loaded on the next access in a session
    db.add(scored)
    async with assert_num_queries(db, 1):
        await db.refresh(scored)
    assert scored.doubled == 8


async def test_bulk_update_leaves_loaded_objects_unmodified(db: AsyncSession) -> None:
    await Tag.objects.bulk_create(db, [Tag(name=f"t{i}") for i in range(3)])
    tags = await Tag.objects.order_by("name").fetch(db)  # loaded: in the session
    for tag in tags:
        tag.name = tag.name.upper()
    flushes: list[object] = []
    event.listen(db.sync_session, "before_flush", lambda *args: flushes.append(args))
    async with capture_queries(db) as captured:
        assert await Tag.objects.bulk_update(db, tags, ["name"]) == 3
    assert [sql.split()[0].upper() for sql in captured.statements if "UPDATE" in sql] == ["UPDATE"]
    assert not db.dirty
    # The written objects were taken off the modified list before the write: no
    # flush walked them (one would find nothing to write, at ~10 us an object).
    assert flushes == []
    for tag in tags:
        state = inspect(tag)
        assert state.persistent
        assert not state.modified
        assert state.attrs.name.history.unchanged == [tag.name]
    async with assert_num_queries(db, 0):
        await db.flush()
        await db.commit()


async def test_bulk_update_keeps_other_pending_changes(
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
        assert await User.objects.values_list("name", "age").fetch(fresh) == [("renamed", 2)]
    assert not inspect(user).modified  # the pending name went out with the write


async def test_bulk_update_in_a_rolled_back_savepoint_expires_the_objects(
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
        assert all("name" in inspect(tag).expired_attributes for tag in tags)
        await db.refresh(tags[0])
        assert tags[0].name == "a"
    async with database.session() as fresh:
        assert await Tag.objects.order_by("name").values_list("name", flat=True).fetch(fresh) == [
            "a",
            "b",
        ]


async def test_bulk_update_that_fails_reloads_the_objects(db: AsyncSession) -> None:
    await Tag.objects.bulk_create(db, [Tag(name="a"), Tag(name="b")])
    tags = await Tag.objects.order_by("name").fetch(db)
    for tag in tags:
        tag.name = "same"  # unique
    with pytest.raises(IntegrityError):
        await Tag.objects.bulk_update(db, tags, ["name"])
    assert [tag.name for tag in tags] == ["a", "b"]
    assert not any(inspect(tag).modified for tag in tags)


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
