"""Fixtures for the FastAPI tests: a client that runs an app's lifespan in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import delete

import flash_db
from flash_db import Model
from tests.fastapi import models  # noqa: F401  (registers the tables)

Serve = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
async def database(backend_url: str) -> AsyncIterator[flash_db.Database]:
    """The root fixture's database, also closed when an app's lifespan replaced the default."""
    database = flash_db.init_db(backend_url)
    try:
        yield database
    finally:
        # One transaction for every DELETE: one fsync on SQLite instead of one per table.
        async with database.engine.connect() as autocommit:
            conn = await autocommit.execution_options(isolation_level="SERIALIZABLE")
            async with conn.begin():
                for table in reversed(Model.metadata.sorted_tables):
                    await conn.execute(delete(table))
        await database.close()
        await flash_db.close_db()


@pytest.fixture
def serve(database: flash_db.Database) -> Serve:
    """Return ``serve(app)``: run the app's lifespan and yield an in-process httpx client.

    It depends on ``database`` so that the tables are emptied after every test.
    """

    @asynccontextmanager
    async def serve(
        app: FastAPI, *, raise_app_exceptions: bool = True
    ) -> AsyncIterator[httpx.AsyncClient]:
        transport = httpx.ASGITransport(app, raise_app_exceptions=raise_app_exceptions)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://test") as client,
        ):
            yield client

    return serve
