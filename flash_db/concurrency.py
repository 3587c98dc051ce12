"""One task per session: the ``AsyncSession`` subclass that raises ``SessionBusy``.

An ``AsyncSession`` holds one connection and its transaction; two tasks that
use it at the same time interleave their statements on that connection and
corrupt each other's state (SQLAlchemy then fails deep inside, or the driver
reports "another operation is in progress"). Flash DB's sessions record which
task is inside a session method and refuse a second task with
:class:`~flash_db.exceptions.SessionBusy` before it touches the session, so the
first task completes normally. Using a session from several tasks one after the
other is fine; only overlapping use is refused.
"""

from __future__ import annotations

import contextlib
import functools
from asyncio import CancelledError, Task, current_task
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar, cast

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from flash_db.exceptions import SessionBusy, TransactionError

__all__ = [
    "FAILED_KEY",
    "FlashAsyncSession",
    "check_usable",
    "claim",
    "enter_block",
    "hold_session",
    "release",
]

#: The atomic blocks (their markers) that code running in this context belongs to.
#: Tasks started inside a block (``asyncio.gather`` in it) inherit a copy.
_blocks: ContextVar[frozenset[object]] = ContextVar("flash_db_blocks", default=frozenset())

#: ``Session.info`` key of the open atomic block in which a write failed and the
#: error was caught inside it (``flash_db.transaction.marking_failure``): the session
#: refuses further statements until that block has ended.
FAILED_KEY = "flash_db.failed_block"

F = TypeVar("F", bound=Callable[..., Any])

_WRITES = frozenset({"flush", "commit", "rollback", "delete", "delete_all", "merge", "merge_all"})


def _guarded(method: F) -> F:
    """Wrap an ``AsyncSession`` coroutine method so a second task gets ``SessionBusy``."""
    name = method.__name__
    operation = "write" if name in _WRITES else "query"

    refusable = name != "rollback"

    @functools.wraps(method)
    async def guarded(self: FlashAsyncSession, *args: Any, **kwargs: Any) -> Any:
        _check_block(self, refusable)
        owner = self._flash_owner
        task = current_task()
        if owner is None:
            self._flash_owner = task
            self._flash_operation = operation
            try:
                return await method(self, *args, **kwargs)
            except CancelledError:
                if refusable:
                    await _after_cancel(self)
                raise
            finally:
                self._flash_owner = None
        if owner is not task:
            raise SessionBusy(self._flash_operation)
        # Re-entry from the same task (AsyncSession.scalars() awaits execute()).
        return await method(self, *args, **kwargs)

    return cast(F, guarded)  # same signature as the wrapped method


async def _after_cancel(db: FlashAsyncSession) -> None:
    """Make the session usable again after a call was cancelled mid-statement (SPEC §1).

    The connection may be mid-statement: it is invalidated (the pool replaces
    it) and, outside an ``atomic`` block, the session's transaction is rolled
    back, so that the next call reconnects instead of raising
    ``PendingRollbackError``. Inside a block, the block's exit rolls back.
    """
    bind = db.bind
    if isinstance(bind, AsyncConnection):
        with contextlib.suppress(Exception):
            await bind.invalidate()
    if db._flash_block is None:
        with contextlib.suppress(Exception):
            await db.rollback()


def _check_block(db: FlashAsyncSession, refusable: bool = True) -> None:
    """Refuse a statement from outside the session's open block, or after its failed write."""
    block = db._flash_block
    if block is not None and block not in _blocks.get():
        raise SessionBusy("transaction")
    if refusable and FAILED_KEY in db.sync_session.info:
        raise TransactionError(
            "A write failed inside the current atomic block and its error was caught "
            "inside the block, so the block can only roll back: no statement runs "
            "until it ends. Wrap a write that may fail in its own nested atomic "
            "block to go on after it."
        )


def check_usable(db: AsyncSession) -> None:
    """Raise what a guarded session method raises before its statement, if anything.

    For statements Flash DB sends without a session method (``flash_db.driver``):
    ``SessionBusy`` for another task's open block, ``TransactionError`` after a
    failed write in the current block.
    """
    if isinstance(db, FlashAsyncSession):
        _check_block(db)


class FlashAsyncSession(AsyncSession):
    """An ``AsyncSession`` that serves one task at a time and raises ``SessionBusy`` otherwise.

    The check costs one attribute read and one ``asyncio.current_task()`` per call.
    """

    _flash_owner: Task[Any] | None
    _flash_operation: str
    _flash_block: object | None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._flash_owner = None
        self._flash_operation = "query"
        self._flash_block = None

    execute = _guarded(AsyncSession.execute)
    # mypy cannot match scalar()'s overload set through a TypeVar; the signature is unchanged.
    scalar = _guarded(AsyncSession.scalar)  # type: ignore[arg-type,assignment]
    scalars = _guarded(AsyncSession.scalars)
    get = _guarded(AsyncSession.get)
    get_one = _guarded(AsyncSession.get_one)
    stream = _guarded(AsyncSession.stream)
    stream_scalars = _guarded(AsyncSession.stream_scalars)
    refresh = _guarded(AsyncSession.refresh)
    run_sync = _guarded(AsyncSession.run_sync)
    flush = _guarded(AsyncSession.flush)
    commit = _guarded(AsyncSession.commit)
    rollback = _guarded(AsyncSession.rollback)
    delete = _guarded(AsyncSession.delete)
    delete_all = _guarded(AsyncSession.delete_all)
    merge = _guarded(AsyncSession.merge)
    merge_all = _guarded(AsyncSession.merge_all)

    def _refuse_other_task(self) -> None:
        block = self._flash_block
        if block is not None and block not in _blocks.get():
            raise SessionBusy("transaction")
        owner = self._flash_owner
        if owner is not None and owner is not current_task():
            raise SessionBusy(self._flash_operation)


def enter_block(db: AsyncSession) -> Callable[[], None]:
    """Reserve ``db`` for the atomic block opened by the current code; return the release.

    While the block is open, only code running in it (and tasks it starts, which
    inherit its context) may use the session: another task's statement would
    otherwise slip into the block's transaction, and gets ``SessionBusy`` instead.
    Nested blocks of the same code reserve nothing more. A no-op for plain
    ``AsyncSession``s.
    """
    if not isinstance(db, FlashAsyncSession):
        return _nothing
    current = db._flash_block
    if current is not None:
        if current in _blocks.get():
            return _nothing  # a nested block of the same code
        raise SessionBusy("transaction")
    db._refuse_other_task()
    marker = object()
    db._flash_block = marker
    _blocks.set(_blocks.get() | {marker})

    def release() -> None:
        db._flash_block = None
        # Not ContextVar.reset(): the block may end in a copy of this context.
        _blocks.set(_blocks.get() - {marker})

    return release


def _nothing() -> None:
    return None


def claim(db: AsyncSession, operation: str) -> bool:
    """Claim ``db`` for the current task; return whether this call claimed it (then ``release``).

    Raises ``SessionBusy`` when another task is inside the session. False when
    the current task already holds it (or ``db`` is a plain ``AsyncSession``).
    """
    if not isinstance(db, FlashAsyncSession):
        return False
    owner = db._flash_owner
    task = current_task()
    if owner is not None:
        if owner is not task:
            raise SessionBusy(db._flash_operation)
        return False
    db._flash_owner = task
    db._flash_operation = operation
    return True


def release(db: AsyncSession) -> None:
    """Release a session :func:`claim` claimed."""
    if isinstance(db, FlashAsyncSession):
        db._flash_owner = None


@contextmanager
def hold_session(db: AsyncSession, operation: str = "stream") -> Iterator[None]:
    """Keep ``db`` claimed by the current task for the block (other tasks get ``SessionBusy``).

    Used while a server-side cursor is open on the session's connection, between
    the session calls that read its chunks. A no-op for plain ``AsyncSession``s.
    """
    claimed = claim(db, operation)
    try:
        yield
    finally:
        if claimed:
            release(db)
