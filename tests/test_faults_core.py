"""Faults at the core: no connection to be had, cancelled statements, hostile input.

SPEC §1 (a cancelled statement leaves the session usable) and §6
(``DatabaseUnavailable``, ``InvalidValue``, ``FieldError`` before any SQL).
"""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

import flash_db
from flash_db import DatabaseUnavailable, FieldError, InvalidValue, atomic
from flash_db.testing import capture_queries
from tests.loop_watch import LoopWatch
from tests.models import Post, User


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # closed again: nothing listens there


async def test_a_server_that_is_down_raises_database_unavailable() -> None:
    database = flash_db.Database(f"postgresql://postgres@127.0.0.1:{_closed_port()}/none")
    try:
        with pytest.raises(DatabaseUnavailable, match="could not be reached") as raised:
            async with database.session():
                pass
    finally:
        await database.close()
    assert raised.value.retry_after == 1


async def test_the_pools_timeout_raises_database_unavailable(backend_url: str) -> None:
    database = flash_db.Database(backend_url, pool_size=1, max_overflow=0, pool_timeout=0.1)
    try:
        async with database.session() as db:
            await User.objects.count(db)
            started = time.monotonic()
            with pytest.raises(DatabaseUnavailable, match="pool's timeout"):
                async with database.session():
                    pass
            assert time.monotonic() - started < 5
            assert await User.objects.count(db) == 0  # the holder is unaffected
    finally:
        await database.close()


async def test_sqlite_busy_past_its_timeout_raises_database_unavailable(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'busy.sqlite3'}"
    holder = flash_db.Database(url)
    waiter = flash_db.Database(url, connect_args={"timeout": 0.1})
    try:
        await holder.create_all()
        async with holder.session() as first, waiter.session() as second:
            async with atomic(first):  # BEGIN IMMEDIATE: the write lock
                await User.objects.create(first, name="a", email="a@x")
                with pytest.raises(DatabaseUnavailable, match="locked"):
                    await User.objects.create(second, name="b", email="b@x")
                with pytest.raises(DatabaseUnavailable, match="locked"):
                    async with atomic(second):
                        pass
            # Once the lock is free the waiting session works again.
            await User.objects.create(second, name="b", email="b@x")
            assert await User.objects.count(second) == 2
    finally:
        await holder.close()
        await waiter.close()


async def _blocked_update(db: AsyncSession, pk: int) -> None:
    await User.objects.filter(pk=pk).update(db, age=1)


@pytest.mark.parametrize("driver_path", [True, False], ids=["driver", "sqlalchemy"])
@pytest.mark.parametrize("how", ["timeout", "cancel", "taskgroup", "raw", "atomic"])
async def test_a_statement_cancelled_mid_flight_leaves_the_session_usable(
    postgresql_url: str, how: str, driver_path: bool
) -> None:
    """SPEC §1: the next call works, no PendingRollbackError (PostgreSQL: a row lock waits)."""
    database = flash_db.Database(postgresql_url, driver_path=driver_path)
    try:
        async with database.session() as setup:
            user = await User.objects.create(setup, name="x", email=f"{how}{driver_path}@x")
        async with database.session() as locker, database.session() as db:
            async with atomic(locker):
                await User.objects.filter(pk=user.pk).update(locker, age=5)  # holds the row
                if how == "timeout":
                    with pytest.raises(TimeoutError):
                        async with asyncio.timeout(0.2):
                            await _blocked_update(db, user.pk)
                elif how == "cancel":
                    task = asyncio.create_task(_blocked_update(db, user.pk))
                    await asyncio.sleep(0.2)
                    task.cancel()
                    with pytest.raises(asyncio.CancelledError):
                        await task
                elif how == "taskgroup":

                    async def sibling() -> None:
                        await asyncio.sleep(0.2)
                        raise RuntimeError("a sibling failed")

                    with pytest.raises(ExceptionGroup):
                        async with asyncio.TaskGroup() as group:
                            group.create_task(_blocked_update(db, user.pk))
                            group.create_task(sibling())
                elif how == "raw":
                    with pytest.raises(TimeoutError):
                        async with asyncio.timeout(0.2):
                            await db.execute(text("SELECT pg_sleep(5)"))
                else:
                    with pytest.raises(TimeoutError):
                        async with asyncio.timeout(0.2):
                            async with atomic(db):
                                await User.objects.select_for_update().get(db, pk=user.pk)
                # Still inside the lock holder's block: reads work at once.
                assert await User.objects.filter(pk=user.pk).values_list("age", flat=True).get(
                    db
                ) in (None, 0)
            await User.objects.filter(pk=user.pk).update(db, age=2)
            assert (await User.objects.get(db, pk=user.pk)).age == 2
            await db.execute(text("SELECT 1"))
            await User.objects.filter(pk=user.pk).delete(db)
    finally:
        await database.close()


async def test_a_cancelled_sqlite_statement_leaves_the_session_usable(db: AsyncSession) -> None:
    if db.get_bind().dialect.name != "sqlite":
        pytest.skip("the PostgreSQL form is above")
    await User.objects.bulk_create(db, [User(name="a" * 40, email=f"{i}@x") for i in range(300)])
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.001):
            while True:
                await User.objects.filter(name__icontains="b").count(db)
    assert await User.objects.count(db) == 300


async def test_a_200_hop_relation_path_raises_field_error_before_sql(db: AsyncSession) -> None:
    key = "__".join(["posts__author"] * 100) + "__name"
    async with capture_queries(db) as queries:
        with pytest.raises(FieldError, match="at most 24"):
            await User.objects.filter(**{key: "x"}).fetch(db)
        with pytest.raises(FieldError, match="at most 24"):
            await User.objects.order_by("__".join(["company__users"] * 20)).fetch(db)
    assert len(queries) == 0


@pytest.mark.parametrize("value", ["a\x00b", "a\ud800b", ["ok", "a\x00"]])
async def test_nul_and_lone_surrogates_in_filters_raise_invalid_value(
    db: AsyncSession, value: object
) -> None:
    lookup = "name__in" if isinstance(value, list) else "name"
    with pytest.raises(InvalidValue, match=r"User\.name") as raised:
        await User.objects.filter(**{lookup: value}).fetch(db)
    assert isinstance(raised.value, ValueError)
    with pytest.raises(InvalidValue):
        await User.objects.get_or_create(db, name="a\x00b", defaults={"email": "x@x"})


async def test_a_lone_surrogate_in_a_saved_string_is_a_validation_error(db: AsyncSession) -> None:
    with pytest.raises(flash_db.ValidationError, match="surrogate"):
        await User.objects.create(db, name="a\udc80", email="x@x")


async def test_sqlite_regex_runs_in_linear_time_and_the_loop_keeps_ticking(
    db: AsyncSession,
) -> None:
    """The pattern that froze the loop 8.9 s with Python's re (one row of 28 a's and a '!').

    Then the same pattern over rows long enough for the call to take a while
    (RE2 is linear: some ms a row), so that the loop is seen answering during it:
    many ticks, and no stall longer than a few rows' work.
    """
    author = await User.objects.create(db, name="a" * 28 + "!", email="r@x")
    await User.objects.create(db, name="a" * 98 + "!", email="s@x")
    long = "a" * 20_000 + "!"
    await Post.objects.bulk_create(
        db, [Post(title=f"long {n}", body=long, author_id=author.id) for n in range(100)]
    )
    async with asyncio.timeout(5), LoopWatch() as short:
        started = time.monotonic()
        found = await User.objects.filter(name__regex="^(a+)+$").count(db)
        found_i = await User.objects.filter(name__iregex="^(A+)+!$").count(db)
    assert (found, found_i) == (0, 2)
    assert time.monotonic() - started < 2
    assert short.longest_stall < 0.5, short.longest_stall  # Python's re: 8.9 s
    async with asyncio.timeout(5), LoopWatch() as watch:
        long_started = time.monotonic()
        found_long = await Post.objects.filter(body__regex="^(a+)+$").count(db)
    long_took = time.monotonic() - long_started
    assert found_long == 0
    assert long_took < 5
    assert watch.longest_stall < 0.5, (watch.longest_stall, long_took)
    if db.get_bind().dialect.name == "sqlite":  # the matching runs in this process
        assert watch.ticks >= 3, (watch.ticks, long_took)


@pytest.mark.parametrize("pattern", [r"(a)\1", r"a(?=b)", r"(?<!x)a"])
async def test_patterns_re2_cannot_run_are_refused_before_sql(
    db: AsyncSession, pattern: str
) -> None:
    with pytest.raises(ValueError, match="RE2"):
        await User.objects.filter(name__regex=pattern).fetch(db)
