"""Models: primary keys, pk, per-model exceptions, timestamps and the instance methods."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

import flash_db
from flash_db import DoesNotExist, Manager, MultipleObjectsReturned
from flash_db.testing import capture_queries
from tests.models import Gadget, Note, Post, Product, User


def test_default_integer_id_unless_a_primary_key_is_declared() -> None:
    assert [c.name for c in User.__table__.primary_key] == ["id"]
    assert [c.name for c in Product.__table__.primary_key] == ["code"]
    assert "id" not in Product.__table__.c
    assert [c.name for c in Gadget.__table__.primary_key] == ["id"]
    assert Gadget.__table__.c.id.type.python_type is uuid.UUID


def test_per_model_exceptions() -> None:
    assert issubclass(User.DoesNotExist, DoesNotExist)
    assert issubclass(User.MultipleObjectsReturned, MultipleObjectsReturned)
    assert issubclass(User.DoesNotExist, ValueError)
    assert User.DoesNotExist is not Post.DoesNotExist
    assert User.DoesNotExist.__qualname__ == "User.DoesNotExist"


def test_objects_is_a_manager_on_the_class_only() -> None:
    assert isinstance(User.objects, Manager)
    assert User.objects.model is User
    assert User.objects is User.objects
    with pytest.raises(AttributeError, match=r"User\.objects"):
        _ = User(name="a", email="a").objects


async def test_pk_for_every_primary_key_shape(db: AsyncSession) -> None:
    user = await User.objects.create(db, name="a", email="a@x")
    product = await Product.objects.create(db, code="P1", price=2)
    gadget = await Gadget.objects.create(db, label="g")
    assert user.pk == user.id
    assert isinstance(user.pk, int)
    assert product.pk == "P1"
    assert isinstance(gadget.pk, uuid.UUID)
    assert (await Gadget.objects.get(db, pk=gadget.pk)).label == "g"


async def test_timestamps_are_aware_and_updated(
    db: AsyncSession, database: flash_db.Database
) -> None:
    start = datetime.now(UTC)
    user = await User.objects.create(db, name="a", email="a@x")
    assert user.created_at.tzinfo is not None
    assert user.created_at >= start
    created = user.created_at
    user.name = "b"
    await user.save(db)
    assert user.updated_at > created
    async with database.session() as fresh:
        again = await User.objects.get(fresh, pk=user.pk)
    assert again.name == "b"
    assert again.created_at == created
    assert again.updated_at.tzinfo is not None


async def test_save_inserts_then_updates(db: AsyncSession, database: flash_db.Database) -> None:
    user = User(name="a", email="a@x")
    await user.save(db)
    assert user.pk is not None
    user.age = 33
    await user.save(db)
    async with database.session() as fresh:
        assert (await User.objects.get(fresh, pk=user.pk)).age == 33
        assert await User.objects.count(fresh) == 1


async def test_save_of_object_loaded_in_another_session(database: flash_db.Database) -> None:
    async with database.session() as first:
        user = await User.objects.create(first, name="a", email="a@x")
    async with database.session() as second:
        user.name = "changed"
        await user.save(second)
    async with database.session() as fresh:
        assert (await User.objects.get(fresh, pk=user.pk)).name == "changed"


async def test_save_update_fields_limits_the_update(
    db: AsyncSession, database: flash_db.Database
) -> None:
    user = await User.objects.create(db, name="a", email="a@x", age=1)
    user.name = "new name"
    user.age = 99
    async with capture_queries(db) as captured:
        await user.save(db, update_fields=["age"])
    sql = captured.statements[0]
    assert sql.upper().startswith("UPDATE")
    assert "age" in sql
    assert "name" not in sql.split("WHERE")[0]
    async with database.session() as fresh:
        again = await User.objects.get(fresh, pk=user.pk)
    assert (again.name, again.age) == ("a", 99)
    assert again.updated_at > user.created_at


async def test_delete_removes_the_row(db: AsyncSession, database: flash_db.Database) -> None:
    user = await User.objects.create(db, name="a", email="a@x")
    await user.delete(db)
    async with database.session() as fresh:
        assert await User.objects.count(fresh) == 0


async def test_refresh_from_db(db: AsyncSession, database: flash_db.Database) -> None:
    user = await User.objects.create(db, name="a", email="a@x", age=1)
    async with database.session() as other:
        await User.objects.filter(pk=user.pk).update(other, name="renamed", age=2)
    await user.refresh_from_db(db, fields=["name"])
    assert user.name == "renamed"
    await user.refresh_from_db(db)
    assert user.age == 2
    await User.objects.filter(pk=user.pk).delete(db)
    with pytest.raises(User.DoesNotExist):
        await user.refresh_from_db(db)


async def test_soft_delete_hides_rows_from_objects(
    db: AsyncSession, database: flash_db.Database
) -> None:
    kept = await Note.objects.create(db, text="kept")
    gone = await Note.objects.create(db, text="gone")
    await gone.delete(db)
    async with database.session() as fresh:
        assert [n.text for n in await Note.objects.fetch(fresh)] == ["kept"]
        assert await Note.all_objects.count(fresh) == 2
        assert (await Note.all_objects.get(fresh, pk=gone.pk)).deleted_at is not None
    await gone.restore(db)
    assert await Note.objects.count(db) == 2
    await kept.hard_delete(db)
    assert await Note.all_objects.count(db) == 1
    assert await Note.objects.filter(text="gone").delete(db) == 1
    assert await Note.objects.count(db) == 0
    assert await Note.all_objects.filter(text="gone").restore(db) == 1
    assert await Note.objects.count(db) == 1


def test_repr() -> None:
    assert repr(User(name="a", email="a")) == "<User pk=None>"


async def test_update_fields_other_changes_are_never_written_behind_the_callers_back(
    db: AsyncSession, database: flash_db.Database
) -> None:
    user = await User.objects.create(db, name="a", email="a@x", age=1)
    user.name = "in memory only"
    user.age = 2
    await user.save(db, update_fields=["age"])
    assert await User.objects.count(db) == 1  # a query autoflushes pending changes
    async with database.session() as fresh:
        again = await User.objects.get(fresh, pk=user.pk)
    assert (again.name, again.age) == ("a", 2)
    assert user.name == "in memory only"
