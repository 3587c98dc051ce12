"""Writing one object: INSERT, UPDATE of the changed fields, DELETE, each one Core statement.

Objects are Django's (SPEC 2.1): no session holds them, ``save()`` writes what
changed since they were loaded or last saved, and a rolled-back block leaves the
objects as they are in memory (as in Django, reload them to see the database).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from sqlalchemy import inspect, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

import flash_db
from flash_db import atomic
from flash_db.testing import capture_queries, rollback_session
from tests.models import Gadget, Post, Status, User


@asynccontextmanager
async def sent(db: AsyncSession) -> AsyncIterator[list[str]]:
    """Record the SQL of every statement on ``db``'s connection (transaction control included)."""
    async with capture_queries(db, transaction_control=True) as captured:
        yield captured.statements


async def user_names(database: flash_db.Database) -> list[str]:
    async with database.session() as fresh:
        return list(await User.objects.order_by("name").values_list("name", flat=True).fetch(fresh))


def assert_stored(obj: Any) -> None:
    """An object Flash DB wrote: held by no session, nothing changed since."""
    assert inspect(obj).session is None
    assert flash_db.instances.changed_fields(obj) == []
    assert flash_db.instances.is_stored(obj)


# -- INSERT -------------------------------------------------------------------------


async def test_create_outside_atomic_is_one_insert_and_nothing_else(
    db: AsyncSession, database: flash_db.Database
) -> None:
    async with sent(db) as records:
        user = await User.objects.create(db, name="a", email="a@x")
        other = await User.objects.create(db, name="b", email="b@x")
    assert len(records) == 2
    assert all(sql.upper().startswith("INSERT INTO USERS") for sql in records)
    assert_stored(user)
    assert_stored(other)
    assert isinstance(user.id, int)
    assert other.id > user.id
    assert user.age is None
    assert user.company_id is None
    assert user.created_at <= user.updated_at  # the _now() defaults computed for the INSERT
    assert user.created_at.tzinfo is not None
    assert await user_names(database) == ["a", "b"]  # durable: AUTOCOMMIT
    async with database.session() as fresh:
        stored = await User.objects.get(fresh, pk=user.pk)
        assert stored.created_at == user.created_at


async def test_create_copies_python_and_returned_defaults(db: AsyncSession) -> None:
    author = await User.objects.create(db, name="a", email="a@x")
    post = await Post.objects.create(db, title="t", author_id=author.pk)
    assert_stored(post)
    assert (post.body, post.views, post.published, post.status) == ("", 0, False, Status.DRAFT)
    gadget = await Gadget.objects.create(db, label="g")  # Python default primary key
    assert_stored(gadget)
    assert isinstance(gadget.id, uuid.UUID)
    again = await Gadget.objects.get(db, pk=gadget.pk)
    assert again is not gadget  # every query returns new objects
    assert (again.id, again.label) == (gadget.id, "g")


async def test_create_with_explicit_none_uses_the_column_default(db: AsyncSession) -> None:
    author = await User.objects.create(db, name="a", email="a@x")
    post = Post(title="t", author_id=author.pk, views=None)
    await post.save(db, validate=False)
    assert post.views == 0  # None is not sent: the default applies


async def test_create_unique_violation_raises_and_session_stays_usable(
    db: AsyncSession, database: flash_db.Database
) -> None:
    first = await User.objects.create(db, name="first", email="dup@x")
    second = User(name="second", email="dup@x")
    with pytest.raises(IntegrityError):
        await second.save(db)
    assert not flash_db.instances.is_stored(second)
    assert second.id is None
    assert first.name == "first"
    await User.objects.create(db, name="third", email="t@x")
    assert await user_names(database) == ["first", "third"]


async def test_a_failed_write_caught_inside_atomic_rolls_the_block_back(
    db: AsyncSession, database: flash_db.Database
) -> None:
    await User.objects.create(db, name="first", email="dup@x")
    with pytest.raises(flash_db.TransactionError, match="rolled back"):
        async with atomic(db):
            await User.objects.create(db, name="in block", email="b@x")
            with pytest.raises(IntegrityError):
                await User.objects.create(db, name="second", email="dup@x")
            # As Django's TransactionManagementError: nothing more runs in the block.
            with pytest.raises(flash_db.TransactionError, match="no statement runs"):
                await User.objects.count(db)
            with pytest.raises(flash_db.TransactionError, match="no statement runs"):
                await User.objects.create(db, name="third", email="c@x")
    # Nothing of the block is committed (on SQLite the transaction itself would
    # still have accepted a COMMIT).
    assert await user_names(database) == ["first"]
    await User.objects.create(db, name="after", email="after@x")
    assert await user_names(database) == ["after", "first"]


async def test_a_nested_block_limits_a_caught_failure_to_itself(
    db: AsyncSession, database: flash_db.Database
) -> None:
    await User.objects.create(db, name="first", email="dup@x")
    async with atomic(db):
        await User.objects.create(db, name="outer", email="o@x")
        with pytest.raises(flash_db.TransactionError):
            async with atomic(db):
                with pytest.raises(IntegrityError):
                    await User.objects.create(db, name="second", email="dup@x")
        assert await User.objects.filter(name="outer").count(db) == 1
        await User.objects.create(db, name="outer 2", email="o2@x")
    assert await user_names(database) == ["first", "outer", "outer 2"]


async def test_a_rolled_back_create_leaves_the_object_as_it_is_in_memory(
    db: AsyncSession, database: flash_db.Database
) -> None:
    with pytest.raises(RuntimeError):
        async with atomic(db):
            user = await User.objects.create(db, name="a", email="a@x")
            raise RuntimeError
    # As in Django: the object keeps its primary key; the row is gone.
    assert user.id is not None
    assert await user_names(database) == []
    with pytest.raises(User.DoesNotExist):
        await user.refresh_from_db(db)
    again = await User.objects.create(db, name="a", email="a@x")  # the session is usable
    assert_stored(again)
    assert await user_names(database) == ["a"]


async def test_create_in_rolled_back_savepoint_keeps_the_outer_write(
    db: AsyncSession, database: flash_db.Database
) -> None:
    async with atomic(db):
        outer = await User.objects.create(db, name="outer", email="o@x")
        with pytest.raises(RuntimeError):
            async with atomic(db):
                await User.objects.create(db, name="inner", email="i@x")
                raise RuntimeError
        assert outer.name == "outer"
    assert_stored(outer)
    assert await user_names(database) == ["outer"]


async def test_create_in_committed_savepoint_is_undone_by_the_outer_rollback(
    db: AsyncSession, database: flash_db.Database
) -> None:
    with pytest.raises(RuntimeError):
        async with atomic(db):
            await User.objects.create(db, name="outer", email="o@x")
            async with atomic(db):
                await User.objects.create(db, name="inner", email="i@x")
            raise RuntimeError
    assert await user_names(database) == []


async def test_create_in_the_testing_kits_transaction(database: flash_db.Database) -> None:
    async with rollback_session(database) as db:
        with pytest.raises(RuntimeError):
            async with atomic(db):
                await User.objects.create(db, name="gone", email="g@x")
                raise RuntimeError
        kept = await User.objects.create(db, name="kept", email="k@x")
        assert_stored(kept)
        assert await User.objects.values_list("name", flat=True).fetch(db) == ["kept"]
    assert await user_names(database) == []


# -- UPDATE -------------------------------------------------------------------------


async def test_save_of_a_loaded_object_is_one_update_of_the_changed_columns(
    db: AsyncSession, database: flash_db.Database
) -> None:
    created = await User.objects.create(db, name="a", email="a@x")
    user = await User.objects.get(db, pk=created.pk)
    before = user.updated_at
    user.name = "b"
    user.age = user.age  # set to the loaded value: not written
    async with sent(db) as records:
        await user.save(db)
    assert len(records) == 1
    sql = records[0]
    assert sql.upper().startswith("UPDATE USERS SET")
    assert "name" in sql
    assert "updated_at" in sql
    assert "email" not in sql
    assert "age" not in sql
    assert_stored(user)
    assert user.updated_at > before
    async with database.session() as fresh:
        stored = await User.objects.get(fresh, pk=user.pk)
        assert (stored.name, stored.updated_at) == ("b", user.updated_at)


async def test_save_without_changes_sends_nothing(db: AsyncSession) -> None:
    user = await User.objects.create(db, name="a", email="a@x")
    async with sent(db) as records:
        await user.save(db)
        user.name = "a"  # the loaded value again
        await user.save(db)
    assert records == []
    assert_stored(user)


async def test_save_of_a_deleted_row_raises_does_not_exist(
    db: AsyncSession, database: flash_db.Database
) -> None:
    user = await User.objects.create(db, name="a", email="a@x")
    keep = await User.objects.create(db, name="keep", email="k@x")
    async with database.session() as other:
        await User.objects.filter(pk=user.pk).delete(other)
    user.name = "b"
    with pytest.raises(User.DoesNotExist, match="it was deleted"):
        await user.save(db)
    keep.name = "kept"
    await keep.save(db)
    assert await user_names(database) == ["kept"]


async def test_a_rolled_back_update_leaves_the_object_as_it_is_in_memory(
    db: AsyncSession, database: flash_db.Database
) -> None:
    user = await User.objects.create(db, name="a", email="a@x")
    async with atomic(db):
        with pytest.raises(RuntimeError):
            async with atomic(db):
                user.name = "b"
                await user.save(db)
                raise RuntimeError
        assert user.name == "b"  # in memory, as in Django
        await user.refresh_from_db(db)
        assert user.name == "a"
    assert await user_names(database) == ["a"]


async def test_update_inside_atomic_commits_with_the_block(
    db: AsyncSession, database: flash_db.Database
) -> None:
    user = await User.objects.create(db, name="a", email="a@x")
    async with atomic(db):
        user.name = "b"
        async with sent(db) as records:
            await user.save(db)
        assert len([sql for sql in records if sql.upper().startswith("UPDATE")]) == 1
        async with atomic(db):
            user.name = "c"
            await user.save(db)
        assert await User.objects.filter(name="c").count(db) == 1
    assert_stored(user)
    assert await user_names(database) == ["c"]


async def test_a_related_object_sets_the_foreign_key(db: AsyncSession) -> None:
    author = await User.objects.create(db, name="a", email="a@x")
    post = await Post.objects.create(db, title="t", author=author)
    assert post.author_id == author.pk
    assert post.author is author
    assert (await Post.objects.get(db, pk=post.pk)).author_id == author.pk
    unsaved = User(name="u", email="u@x")
    with pytest.raises(ValueError, match="unsaved related object 'author'"):
        await Post.objects.create(db, title="t2", author=unsaved)


async def test_unsaved_changes_are_never_written_by_other_writes(
    db: AsyncSession, database: flash_db.Database
) -> None:
    user = await User.objects.create(db, name="a", email="a@x")
    user.name = "changed"  # not saved
    await User.objects.create(db, name="b", email="b@x")
    async with atomic(db):
        await User.objects.filter(name="b").update(db, age=3)
    assert await user_names(database) == ["a", "b"]


async def test_failed_write_in_the_testing_kit_keeps_earlier_writes(
    database: flash_db.Database,
) -> None:
    async with rollback_session(database) as db:
        kept = await User.objects.create(db, name="kept", email="k@x")
        kept.name = "renamed"
        await kept.save(db)
        with pytest.raises(IntegrityError):
            await User.objects.create(db, name="dup", email="k@x")
        assert await User.objects.values_list("name", flat=True).fetch(db) == ["renamed"]
        assert_stored(kept)
    assert await user_names(database) == []


# -- DELETE -------------------------------------------------------------------------


async def test_delete_outside_atomic_is_one_statement_and_makes_the_object_new(
    db: AsyncSession, database: flash_db.Database
) -> None:
    gadget = await Gadget.objects.create(db, label="g")
    async with sent(db) as records:
        await gadget.delete(db)
    assert len(records) == 1
    assert records[0].upper().startswith("DELETE")
    # As in Django: the primary key is None, and saving it again inserts a new row.
    assert gadget.id is None
    assert not flash_db.instances.is_stored(gadget)
    assert await Gadget.objects.count(db) == 0
    await gadget.save(db)
    assert gadget.id is not None
    assert await Gadget.objects.count(db) == 1


async def test_delete_in_rolled_back_savepoint_keeps_the_row(
    db: AsyncSession, database: flash_db.Database
) -> None:
    user = await User.objects.create(db, name="a", email="a@x")
    async with atomic(db):
        with pytest.raises(RuntimeError):
            async with atomic(db):
                await user.delete(db)
                raise RuntimeError
        again = await User.objects.get(db, name="a")
        again.name = "b"
        await again.save(db)
    assert await user_names(database) == ["b"]


async def test_saving_a_deleted_object_inserts_it_again_with_a_generated_key(
    db: AsyncSession, database: flash_db.Database
) -> None:
    await User.objects.create(db, name="first", email="f@x")
    user = await User.objects.create(db, name="a", email="a@x")
    await user.delete(db)
    assert user.id is None
    await user.save(db)  # the key is generated, not sent as NULL
    assert user.id is not None
    assert (await User.objects.get(db, pk=user.id)).name == "a"
    assert await User.objects.count(db) == 2


async def test_deleting_an_object_of_a_sqlalchemy_session_takes_it_out_of_it(
    db: AsyncSession, database: flash_db.Database
) -> None:
    await User.objects.create(db, name="a", email="a@x")
    user = (await db.execute(select(User))).scalars().one()  # SQLAlchemy's own object
    await user.delete(db)
    assert user not in db
    assert user.id is None
    async with atomic(db):  # settles the session: nothing of the deleted object is flushed
        await User.objects.create(db, name="b", email="b@x")
    assert await user_names(database) == ["b"]


async def test_loaded_objects_get_sqlalchemy_state_when_asked_for(
    db: AsyncSession, database: flash_db.Database
) -> None:
    await User.objects.create(db, name="a", email="a@x")
    user, other = [await User.objects.get(db, name="a") for _ in range(2)]
    state = inspect(user)  # made now, by SQLAlchemy's ClassManager.setup_instance()
    assert state.transient
    assert state is inspect(user)
    user.name = "b"  # an assignment makes it too, and SQLAlchemy records the change
    assert inspect(user).attrs.name.history.added == ["b"]
    other.age = 7
    await other.save(db)
    db.add(user)  # a SQLAlchemy Session may take an object Flash DB loaded
    assert user in db
    db.expunge(user)
    with pytest.raises(AttributeError, match="no attribute 'nmae'"):
        _ = user.nmae  # type: ignore[attr-defined]  # the usual error for a missing name
    assert await User.objects.values_list("age", flat=True).fetch(db) == [7]
