"""Connecting: init_db, sessions, create/drop, URL normalisation, SQLite foreign keys."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.pool import QueuePool

import flash_db
from flash_db import FlashDBError
from flash_db.database import normalize_url
from tests.models import Company, Post, User


def test_normalize_url_adds_async_drivers() -> None:
    assert normalize_url("postgresql://u@h/db").drivername == "postgresql+asyncpg"
    assert normalize_url("postgres://u@h/db").drivername == "postgresql+asyncpg"
    assert normalize_url("sqlite:///x.db").drivername == "sqlite+aiosqlite"
    assert normalize_url("postgresql+asyncpg://u@h/db").drivername == "postgresql+asyncpg"


async def test_use_before_init_db_says_to_call_init_db() -> None:
    await flash_db.close_db()
    with pytest.raises(FlashDBError, match=r"call init_db\(url\) first"):
        async for _ in flash_db.get_db():
            pass  # pragma: no cover
    with pytest.raises(FlashDBError, match="init_db"):
        flash_db.session()
    with pytest.raises(FlashDBError, match="init_db"):
        await flash_db.create_all()


async def test_close_db_is_idempotent(backend_url: str) -> None:
    flash_db.init_db(backend_url)
    await flash_db.close_db()
    await flash_db.close_db()


async def test_get_db_yields_session_and_closes_it(database: flash_db.Database) -> None:
    sessions: list[AsyncSession] = []
    async for db in flash_db.get_db():
        sessions.append(db)
        assert isinstance(db, AsyncSession)
        assert (await db.execute(text("SELECT 1"))).scalar() == 1
    assert database.engine.pool.checkedout() == 0  # type: ignore[attr-defined]


async def test_session_closed_when_body_raises(database: flash_db.Database) -> None:
    with pytest.raises(RuntimeError):
        async with flash_db.session() as db:
            await db.execute(text("SELECT 1"))
            raise RuntimeError("boom")
    assert database.engine.pool.checkedout() == 0  # type: ignore[attr-defined]


async def test_get_db_closed_when_consumer_stops_early(database: flash_db.Database) -> None:
    gen = flash_db.get_db()
    assert isinstance(gen, AsyncGenerator)
    db = await gen.__anext__()
    await db.execute(text("SELECT 1"))
    await gen.aclose()
    assert database.engine.pool.checkedout() == 0  # type: ignore[attr-defined]


async def test_expire_on_commit_is_off(db: AsyncSession) -> None:
    user = await User.objects.create(db, name="a", email="a@x")
    await db.commit()
    assert user.name == "a"  # no lazy reload needed


async def test_foreign_keys_are_enforced(db: AsyncSession) -> None:
    with pytest.raises(IntegrityError):
        await Post.objects.create(db, title="orphan", author_id=999_999)
    assert await Post.objects.count(db) == 0


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
async def test_sqlite_memory_databases_work_with_their_single_connection(url: str) -> None:
    database = flash_db.Database(url)
    try:
        await database.create_all()
        async with database.session() as db:
            await Company.objects.create(db, name="acme")
            assert await Company.objects.count(db) == 1
    finally:
        await database.close()


def test_a_sqlite_file_gets_five_pooled_connections_and_no_overflow(tmp_path: Path) -> None:
    pool = flash_db.Database(f"sqlite:///{tmp_path / 'x.db'}").engine.pool
    assert isinstance(pool, QueuePool)
    assert (pool.size(), pool.overflow()) == (5, -5)  # overflow() counts down from -size
    pool = flash_db.Database(f"sqlite:///{tmp_path / 'x.db'}", pool_size=2).engine.pool
    assert isinstance(pool, QueuePool)
    assert pool.size() == 2


async def _backend_pid(database: flash_db.Database) -> int:
    async with database.session() as db:
        return int((await db.execute(text("SELECT pg_backend_pid()"))).scalar_one())


@pytest.mark.parametrize("pre_ping", [False, True])
async def test_a_pooled_connection_whose_backend_was_terminated_is_replaced_at_checkout(
    postgresql_url: str, pre_ping: bool
) -> None:
    # Without pool_pre_ping, asyncpg's own report (is_closed(), no round trip) is checked.
    kwargs: dict[str, Any] = {"pool_pre_ping": True} if pre_ping else {}
    database = flash_db.Database(postgresql_url, pool_size=1, max_overflow=0, **kwargs)
    try:
        pid = await _backend_pid(database)
        assert await _backend_pid(database) == pid  # the pool hands the same one back
        admin = flash_db.Database(postgresql_url)
        try:
            async with admin.session() as other:
                await other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        finally:
            await admin.close()
        for _ in range(100):  # the server closes the socket; the event loop reads it
            await asyncio.sleep(0.01)
        async with database.session() as db:
            assert await User.objects.count(db) >= 0  # no error: a fresh connection
            new_pid = int((await db.execute(text("SELECT pg_backend_pid()"))).scalar_one())
        assert new_pid != pid
    finally:
        await database.close()


def test_isolation_level_sets_atomic_blocks_and_is_checked() -> None:
    assert flash_db.Database("sqlite:///x.db", isolation_level="serializable").isolation_level == (
        "SERIALIZABLE"
    )
    pg = flash_db.Database("postgresql://u@h/db", isolation_level="REPEATABLE READ")
    assert pg.isolation_level == "REPEATABLE READ"
    with pytest.raises(ValueError, match="sqlite runs atomic blocks at 'SERIALIZABLE'"):
        flash_db.Database("sqlite:///x.db", isolation_level="READ COMMITTED")
    with pytest.raises(ValueError, match="'READ COMMITTED', 'REPEATABLE READ', 'SERIALIZABLE'"):
        flash_db.Database("postgresql://u@h/db", isolation_level="CHAOS")


async def test_create_all_and_drop_all(tmp_path: object) -> None:
    flash_db.init_db(f"sqlite+aiosqlite:///{tmp_path}/fresh.sqlite3")
    try:
        await flash_db.create_all()
        async with flash_db.session() as db:
            await User.objects.create(db, name="a", email="a@x")
            assert await User.objects.count(db) == 1
        await flash_db.drop_all()
        async with flash_db.session() as db:
            with pytest.raises(Exception, match="no such table"):
                await User.objects.count(db)
    finally:
        await flash_db.close_db()


async def test_sqlite_waits_for_the_write_lock_up_to_30s_unless_overridden(
    tmp_path: object,
) -> None:
    database = flash_db.Database(f"sqlite+aiosqlite:///{tmp_path}/lock.sqlite3")
    overridden = flash_db.Database(
        f"sqlite+aiosqlite:///{tmp_path}/lock.sqlite3", connect_args={"timeout": 1}
    )
    try:
        for db, expected in ((database, 30_000), (overridden, 1_000)):
            async with db.session() as session:
                timeout = (await session.execute(text("PRAGMA busy_timeout"))).scalar()
            assert timeout == expected
    finally:
        await database.close()
        await overridden.close()
