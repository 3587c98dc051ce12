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
from tests import (
    models,  # noqa: F401  (registers the tables)
    servers,
)
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


def start_private_cluster() -> servers.Cluster:
    """Start a PostgreSQL cluster of the test's own; skip without the binaries (fail under CI)."""
    try:
        return servers.start_cluster()
    except servers.Unavailable as error:  # pragma: no cover - CI has the server's binaries
        if IN_CI:
            pytest.fail(f"no private PostgreSQL cluster: {error} (CI=true: it is mandatory)")
        pytest.skip(f"no private PostgreSQL cluster: {error}")


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


def _unavailable(what: str, error: Exception) -> None:
    """Skip the tests that need a server that could not start (fail under CI=true)."""
    message = f"{what} could not be started: {error}"
    if IN_CI:
        pytest.fail(f"{message} (CI=true: these servers are mandatory)")
    pytest.skip(f"{message} -- skipping the tests that need it")


@pytest.fixture(scope="session")
def replica(postgresql_url: str) -> Iterator[servers.Replica]:
    """A streaming replica of the primary (pg_basebackup -R), on a free port."""
    try:
        started = servers.start_replica()
    except servers.Unavailable as error:
        _unavailable("A PostgreSQL streaming replica", error)
        raise  # pragma: no cover - pytest.skip/fail raised
    try:
        started.catch_up()  # the test database and its tables are there
        yield started
    finally:
        started.remove()


@pytest.fixture(scope="session")
def pgbouncer(postgresql_url: str) -> Iterator[servers.PgBouncer]:
    """PgBouncer in transaction-pooling mode in front of the primary, on a free port."""
    try:
        started = servers.start_pgbouncer(install=IN_CI)
    except servers.Unavailable as error:
        _unavailable("PgBouncer", error)
        raise  # pragma: no cover - pytest.skip/fail raised
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="session")
def pgbouncer_url(postgresql_url: str, pgbouncer: servers.PgBouncer) -> str:
    """The test database through PgBouncer; the URL tells Flash DB (``?pooler=pgbouncer``)."""
    return pgbouncer.url(postgresql_url.rsplit("/", 1)[1]) + "?pooler=pgbouncer"


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Create a SQLite database file with every table."""
    path = Path(tmp_path_factory.mktemp("sqlite")) / "test.sqlite3"
    url = f"sqlite+aiosqlite:///{path}"
    asyncio.run(_create_tables(url))
    return url


#: The behaviour suites that also run through PgBouncer (transaction pooling) in
#: ``make test``; ``FLASH_PGBOUNCER=all`` runs every behaviour test through it.
PGBOUNCER_SUITES = frozenset(
    {
        "test_transaction.py",
        "test_writes.py",
        "test_core_reads.py",
        "test_driver.py",
        "test_statement_templates.py",
        "test_isolation.py",
        "test_retries.py",
        "test_get_or_create.py",
        "test_bulk.py",
        "test_related.py",
        "test_pgbouncer.py",
    }
)


@pytest.fixture(params=["sqlite", "postgresql", "pgbouncer"])
def backend_url(request: pytest.FixtureRequest) -> str:
    """The database URL of the backend under test.

    ``pgbouncer`` is PostgreSQL through PgBouncer in transaction-pooling mode
    (the same database), for the suites in :data:`PGBOUNCER_SUITES`.
    """
    name: str = request.param
    return str(request.getfixturevalue(f"{name}_url"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave the PgBouncer leg of the suites outside :data:`PGBOUNCER_SUITES` out."""
    if os.environ.get("FLASH_PGBOUNCER", "") == "all":
        return
    keep, drop = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        through_pgbouncer = callspec is not None and callspec.params.get("backend_url") == (
            "pgbouncer"
        )
        if through_pgbouncer and item.path.name not in PGBOUNCER_SUITES:
            drop.append(item)
        else:
            keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


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
