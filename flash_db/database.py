"""The Database object (engine + session factory) and the module-level connection API.

Flash DB's commit model is Django's: outside ``atomic`` every statement commits on
its own. The engine's connections therefore run at SQLAlchemy's ``AUTOCOMMIT``
isolation level, so a read or a single-row write costs one round trip instead of
BEGIN/statement/COMMIT. ``flash_db.transaction.atomic`` opens a real transaction
through SQLAlchemy's public API: the session's connection is given a
transactional isolation level (``init_db(isolation_level=...)``, else the
database's default) for the block, and set back to ``AUTOCOMMIT`` after it.
On SQLite the block starts with ``BEGIN IMMEDIATE`` (SQLAlchemy's documented
recipe: a ``begin`` listener on the engine), which takes the write lock up front
instead of failing with "database is locked" when two readers later both write.

A session handed out by :func:`get_db`/:func:`session` keeps one pooled
connection for its lifetime (like Django's connection per request): the
connection is checked out (and pinged on PostgreSQL) once, not once per write.
To Flash DB the session is that connection and its transaction state: Flash DB's
objects are never in its unit of work (see ``flash_db.instances``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Any

from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    create_async_engine,
)
from sqlalchemy.orm import Session as SyncSession
from sqlalchemy.pool import ConnectionPoolEntry

from flash_db import sqlite
from flash_db.concurrency import FlashAsyncSession
from flash_db.config import database_url
from flash_db.exceptions import DatabaseUnavailable, FlashDBError, TransactionError
from flash_db.schema import metadata

__all__ = [
    "AUTOCOMMIT_KEY",
    "DRIVER_KEY",
    "ISOLATION_KEY",
    "ISOLATION_LEVELS",
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
    "unavailable",
]

_DRIVERS = {
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "sqlite": "sqlite+aiosqlite",
}

#: ``Session.info`` key: the isolation level of the session's ``atomic`` blocks.
ISOLATION_KEY = "flash_db.isolation_level"
#: ``Session.info`` key of a session whose connection runs in ``AUTOCOMMIT`` mode
#: outside ``atomic`` (every session Flash DB hands out).
AUTOCOMMIT_KEY = "flash_db.autocommit"
#: ``Session.info`` key of the atomic blocks open on the session (a list).
STACK_KEY = "flash_db.atomic"
#: ``Session.info`` key: whether Flash DB's templates run on the driver connection
#: (``flash_db.driver``; True until the session's first such statement links it).
DRIVER_KEY = "flash_db.driver"
#: ``Session.info`` key set while Flash DB itself commits an atomic block.
COMMITTING_KEY = "flash_db.committing"

#: The isolation levels ``atomic`` blocks may run at, per database.
ISOLATION_LEVELS: dict[str, tuple[str, ...]] = {
    "postgresql": ("READ COMMITTED", "REPEATABLE READ", "SERIALIZABLE"),
    "sqlite": ("SERIALIZABLE",),
}


_SUPPORTED = {"sqlite+aiosqlite": "aiosqlite", "postgresql+asyncpg": "asyncpg"}


def normalize_url(url: str | URL) -> URL:
    """Return ``url`` with an async driver: ``postgresql://`` becomes ``postgresql+asyncpg://``.

    Raises ``FlashDBError`` for a database or driver Flash DB does not run on.
    """
    parsed = make_url(url)
    if parsed.drivername in _DRIVERS:
        parsed = parsed.set(drivername=_DRIVERS[parsed.drivername])
    if parsed.drivername not in _SUPPORTED:
        backend = parsed.get_backend_name()
        if backend in ("sqlite", "postgresql"):
            problem = f"{parsed.drivername!r} is not a driver Flash DB runs on"
        else:
            problem = f"{backend!r} is not a database Flash DB supports"
        raise FlashDBError(
            f"Cannot use the database URL {parsed.drivername}://...: {problem}. Flash DB runs on "
            "SQLite with aiosqlite (sqlite+aiosqlite:///file.sqlite3, or sqlite:///...) and on "
            "PostgreSQL with asyncpg (postgresql+asyncpg://user@host/db, or postgresql://...); "
            "asyncpg comes with pip install 'flash-db[postgres]'."
        )
    return parsed


def check_isolation_level(backend: str, level: str, context: str) -> str:
    """Return ``level`` (upper case) if ``backend`` runs transactions at it; else ``ValueError``."""
    allowed = ISOLATION_LEVELS.get(backend)
    normal = level.upper().replace("_", " ") if isinstance(level, str) else level
    if allowed is not None and normal not in allowed:
        raise ValueError(
            f"{context} got isolation_level={level!r}; {backend} runs atomic blocks at "
            f"{', '.join(map(repr, allowed))}."
        )
    return str(normal)


class FlashSession(SyncSession):
    """The synchronous session class behind Flash DB's ``AsyncSession``s.

    It refuses ``commit()`` inside an ``atomic`` block, where the outermost block
    owns the transaction (Django raises ``TransactionManagementError`` likewise).
    """


@event.listens_for(FlashSession, "before_commit")
def _refuse_commit_inside_atomic(sync_session: SyncSession) -> None:
    info = sync_session.info
    if info.get(STACK_KEY) and not info.get(COMMITTING_KEY):
        raise TransactionError(
            "commit() was called inside an atomic() block. The outermost atomic() block "
            "commits when it exits; leave the block (or raise to roll it back) instead."
        )


class Database:
    """An async engine in AUTOCOMMIT mode and the factory for its sessions."""

    def __init__(
        self,
        url: str | URL,
        *,
        echo: bool = False,
        isolation_level: str | None = None,
        driver_path: bool = True,
        **engine_kwargs: Any,
    ) -> None:
        self.url = normalize_url(url)
        #: Whether statement templates run on the driver connection (``flash_db.driver``).
        self.driver_path = driver_path
        self.backend = self.url.get_backend_name()
        #: The level ``atomic`` blocks begin at (None: the database's default).
        self.isolation_level = (
            None
            if isolation_level is None
            else check_isolation_level(self.backend, isolation_level, "init_db()")
        )
        # Outside atomic() a connection is in AUTOCOMMIT mode: there is nothing to
        # roll back when it returns to the pool (on SQLite the rollback is a hand-off
        # to aiosqlite's thread per request). A connection returned inside a
        # transaction is still rolled back.
        engine_kwargs.setdefault("skip_autocommit_rollback", True)
        if self.backend == "sqlite":
            # SQLite has one writer at a time; atomic() takes the write lock with
            # BEGIN IMMEDIATE, and other writers wait for it. Python's default wait
            # (5 s) is short under a burst of writers: wait up to 30 s.
            connect_args = dict(engine_kwargs.pop("connect_args", {}))
            connect_args.setdefault("timeout", 30)
            engine_kwargs["connect_args"] = connect_args
            # One writer at a time, and each aiosqlite connection is a thread: five
            # pooled connections, none made and dropped per burst (SQLAlchemy's
            # overflow connections are closed as they come back). Measured under 64
            # concurrent requests: 30-50% more requests/s than 5 + 10 overflow.
            if _sqlite_file(self.url) and "poolclass" not in engine_kwargs:
                engine_kwargs.setdefault("pool_size", 5)
                engine_kwargs.setdefault("max_overflow", 0)
        self.engine: AsyncEngine = create_async_engine(
            self.url, echo=echo, isolation_level="AUTOCOMMIT", **engine_kwargs
        )
        if self.backend == "sqlite":
            event.listen(self.engine.sync_engine, "connect", _sqlite_on_connect)
            event.listen(self.engine.sync_engine, "begin", _sqlite_begin)
        elif self.engine.dialect.driver == "asyncpg" and not engine_kwargs.get("pool_pre_ping"):
            event.listen(self.engine.sync_engine, "checkout", _asyncpg_alive)
        self._closed = False

    def new_session(self, connection: AsyncConnection) -> AsyncSession:
        """Return an ``AsyncSession`` bound to ``connection`` (``expire_on_commit=False``)."""
        db = FlashAsyncSession(
            bind=connection,
            expire_on_commit=False,
            sync_session_class=FlashSession,
        )
        db.info[AUTOCOMMIT_KEY] = True
        db.info[ISOLATION_KEY] = self.isolation_level
        db.info[DRIVER_KEY] = self.driver_path
        return db

    def session(self) -> AbstractAsyncContextManager[AsyncSession]:
        """Return an async context manager: a new session holding one pooled connection.

        Both are closed when the block exits.
        """
        return _SessionBlock(self)

    async def get_db(self) -> AsyncIterator[AsyncSession]:
        """Yield a new session (the generator form of :meth:`session`)."""
        async with self.session() as db:
            yield db

    async def create_all(self) -> None:
        """Create the tables of every model (``CREATE TABLE`` if missing)."""
        self._check_open()
        async with self.engine.connect() as conn:
            await conn.run_sync(metadata.create_all)

    async def drop_all(self) -> None:
        """Drop the tables of every model."""
        self._check_open()
        async with self.engine.connect() as conn:
            await conn.run_sync(metadata.drop_all)

    async def close(self) -> None:
        """Dispose of the engine and its pool; safe to call twice."""
        if not self._closed:
            self._closed = True
            await self.engine.dispose()

    def _check_open(self) -> None:
        if self._closed:
            raise FlashDBError("This database was closed with close_db(); call init_db() again.")


def _sqlite_file(url: URL) -> bool:
    """Return whether a SQLite URL names a database file (memory databases use one connection)."""
    return bool(url.database) and url.database != ":memory:" and url.query.get("mode") != "memory"


class _SessionBlock:
    """``async with database.session() as db``: check a connection out, bind a session to it."""

    __slots__ = ("connection", "database", "db")

    def __init__(self, database: Database) -> None:
        self.database = database

    async def __aenter__(self) -> AsyncSession:
        database = self.database
        database._check_open()
        try:
            self.connection = await database.engine.connect()
        except (sa_exc.SQLAlchemyError, OSError) as error:
            # Nothing was sent: whatever stopped the checkout (the pool's timeout,
            # a refused or failed connection), no connection could be had.
            raise unavailable(error) or DatabaseUnavailable(
                f"No database connection could be had: {_described(error)}"
            ) from error
        self.db = database.new_session(self.connection)
        return self.db

    async def __aexit__(self, *exc_info: object) -> None:
        db = self.db
        try:
            # A session SQLAlchemy never began a transaction on, holding no objects,
            # has nothing to close (Flash DB's own statements leave it so).
            if db.in_transaction() or db.identity_map or db.new:
                await db.close()
        finally:
            await self.connection.close()


# SQLite's busy errors (SQLITE_BUSY, SQLITE_LOCKED) once its busy timeout has passed.
_SQLITE_BUSY = ("database is locked", "database table is locked", "database is busy")
# PostgreSQL SQLSTATEs that say the server takes no work now: too many connections,
# shutting down, starting up, crash recovery.
_PG_UNAVAILABLE = frozenset({"53300", "57P01", "57P02", "57P03"})


def unavailable(error: BaseException) -> DatabaseUnavailable | None:
    """Return the ``DatabaseUnavailable`` that ``error`` stands for, or None.

    The pool's checkout timeout (``sqlalchemy.exc.TimeoutError``), a connection
    the server refused (no server listening, too many connections, shutting
    down) and SQLite still busy after its timeout: each means no connection
    could do the work now, and a later try may succeed. Other errors (a
    constraint, a connection dropped mid-statement) are not this.
    """
    if isinstance(error, DatabaseUnavailable):
        return error
    if isinstance(error, sa_exc.TimeoutError):
        return DatabaseUnavailable(
            "No database connection was free within the pool's timeout; the database "
            "is overloaded (raise pool_size, or shorten what holds connections)."
        )
    if isinstance(error, OSError):
        return DatabaseUnavailable(f"The database server could not be reached: {_described(error)}")
    if not isinstance(error, sa_exc.DBAPIError):
        return None
    orig = error.orig
    if isinstance(orig, OSError) or isinstance(getattr(orig, "__cause__", None), OSError):
        return DatabaseUnavailable(f"The database server could not be reached: {_described(orig)}")
    sqlstate = str(getattr(orig, "sqlstate", "") or "")
    if not sqlstate:
        sqlstate = str(getattr(getattr(orig, "__cause__", None), "sqlstate", "") or "")
    if sqlstate in _PG_UNAVAILABLE:
        return DatabaseUnavailable("The database server accepts no connection now.")
    message = str(orig).lower()
    if isinstance(error, sa_exc.OperationalError) and any(b in message for b in _SQLITE_BUSY):
        return DatabaseUnavailable(
            "The SQLite database stayed locked by another writer past its busy timeout."
        )
    return None


def _described(error: BaseException | None) -> str:
    """Return the error's class name: its message may hold a host or a user name."""
    return type(error).__name__


def _sqlite_on_connect(dbapi_connection: Any, connection_record: ConnectionPoolEntry) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
    # Unicode-aware lower(), case-sensitive LIKE and REGEXP for the lookups.
    for name, (arity, function) in sqlite.FUNCTIONS.items():
        dbapi_connection.create_function(name, arity, function, deterministic=True)


def _asyncpg_alive(
    dbapi_connection: Any, connection_record: ConnectionPoolEntry, proxy: Any
) -> None:
    """Replace a pooled asyncpg connection whose server closed it, at checkout, with no round trip.

    asyncpg notices a closed socket as soon as the event loop reads it (a
    terminated backend sends its error and closes): ``is_closed()`` is then
    true, and raising ``DisconnectionError`` makes the pool connect afresh (its
    documented protocol for checkout listeners). ``pool_pre_ping=True`` adds a
    round trip per checkout for the rest (a server gone without a word).
    """
    driver = connection_record.driver_connection
    if driver is not None and driver.is_closed():
        raise DisconnectionError("the server closed this connection")


def _sqlite_begin(connection: Connection) -> None:
    """Begin a real transaction on SQLite when the connection is not in AUTOCOMMIT mode.

    The driver would only begin one before the first INSERT/UPDATE/DELETE, and
    a deferred one; ``BEGIN IMMEDIATE`` covers the block's reads too and takes
    the write lock at once (SQLAlchemy's recipe for SQLite transactions).
    """
    level = connection.get_execution_options().get("isolation_level")
    if level is not None and level != "AUTOCOMMIT":
        connection.exec_driver_sql("BEGIN IMMEDIATE")


_default: Database | None = None


def get_database() -> Database:
    """Return the database configured by :func:`init_db`, or raise ``FlashDBError``."""
    if _default is None:
        raise FlashDBError(
            "Flash DB is not initialised: call init_db(url) first "
            "(for example in your FastAPI lifespan)."
        )
    return _default


def init_db(
    url: str | URL | None = None,
    *,
    echo: bool = False,
    isolation_level: str | None = None,
    driver_path: bool = True,
    **engine_kwargs: Any,
) -> Database:
    """Configure the default database; ``url`` defaults to :func:`flash_db.database_url`'s.

    ``isolation_level`` is the level ``atomic`` blocks begin at (outside a block
    every statement autocommits at the database's default level).
    ``driver_path=False`` sends every statement through SQLAlchemy's
    ``Connection.execute()`` (see ``flash_db.driver``: what its engine events see).
    """
    global _default
    if url is None:
        url = database_url()  # $DATABASE_URL, [tool.flash_db] url, then db.sqlite3
    _default = Database(
        url,
        echo=echo,
        isolation_level=isolation_level,
        driver_path=driver_path,
        **engine_kwargs,
    )
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
