"""Connecting: init_db, sessions, create/drop, URL normalisation, SQLite foreign keys."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

import flash_db
from flash_db import FlashDBError
from flash_db.database import normalize_url
from tests.models import Post, User


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


def test_pool_pre_ping_on_postgres_unless_overridden() -> None:
    database = flash_db.Database("postgresql://postgres@127.0.0.1/test")
    assert database.engine.pool._pre_ping
    database = flash_db.Database("postgresql://postgres@127.0.0.1/test", pool_pre_ping=False)
    assert not database.engine.pool._pre_ping


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
