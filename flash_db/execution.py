"""Running Flash DB's statements on a session's connection.

Every terminal runs its statement(s) and builds its results in one synchronous
step inside the session's greenlet (``AsyncSession.run_sync``, which the session
guards against a second task: ``SessionBusy``), on the connection of the
session's transaction (``Session.connection()``): SQLAlchemy Core execution,
with SQLAlchemy's compilation cache, type processing and pool, and none of the
ORM's unit of work. Results are built right after the rows arrive, with the
cyclic garbage collector paused (:func:`~flash_db.instances.gc_paused`).

The commit model: outside ``atomic`` the connection is in ``AUTOCOMMIT`` mode,
so a statement is durable when it returns. A statement that fails outside
``atomic`` leaves nothing to undo in the database; the session's (bookkeeping)
transaction is rolled back, so that a dropped connection is replaced on the
next use and a session inside someone else's transaction (the testing kit)
returns to its savepoint. Inside ``atomic`` a failed statement marks the
block (:func:`flash_db.transaction.marking_failure`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from sqlalchemy.engine import Connection, CursorResult
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import Session

from flash_db import driver
from flash_db.concurrency import hold_session
from flash_db.database import check_writable, fail_over, unavailable
from flash_db.exceptions import SessionBusy
from flash_db.instances import gc_paused
from flash_db.transaction import OUTER_KEY, Atomic, in_atomic, marking_failure

__all__ = [
    "Build",
    "execute",
    "fetch",
    "run",
    "scalar",
    "settle",
    "write",
    "write_returning",
    "write_statement",
]

T = TypeVar("T")


def _on_connection(session: Session, work: Callable[..., T], args: tuple[Any, ...]) -> T:
    return work(session.connection(), *args)


async def run(db: AsyncSession, work: Callable[..., T], *args: Any, operation: str = "query") -> T:
    """Return ``work(connection, *args)``, run on ``db``'s connection in its greenlet.

    ``work`` is synchronous and may run several statements. Outside ``atomic`` a
    failure rolls the session's transaction back (see the module docstring);
    inside, it marks the block.
    """
    if in_atomic(db):
        try:
            with marking_failure(db), hold_session(db, operation):
                return await db.run_sync(_on_connection, work, args)
        except Exception as error:
            if isinstance(error, DBAPIError):
                driver.hint_missing_table(error)
            busy = unavailable(error)
            if busy is None or busy is error:
                raise
            raise busy from error
    try:
        with hold_session(db, operation):
            return await db.run_sync(_on_connection, work, args)
    except SessionBusy:
        raise
    except BaseException as error:
        driver.hint_missing_table(error)
        await settle(db, error)
        busy = unavailable(error)
        if busy is None or busy is error:
            raise
        raise busy from error


async def settle(db: AsyncSession, error: BaseException) -> None:
    """Leave ``db`` usable after a statement outside ``atomic`` failed or was cancelled.

    A cancelled statement (``asyncio.timeout``, a cancelled task, a failing
    ``TaskGroup`` sibling) may have left the connection mid-statement: it is
    invalidated, so that the pool replaces it. Then the session's bookkeeping
    transaction is rolled back, which is what lets SQLAlchemy reconnect (instead
    of raising ``PendingRollbackError`` on the next call). If that rollback
    fails too, the connection is invalidated and the rollback tried once more.
    """
    bind = db.bind
    if not isinstance(error, Exception) and isinstance(bind, AsyncConnection):
        with contextlib.suppress(Exception):
            await bind.invalidate()
    try:
        await db.rollback()
    except Exception:
        if isinstance(bind, AsyncConnection):
            with contextlib.suppress(Exception):
                await bind.invalidate()
        with contextlib.suppress(Exception):
            await db.rollback()


#: Builds a SELECT's results from its rows and column names.
Build = Callable[[Sequence[Any], Sequence[str]], T]


def _fetch(connection: Connection, stmt: Any, params: Any, build: Build[T]) -> T:
    result = connection.execute(stmt, params)
    with gc_paused():
        return build(result.all(), list(result.keys()))


async def fetch(
    db: AsyncSession,
    stmt: Any,
    params: Any,
    build: Build[T],
    *,
    on_driver: bool = True,
    tuples: bool = True,
) -> T:
    """Run a SELECT and return ``build(rows, keys)``, built as soon as the rows arrive.

    ``params`` is None for a statement built for this call; a dict (maybe empty)
    marks a statement template (``flash_db.compiler.template``), which runs on
    the driver connection when it can (``flash_db.driver``): its rows are then
    plain tuples, not SQLAlchemy ``Row`` objects (``on_driver=False`` keeps those;
    ``tuples=False`` lets a builder that keeps no row take the driver's rows).
    """
    try:
        if params is not None and on_driver:
            sent = await driver.rows(db, stmt, params)
            if sent is not None:
                prepared, found = sent
                with gc_paused():
                    return build(prepared.process(found, tuples), prepared.keys)
        return await run(db, _fetch, stmt, params, build)
    except Exception as error:
        if not await fail_over(db, error):
            raise
    # The read session moved from a lost replica to the primary: read there.
    return await fetch(db, stmt, params, build, on_driver=on_driver, tuples=tuples)


def _scalar(connection: Connection, stmt: Any, params: Any) -> Any:
    return connection.execute(stmt, params).scalar()


async def scalar(db: AsyncSession, stmt: Any, params: Any = None) -> Any:
    """Run a SELECT of one value (a count, EXISTS) and return it (templates: see :func:`fetch`)."""
    try:
        if params is not None:
            sent = await driver.rows(db, stmt, params)
            if sent is not None:
                prepared, found = sent
                processed = prepared.process(found)
                return processed[0][0] if processed else None
        return await run(db, _scalar, stmt, params)
    except Exception as error:
        if not await fail_over(db, error):
            raise
    return await scalar(db, stmt, params)  # on the primary now (see fetch)


def _execute(connection: Connection, stmt: Any, params: Any) -> CursorResult[Any]:
    result: CursorResult[Any] = connection.execute(stmt, params)
    return result


async def execute(db: AsyncSession, stmt: Any, params: Any = None) -> CursorResult[Any]:
    """Run one statement whose result is small (an aggregate) and return it."""
    try:
        return await run(db, _execute, stmt, params)
    except Exception as error:
        if not await fail_over(db, error):
            raise
    return await run(db, _execute, stmt, params)


async def write(db: AsyncSession, work: Callable[..., T], *args: Any) -> T:
    """Run ``work(connection, *args)`` as one write (``SessionBusy`` says "write").

    Inside a transaction that is not Flash DB's (the testing kit's), a write
    outside ``atomic`` gets a savepoint of its own, so that its failure undoes
    only itself, as a failed autocommit statement would.
    """
    check_writable(db)
    if not in_atomic(db) and db.sync_session.info.get(OUTER_KEY):
        async with Atomic(db):
            return await run(db, work, *args, operation="write")
    return await run(db, work, *args, operation="write")


def _returned(connection: Connection, stmt: Any, params: Any) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in connection.execute(stmt, params).all()]


async def write_returning(db: AsyncSession, stmt: Any, params: Any) -> list[tuple[Any, ...]]:
    """Run a templated INSERT/UPDATE ``RETURNING`` as one write; return its rows as tuples.

    On the driver connection when it can (``flash_db.driver``), else through
    SQLAlchemy; a savepoint of its own inside the testing kit's transaction, as
    :func:`write` gives.
    """
    check_writable(db)
    if not in_atomic(db) and db.sync_session.info.get(OUTER_KEY):
        async with Atomic(db):
            return await _write_returning(db, stmt, params)
    return await _write_returning(db, stmt, params)


async def _write_returning(db: AsyncSession, stmt: Any, params: Any) -> list[tuple[Any, ...]]:
    sent = await driver.rows(db, stmt, params, "write")
    if sent is not None:
        prepared, found = sent
        return list(prepared.process(found))
    return await run(db, _returned, stmt, params, operation="write")


def _rowcount(connection: Connection, stmt: Any, params: Any) -> int:
    result: CursorResult[Any] = connection.execute(stmt, params)
    return int(result.rowcount)


async def write_statement(
    db: AsyncSession, stmt: Any, params: Any = None, counted: Any = None
) -> int:
    """Run one UPDATE/DELETE/INSERT as a write and return the number of rows it matched.

    A template (``params`` not None) runs on the driver connection when it can;
    ``counted`` is the template with ``RETURNING`` a constant, which SQLite's
    driver needs to count the rows (see :func:`flash_db.driver.rowcount`).
    """
    check_writable(db)
    if params is not None:
        if not in_atomic(db) and db.sync_session.info.get(OUTER_KEY):
            async with Atomic(db):
                return await _write_template(db, stmt, params, counted)
        return await _write_template(db, stmt, params, counted)
    return await write(db, _rowcount, stmt, params)


async def _write_template(db: AsyncSession, stmt: Any, params: Any, counted: Any) -> int:
    count = await driver.rowcount(db, stmt, params, counted)
    if count is not None:
        return count
    return await run(db, _rowcount, stmt, params, operation="write")
