"""Object state after bulk_create and bulk_update: what their fast paths promise."""

from __future__ import annotations

import pytest
from sqlalchemy import String, inspect
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
