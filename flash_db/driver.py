"""Flash DB's statement templates, run on the driver connection (asyncpg, aiosqlite).

A web request runs a few single-row statements. SQLAlchemy's
``Connection.execute()`` costs several times what the driver does for one of
them (its execution context, result metadata and, on SQLite, five or six
hand-offs to aiosqlite's thread where one would do). Flash DB's statement
templates (see ``flash_db.compiler``) are built once per query shape with bound
parameters, so each is compiled here once per dialect with SQLAlchemy's
compiler (``ClauseElement.compile()``: the SQL text, the order of its
positional parameters, ``SQLCompiler.positiontup``) and then sent straight to
the connection's driver: ``asyncpg.Connection.fetch()``/``execute()``,
``aiosqlite.Connection.execute_fetchall()`` (one thread hand-off). Values are
converted with SQLAlchemy's own type processors (``TypeEngine.bind_processor()``
and ``result_processor()`` of each type's dialect implementation), so every
type reads and writes as it does through SQLAlchemy. Parameters are always
bound, never rendered into the SQL.

The driver connection is the one the session holds (its pooled DB-API
connection's ``driver_connection``), in the transaction state SQLAlchemy put
it in: a statement goes to the driver only when the driver's own transaction
state is the one Flash DB expects (in ``AUTOCOMMIT`` outside ``atomic``; inside
a begun transaction in an ``atomic`` block or the testing kit's transaction),
else through SQLAlchemy, which begins what is missing
(asyncpg's transaction starts lazily on SQLAlchemy's first statement).

Errors are SQLAlchemy's: a driver error is raised as the ``sqlalchemy.exc``
class SQLAlchemy would raise (``IntegrityError`` for a constraint violation,
``OperationalError`` for a dropped connection, and so on) with the driver's
exception as ``orig``. A connection the driver reports closed, or a statement
interrupted by cancellation, invalidates the connection
(``AsyncConnection.invalidate()``) so that the pool replaces it.

What does not see these statements: SQLAlchemy's ``before_cursor_execute`` and
``after_cursor_execute`` engine events (and instrumentation built on them).
``echo=True`` logs them to SQLAlchemy's engine logger, and
``flash_db.testing.capture_queries`` records them (:data:`observers`).
``Database(..., driver_path=False)`` sends every statement through SQLAlchemy.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import re
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.pool import PoolProxiedConnection

from flash_db.concurrency import check_usable, claim, release
from flash_db.database import DRIVER_KEY, STACK_KEY, unavailable
from flash_db.transaction import OUTER_KEY, mark_failed

__all__ = [
    "HeldCursor",
    "Link",
    "Prepared",
    "held_cursor",
    "observers",
    "prepared",
    "rowcount",
    "rows",
]

#: Called with ``(connection, sql)`` before each statement this module sends
#: (``flash_db.testing.capture_queries`` adds one while it records).
observers: list[Callable[[Connection, str], None]] = []

_log = logging.getLogger("sqlalchemy.engine.Engine")

_DRIVERS = frozenset({"asyncpg", "aiosqlite"})

# Prepared statements kept per (statement, dialect); templates are bounded per
# model (``flash_db.compiler``), this only guards against unbounded growth.
_PREPARED_LIMIT = 4096


class Link:
    """One session's access to the driver connection under its ``AsyncConnection``."""

    __slots__ = ("bind", "dialect", "driver", "postgres", "raw")

    def __init__(self, bind: AsyncConnection) -> None:
        self.bind = bind
        self.dialect: Dialect = bind.dialect
        self.postgres = self.dialect.driver == "asyncpg"
        self.raw: PoolProxiedConnection | None = None
        self.driver: Any = None

    def in_transaction(self) -> bool:
        """Return whether the driver connection is inside a transaction (its own report)."""
        if self.postgres:
            return bool(self.driver.is_in_transaction())
        return bool(self.driver.in_transaction)


class Prepared:
    """One statement compiled for one dialect: its SQL, parameters and value conversions."""

    __slots__ = ("binds", "defaults", "keys", "names", "processors", "sql", "types")

    def __init__(
        self,
        sql: str,
        names: tuple[str, ...],
        binds: tuple[Any, ...],
        defaults: dict[str, Any],
        types: tuple[Any, ...],
        keys: tuple[str, ...],
    ) -> None:
        self.sql = sql
        self.keys = keys  # the result columns' names
        self.names = names
        self.binds = binds
        self.defaults = defaults
        self.types = types  # the result columns' types (dialect implementations)
        # (index, processor) of the result columns that need one; None until the
        # driver's column types are known (asyncpg: from the first execution).
        self.processors: list[tuple[int, Callable[[Any], Any]]] | None = None

    def arguments(self, params: Mapping[str, Any]) -> list[Any]:
        """Return the positional arguments for ``params`` (others keep their compiled values)."""
        defaults = self.defaults
        args = []
        for name, process in zip(self.names, self.binds, strict=True):
            value = params[name] if name in params else defaults[name]
            args.append(value if process is None or value is None else process(value))
        return args

    def resolve(self, dialect: Dialect, coltypes: Sequence[Any] | None) -> None:
        """Make the result processors, given the driver's type codes of the columns (or None)."""
        found = []
        for index, type_ in enumerate(self.types):
            coltype = coltypes[index] if coltypes is not None else None
            process = type_.result_processor(dialect, coltype)
            if process is not None:
                found.append((index, process))
        self.processors = found

    def process(self, rows: Sequence[Any], tuples: bool = True) -> Sequence[Any]:
        """Return ``rows`` with Python values (SQLAlchemy's result processing).

        As tuples, or (``tuples=False``, when nothing needs converting) the
        driver's own rows, which index and iterate like tuples.
        """
        processors = self.processors
        if not processors:
            return list(map(tuple, rows)) if tuples else rows
        out = []
        for row in rows:
            values = list(row)
            for index, process in processors:
                value = values[index]
                if value is not None:
                    values[index] = process(value)
            out.append(tuple(values))
        return out


_PREPARED: dict[tuple[Any, Dialect], Prepared | None] = {}


def prepared(stmt: Any, dialect: Dialect) -> Prepared | None:
    """Return ``stmt`` compiled for ``dialect`` (once), or None if it needs SQLAlchemy's execution.

    Statements with parameters expanded or rendered at execution time (``IN``
    lists, ``literal_execute``) or with a non-positional parameter style are
    left to SQLAlchemy.
    """
    key = (stmt, dialect)
    try:
        return _PREPARED[key]
    except KeyError:
        pass
    found = _compiled(stmt, dialect)
    if len(_PREPARED) >= _PREPARED_LIMIT:
        _PREPARED.clear()
    _PREPARED[key] = found
    return found


def _compiled(stmt: Any, dialect: Dialect) -> Prepared | None:
    """Return ``stmt`` compiled for ``dialect``, or None (see :func:`prepared`); not cached."""
    compiled = stmt.compile(dialect=dialect)
    found: Prepared | None = None
    names = compiled.positiontup
    binds = compiled.binds
    if names is not None and all(
        name in binds and not binds[name].expanding and not binds[name].literal_execute
        for name in names
    ):
        found = Prepared(
            sql=compiled.string,
            names=tuple(names),
            binds=tuple(
                binds[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names
            ),
            defaults=dict(compiled.params),
            types=tuple(column.type.dialect_impl(dialect) for column in stmt.exported_columns),
            keys=tuple(stmt.exported_columns.keys()),
        )
    return found


def _route(db: AsyncSession) -> Link | None:
    """Return the session's :class:`Link` if this statement may go to the driver now."""
    info = db.sync_session.info
    link = info.get(DRIVER_KEY)
    if link is None or link is False:
        return None
    if link is True:
        # The session's first statement: link it to its connection's driver.
        bind = db.bind
        if not isinstance(bind, AsyncConnection) or bind.dialect.driver not in _DRIVERS:
            info[DRIVER_KEY] = False
            return None
        link = info[DRIVER_KEY] = Link(bind)
    raw = link.raw
    if raw is None or not raw.is_valid:
        bind = link.bind
        if bind.closed or bind.invalidated or bind.sync_connection is None:
            return None  # SQLAlchemy reconnects (or raises) on its next statement
        # Connection.connection is the pooled DB-API connection; it is there (no I/O)
        # while the connection is valid, which was checked above.
        raw = link.raw = bind.sync_connection.connection
        link.driver = raw.driver_connection
    expected = bool(info.get(STACK_KEY)) or bool(info.get(OUTER_KEY))
    if link.in_transaction() is not expected:
        return None  # SQLAlchemy begins the transaction (asyncpg: on its first statement)
    return link


def _announce(link: Link, sql: str, args: Sequence[Any]) -> None:
    connection = link.bind.sync_connection
    if connection is not None:
        for observer in observers:
            observer(connection, sql)
    if _log.isEnabledFor(logging.INFO):
        _log.info("%s", sql)
        _log.info("[driver] %r", tuple(args))


_ROWS, _STATUS = 0, 1


async def _send(
    db: AsyncSession, link: Link, found: Prepared, args: list[Any], operation: str, want: int
) -> Any:
    """Send one statement on the driver as a session method would: claimed, marked, settled.

    ``want`` is ``_ROWS`` (the rows) or ``_STATUS`` (asyncpg's command status).
    """
    check_usable(db)
    claimed = claim(db, operation)
    try:
        if observers or _log.isEnabledFor(logging.INFO):
            _announce(link, found.sql, args)
        driver = link.driver
        if not link.postgres:
            result = await driver.execute_fetchall(found.sql, args)
            if found.processors is None:
                found.resolve(link.dialect, None)
            return result
        if want == _STATUS:
            return await driver.execute(found.sql, *args)
        if found.processors is None:
            statement = await driver.prepare(found.sql)
            found.resolve(link.dialect, [a.type.oid for a in statement.get_attributes()])
            return await statement.fetch(*args)
        return await driver.fetch(found.sql, *args)
    except BaseException as error:
        if db.sync_session.info.get(STACK_KEY):
            mark_failed(db)
        failure = await _failed(db, link, found.sql, args, error)
        busy = unavailable(failure)
        if busy is not None:
            raise busy from failure
        if failure is error:
            raise
        raise failure from error
    finally:
        if claimed:
            release(db)


async def rows(
    db: AsyncSession, stmt: Any, params: Mapping[str, Any], operation: str = "query"
) -> tuple[Prepared, Sequence[Any]] | None:
    """Run a templated statement that returns rows, or return None to use SQLAlchemy.

    Returns the prepared statement and the driver's rows: ``Prepared.process()``
    makes them tuples of Python values, ``Prepared.keys`` names their columns.
    """
    link = _route(db)
    if link is None:
        return None
    found = prepared(stmt, link.dialect)
    if found is None:
        return None
    return found, await _send(db, link, found, found.arguments(params), operation, _ROWS)


async def rowcount(
    db: AsyncSession, stmt: Any, params: Mapping[str, Any], counted: Any = None
) -> int | None:
    """Run a templated UPDATE/DELETE; return the rows it matched, or None to use SQLAlchemy.

    On SQLite, where the driver's one-hand-off call returns rows and not a row
    count, ``counted`` is the same statement with ``RETURNING`` a constant: its
    rows are counted.
    """
    link = _route(db)
    if link is None:
        return None
    if not link.postgres:
        if counted is None:
            return None
        stmt = counted
    found = prepared(stmt, link.dialect)
    if found is None:
        return None
    if not link.postgres:
        return len(await _send(db, link, found, found.arguments(params), "write", _ROWS))
    status = await _send(db, link, found, found.arguments(params), "write", _STATUS)
    return int(status.rpartition(" ")[2] or 0)


# -- streaming -----------------------------------------------------------------------

_cursor_names = itertools.count(1)


class HeldCursor:
    """A PostgreSQL ``WITH HOLD`` cursor on the session's own connection, outside a transaction.

    A plain server-side cursor lives in a transaction, and a session outside
    ``atomic`` is in autocommit mode: streaming would need a second pooled
    connection, and two streams on a pool of two would each hold one and wait
    for another (a pool deadlock). A cursor declared ``WITH HOLD`` outlives its
    (implicit) transaction: the server computes the result when it is declared
    and keeps it (in memory, spilling to disk) until ``CLOSE``, while the client
    fetches it in chunks on the session's connection. Statements between the
    fetches (writes in the loop body) run and commit on that connection as usual.
    """

    __slots__ = ("found", "keys", "link", "name")

    def __init__(self, link: Link, found: Prepared) -> None:
        self.link = link
        self.found = found
        self.keys = found.keys
        self.name = f"flash_stream_{next(_cursor_names)}"

    async def chunks(self, db: AsyncSession, chunk_size: int) -> AsyncGenerator[Sequence[Any]]:
        """Yield the rows (tuples of Python values) in lists of at most ``chunk_size``."""
        found, link = self.found, self.link
        declare = Prepared(
            f"DECLARE {self.name} NO SCROLL CURSOR WITH HOLD FOR {found.sql}",
            found.names,
            found.binds,
            found.defaults,
            (),
            (),
        )
        await _send(db, link, declare, found.arguments({}), "stream", _STATUS)
        fetch = Prepared(
            f"FETCH FORWARD {int(chunk_size)} FROM {self.name}", (), (), {}, found.types, found.keys
        )
        try:
            while True:
                rows = await _send(db, link, fetch, [], "stream", _ROWS)
                if rows:
                    yield fetch.process(rows)
                if len(rows) < chunk_size:
                    return
        finally:
            if link.driver is not None and not link.driver.is_closed():
                close = Prepared(f"CLOSE {self.name}", (), (), {}, (), ())
                with contextlib.suppress(Exception):
                    await _send(db, link, close, [], "stream", _STATUS)


def held_cursor(db: AsyncSession, stmt: Any) -> HeldCursor | None:
    """Return a :class:`HeldCursor` for ``stmt`` on ``db``'s connection, or None.

    None unless the session is on PostgreSQL's driver path, in autocommit mode,
    and the statement has no parameters expanded at execution time (``IN`` lists).
    """
    link = _route(db)
    if link is None or not link.postgres or link.in_transaction():
        return None
    found = _compiled(stmt, link.dialect)
    return None if found is None else HeldCursor(link, found)


# -- errors ------------------------------------------------------------------------

# PostgreSQL SQLSTATE classes -> the DB-API exception SQLAlchemy raises for them
# (as its asyncpg dialect maps asyncpg's exceptions).
_PG_CLASSES: dict[str, type[sa_exc.DBAPIError]] = {
    "23": sa_exc.IntegrityError,
    "22": sa_exc.DataError,
    "42": sa_exc.ProgrammingError,
    "0A": sa_exc.NotSupportedError,
    "XX": sa_exc.InternalError,
    "08": sa_exc.OperationalError,
    "40": sa_exc.OperationalError,
    "53": sa_exc.OperationalError,
    "54": sa_exc.OperationalError,
    "55": sa_exc.OperationalError,
    "57": sa_exc.OperationalError,
    "58": sa_exc.OperationalError,
}


def _sqlalchemy_error(
    link: Link, sql: str, args: Sequence[Any], error: Exception, invalidated: bool
) -> sa_exc.DBAPIError:
    """Return the ``sqlalchemy.exc`` error SQLAlchemy would raise for the driver's ``error``."""
    cls: type[sa_exc.DBAPIError]
    if link.postgres:
        sqlstate = str(getattr(error, "sqlstate", "") or "")
        if sqlstate:
            cls = _PG_CLASSES.get(sqlstate[:2], sa_exc.DatabaseError)
        elif invalidated or isinstance(error, OSError):
            cls = sa_exc.OperationalError
        else:
            cls = sa_exc.InterfaceError
    else:
        cls = sa_exc.DatabaseError
        for klass in type(error).__mro__:
            candidate = getattr(sa_exc, klass.__name__, None)
            if isinstance(candidate, type) and issubclass(candidate, sa_exc.DBAPIError):
                cls = candidate
                break
        if invalidated:
            cls = sa_exc.OperationalError
    return cls(sql, tuple(args), error, connection_invalidated=invalidated)


async def _failed(
    db: AsyncSession, link: Link, sql: str, args: Sequence[Any], error: BaseException
) -> BaseException:
    """Settle a failed driver call; return the exception to raise.

    A closed driver connection, or a call interrupted by cancellation (the
    connection may be mid-statement), invalidates the connection; outside
    ``atomic`` the session's bookkeeping transaction is then rolled back, so that
    the session reconnects on its next statement. Inside ``atomic`` the block
    is marked failed by the caller (``marking_failure``).
    """
    closed = not isinstance(error, Exception) or (
        link.driver.is_closed() if link.postgres else isinstance(error, ValueError)
    )
    if closed:
        link.raw = None
        link.driver = None
        try:
            await link.bind.invalidate()
            if not db.sync_session.info.get(STACK_KEY) and db.in_transaction():
                await db.rollback()
        except Exception:
            pass
    if not isinstance(error, Exception):
        return error
    failure = _sqlalchemy_error(link, sql, args, error, closed)
    hint_missing_table(failure)
    return failure


_MISSING_TABLE = re.compile(r'no such table: "?([\w.]+)|relation "([^"]+)" does not exist')


def hint_missing_table(error: BaseException) -> None:
    """Add a note to a database's "no such table" error: how to create the tables.

    The error itself passes through unchanged (its type and message are the
    driver's); the note shows under it in a traceback.
    """
    if not isinstance(error, sa_exc.DBAPIError) or error.orig is None:
        return
    match = _MISSING_TABLE.search(str(error.orig))
    if match is None or any("flash-db migrate" in note for note in getattr(error, "__notes__", ())):
        return
    table = match[1] or match[2]
    error.add_note(
        f"Flash DB: the table {table!r} does not exist in this database. Create the tables: "
        "run 'flash-db migrate' if the app has migrations, or 'await create_all()' (development "
        "and tests); check that the app and the commands use the same database "
        "(DATABASE_URL, [tool.flash_db] url)."
    )
