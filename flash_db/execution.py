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

from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy.engine import Connection, CursorResult, Result
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from flash_db.concurrency import hold_session
from flash_db.exceptions import SessionBusy
from flash_db.instances import gc_paused
from flash_db.transaction import OUTER_KEY, Atomic, in_atomic, marking_failure

__all__ = ["execute", "fetch", "run", "write", "write_statement"]

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
        with marking_failure(db), hold_session(db, operation):
            return await db.run_sync(_on_connection, work, args)
    try:
        with hold_session(db, operation):
            return await db.run_sync(_on_connection, work, args)
    except SessionBusy:
        raise
    except BaseException:
        await db.rollback()
        raise


def _fetch(connection: Connection, stmt: Any, params: Any, build: Callable[[Result[Any]], T]) -> T:
    result = connection.execute(stmt, params)
    with gc_paused():
        return build(result)


async def fetch(db: AsyncSession, stmt: Any, params: Any, build: Callable[[Result[Any]], T]) -> T:
    """Run a SELECT and return ``build(result)``, built as soon as the rows arrive."""
    return await run(db, _fetch, stmt, params, build)


def _execute(connection: Connection, stmt: Any, params: Any) -> CursorResult[Any]:
    result: CursorResult[Any] = connection.execute(stmt, params)
    return result


async def execute(db: AsyncSession, stmt: Any, params: Any = None) -> CursorResult[Any]:
    """Run one statement whose result is small (a count, an aggregate) and return it."""
    return await run(db, _execute, stmt, params)


async def write(db: AsyncSession, work: Callable[..., T], *args: Any) -> T:
    """Run ``work(connection, *args)`` as one write (``SessionBusy`` says "write").

    Inside a transaction that is not Flash DB's (the testing kit's), a write
    outside ``atomic`` gets a savepoint of its own, so that its failure undoes
    only itself, as a failed autocommit statement would.
    """
    if not in_atomic(db) and db.sync_session.info.get(OUTER_KEY):
        async with Atomic(db):
            return await run(db, work, *args, operation="write")
    return await run(db, work, *args, operation="write")


def _rowcount(connection: Connection, stmt: Any, params: Any) -> int:
    result: CursorResult[Any] = connection.execute(stmt, params)
    return int(result.rowcount)


async def write_statement(db: AsyncSession, stmt: Any, params: Any = None) -> int:
    """Run one UPDATE/DELETE/INSERT as a write and return the number of rows it matched."""
    return await write(db, _rowcount, stmt, params)
