"""The backend fixture: every behaviour test runs on SQLite and on PostgreSQL.

PostgreSQL tests run in a database of their own, created for this pytest
process (so parallel runs never share tables) and dropped at the end. Under
``CI=true`` an unreachable PostgreSQL fails the run instead of skipping.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

import flash_db
from flash_db import Model
from tests import models  # noqa: F401  (registers the tables)
from tests.oracle import schema  # noqa: F401  (the Django oracle's tables)

# The testing kit's plugin, loaded here rather than through its pytest11 entry point
# (disabled in pyproject.toml with "-p no:flash_db"): an entry-point plugin is
# imported before pytest-cov starts, so flash_db's module-level lines went unmeasured.
pytest_plugins = ("flash_db.testing",)

PG_ADMIN_URL = os.environ.get(
    "FLASH_TEST_PG_ADMIN_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
IN_CI = os.environ.get("CI", "").lower() == "true"


async def _pg_create(name: str) -> None:
    engine = create_async_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"')
            await conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    finally:
        await engine.dispose()


async def _pg_drop(name: str) -> None:
    engine = create_async_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await engine.dispose()


async def _create_tables(url: str) -> None:
    database = flash_db.Database(url)
    try:
        await database.create_all()
    finally:
        await database.close()


@pytest.fixture(scope="session")
def postgresql_url() -> Iterator[str]:
    """Create a PostgreSQL database for this test run; skip (fail under CI) if unreachable."""
    name = f"flash_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    try:
        asyncio.run(_pg_create(name))
    except (OSError, Exception) as error:
        message = f"PostgreSQL is not reachable at {PG_ADMIN_URL}: {error}"
        if IN_CI:
            pytest.fail(f"{message} (CI=true: the PostgreSQL leg is mandatory)")
        pytest.skip(f"{message} -- skipping the PostgreSQL leg")
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    asyncio.run(_create_tables(url))
    yield url
    asyncio.run(_pg_drop(name))


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Create a SQLite database file with every table."""
    path = Path(tmp_path_factory.mktemp("sqlite")) / "test.sqlite3"
    url = f"sqlite+aiosqlite:///{path}"
    asyncio.run(_create_tables(url))
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def backend_url(request: pytest.FixtureRequest) -> str:
    """The database URL of the backend under test."""
    name: str = request.param
    return str(request.getfixturevalue(f"{name}_url"))


@pytest.fixture
async def database(backend_url: str) -> AsyncIterator[flash_db.Database]:
    """Initialise Flash DB on the backend; empty every table afterwards."""
    db = flash_db.init_db(backend_url)
    try:
        yield db
    finally:
        async with db.engine.connect() as conn:
            for table in reversed(Model.metadata.sorted_tables):
                await conn.execute(delete(table))
        await flash_db.close_db()


@pytest.fixture
async def db(database: flash_db.Database) -> AsyncIterator[AsyncSession]:
    """A session on the backend under test."""
    async with database.session() as session:
        yield session
