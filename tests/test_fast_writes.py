"""Single-row INSERT/UPDATE as one cached Core statement (flash_db.writes), and its fallbacks."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import pytest
from sqlalchemy import event, inspect
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError, InvalidRequestError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import Mapper
from sqlalchemy.orm.exc import StaleDataError

import flash_db
from flash_db import atomic, writes
from flash_db.testing import rollback_session
from tests.models import Company, Gadget, Post, Status, User


@asynccontextmanager
async def sent(db: AsyncSession) -> AsyncIterator[list[tuple[str, Any]]]:
    """Record ``(SQL, statement object)`` for every statement on ``db``'s connection.

    Unlike ``capture_queries`` this keeps transaction control (SAVEPOINT, ...)
    and the statement object, which tells the cached Core statement apart.
    """
    bind = db.bind
    assert isinstance(bind, AsyncConnection)
    connection = bind.sync_connection
    records: list[tuple[str, Any]] = []

    def record(
        conn: Connection, cursor: Any, sql: str, params: Any, context: Any, many: bool
    ) -> None:
        if conn is connection:
            compiled = getattr(context, "compiled", None)
            records.append((sql, getattr(compiled, "statement", None)))

    engine = bind.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield records
    finally:
        event.remove(engine, "before_cursor_execute", record)


def plan(model: type[Any]) -> Any:
    result = writes._plan(model.__mapper__)
    assert result is not None
    return result


async def user_names(database: flash_db.Database) -> list[str]:
    async with database.session() as fresh:
        return list(await User.objects.order_by("name").values_list("name", flat=True).fetch(fresh))


def assert_saved(db: AsyncSession, obj: Any) -> None:
    """The state a flush leaves: persistent in ``db``, unmodified, nothing expired."""
    state = inspect(obj)
    assert state.persistent
    assert state.session is db.sync_session
    assert not state.modified
    assert not state.expired_attributes
    assert db.sync_session.identity_map.get(state.key) is obj
    assert not db.dirty


# -- INSERT -------------------------------------------------------------------------


async def test_create_outside_atomic_is_one_cached_insert_and_nothing_else(
    db: AsyncSession, database: flash_db.Database
) -> None:
    async with sent(db) as records:
        user = await User.objects.create(db, name="a", email="a@x")
        other = await User.objects.create(db, name="b", email="b@x")
    assert [statement for _, statement in records] == [plan(User).insert] * 2
    assert records[0][0].lstrip().upper().startswith("INSERT")
    assert_saved(db, user)
    assert_saved(db, other)
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
    assert_saved(db, post)
    assert (post.body, post.views, post.published, post.status) == ("", 0, False, Status.DRAFT)
    gadget = await Gadget.objects.create(db, label="g")  # Python default primary key
    assert_saved(db, gadget)
    assert isinstance(gadget.id, uuid.UUID)
    assert (await Gadget.objects.get(db, pk=gadget.pk)) is gadget  # from the identity map


async def test_create_with_explicit_none_uses_the_column_default(db: AsyncSession) -> None:
    author = await User.objects.create(db, name="a", email="a@x")
    post = Post(title="t", author_id=author.pk, views=None)
    await post.save(db, validate=False)
    assert post.views == 0  # None is not sent: the default applies, as in the flush


async def test_create_unique_violation_raises_and_session_stays_usable(
    db: AsyncSession, database: flash_db.Database
) -> None:
    first = await User.objects.create(db, name="first", email="dup@x")
    second = User(name="second", email="dup@x")
    with pytest.raises(IntegrityError):
        await second.save(db)
    assert inspect(second).transient
    assert first.name == "first"
    assert_saved(db, first)
    await User.objects.create(db, name="third", email="t@x")
    assert await user_names(database) == ["first", "third"]


async def test_a_failed_write_caught_inside_atomic_rolls_the_block_back(
    db: AsyncSession, database: flash_db.Database
) -> None:
    await User.objects.create(db, name="first", email="dup@x")
    with pytest.raises(flash_db.TransactionError, match="rolled back"):
        async with atomic(db):
            kept = await User.objects.create(db, name="in block", email="b@x")
            with pytest.raises(IntegrityError):
                await User.objects.create(db, name="second", email="dup@x")
            # As Django's TransactionManagementError: nothing more runs in the block.
            with pytest.raises(flash_db.TransactionError, match="no statement runs"):
                await User.objects.count(db)
            with pytest.raises(flash_db.TransactionError, match="no statement runs"):
                await User.objects.create(db, name="third", email="c@x")
    # As after a failed flush: nothing of the block is committed (on SQLite the
    # transaction itself would still have accepted a COMMIT).
    assert await user_names(database) == ["first"]
    assert inspect(kept).transient
    await User.objects.create(db, name="after", email="after@x")
    assert await user_names(database) == ["after", "first"]


async def test_a_failed_flush_caught_inside_atomic_is_refused_the_same_way(
    db: AsyncSession, database: flash_db.Database
) -> None:
    await User.objects.create(db, name="first", email="dup@x")
    with pytest.raises(flash_db.TransactionError, match="rolled back"):
        async with atomic(db):
            await User.objects.create(db, name="in block", email="b@x")
            # A relationship value: this write is the unit of work's flush.
            second = User(name="second", email="dup@x", company=Company(name="c"))
            with pytest.raises(IntegrityError):
                await second.save(db)
            with pytest.raises(flash_db.TransactionError, match="no statement runs"):
                await User.objects.count(db)
    assert await user_names(database) == ["first"]


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


async def test_create_in_atomic_rolled_back_leaves_the_object_transient(
    db: AsyncSession, database: flash_db.Database
) -> None:
    with pytest.raises(RuntimeError):
        async with atomic(db):
            async with sent(db) as records:
                user = await User.objects.create(db, name="a", email="a@x")
            assert [statement for _, statement in records] == [plan(User).insert]
            assert_saved(db, user)
            raise RuntimeError
    assert inspect(user).transient
    assert user not in db
    assert await user_names(database) == []
    again = await User.objects.create(db, name="a", email="a@x")  # the session is usable
    assert_saved(db, again)
    assert await user_names(database) == ["a"]


async def test_create_in_rolled_back_savepoint_only_forgets_the_inner_object(
    db: AsyncSession, database: flash_db.Database
) -> None:
    async with atomic(db):
        outer = await User.objects.create(db, name="outer", email="o@x")
        with pytest.raises(RuntimeError):
            async with atomic(db):
                inner = await User.objects.create(db, name="inner", email="i@x")
                raise RuntimeError
        assert inspect(inner).transient
        assert_saved(db, outer)
        assert outer.name == "outer"
    assert_saved(db, outer)
    assert await user_names(database) == ["outer"]


async def test_create_in_committed_savepoint_is_undone_by_the_outer_rollback(
    db: AsyncSession, database: flash_db.Database
) -> None:
    with pytest.raises(RuntimeError):
        async with atomic(db):
            outer = await User.objects.create(db, name="outer", email="o@x")
            async with atomic(db):
                inner = await User.objects.create(db, name="inner", email="i@x")
            raise RuntimeError
    assert inspect(outer).transient
    assert inspect(inner).transient
    assert await user_names(database) == []


async def test_create_then_delete_in_rolled_back_block_leaves_it_out_of_the_session(
    db: AsyncSession, database: flash_db.Database
) -> None:
    with pytest.raises(RuntimeError):
        async with atomic(db):
            user = await User.objects.create(db, name="a", email="a@x")
            await user.delete(db)
            raise RuntimeError
    assert user not in db
    assert await user_names(database) == []
    await User.objects.create(db, name="b", email="b@x")
    assert await user_names(database) == ["b"]


async def test_create_in_the_testing_kits_transaction(database: flash_db.Database) -> None:
    async with rollback_session(database) as db:
        with pytest.raises(RuntimeError):
            async with atomic(db):
                gone = await User.objects.create(db, name="gone", email="g@x")
                raise RuntimeError
        kept = await User.objects.create(db, name="kept", email="k@x")
        assert inspect(gone).transient
        assert_saved(db, kept)
        assert await User.objects.values_list("name", flat=True).fetch(db) == ["kept"]
    assert await user_names(database) == []


# -- UPDATE -------------------------------------------------------------------------


async def test_save_of_loaded_object_is_one_cached_update_of_the_changed_columns(
    db: AsyncSession, database: flash_db.Database
) -> None:
    user = await User.objects.create(db, name="a", email="a@x")
    before = user.updated_at
    user.name = "b"
    user.age = user.age  # set to the loaded value: not written
    async with sent(db) as records:
        await user.save(db)
    assert [statement for _, statement in records] == [plan(User).update]
    sql = records[0][0]
    assert "name" in sql
    assert "updated_at" in sql
    assert "email" not in sql
    assert "age" not in sql
    assert_saved(db, user)
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
    assert_saved(db, user)


async def test_save_of_a_deleted_row_raises_stale_data_error(
    db: AsyncSession, database: flash_db.Database
) -> None:
    user = await User.objects.create(db, name="a", email="a@x")
    keep = await User.objects.create(db, name="keep", email="k@x")
    async with database.session() as other:
        await User.objects.filter(pk=user.pk).delete(other)
    user.name = "b"
    with pytest.raises(StaleDataError, match="expected to update 1 row"):
        await user.save(db)
    assert keep.name == "keep"  # the session was rolled back and reloaded
    keep.name = "kept"
    await keep.save(db)
    assert await user_names(database) == ["kept"]


async def test_update_in_rolled_back_savepoint_is_expired_as_by_the_flush(
    db: AsyncSession, database: flash_db.Database
) -> None:
    user = await User.objects.create(db, name="a", email="a@x")
    async with atomic(db):
        with pytest.raises(RuntimeError):
            async with atomic(db):
                user.name = "b"
                await user.save(db)
                assert_saved(db, user)
                raise RuntimeError
        assert "name" in inspect(user).expired_attributes
        await user.refresh_from_db(db)
        assert user.name == "a"
    assert await user_names(database) == ["a"]


async def test_update_in_rolled_back_outer_block_is_reloaded(
    db: AsyncSession, database: flash_db.Database
) -> None:
    user = await User.objects.create(db, name="a", email="a@x")
    with pytest.raises(RuntimeError):
        async with atomic(db):
            user.name = "b"
            await user.save(db)
            raise RuntimeError
    assert user.name == "a"  # expired by the rollback and reloaded by atomic
    assert await user_names(database) == ["a"]


async def test_update_inside_atomic_commits_with_the_block(
    db: AsyncSession, database: flash_db.Database
) -> None:
    user = await User.objects.create(db, name="a", email="a@x")
    async with atomic(db):
        user.name = "b"
        async with sent(db) as records:
            await user.save(db)
        assert [statement for _, statement in records] == [plan(User).update]
        async with atomic(db):
            user.name = "c"
            await user.save(db)
    assert_saved(db, user)
    assert await user_names(database) == ["c"]


# -- fallbacks to the unit of work --------------------------------------------------


async def test_relationship_value_takes_the_flush(
    db: AsyncSession, database: flash_db.Database
) -> None:
    author = await User.objects.create(db, name="a", email="a@x")
    async with sent(db) as records:
        post = await Post.objects.create(db, title="t", author=author)
    assert plan(Post).insert not in [statement for _, statement in records]
    assert post.author_id == author.pk
    assert_saved(db, post)


async def test_other_pending_work_takes_the_flush(
    db: AsyncSession, database: flash_db.Database
) -> None:
    user = await User.objects.create(db, name="a", email="a@x")
    user.name = "changed"  # not saved: the next write flushes it too
    async with sent(db) as records:
        await User.objects.create(db, name="b", email="b@x")
    assert plan(User).insert not in [statement for _, statement in records]
    assert await user_names(database) == ["b", "changed"]


@contextmanager
def listening(target: Any, name: str, calls: list[str]) -> Iterator[None]:
    def listener(*args: Any) -> None:
        calls.append(name)

    event.listen(target, name, listener)
    try:
        yield
    finally:
        event.remove(target, name, listener)


async def test_mapper_and_session_listeners_take_the_flush(db: AsyncSession) -> None:
    calls: list[str] = []
    with listening(User, "before_insert", calls), listening(User, "before_update", calls):
        user = await User.objects.create(db, name="a", email="a@x")
        user.name = "b"
        await user.save(db)
    with listening(db.sync_session, "after_flush", calls):
        await User.objects.create(db, name="c", email="c@x")
    assert calls == ["before_insert", "before_update", "after_flush"]
    assert_saved(db, user)


def test_plans_are_cached_per_mapper() -> None:
    mapper: Mapper[Any] = inspect(User)
    assert writes._plan(mapper) is writes._plan(User.__mapper__)
    assert plan(User).insert is plan(User).insert


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
        assert_saved(db, kept)
    assert await user_names(database) == []


# -- DELETE (the unit of work, in one run_sync) ---------------------------------------


async def test_delete_outside_atomic_is_one_statement_and_marks_the_object_deleted(
    db: AsyncSession, database: flash_db.Database
) -> None:
    gadget = await Gadget.objects.create(db, label="g")  # no relationships: one DELETE
    async with sent(db) as records:
        await gadget.delete(db)
    assert len(records) == 1
    assert records[0][0].lstrip().upper().startswith("DELETE")
    state = inspect(gadget)
    assert state.was_deleted
    assert state.key is not None
    assert db.sync_session.identity_map.get(state.key) is None
    with pytest.raises(InvalidRequestError, match="has been deleted"):
        await gadget.save(db)
    assert await Gadget.objects.count(db) == 0


async def test_delete_in_rolled_back_savepoint_restores_the_object(
    db: AsyncSession, database: flash_db.Database
) -> None:
    user = await User.objects.create(db, name="a", email="a@x")
    async with atomic(db):
        with pytest.raises(RuntimeError):
            async with atomic(db):
                await user.delete(db)
                raise RuntimeError
        assert inspect(user).persistent
        user.name = "b"
        await user.save(db)
    assert await user_names(database) == ["b"]
