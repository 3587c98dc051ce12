"""The testing kit: assert_num_queries, capture_queries and the flash_db_session fixture.

This module is also a pytest plugin, registered as the ``pytest11`` entry point
``flash_db``, so installing Flash DB (with pytest and pytest-asyncio) makes the
fixture available without any import::

    # conftest.py
    import pytest
    import flash_db

    @pytest.fixture(autouse=True)
    async def _database():
        flash_db.init_db("postgresql://localhost/myapp_test")  # tables created once
        yield
        await flash_db.close_db()

    # test_users.py
    from flash_db.testing import assert_num_queries

    async def test_signup(flash_db_session):
        db = flash_db_session
        user = await User.objects.create(db, name="Ann", email="ann@example.com")
        async with assert_num_queries(db, 1):
            assert await User.objects.filter(email="ann@example.com").exists(db)

How ``flash_db_session`` isolates a test: it checks out one connection of the
database configured with ``init_db()``, opens a real transaction on it (the
connection leaves autocommit mode for it: ``execution_options(isolation_level=...)``
then ``begin()``) and binds an ``AsyncSession`` to it with
``join_transaction_mode="create_savepoint"`` (SQLAlchemy's recipe for joining an
external transaction). Everything the test
writes stays inside that transaction and is rolled back when the test ends,
so tables never need re-creating or emptying:

- writes outside ``atomic`` (which normally commit on their own) each run in a
  savepoint of their own, so a failed one undoes only itself, and an explicit
  ``await db.commit()`` only releases the session's savepoint;
- ``atomic`` blocks become savepoints (``flash_db.transaction`` nests inside a
  transaction it did not open), so a rolled-back block is rolled back as in
  production, and ``on_commit`` callbacks run when the outermost block exits
  (the real COMMIT never happens);
- only this session sees the test's rows; code under test that opens its own
  sessions (``flash_db.session()``) does not. Pass the fixture's session to it
  (FastAPI: override the ``get_db`` dependency to yield it).

The engine's connections must belong to the test's event loop: call
``init_db()`` in a fixture with the same loop scope as the tests (with
pytest-asyncio, function scope by default, or ``loop_scope="session"`` for both).
Use :func:`rollback_session` directly outside pytest or for another ``Database``.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from flash_db import driver
from flash_db.concurrency import FlashAsyncSession
from flash_db.database import DRIVER_KEY, ISOLATION_KEY, Database, FlashSession, get_database
from flash_db.transaction import OUTER_KEY

__all__ = ["CapturedQueries", "assert_num_queries", "capture_queries", "rollback_session"]

_TRANSACTION_CONTROL = re.compile(
    r"^\s*(BEGIN|COMMIT|ROLLBACK|SAVEPOINT|RELEASE|END)\b", re.IGNORECASE
)


class CapturedQueries:
    """The statements sent inside a :func:`capture_queries` block (not transaction control)."""

    def __init__(self) -> None:
        self.statements: list[str] = []

    def __len__(self) -> int:
        return len(self.statements)

    def __repr__(self) -> str:
        return f"<CapturedQueries {len(self.statements)}>"


def _engine_and_connection(
    target: AsyncSession | Database | AsyncEngine,
) -> tuple[Engine, Connection | None]:
    if isinstance(target, Database):
        return target.engine.sync_engine, None
    if isinstance(target, AsyncEngine):
        return target.sync_engine, None
    bind = target.bind
    if isinstance(bind, AsyncConnection):
        return bind.sync_engine, bind.sync_connection
    if isinstance(bind, AsyncEngine):
        return bind.sync_engine, None
    raise TypeError(f"Cannot capture queries for a session bound to {bind!r}.")


@asynccontextmanager
async def capture_queries(
    target: AsyncSession | Database | AsyncEngine, *, transaction_control: bool = False
) -> AsyncIterator[CapturedQueries]:
    """Record the SQL statements sent inside the block.

    ``target`` is a session (its statements only), or a ``Database``/``AsyncEngine``
    (every session's). Both the statements SQLAlchemy executes and the templates
    Flash DB sends on the driver (``flash_db.driver``) are recorded; transaction
    control (BEGIN, COMMIT, ROLLBACK, SAVEPOINT, RELEASE) only with
    ``transaction_control=True``.
    """
    engine, connection = _engine_and_connection(target)
    captured = CapturedQueries()

    def before_cursor_execute(
        conn: Connection,
        cursor: Any,
        statement: str,
        parameters: Any,
        context: Any,
        executemany: bool,
    ) -> None:
        if connection is not None and conn is not connection:
            return
        if transaction_control or not _TRANSACTION_CONTROL.match(statement):
            captured.statements.append(statement)

    def driver_statement(conn: Connection, statement: str) -> None:
        # A statement template Flash DB sent on the driver (flash_db.driver).
        if conn.engine is engine and (connection is None or conn is connection):
            captured.statements.append(statement)

    event.listen(engine, "before_cursor_execute", before_cursor_execute)
    driver.observers.append(driver_statement)
    try:
        yield captured
    finally:
        driver.observers.remove(driver_statement)
        event.remove(engine, "before_cursor_execute", before_cursor_execute)


@asynccontextmanager
async def assert_num_queries(db: AsyncSession, n: int) -> AsyncIterator[CapturedQueries]:
    """Raise ``AssertionError``, listing the statements, unless the block sends ``n`` of them.

    Transaction control (BEGIN, COMMIT, ROLLBACK, SAVEPOINT, RELEASE) is not counted.
    """
    async with capture_queries(db) as captured:
        yield captured
    if len(captured) != n:
        listing = "\n".join(f"{i}. {sql}" for i, sql in enumerate(captured.statements, 1))
        raise AssertionError(
            f"{len(captured)} queries executed, {n} expected.\nCaptured queries were:\n{listing}"
        )


@asynccontextmanager
async def rollback_session(database: Database | None = None) -> AsyncIterator[AsyncSession]:
    """Yield a session whose writes, committed or not, are all rolled back when the block exits.

    ``database`` defaults to the one configured with ``init_db()``. See the
    module docstring for what is isolated; the ``flash_db_session`` fixture is
    this context manager.
    """
    database = database if database is not None else get_database()
    connection = await database.engine.connect()
    try:
        level = database.isolation_level or connection.dialect.default_isolation_level
        await connection.execution_options(isolation_level=level)
        outer = await connection.begin()
        db = FlashAsyncSession(
            bind=connection,
            expire_on_commit=False,
            sync_session_class=FlashSession,
            join_transaction_mode="create_savepoint",
        )
        db.info[OUTER_KEY] = True
        db.info[ISOLATION_KEY] = database.isolation_level
        db.info[DRIVER_KEY] = database.driver_path
        try:
            yield db
        finally:
            try:
                await db.close()
            finally:
                if outer.is_active:
                    await outer.rollback()
    finally:
        await connection.close()


try:
    import pytest_asyncio
except ImportError:  # pragma: no cover - the fixture needs pytest-asyncio
    pass
else:

    @pytest_asyncio.fixture
    async def flash_db_session() -> AsyncIterator[AsyncSession]:
        """A session on the ``init_db()`` database; everything the test writes is rolled back."""
        async with rollback_session() as db:
            yield db
