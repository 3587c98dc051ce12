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

Read replicas (``replicas=[...]``) are engines of their own with the same
options. ``session(readonly=True)`` takes its connection from the next replica
in turn (round robin) that gives one within ``replica_timeout``, else from the
primary; a replica that failed is skipped for ``REPLICA_RETRY_AFTER`` seconds.
A read session refuses Flash DB's write methods before any SQL
(:func:`check_writable`).

Behind PgBouncer in transaction-pooling mode (``pooler="pgbouncer"``, or
``?pooler=pgbouncer`` in the URL) consecutive transactions of one client
connection may run on different server connections, so no named prepared
statement may outlive its transaction: asyncpg's statement cache is off
(``statement_cache_size=0``: asyncpg then sends every statement unnamed and
parses it again in the same round trip as its execution) and so is SQLAlchemy's
(``prepared_statement_cache_size=0``). Nothing else changes: Flash DB never
sends a session-level ``SET``, and ``atomic`` blocks are transactions, which
PgBouncer keeps on one server connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import AsyncIterator, Sequence
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
    "POOLERS",
    "READONLY_KEY",
    "REPLICA_RETRY_AFTER",
    "Database",
    "FlashSession",
    "check_writable",
    "close_db",
    "create_all",
    "drop_all",
    "fail_over",
    "get_database",
    "get_db",
    "init_db",
    "normalize_url",
    "session",
    "unavailable",
]

_log = logging.getLogger("flash_db")

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
#: ``Session.info`` key of a read session (``session(readonly=True)``): what serves it,
#: ``"replica"`` or ``"primary"`` (no replica answered, or none is configured).
READONLY_KEY = "flash_db.readonly"

#: ``Session.info`` key of the block that holds a read session's connection (fail-over).
_READ_BLOCK_KEY = "flash_db.read_block"
#: SQLSTATEs of a lost connection: class 08, and the server shutting down (57P01-03).
_LOST_SQLSTATES = ("08", "57P01", "57P02", "57P03")

#: The connection poolers ``Database(pooler=...)`` knows.
POOLERS = ("pgbouncer",)
#: Seconds a replica that did not give a connection is skipped before it is tried again.
REPLICA_RETRY_AFTER = 5.0

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


def check_writable(db: AsyncSession, operation: str = "write") -> None:
    """Raise ``TransactionError`` if ``db`` is a read session (before any SQL is sent)."""
    served = db.sync_session.info.get(READONLY_KEY)
    if served is not None:
        raise TransactionError(
            f"A {operation} was attempted on a read session (session(readonly=True) or "
            f"ReadSession, served by the {served}): read sessions only read. Use a session "
            "on the primary (session() or Session) for writes."
        )


def _connection_lost(error: BaseException) -> bool:
    """Return whether ``error`` says the connection to the server was lost."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if getattr(current, "connection_invalidated", False):
            return True
        if str(getattr(current, "sqlstate", None) or "").startswith(_LOST_SQLSTATES):
            return True
        orig = getattr(current, "orig", None)
        pending.extend([orig if isinstance(orig, BaseException) else None, current.__cause__])
    return False


async def fail_over(db: AsyncSession, error: BaseException) -> bool:
    """Move a replica's read session to the primary after its connection was lost.

    Returns True when the failed read may run again on ``db`` (now on a primary
    connection; the replica is skipped for ``replica_retry_after`` seconds):
    ``db`` is a read session served by a replica, outside ``atomic`` (a
    transaction's earlier reads cannot move), and ``error`` is a lost connection
    (the replica stopped, crashed or was cut off mid-statement).
    """
    info = db.sync_session.info
    block = info.get(_READ_BLOCK_KEY)
    if (
        info.get(READONLY_KEY) != "replica"
        or info.get(STACK_KEY)
        or not isinstance(block, _SessionBlock)
        or not _connection_lost(error)
    ):
        return False
    await block.fail_over()
    return True


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

    #: Seconds a replica that gave no connection is skipped (then tried again).
    replica_retry_after: float = REPLICA_RETRY_AFTER

    def __init__(
        self,
        url: str | URL,
        *,
        echo: bool = False,
        isolation_level: str | None = None,
        driver_path: bool = True,
        replicas: Sequence[str | URL] = (),
        replica_timeout: float = 2.0,
        pooler: str | None = None,
        **engine_kwargs: Any,
    ) -> None:
        url = normalize_url(url)
        pooler = _pooler(url, pooler)
        self.url = url.difference_update_query(["pooler"])
        #: The connection pooler between Flash DB and the server (``"pgbouncer"``), or None.
        self.pooler = pooler
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
        if pooler is not None and self.url.get_driver_name() == "asyncpg":
            connect_args = dict(engine_kwargs.pop("connect_args", {}))
            # No named prepared statement outlives its transaction (see the module doc).
            connect_args.setdefault("statement_cache_size", 0)
            connect_args.setdefault("prepared_statement_cache_size", 0)
            engine_kwargs["connect_args"] = connect_args
        self.engine: AsyncEngine = self._engine(self.url, echo, engine_kwargs)
        if isinstance(replica_timeout, bool) or not isinstance(replica_timeout, (int, float)):
            raise TypeError(f"replica_timeout takes seconds (a number), got {replica_timeout!r}.")
        if isinstance(replicas, (str, URL)):
            raise TypeError("replicas takes a list of URLs, e.g. replicas=[url]; got one URL.")
        #: Seconds a replica has to give a connection before a read session skips it.
        self.replica_timeout = float(replica_timeout)
        #: The replicas' engines (read sessions), in the order given.
        self.replicas: list[AsyncEngine] = []
        for replica in replicas:
            replica_url = normalize_url(replica)
            if replica_url.get_backend_name() != self.backend:
                raise ValueError(
                    f"replica {replica_url.render_as_string(hide_password=True)!r} is not a "
                    f"{self.backend} database like the primary."
                )
            kwargs = dict(engine_kwargs)
            if replica_url.get_driver_name() == "asyncpg":
                connect_args = dict(kwargs.pop("connect_args", {}))
                connect_args.setdefault("timeout", self.replica_timeout)
                kwargs["connect_args"] = connect_args
            self.replicas.append(
                self._engine(replica_url.difference_update_query(["pooler"]), echo, kwargs)
            )
        self._turn = itertools.count()
        self._skipped_until = [0.0] * len(self.replicas)
        self._closed = False

    def _engine(self, url: URL, echo: bool, engine_kwargs: dict[str, Any]) -> AsyncEngine:
        engine = create_async_engine(url, echo=echo, isolation_level="AUTOCOMMIT", **engine_kwargs)
        if self.backend == "sqlite":
            event.listen(engine.sync_engine, "connect", _sqlite_on_connect)
            event.listen(engine.sync_engine, "begin", _sqlite_begin)
        elif engine.dialect.driver == "asyncpg" and not engine_kwargs.get("pool_pre_ping"):
            event.listen(engine.sync_engine, "checkout", _asyncpg_alive)
        return engine

    async def read_connection(self) -> tuple[AsyncConnection, str]:
        """Return a connection for a read session and what serves it (``"replica"``/``"primary"``).

        Replicas are tried in turn (round robin), each for at most
        ``replica_timeout`` seconds; one that fails is skipped for
        :data:`REPLICA_RETRY_AFTER` seconds. With none answering, the primary
        serves the read.
        """
        count = len(self.replicas)
        if count:
            start = next(self._turn)
            now = time.monotonic()
            for step in range(count):
                index = (start + step) % count
                if self._skipped_until[index] > now:
                    continue
                try:
                    async with asyncio.timeout(self.replica_timeout):
                        return await self.replicas[index].connect(), "replica"
                except Exception as error:  # refused, timed out, starting up, gone...
                    self.skip_replica(self.replicas[index], error)
        return await self.engine.connect(), "primary"

    def skip_replica(self, replica: AsyncEngine, error: BaseException) -> None:
        """Skip ``replica`` for ``replica_retry_after`` seconds (it failed with ``error``)."""
        for index, engine in enumerate(self.replicas):
            if engine is replica:
                self._skipped_until[index] = time.monotonic() + self.replica_retry_after
                _log.warning(
                    "replica %s skipped for %.1f s, reads go elsewhere: %s",
                    engine.url.render_as_string(hide_password=True),
                    self.replica_retry_after,
                    error,
                )

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

    def session(self, *, readonly: bool = False) -> AbstractAsyncContextManager[AsyncSession]:
        """Return an async context manager: a new session holding one pooled connection.

        Both are closed when the block exits. ``readonly=True``: a read session,
        on a replica that answers, else on the primary; Flash DB's write methods
        raise ``TransactionError`` on it before any SQL.
        """
        return _SessionBlock(self, readonly)

    async def get_db(self, *, readonly: bool = False) -> AsyncIterator[AsyncSession]:
        """Yield a new session (the generator form of :meth:`session`)."""
        async with self.session(readonly=readonly) as db:
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
        """Dispose of the engines (primary and replicas) and their pools; safe to call twice."""
        if not self._closed:
            self._closed = True
            for replica in self.replicas:
                await replica.dispose()
            await self.engine.dispose()

    def _check_open(self) -> None:
        if self._closed:
            raise FlashDBError("This database was closed with close_db(); call init_db() again.")


def _pooler(url: URL, pooler: str | None) -> str | None:
    """Return the pooler named by ``pooler=`` or the URL's ``?pooler=``; check it."""
    named = url.query.get("pooler")
    if isinstance(named, tuple):
        named = named[-1]
    chosen = pooler if pooler is not None else named
    if chosen is None:
        return None
    if chosen not in POOLERS:
        raise ValueError(
            f"init_db() got pooler={chosen!r}; Flash DB knows {', '.join(map(repr, POOLERS))} "
            "(transaction pooling)."
        )
    if url.get_backend_name() != "postgresql":
        raise ValueError(f"pooler={chosen!r} is for PostgreSQL; the URL is {url.drivername}.")
    return chosen


def _sqlite_file(url: URL) -> bool:
    """Return whether a SQLite URL names a database file (memory databases use one connection)."""
    return bool(url.database) and url.database != ":memory:" and url.query.get("mode") != "memory"


class _SessionBlock:
    """``async with database.session() as db``: check a connection out, bind a session to it."""

    __slots__ = ("connection", "database", "db", "readonly")

    def __init__(self, database: Database, readonly: bool = False) -> None:
        self.database = database
        self.readonly = readonly

    async def __aenter__(self) -> AsyncSession:
        database = self.database
        database._check_open()
        served = None
        try:
            if self.readonly:  # a replica that answers, else the primary
                self.connection, served = await database.read_connection()
            else:
                self.connection = await database.engine.connect()
        except (sa_exc.SQLAlchemyError, OSError) as error:
            # Nothing was sent: whatever stopped the checkout (the pool's timeout,
            # a refused or failed connection), no connection could be had.
            raise unavailable(error) or DatabaseUnavailable(
                f"No database connection could be had: {_described(error)}"
            ) from error
        self.db = database.new_session(self.connection)
        if served is not None:
            self.db.info[READONLY_KEY] = served
            if served == "replica":
                self.db.info[_READ_BLOCK_KEY] = self
        return self.db

    async def fail_over(self) -> None:
        """Put the session on a primary connection; drop the replica's (see :func:`fail_over`)."""
        database, db, lost = self.database, self.db, self.connection
        database.skip_replica(lost.engine, ConnectionError("its connection was lost"))
        with contextlib.suppress(Exception):
            await lost.invalidate()
        with contextlib.suppress(Exception):
            await db.rollback()
        with contextlib.suppress(Exception):
            await lost.close()
        self.connection = await database.engine.connect()
        db.bind = self.connection
        db.info[DRIVER_KEY] = database.driver_path  # link the new connection's driver
        db.info[READONLY_KEY] = "primary"
        db.info.pop(_READ_BLOCK_KEY, None)

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
    replicas: Sequence[str | URL] = (),
    replica_timeout: float = 2.0,
    pooler: str | None = None,
    **engine_kwargs: Any,
) -> Database:
    """Configure the default database; ``url`` defaults to :func:`flash_db.database_url`'s.

    ``isolation_level`` is the level ``atomic`` blocks begin at (outside a block
    every statement autocommits at the database's default level).
    ``driver_path=False`` sends every statement through SQLAlchemy's
    ``Connection.execute()`` (see ``flash_db.driver``: what its engine events see).
    ``replicas`` are the read replicas' URLs (``session(readonly=True)``), each
    skipped when it gives no connection within ``replica_timeout`` seconds.
    ``pooler="pgbouncer"``: the URL is PgBouncer's, in transaction-pooling mode.
    """
    global _default
    if url is None:
        url = database_url()  # $DATABASE_URL, [tool.flash_db] url, then db.sqlite3
    _default = Database(
        url,
        echo=echo,
        isolation_level=isolation_level,
        driver_path=driver_path,
        replicas=replicas,
        replica_timeout=replica_timeout,
        pooler=pooler,
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


def session(*, readonly: bool = False) -> AbstractAsyncContextManager[AsyncSession]:
    """Return an async context manager yielding a fresh ``AsyncSession``.

    ``readonly=True``: a read session, on a replica when one answers (see ``init_db``).
    """
    return get_database().session(readonly=readonly)


async def create_all() -> None:
    """Create every model's table on the default database (for development and tests)."""
    await get_database().create_all()


async def drop_all() -> None:
    """Drop every model's table on the default database."""
    await get_database().drop_all()
