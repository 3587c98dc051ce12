"""atomic() and on_commit(): Django's transaction API on an AsyncSession.

Connections run in AUTOCOMMIT mode (see ``flash_db.database``), so a block
starts a real transaction itself: the outermost ``atomic`` sends ``BEGIN``
(``BEGIN IMMEDIATE`` on SQLite, which takes the write lock up front instead of
failing with "database is locked" when two readers later both write) on the
session's connection, nested blocks are SQLAlchemy savepoints (so the ORM's
identity map follows ROLLBACK TO SAVEPOINT), and the outermost block commits.

When the connection already has a transaction that Flash DB did not open (the
testing kit's rolled-back test transaction, or a user's own ``BEGIN``), the
outermost block becomes a savepoint inside it and its ``on_commit`` callbacks
are dropped with that outer transaction, as in Django's ``TestCase``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, ParamSpec, TypeVar, overload

from sqlalchemy import inspect as sa_inspect
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, AsyncSessionTransaction
from sqlalchemy.orm import make_transient

from flash_db.concurrency import FAILED_KEY, enter_block
from flash_db.database import _driver_in_transaction
from flash_db.exceptions import SessionBusy, TransactionError

__all__ = ["atomic", "execute_write", "flush_write", "in_atomic", "on_commit"]

P = ParamSpec("P")
R = TypeVar("R")

_STACK_KEY = "flash_db.atomic"
_RELOAD_CHUNK = 5000
_background: set[asyncio.Task[Any]] = set()

OnCommitCallback = Callable[[], Any]


@dataclass(slots=True)
class _Block:
    """One open atomic block: its savepoint (if nested) and its on_commit callbacks."""

    savepoint: AsyncSessionTransaction | None
    driver: Any = None
    owns_transaction: bool = False
    callbacks: list[OnCommitCallback] = field(default_factory=list)
    # Objects written by Flash DB's single-statement writes (flash_db.writes) in
    # this block, which the session's transaction does not track as flushed.
    inserted: list[Any] = field(default_factory=list)
    updated: list[Any] = field(default_factory=list)
    # A write failed in this block and its error was caught inside it: the block
    # cannot commit (see marking_failure).
    failed: bool = False


@contextmanager
def _committing(db: AsyncSession) -> Iterator[None]:
    """Let Flash DB's own savepoint commits past the commit-inside-atomic guard."""
    info = db.sync_session.info
    info["flash_db.committing"] = True
    try:
        yield
    finally:
        info.pop("flash_db.committing", None)


def _stack(db: AsyncSession) -> list[_Block]:
    stack: list[_Block] = db.sync_session.info.setdefault(_STACK_KEY, [])
    return stack


def in_atomic(db: AsyncSession) -> bool:
    """Return whether ``db`` is inside an ``atomic`` block."""
    return bool(db.sync_session.info.get(_STACK_KEY))


class Atomic:
    """An ``atomic`` block on one session: an async context manager."""

    def __init__(self, db: AsyncSession) -> None:
        if not isinstance(db, AsyncSession):
            raise TypeError(
                f"atomic() takes an AsyncSession (or decorates an async function), "
                f"got {type(db).__name__}."
            )
        self.db = db
        self._releases: list[Callable[[], None]] = []

    async def __aenter__(self) -> AsyncSession:
        db = self.db
        # The block keeps the session for its task: another task's statement would
        # otherwise slip into this transaction (it gets SessionBusy instead).
        release = enter_block(db)
        try:
            await self._enter(db)
        except BaseException:
            release()
            raise
        self._releases.append(release)
        return db

    async def _enter(self, db: AsyncSession) -> None:
        stack = _stack(db)
        if stack:
            stack.append(_Block(savepoint=await db.begin_nested()))
            return
        connection = await db.connection()
        raw = await connection.get_raw_connection()
        driver = raw.driver_connection
        if _driver_in_transaction(driver):
            # Someone else's transaction (the testing kit's): nest inside it.
            stack.append(_Block(savepoint=await db.begin_nested(), driver=driver))
            return
        begin = "BEGIN IMMEDIATE" if connection.dialect.name == "sqlite" else "BEGIN"
        await _driver_execute(driver, begin)
        stack.append(_Block(savepoint=None, driver=driver, owns_transaction=True))

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self._exit(exc_type)
        finally:
            self._releases.pop()()

    async def _exit(self, exc_type: type[BaseException] | None) -> None:
        db = self.db
        stack = _stack(db)
        block = stack[-1]
        if exc_type is None and block.failed:
            await self._rollback(block, stack)
            raise TransactionError(
                "A write inside this atomic block failed and its error was caught inside "
                "the block, so the block was rolled back instead of committed. To go on "
                "after a failed write, wrap that write in its own nested atomic block."
            )
        if exc_type is None:
            try:
                await db.flush()
            except BaseException:
                await self._rollback(block, stack)
                raise
            await self._commit(block, stack)
        else:
            await self._rollback(block, stack)

    async def _commit(self, block: _Block, stack: list[_Block]) -> None:
        db = self.db
        if block.savepoint is not None:
            try:
                with _committing(db):
                    await block.savepoint.commit()
            except BaseException:
                await self._rollback(block, stack)
                raise
            stack.pop()
            if stack:
                stack[-1].callbacks.extend(block.callbacks)
                stack[-1].inserted.extend(block.inserted)
                stack[-1].updated.extend(block.updated)
            else:
                # Outermost block inside a foreign (test) transaction: this is as
                # committed as Flash DB can make it, so run the callbacks now.
                await _run_callbacks(block.callbacks)
            return
        try:
            # COMMIT goes through SQLAlchemy (not the raw driver) so that a failure
            # here, e.g. a deferred constraint, is the usual sqlalchemy.exc error.
            connection = await db.connection()
            await connection.exec_driver_sql("COMMIT")
        except BaseException:
            await self._rollback(block, stack)
            raise
        stack.pop()
        # Settle the ORM's side (no round trip: the driver is in autocommit mode).
        await db.commit()
        await _run_callbacks(block.callbacks)

    async def _rollback(self, block: _Block, stack: list[_Block]) -> None:
        db = self.db
        stack.pop()
        if block.failed:
            db.sync_session.info.pop(FAILED_KEY, None)  # statements may run again
        _forget_inserted(db, block.inserted)
        if block.savepoint is not None:
            # Also when a failed flush already deactivated it: SQLAlchemy needs the
            # explicit rollback() to close the savepoint and restore the ORM state.
            await block.savepoint.rollback()
            _expire_updated(db, block.updated)
            return
        try:
            if _driver_in_transaction(block.driver):
                await _driver_execute(block.driver, "ROLLBACK")
        except Exception:
            # The connection died (the server has rolled the transaction back). The
            # block's own error is the one to raise, not the driver's "connection is
            # closed"; drop the connection so the session reconnects on next use.
            if isinstance(db.bind, AsyncConnection):
                await db.bind.invalidate()
        finally:
            await db.rollback()
        await _reload_quietly(db)


@contextmanager
def marking_failure(db: AsyncSession) -> Iterator[None]:
    """Mark the innermost open block as unable to commit when the write inside fails.

    A failed flush leaves SQLAlchemy's session needing a rollback, so a block
    whose body caught the error could not commit; every write Flash DB sends
    inside ``atomic`` (the flush in :func:`flush_write`, the single statements
    of ``flash_db.writes``) keeps that rule through this mark, as Django's
    ``atomic`` does (on PostgreSQL the transaction is unusable anyway, on SQLite
    it would commit the rest of the block). Until the block ends, the session
    refuses statements with ``TransactionError`` (Django's
    ``TransactionManagementError``); the block then rolls back and raises
    ``TransactionError``. A nested block around the write limits this to that
    block. ``SessionBusy`` marks nothing: another task's block refused the
    write before anything was sent.
    """
    try:
        yield
    except SessionBusy:
        raise
    except BaseException:
        stack = _stack(db)
        if stack:
            stack[-1].failed = True
            db.sync_session.info[FAILED_KEY] = stack[-1]
        raise


def record_write(db: AsyncSession, obj: Any, *, inserted: bool) -> None:
    """Record an object written by a single Core statement in the innermost open block.

    A flush registers the objects it writes with the session's transaction,
    which undoes them on rollback; a Core statement does not. The block does it
    instead: see ``_forget_inserted`` and ``_expire_updated``.
    """
    stack = _stack(db)
    if stack:
        (stack[-1].inserted if inserted else stack[-1].updated).append(obj)


def _forget_inserted(db: AsyncSession, objects: list[Any]) -> None:
    """Make objects inserted in a rolled-back block transient again, as the ORM does.

    Runs before the session's rollback, as SQLAlchemy expunges the objects
    inserted in a transaction before it expires the rest. An object deleted in
    the same block (by a flush) is taken out of the session instead: the
    session's rollback would otherwise restore it as persistent.
    """
    session = db.sync_session
    for obj in objects:
        state = sa_inspect(obj)
        if state.session is not session:
            continue
        if state.persistent:
            make_transient(obj)
        else:
            session.expunge(obj)


def _expire_updated(db: AsyncSession, objects: list[Any]) -> None:
    """Expire objects updated in a rolled-back savepoint, as the ORM does for flushed ones."""
    session = db.sync_session
    for obj in objects:
        state = sa_inspect(obj)
        if state.persistent and state.session is session:
            session.expire(obj)


async def _run_callbacks(callbacks: list[OnCommitCallback]) -> None:
    for callback in callbacks:
        result = callback()
        if inspect.isawaitable(result):
            await result


async def _driver_execute(driver: Any, sql: str) -> None:
    """Run a transaction-control statement directly on the driver connection."""
    result = driver.execute(sql)
    if inspect.isawaitable(result):
        result = await result
    close = getattr(result, "close", None)  # aiosqlite returns a cursor
    if close is not None:
        closed = close()
        if inspect.isawaitable(closed):
            await closed


@overload
def atomic(target: AsyncSession) -> Atomic: ...


@overload
def atomic(
    target: Callable[P, Coroutine[Any, Any, R]],
) -> Callable[P, Coroutine[Any, Any, R]]: ...


def atomic(
    target: AsyncSession | Callable[P, Coroutine[Any, Any, R]],
) -> Atomic | Callable[P, Coroutine[Any, Any, R]]:
    """Open a transaction block on a session, or decorate an async function with one.

    ``async with atomic(db):`` sends BEGIN ... COMMIT (ROLLBACK when the body
    raises); a nested block is a SAVEPOINT. As a decorator, the block is opened
    on the function's ``AsyncSession`` argument.
    """
    if isinstance(target, AsyncSession):
        return Atomic(target)
    if not inspect.iscoroutinefunction(target):
        raise TypeError(
            f"atomic() takes an AsyncSession or decorates an async function, got {target!r}."
        )
    func = target
    signature = inspect.signature(func)

    @functools.wraps(func)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        bound = signature.bind_partial(*args, **kwargs)
        sessions = [v for v in bound.arguments.values() if isinstance(v, AsyncSession)]
        if not sessions:
            raise TypeError(
                f"@atomic function {func.__qualname__}() was called without an "
                "AsyncSession argument; pass the session (db) to it."
            )
        async with Atomic(sessions[0]):
            return await func(*args, **kwargs)

    return wrapper


def on_commit(db: AsyncSession, callback: Callable[[], Awaitable[Any] | Any]) -> None:
    """Run ``callback`` after the outermost ``atomic`` block on ``db`` commits.

    Callbacks run in registration order and have finished when the block exits;
    they are dropped when their block rolls back. Outside ``atomic`` a sync
    callback runs at once and an async one is scheduled as a task at once.
    """
    stack = db.sync_session.info.get(_STACK_KEY)
    if stack:
        stack[-1].callbacks.append(callback)
        return
    result = callback()
    if inspect.isawaitable(result):
        task = asyncio.ensure_future(result)
        _background.add(task)
        task.add_done_callback(_background.discard)


async def flush_write(db: AsyncSession, *, single_statement: bool) -> None:
    """Flush ``db``'s pending work as one write; outside ``atomic`` it commits on its own.

    Connections are in AUTOCOMMIT mode, so a single statement is durable when it
    returns and ``db.commit()`` only settles the ORM's state (no round trip);
    several statements are wrapped in a transaction. On failure the session is
    rolled back to before the write and stays usable. Inside ``atomic`` a failed
    write marks the block (:func:`marking_failure`), as the single-statement writes do.
    """
    if in_atomic(db):
        with marking_failure(db):
            await db.flush()
        return
    if not single_statement:
        async with Atomic(db):
            return
    try:
        await db.flush()
    except BaseException:
        await _rollback_failed_write(db)
        raise
    await db.commit()


async def execute_write(db: AsyncSession, statement: Any) -> Any:
    """Execute one write statement (UPDATE/DELETE/INSERT); outside ``atomic`` it commits."""
    if in_atomic(db):
        return await db.execute(statement)
    if db.new or db.dirty or db.deleted:
        # Pending work flushes first: make it and the statement one transaction.
        async with Atomic(db):
            return await db.execute(statement)
    try:
        result = await db.execute(statement)
    except BaseException:
        await _rollback_failed_write(db)
        raise
    await db.commit()
    return result


async def _rollback_failed_write(db: AsyncSession) -> None:
    """Roll the session back after a failed write, then reload the objects it expired.

    SQLAlchemy's rollback() expires every object in the session, and in async code
    an expired attribute cannot load itself, so ``user.name`` would break after an
    unrelated failed INSERT. Rows committed before are still there: reload the
    expired objects (one SELECT per model, on this failure path only).
    """
    await db.rollback()
    await _reload_quietly(db)


async def _reload_quietly(db: AsyncSession) -> None:
    # Best effort: when the connection itself failed, the original error matters.
    with contextlib.suppress(Exception):
        await reload_expired(db)


async def reload_expired(db: AsyncSession) -> None:
    """Reload the column values of expired objects in ``db`` (one SELECT per model)."""
    by_model: dict[Any, list[Any]] = {}
    for obj in list(db.identity_map.values()):
        state = sa_inspect(obj)
        if state.expired_attributes and state.key is not None and len(state.key[1]) == 1:
            by_model.setdefault(state.mapper, []).append(state.key[1][0])
    for mapper, ids in by_model.items():
        pk = mapper.primary_key[0]
        # Chunks well below the drivers' bound-parameter limits (~32k).
        for start in range(0, len(ids), _RELOAD_CHUNK):
            chunk = ids[start : start + _RELOAD_CHUNK]
            stmt = select(mapper).where(pk.in_(chunk)).execution_options(populate_existing=True)
            await db.execute(stmt)
