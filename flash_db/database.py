"""The Database object (engine + session factory) and the module-level connection API.

Flash DB's commit model is Django's: outside ``atomic`` every statement commits on
its own. The engine's connections therefore run in the driver's AUTOCOMMIT mode,
so a read or a single-row write costs one round trip instead of SQLAlchemy's
BEGIN/statement/COMMIT, and ``flash_db.transaction.atomic`` opens real
transactions (``BEGIN``, ``SAVEPOINT``) itself.

A session handed out by :func:`get_db`/:func:`session` keeps one pooled
connection for its lifetime (like Django's connection per request): the
connection is checked out (and pinged on PostgreSQL) once, not once per write.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    create_async_engine,
)
from sqlalchemy.orm import Session as SyncSession
from sqlalchemy.pool import ConnectionPoolEntry

from flash_db.concurrency import FlashAsyncSession
from flash_db.exceptions import FlashDBError, TransactionError

__all__ = [
    "Database",
    "FlashSession",
    "close_db",
    "create_all",
    "drop_all",
    "get_database",
    "get_db",
    "init_db",
    "normalize_url",
    "session",
]

_DRIVERS = {
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "sqlite": "sqlite+aiosqlite",
}


def normalize_url(url: str | URL) -> URL:
    """Return ``url`` with an async driver: ``postgresql://`` becomes ``postgresql+asyncpg://``."""
    parsed = make_url(url)
    if parsed.drivername in _DRIVERS:
        parsed = parsed.set(drivername=_DRIVERS[parsed.drivername])
    return parsed


class FlashSession(SyncSession):
    """The synchronous session class behind Flash DB's ``AsyncSession``s.

    It refuses ``commit()`` inside an ``atomic`` block, where the outermost block
    owns the transaction (Django raises ``TransactionManagementError`` likewise).
    """


@event.listens_for(FlashSession, "before_commit")
def _refuse_commit_inside_atomic(sync_session: SyncSession) -> None:
    info = sync_session.info
    if info.get("flash_db.atomic") and not info.get("flash_db.committing"):
        raise TransactionError(
            "commit() was called inside an atomic() block. The outermost atomic() block "
            "commits when it exits; leave the block (or raise to roll it back) instead."
        )


def _driver_in_transaction(driver_connection: Any) -> bool:
    """Return whether the raw driver connection has an open transaction."""
    check = getattr(driver_connection, "is_in_transaction", None)  # asyncpg
    if check is not None:
        return bool(check())
    return bool(getattr(driver_connection, "in_transaction", False))  # sqlite3/aiosqlite


class Database:
    """An async engine in AUTOCOMMIT mode and the factory for its sessions."""

    def __init__(self, url: str | URL, *, echo: bool = False, **engine_kwargs: Any) -> None:
        self.url = normalize_url(url)
        self.backend = self.url.get_backend_name()
        if "isolation_level" in engine_kwargs:
            raise TypeError(
                "init_db() got isolation_level: Flash DB runs connections in autocommit mode "
                "and opens transactions itself with atomic(); remove the argument."
            )
        if self.backend == "postgresql":
            engine_kwargs.setdefault("pool_pre_ping", True)
        elif self.backend == "sqlite":
            # SQLite has one writer at a time; atomic() takes the write lock with
            # BEGIN IMMEDIATE, and other writers wait for it. Python's default wait
            # (5 s) is short under a burst of writers: wait up to 30 s.
            connect_args = dict(engine_kwargs.pop("connect_args", {}))
            connect_args.setdefault("timeout", 30)
            engine_kwargs["connect_args"] = connect_args
        self.engine: AsyncEngine = create_async_engine(
            self.url, echo=echo, isolation_level="AUTOCOMMIT", **engine_kwargs
        )
        if self.backend == "sqlite":
            event.listen(self.engine.sync_engine, "connect", _sqlite_on_connect)
        # A connection must never go back to the pool inside a transaction: the
        # driver's own rollback is a no-op in AUTOCOMMIT mode, so end it here.
        event.listen(self.engine.sync_engine.pool, "reset", _rollback_open_transaction)
        self._closed = False

    def new_session(self, connection: AsyncConnection) -> AsyncSession:
        """Return an ``AsyncSession`` bound to ``connection`` (``expire_on_commit=False``)."""
        return FlashAsyncSession(
            bind=connection,
            expire_on_commit=False,
            sync_session_class=FlashSession,
        )

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """Yield a new session holding one pooled connection; always close both."""
        self._check_open()
        connection = await self.engine.connect()
        db = self.new_session(connection)
        try:
            yield db
        finally:
            try:
                await db.close()
            finally:
                await connection.close()

    async def get_db(self) -> AsyncIterator[AsyncSession]:
        """Yield a new session (the generator form of :meth:`session`)."""
        async with self.session() as db:
            yield db

    async def create_all(self) -> None:
        """Create the tables of every model (``CREATE TABLE`` if missing)."""
        from flash_db.models import Model

        self._check_open()
        async with self.engine.connect() as conn:
            await conn.run_sync(Model.metadata.create_all)

    async def drop_all(self) -> None:
        """Drop the tables of every model."""
        from flash_db.models import Model

        self._check_open()
        async with self.engine.connect() as conn:
            await conn.run_sync(Model.metadata.drop_all)

    async def close(self) -> None:
        """Dispose of the engine and its pool; safe to call twice."""
        if not self._closed:
            self._closed = True
            await self.engine.dispose()

    def _check_open(self) -> None:
        if self._closed:
            raise FlashDBError("This database was closed with close_db(); call init_db() again.")


def _sqlite_on_connect(dbapi_connection: Any, connection_record: ConnectionPoolEntry) -> None:
    from flash_db.lookups import SQLITE_FUNCTIONS

    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
    # Unicode-aware lower(), case-sensitive LIKE and REGEXP for the lookups.
    for name, (arity, function) in SQLITE_FUNCTIONS.items():
        dbapi_connection.create_function(name, arity, function, deterministic=True)


def _rollback_open_transaction(
    dbapi_connection: Any, connection_record: ConnectionPoolEntry, reset_state: Any
) -> None:
    driver = dbapi_connection.driver_connection
    if driver is not None and _driver_in_transaction(driver):
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("ROLLBACK")
        finally:
            cursor.close()


_default: Database | None = None


def get_database() -> Database:
    """Return the database configured by :func:`init_db`, or raise ``FlashDBError``."""
    if _default is None:
        raise FlashDBError(
            "Flash DB is not initialised: call init_db(url) first "
            "(for example in your FastAPI lifespan)."
        )
    return _default


def init_db(url: str | URL | None = None, *, echo: bool = False, **engine_kwargs: Any) -> Database:
    """Configure the default database; ``url`` defaults to ``$DATABASE_URL``."""
    global _default
    if url is None:
        url = os.environ.get("DATABASE_URL")
        if not url:
            raise FlashDBError("init_db() needs a URL, or the DATABASE_URL environment variable.")
    _default = Database(url, echo=echo, **engine_kwargs)
    return _default


async def close_db() -> None:
    """Dispose of the default database's engine; safe to call twice or before ``init_db``."""
    global _default
    database, _default = _default, None
    if database is not None:
        await database.close()


async def get_db() -> AsyncIterator[AsyncSession]:
    """Yield a fresh ``AsyncSession`` on the default database; it is closed afterwards."""
    async with get_database().session() as db:
        yield db


def session() -> AbstractAsyncContextManager[AsyncSession]:
    """Return an async context manager yielding a fresh ``AsyncSession``."""
    return get_database().session()


async def create_all() -> None:
    """Create every model's table on the default database (for development and tests)."""
    await get_database().create_all()


async def drop_all() -> None:
    """Drop every model's table on the default database."""
    await get_database().drop_all()
