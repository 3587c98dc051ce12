"""atomic() and on_commit(): Django's transaction API on an AsyncSession.

Outside ``atomic`` the session's connection runs in ``AUTOCOMMIT`` mode (see
``flash_db.database``): each statement commits on its own and SQLAlchemy's
transaction on it is bookkeeping only. The outermost ``atomic`` block settles
that bookkeeping (``Session.commit()``, which also flushes objects a SQLAlchemy
user added to the session), then begins a real transaction through the
session's public API, ``Session.connection(execution_options={"isolation_level":
...})``, at the block's level: ``atomic(db, isolation_level=...)``, else
``init_db(isolation_level=...)``, else the database's default. Nested blocks are
savepoints (``begin_nested()``); the outermost block commits or rolls back with
``Session.commit()``/``rollback()`` and puts the connection back in
``AUTOCOMMIT`` mode. ``on_commit`` callbacks run after the real COMMIT.

A session whose transaction someone else began (the testing kit's rolled-back
test transaction, marked with ``OUTER_KEY`` in ``Session.info``, or any session
that is in a transaction and not in Flash DB's ``AUTOCOMMIT`` mode) gets a
savepoint for its outermost block too, and that block's ``on_commit`` callbacks
run when it exits, as in Django's ``TestCase``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, ParamSpec, TypeVar, overload

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, AsyncSessionTransaction

from flash_db.concurrency import FAILED_KEY, enter_block
from flash_db.database import (
    AUTOCOMMIT_KEY,
    COMMITTING_KEY,
    ISOLATION_KEY,
    STACK_KEY,
    check_isolation_level,
    check_writable,
    unavailable,
)
from flash_db.exceptions import SessionBusy, TransactionError

__all__ = [
    "OUTER_KEY",
    "RETRYABLE_SQLSTATES",
    "Atomic",
    "atomic",
    "in_atomic",
    "is_retryable",
    "mark_failed",
    "marking_failure",
    "on_commit",
    "write_block",
]

P = ParamSpec("P")
R = TypeVar("R")

#: ``Session.info`` key of a session running inside a transaction that is not its
#: own (the testing kit's): every atomic block is a savepoint there.
OUTER_KEY = "flash_db.outer_transaction"

_background: set[asyncio.Task[Any]] = set()

#: The SQLSTATEs ``@atomic(retries=n)`` runs the function again for:
#: serialization_failure and deadlock_detected.
RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})

#: Backoff between attempts of ``@atomic(retries=n)``: the first wait is about
#: ``_BACKOFF_BASE`` seconds, doubled per attempt (with +-50% jitter so that
#: the transactions that collided do not collide again), at most ``_BACKOFF_MAX``.
_BACKOFF_BASE = 0.01
_BACKOFF_MAX = 1.0

OnCommitCallback = Callable[[], Any]


@dataclass(slots=True)
class _Block:
    """One open atomic block: its savepoint (if nested) and its on_commit callbacks."""

    savepoint: AsyncSessionTransaction | None
    isolation_level: str | None = None
    callbacks: list[OnCommitCallback] = field(default_factory=list)
    # A write failed in this block and its error was caught inside it: the block
    # cannot commit (see marking_failure).
    failed: bool = False


@contextmanager
def _committing(db: AsyncSession) -> Iterator[None]:
    """Let Flash DB's own commit past the commit-inside-atomic guard."""
    info = db.sync_session.info
    info[COMMITTING_KEY] = True
    try:
        yield
    finally:
        info.pop(COMMITTING_KEY, None)


def _stack(db: AsyncSession) -> list[_Block]:
    stack: list[_Block] = db.sync_session.info.setdefault(STACK_KEY, [])
    return stack


def in_atomic(db: AsyncSession) -> bool:
    """Return whether ``db`` is inside an ``atomic`` block."""
    return bool(db.sync_session.info.get(STACK_KEY))


def _in_outer_transaction(db: AsyncSession) -> bool:
    """Return whether ``db`` runs inside a transaction that Flash DB did not begin."""
    info = db.sync_session.info
    if info.get(OUTER_KEY):
        return True
    return db.in_transaction() and not info.get(AUTOCOMMIT_KEY)


class Atomic:
    """An ``atomic`` block on one session: an async context manager."""

    def __init__(self, db: AsyncSession, *, isolation_level: str | None = None) -> None:
        if not isinstance(db, AsyncSession):
            raise TypeError(
                f"atomic() takes an AsyncSession (or decorates an async function), "
                f"got {type(db).__name__}."
            )
        self.db = db
        self.isolation_level = isolation_level
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

    def _level(self, db: AsyncSession) -> str:
        backend = db.get_bind().dialect.name
        requested = self.isolation_level
        if requested is not None:
            return check_isolation_level(backend, requested, "atomic()")
        configured = db.sync_session.info.get(ISOLATION_KEY)
        if configured is not None:
            return str(configured)
        return str(db.get_bind().dialect.default_isolation_level or "SERIALIZABLE")

    async def _enter(self, db: AsyncSession) -> None:
        stack = _stack(db)
        if stack:
            level = self.isolation_level
            if level is not None:
                level = check_isolation_level(db.get_bind().dialect.name, level, "atomic()")
                if level != stack[0].isolation_level:
                    raise TransactionError(
                        f"A nested atomic() block cannot change the isolation level: the "
                        f"outermost block runs at {stack[0].isolation_level!r}, this one "
                        f"asked for {level!r}."
                    )
            stack.append(await _savepoint(db))
            return
        if _in_outer_transaction(db):
            stack.append(await _savepoint(db))
            return
        level = self._level(db)
        if db.in_transaction():
            # AUTOCOMMIT bookkeeping (and any objects a SQLAlchemy user added).
            await db.commit()
        stack.append(_Block(savepoint=None, isolation_level=level))
        try:
            await db.connection(execution_options={"isolation_level": level})
        except BaseException as error:
            stack.pop()
            await _autocommit_again(db)
            busy = unavailable(error)
            if busy is None or busy is error:
                raise
            raise busy from error

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
        stack = _stack(self.db)
        block = stack[-1]
        if exc_type is None and block.failed:
            await self._rollback(block, stack)
            raise TransactionError(
                "A write inside this atomic block failed and its error was caught inside "
                "the block, so the block was rolled back instead of committed. To go on "
                "after a failed write, wrap that write in its own nested atomic block."
            )
        if exc_type is None:
            await self._commit(block, stack)
        else:
            await self._rollback(block, stack)

    async def _commit(self, block: _Block, stack: list[_Block]) -> None:
        db = self.db
        try:
            with _committing(db):
                if block.savepoint is not None:
                    await block.savepoint.commit()
                else:
                    await db.commit()
        except BaseException:
            await self._rollback(block, stack)
            raise
        stack.pop()
        if block.savepoint is None:
            await _autocommit_again(db)
        elif stack:
            stack[-1].callbacks.extend(block.callbacks)
            return
        # The real COMMIT, or the outermost block inside a transaction that is not
        # Flash DB's (the testing kit's): as committed as Flash DB can make it.
        await _run_callbacks(block.callbacks)

    async def _rollback(self, block: _Block, stack: list[_Block]) -> None:
        db = self.db
        stack.pop()
        if block.failed:
            db.sync_session.info.pop(FAILED_KEY, None)  # statements may run again
        if block.savepoint is not None:
            await block.savepoint.rollback()
            return
        try:
            await db.rollback()
        except Exception:
            # The connection died (the server has rolled the transaction back). The
            # block's own error is the one to raise, not the driver's: drop the
            # connection so the session reconnects on its next use.
            await _invalidate(db)
        await _autocommit_again(db)


async def _savepoint(db: AsyncSession) -> _Block:
    """Begin a nested block's SAVEPOINT now, not at the block's first SQLAlchemy statement.

    Statements Flash DB sends on the driver (``flash_db.driver``) must land
    after it, so that a failure inside the block rolls back to it.
    """
    savepoint = await db.begin_nested()
    try:
        await db.connection()
    except BaseException:
        await savepoint.rollback()
        raise
    return _Block(savepoint=savepoint)


async def _autocommit_again(db: AsyncSession) -> None:
    """Put the connection of a Flash DB session back in AUTOCOMMIT mode after a block."""
    bind = db.bind
    if not isinstance(bind, AsyncConnection) or not db.sync_session.info.get(AUTOCOMMIT_KEY):
        return  # an engine-bound session: the pool resets the connection it returns
    if bind.in_transaction():
        await db.rollback()
    try:
        await bind.execution_options(isolation_level="AUTOCOMMIT")
    except Exception:
        # A dead connection: a fresh one (in AUTOCOMMIT mode) replaces it on next use.
        await _invalidate(db)


async def _invalidate(db: AsyncSession) -> None:
    bind = db.bind
    if isinstance(bind, AsyncConnection):
        with contextlib.suppress(Exception):
            await bind.invalidate()
        with contextlib.suppress(Exception):
            await db.rollback()


@contextmanager
def marking_failure(db: AsyncSession) -> Iterator[None]:
    """Mark the innermost open block as unable to commit when the write inside fails.

    As Django's ``atomic`` does: on PostgreSQL the transaction is unusable after
    a failed statement anyway, on SQLite it would commit the rest of the block.
    Until the block ends, the session refuses statements with
    ``TransactionError`` (Django's ``TransactionManagementError``); the block
    then rolls back and raises ``TransactionError``. A nested block around the
    write limits this to that block. ``SessionBusy`` marks nothing: another
    task's block refused the write before anything was sent.
    """
    try:
        yield
    except SessionBusy:
        raise
    except BaseException:
        mark_failed(db)
        raise


def mark_failed(db: AsyncSession) -> None:
    """Mark the innermost open block of ``db`` as failed (see :func:`marking_failure`)."""
    stack = _stack(db)
    if stack:
        stack[-1].failed = True
        db.sync_session.info[FAILED_KEY] = stack[-1]


@contextlib.asynccontextmanager
async def write_block(db: AsyncSession) -> AsyncIterator[None]:
    """Run several statements as one write: an ``atomic`` block unless already inside one."""
    check_writable(db)
    if in_atomic(db):
        yield
        return
    async with Atomic(db):
        yield


async def _run_callbacks(callbacks: list[OnCommitCallback]) -> None:
    for callback in callbacks:
        result = callback()
        if inspect.isawaitable(result):
            await result


@overload
def atomic(
    target: AsyncSession, *, isolation_level: str | None = None, retries: None = None
) -> Atomic: ...


@overload
def atomic(
    target: Callable[P, Coroutine[Any, Any, R]],
    *,
    isolation_level: str | None = None,
    retries: int | None = None,
) -> Callable[P, Coroutine[Any, Any, R]]: ...


@overload
def atomic(
    target: None = None, *, isolation_level: str | None = None, retries: int | None = None
) -> Callable[[Callable[P, Coroutine[Any, Any, R]]], Callable[P, Coroutine[Any, Any, R]]]: ...


def atomic(
    target: Any = None, *, isolation_level: str | None = None, retries: int | None = None
) -> Any:
    """Open a transaction block on a session, or decorate an async function with one.

    ``async with atomic(db):`` begins a transaction and commits it at the end
    (rolls it back when the body raises); a nested block is a SAVEPOINT. As a
    decorator (``@atomic`` or ``@atomic(isolation_level=..., retries=n)``), the
    block is opened on the function's ``AsyncSession`` argument; with
    ``retries=n`` the function runs again, at most ``n`` more times, when the
    database reports a serialization failure or a deadlock (SQLSTATE 40001,
    40P01). ``retries`` is for decorators only: a ``with`` body cannot run again.
    """
    if retries is not None and (
        isinstance(retries, bool) or not isinstance(retries, int) or retries < 0
    ):
        raise ValueError(f"atomic() got retries={retries!r}; it takes an int >= 0.")
    if isinstance(target, AsyncSession):
        if retries is not None:
            raise TypeError(
                "atomic(db, retries=...) cannot retry an `async with` block: its body "
                "cannot be run again. Decorate the function that does the work instead: "
                "@atomic(retries=n) async def work(db, ...): ..."
            )
        return Atomic(target, isolation_level=isolation_level)
    if target is None:
        return functools.partial(_decorate, isolation_level=isolation_level, retries=retries or 0)
    return _decorate(target, isolation_level=isolation_level, retries=retries or 0)


def is_retryable(error: BaseException) -> bool:
    """Return whether ``error`` (or what it wraps) is a serialization failure or a deadlock.

    The SQLSTATE is read from the error, its DB-API ``orig`` and its causes:
    SQLAlchemy's errors carry the driver's error as ``orig``, and its asyncpg
    adapter keeps the SQLSTATE as ``sqlstate``.
    """
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if str(getattr(current, "sqlstate", None) or "") in RETRYABLE_SQLSTATES:
            return True
        orig = getattr(current, "orig", None)
        pending.extend([orig if isinstance(orig, BaseException) else None, current.__cause__])
    return False


def _backoff(attempt: int) -> float:
    """Return the wait before retry number ``attempt`` (1-based), in seconds."""
    wait: float = min(_BACKOFF_MAX, _BACKOFF_BASE * 2 ** (attempt - 1))
    return wait * random.uniform(0.5, 1.5)


def _decorate(
    func: Callable[P, Coroutine[Any, Any, R]], *, isolation_level: str | None, retries: int = 0
) -> Callable[P, Coroutine[Any, Any, R]]:
    if not inspect.iscoroutinefunction(func):
        raise TypeError(
            f"atomic() takes an AsyncSession or decorates an async function, got {func!r}."
        )
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
        db = sessions[0]
        if retries and in_atomic(db):
            raise TransactionError(
                f"@atomic(retries={retries}) function {func.__qualname__}() was called "
                "inside another atomic() block: only the outermost block can be run "
                "again (a serialization failure aborts the whole transaction). Call it "
                "outside atomic(), or move retries= to the outermost function."
            )
        # Inside a transaction that is not Flash DB's (the testing kit's), the block
        # is a savepoint: it runs once, as retrying it could not help.
        attempts = 1 + (retries if not _in_outer_transaction(db) else 0)
        attempt = 0
        while True:
            try:
                async with Atomic(db, isolation_level=isolation_level):
                    return await func(*args, **kwargs)
            except Exception as error:
                attempt += 1
                if attempt >= attempts or not is_retryable(error):
                    raise
            await asyncio.sleep(_backoff(attempt))

    return wrapper


def on_commit(db: AsyncSession, callback: Callable[[], Awaitable[Any] | Any]) -> None:
    """Run ``callback`` after the outermost ``atomic`` block on ``db`` commits.

    Callbacks run in registration order and have finished when the block exits;
    they are dropped when their block rolls back. Outside ``atomic`` a sync
    callback runs at once and an async one is scheduled as a task at once.
    """
    stack = db.sync_session.info.get(STACK_KEY)
    if stack:
        stack[-1].callbacks.append(callback)
        return
    result = callback()
    if inspect.isawaitable(result):
        task = asyncio.ensure_future(result)
        _background.add(task)
        task.add_done_callback(_background.discard)
