"""Helpers for testing code that uses Flash DB: ``assert_num_queries``."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

__all__ = ["CapturedQueries", "assert_num_queries", "capture_queries"]

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


def _engine_and_connection(db: AsyncSession) -> tuple[Engine, Connection | None]:
    bind = db.bind
    if isinstance(bind, AsyncConnection):
        return bind.sync_engine, bind.sync_connection
    if isinstance(bind, AsyncEngine):
        return bind.sync_engine, None
    raise TypeError(f"Cannot capture queries for a session bound to {bind!r}.")


@asynccontextmanager
async def capture_queries(db: AsyncSession) -> AsyncIterator[CapturedQueries]:
    """Record the SQL statements ``db`` sends inside the block."""
    engine, connection = _engine_and_connection(db)
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
        if not _TRANSACTION_CONTROL.match(statement):
            captured.statements.append(statement)

    event.listen(engine, "before_cursor_execute", before_cursor_execute)
    try:
        yield captured
    finally:
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
