"""The per-request session: ``get_db`` and the ``Session`` annotation that injects it."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from typing import Annotated

import anyio
from fastapi import Depends, Request
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from flash_db import atomic, get_database
from flash_db_fastapi.lifespan import STATE_KEY, FlashState

__all__ = ["ReadSession", "Session", "get_db", "get_read_db"]


async def get_db(request: Request) -> AsyncIterator[AsyncSession]:
    """Yield one session for the request; close it when the route function returns.

    The database is the one the app's ``flash_lifespan`` opened (else the one
    ``init_db()`` configured). With ``atomic_requests=True`` the session is one
    ``atomic()`` block: committed after the handler returns, rolled back when
    it raises (``HTTPException`` included). Use it as ``Session``, which runs it
    with ``scope="function"``: the commit then happens before the response is
    sent, so a failed commit becomes an error response instead of a 2xx. The
    connection is back in the pool before the response goes out: a streaming
    response or a background task that reads the database opens its own
    session (``async with flash_db.session() as db``).
    """
    state = getattr(request.state, STATE_KEY, None) or getattr(request.app.state, STATE_KEY, None)
    if isinstance(state, FlashState):
        database, atomic_requests = state.database, state.atomic_requests
    else:
        database, atomic_requests = get_database(), False
    session = database.session()
    db = await session.__aenter__()
    try:
        if not atomic_requests:
            yield db
            return
        block = atomic(db)
        await block.__aenter__()
        try:
            yield db
        except BaseException as error:
            # Also on a client disconnect (cancellation): the ROLLBACK must be sent.
            with anyio.CancelScope(shield=True):
                await block.__aexit__(type(error), error, error.__traceback__)
            raise
        try:
            await block.__aexit__(None, None, None)  # COMMIT
        except Exception as error:
            # A deferred constraint fails at COMMIT, which atomic() sends on the raw
            # driver connection: report it as SQLAlchemy's IntegrityError, as any
            # other constraint violation is, so that it maps to a 409.
            if _is_driver_integrity_error(error):
                raise IntegrityError("COMMIT", None, error) from error
            raise
    finally:
        # The connection goes back to the pool even when the request is cancelled.
        with anyio.CancelScope(shield=True):
            await session.__aexit__(None, None, None)


async def get_read_db(request: Request) -> AsyncIterator[AsyncSession]:
    """Yield one read session for the request: on a replica that answers, else the primary.

    ``flash_lifespan(url, replicas=[...])`` (or ``init_db(..., replicas=...)``)
    names the replicas; without any, the primary serves the read. Flash DB's
    write methods raise ``TransactionError`` on it before any SQL. Read
    sessions are never ``atomic_requests`` blocks. Use it as ``ReadSession``.
    """
    state = getattr(request.state, STATE_KEY, None) or getattr(request.app.state, STATE_KEY, None)
    database = state.database if isinstance(state, FlashState) else get_database()
    session = database.session(readonly=True)
    db = await session.__aenter__()
    try:
        yield db
    finally:
        with anyio.CancelScope(shield=True):
            await session.__aexit__(None, None, None)


def _is_driver_integrity_error(error: Exception) -> bool:
    if isinstance(error, DBAPIError):
        return False  # already SQLAlchemy's
    if isinstance(error, sqlite3.IntegrityError):
        return True
    return str(getattr(error, "sqlstate", "") or "").startswith("23")  # asyncpg: class 23


Session = Annotated[AsyncSession, Depends(get_db, scope="function")]
"""A route parameter ``db: Session`` receives the request's ``AsyncSession``."""

ReadSession = Annotated[AsyncSession, Depends(get_read_db, scope="function")]
"""A route parameter ``db: ReadSession`` receives a read session (a replica when one answers)."""
