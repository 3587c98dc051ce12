"""flash_lifespan(): a FastAPI lifespan that opens Flash DB's database and closes it on shutdown."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import URL
from starlette.applications import Starlette

import flash_db
from flash_db import Database, FlashDBError, database_url
from flash_db.config import DEFAULT_URL

__all__ = ["DEFAULT_URL", "STATE_KEY", "FlashState", "flash_lifespan"]

STATE_KEY = "flash_db"
"""The key of :class:`FlashState` in the lifespan state (``request.state.flash_db``)."""

UserLifespan = Callable[[Any], AbstractAsyncContextManager[Mapping[str, Any] | None]]


@dataclass(frozen=True, slots=True)
class FlashState:
    """What a running app's requests need: its database and whether requests are atomic."""

    database: Database
    atomic_requests: bool = False


def flash_lifespan(
    url: str | URL | None = None,
    *,
    create_tables: bool = False,
    atomic_requests: bool = False,
    lifespan: UserLifespan | None = None,
    **engine_kwargs: Any,
) -> Callable[[Starlette], AbstractAsyncContextManager[Mapping[str, Any]]]:
    """Return a lifespan for ``FastAPI(lifespan=...)`` that runs ``init_db``/``close_db``.

    ``url`` defaults to ``$DATABASE_URL``, then ``[tool.flash_db] url`` in
    ``pyproject.toml``, then a local SQLite file (``db.sqlite3``): the same
    database as the ``flash-db`` commands and ``amigrate()`` (:func:`flash_db.database_url`).
    ``create_tables`` runs ``create_all()`` at startup. A user
    ``lifespan`` runs inside, with the database ready; the state it yields is
    kept. ``atomic_requests`` makes every request's ``Session`` one ``atomic()``
    block (see :func:`flash_db_fastapi.get_db`).
    """

    @asynccontextmanager
    async def flash_db_lifespan(app: Starlette) -> AsyncIterator[Mapping[str, Any]]:
        database = flash_db.init_db(database_url(url), **engine_kwargs)
        flash_state = FlashState(database, atomic_requests)
        try:
            if create_tables:
                await database.create_all()
            # Requests find it in the lifespan state (request.state.flash_db), and
            # on app.state for servers and test clients that do not pass that on.
            setattr(app.state, STATE_KEY, flash_state)
            state: dict[str, Any] = {STATE_KEY: flash_state}
            if lifespan is None:
                yield state
            else:
                async with lifespan(app) as inner:
                    yield {**(inner or {}), **state}
        finally:
            if getattr(app.state, STATE_KEY, None) is flash_state:
                delattr(app.state, STATE_KEY)
            if _current_database() is database:
                await flash_db.close_db()
            else:  # init_db() was called again meanwhile: close only what this lifespan opened
                await database.close()

    return flash_db_lifespan


def _current_database() -> Database | None:
    try:
        return flash_db.get_database()
    except FlashDBError:
        return None
