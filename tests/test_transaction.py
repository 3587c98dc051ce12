"""The commit model: autocommit outside atomic, atomic blocks, savepoints and on_commit."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

import flash_db
from flash_db import SessionBusy, TransactionError, atomic, on_commit
from flash_db.testing import assert_num_queries, capture_queries
from tests.models import Entry, User, Wallet


async def names(database: flash_db.Database) -> list[str]:
    """Read user names back through a fresh session."""
    async with database.session() as fresh:
        return list(await User.objects.order_by("name").values_list("name", flat=True).fetch(fresh))


async def test_write_outside_atomic_commits_on_its_own(
    db: AsyncSession, database: flash_db.Database
) -> None:
    await User.objects.create(db, name="a", email="a@x")
    assert await names(database) == ["a"]


async def test_atomic_commits_at_exit_and_hides_until_then(
    db: AsyncSession, database: flash_db.Database
) -> None:
    async with atomic(db):
        await User.objects.create(db, name="a", email="a@x")
        await User.objects.create(db, name="b", email="b@x")
        if database.backend == "postgresql":  # SQLite's writer lock blocks other readers' view
            assert await names(database) == []
    assert await names(database) == ["a", "b"]


async def test_atomic_rolls_back_on_exception(
    db: AsyncSession, database: flash_db.Database
) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        async with atomic(db):
            await User.objects.create(db, name="a", email="a@x")
            raise RuntimeError("boom")
    assert await names(database) == []
    # The session is usable afterwards.
    await User.objects.create(db, name="b", email="b@x")
    assert await names(database) == ["b"]


async def test_atomic_nested_outer_rollback_undoes_inner_savepoint(
    db: AsyncSession, database: flash_db.Database
) -> None:
    with pytest.raises(RuntimeError):
        async with atomic(db):
            await User.objects.create(db, name="outer", email="o@x")
            async with atomic(db):
                await User.objects.create(db, name="inner", email="i@x")
            raise RuntimeError
    assert await names(database) == []


async def test_atomic_nested_inner_failure_rolls_back_only_inner(
    db: AsyncSession, database: flash_db.Database
) -> None:
    async with atomic(db):
        await User.objects.create(db, name="outer", email="o@x")
        with pytest.raises(RuntimeError):
            async with atomic(db):
                await User.objects.create(db, name="inner", email="i@x")
                raise RuntimeError
        await User.objects.create(db, name="after", email="after@x")
    assert await names(database) == ["after", "outer"]


async def test_atomic_inner_integrity_error_rolls_back_only_inner(
    db: AsyncSession, database: flash_db.Database
) -> None:
    async with atomic(db):
        await User.objects.create(db, name="outer", email="dup@x")
        with pytest.raises(IntegrityError):
            async with atomic(db):
                await User.objects.create(db, name="dup", email="dup@x")
        await User.objects.create(db, name="after", email="after@x")
    assert await names(database) == ["after", "outer"]


async def test_atomic_outer_integrity_error_rolls_back_everything(
    db: AsyncSession, database: flash_db.Database
) -> None:
    with pytest.raises(IntegrityError):
        async with atomic(db):
            await User.objects.create(db, name="first", email="dup@x")
            await User.objects.create(db, name="second", email="dup@x")
    assert await names(database) == []
    await User.objects.create(db, name="third", email="t@x")
    assert await names(database) == ["third"]


async def test_integrity_error_outside_atomic_leaves_session_usable(
    db: AsyncSession, database: flash_db.Database
) -> None:
    first = await User.objects.create(db, name="first", email="dup@x")
    with pytest.raises(IntegrityError):
        await User.objects.create(db, name="second", email="dup@x")
    assert first.name == "first"
    await User.objects.create(db, name="third", email="t@x")
    assert await names(database) == ["first", "third"]


async def test_atomic_opened_after_a_read_still_commits(
    db: AsyncSession, database: flash_db.Database
) -> None:
    assert await User.objects.count(db) == 0  # autobegins the session
    async with atomic(db):
        await User.objects.create(db, name="a", email="a@x")
    assert await names(database) == ["a"]


async def test_sqlalchemy_pending_work_is_written_when_a_block_begins(
    db: AsyncSession, database: flash_db.Database
) -> None:
    db.add(User(name="pending", email="p@x"))  # SQLAlchemy's unit of work, outside atomic
    with pytest.raises(RuntimeError):
        async with atomic(db):
            db.add(User(name="added-in-block", email="a@x"))
            await User.objects.create(db, name="in-block", email="b@x")
            raise RuntimeError
    # Outside atomic every write commits on its own: the pending object was flushed
    # when the block began; what was added inside the block went with it.
    assert await names(database) == ["pending"]


async def test_atomic_decorator_finds_the_session(
    db: AsyncSession, database: flash_db.Database
) -> None:
    @atomic
    async def create_two(session: AsyncSession, fail: bool) -> int:
        await User.objects.create(session, name="a", email="a@x")
        if fail:
            raise ValueError("nope")
        await User.objects.create(session, name="b", email="b@x")
        return 2

    with pytest.raises(ValueError, match="nope"):
        await create_two(db, fail=True)
    assert await names(database) == []
    assert await create_two(fail=False, session=db) == 2
    assert await names(database) == ["a", "b"]


async def test_atomic_decorator_without_session_argument_is_a_type_error() -> None:
    @atomic
    async def no_session(x: int) -> int:
        return x  # pragma: no cover

    with pytest.raises(TypeError, match="without an AsyncSession"):
        await no_session(1)


def test_atomic_refuses_non_sessions() -> None:
    with pytest.raises(TypeError, match="AsyncSession"):
        atomic("db")  # type: ignore[call-overload]


async def test_on_commit_runs_after_commit_in_order(
    db: AsyncSession, database: flash_db.Database
) -> None:
    seen: list[object] = []

    async def async_callback() -> None:
        seen.append(("async", await names(database)))

    async with atomic(db):
        await User.objects.create(db, name="a", email="a@x")
        on_commit(db, lambda: seen.append("sync"))
        on_commit(db, async_callback)
        assert seen == []
    assert seen == ["sync", ("async", ["a"])]


async def test_on_commit_dropped_on_rollback_and_with_savepoint(db: AsyncSession) -> None:
    seen: list[str] = []
    with pytest.raises(RuntimeError):
        async with atomic(db):
            on_commit(db, lambda: seen.append("outer"))
            raise RuntimeError
    async with atomic(db):
        on_commit(db, lambda: seen.append("kept"))
        with pytest.raises(RuntimeError):
            async with atomic(db):
                on_commit(db, lambda: seen.append("savepoint"))
                raise RuntimeError
        async with atomic(db):
            on_commit(db, lambda: seen.append("released"))
    assert seen == ["kept", "released"]


async def test_on_commit_outside_atomic_runs_at_once(db: AsyncSession) -> None:
    seen: list[str] = []
    on_commit(db, lambda: seen.append("now"))
    assert seen == ["now"]


async def test_commit_inside_atomic_is_refused(db: AsyncSession) -> None:
    async with atomic(db):
        with pytest.raises(TransactionError, match="outermost atomic"):
            await db.commit()


async def test_single_write_outside_atomic_sends_no_transaction_control(
    db: AsyncSession,
) -> None:
    async with capture_queries(db) as captured:
        await User.objects.create(db, name="a", email="a@x")
    assert len(captured) == 1
    assert captured.statements[0].lstrip().upper().startswith("INSERT")


async def test_select_for_update_locks_on_postgres_and_is_accepted_on_sqlite(
    db: AsyncSession, database: flash_db.Database
) -> None:
    user = await User.objects.create(db, name="a", email="a@x")
    async with atomic(db), capture_queries(db) as captured:
        locked = await User.objects.select_for_update().get(db, pk=user.pk)
        assert locked.name == "a"
    sql = captured.statements[0].upper()
    assert ("FOR UPDATE" in sql) == (database.backend == "postgresql")
    async with capture_queries(db) as captured:
        await User.objects.select_for_update(nowait=True).filter(pk=user.pk).fetch(db)
        await User.objects.select_for_update(skip_locked=True).filter(pk=user.pk).fetch(db)
    if database.backend == "postgresql":
        assert "NOWAIT" in captured.statements[0].upper()
        assert "SKIP LOCKED" in captured.statements[1].upper()


async def test_failed_commit_raises_sqlalchemy_error_and_writes_nothing(
    db: AsyncSession, database: flash_db.Database
) -> None:
    seen: list[str] = []
    with pytest.raises(IntegrityError):
        async with atomic(db):
            await User.objects.create(db, name="a", email="a@x")
            await Entry.objects.create(db, wallet_id=424242)  # checked only at COMMIT
            on_commit(db, lambda: seen.append("committed"))
    assert seen == []
    assert await names(database) == []
    async with database.session() as fresh:
        assert await Entry.objects.count(fresh) == 0
    wallet = await Wallet.objects.create(db, label="w")
    await Entry.objects.create(db, wallet_id=wallet.pk)
    assert await Entry.objects.count(db) == 1


async def test_atomic_block_keeps_the_session_for_its_task(
    db: AsyncSession, database: flash_db.Database
) -> None:
    inside = asyncio.Event()
    release = asyncio.Event()

    async def writer() -> None:
        async with atomic(db):
            await User.objects.create(db, name="a", email="a@x")
            inside.set()
            await release.wait()
            await User.objects.create(db, name="b", email="b@x")

    task = asyncio.create_task(writer())
    await inside.wait()
    with pytest.raises(SessionBusy, match="one session per task"):
        await User.objects.create(db, name="intruder", email="i@x")
    with pytest.raises(SessionBusy):
        async with atomic(db):
            pass  # pragma: no cover
    release.set()
    await task
    assert await names(database) == ["a", "b"]
    # Once the block is over, the session serves any task again.
    await asyncio.create_task(User.objects.create(db, name="c", email="c@x"))
    assert await names(database) == ["a", "b", "c"]


async def test_loaded_objects_keep_their_values_after_a_failed_write(db: AsyncSession) -> None:
    for i in range(5):
        await User.objects.create(db, name=f"u{i}", email=f"u{i}@x")
    users = await User.objects.order_by("id").fetch(db)
    with pytest.raises(IntegrityError):
        await User.objects.create(db, name="dup", email="u0@x")
    async with assert_num_queries(db, 0):
        assert [u.name for u in users] == ["u0", "u1", "u2", "u3", "u4"]
