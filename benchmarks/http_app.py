"""The app the HTTP benchmark serves: Flash DB's CRUDRouter next to a hand-written equivalent.

``/items`` is ``CRUDRouter(BenchItem)`` (the router the example app uses: list,
get, create, update, replace, delete); ``/raw/items`` is the same list and get
written by hand with FastAPI and the SQLAlchemy ORM, the way FastAPI's docs
show it: a session dependency, the query, a Pydantic response model. Both read
the same table of the same database (``$BENCH_DATABASE_URL``) in the same
process, each with its own engine. The Tortoise ORM equivalent is
``benchmarks.http_tortoise``, served by a process of its own.

``$BENCH_POOL_SIZE`` gives both engines a pool of that many connections at
most on PostgreSQL (``pool_size=N, max_overflow=0``; SQLAlchemy's default,
5 + 10 overflow, when unset), as ``benchmarks.http_tortoise`` gives Tortoise's.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query
from pydantic import BaseModel, ConfigDict
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from benchmarks.flash import BenchItem
from benchmarks.sa_orm import Item
from flash_db_fastapi import CRUDRouter, add_exception_handlers, flash_lifespan

URL = os.environ.get("BENCH_DATABASE_URL", "sqlite+aiosqlite:///bench_http.sqlite3")
# Flash DB pings each connection it checks out of the pool on PostgreSQL (its
# default); BENCH_PRE_PING=0 turns that off, =1 turns it on for both sides.
PRE_PING = os.environ.get("BENCH_PRE_PING")
FLASH_OPTIONS: dict[str, Any] = {} if PRE_PING is None else {"pool_pre_ping": PRE_PING == "1"}
RAW_OPTIONS: dict[str, Any] = {"pool_pre_ping": PRE_PING == "1"}
POOL_SIZE = os.environ.get("BENCH_POOL_SIZE")
if POOL_SIZE and make_url(URL).get_backend_name() == "postgresql":
    for options in (FLASH_OPTIONS, RAW_OPTIONS):
        options.update(pool_size=int(POOL_SIZE), max_overflow=0)

engine = create_async_engine(URL, **RAW_OPTIONS)
sessions = async_sessionmaker(engine, expire_on_commit=False)


class ItemRead(BaseModel):
    """One row in a response."""

    model_config = ConfigDict(from_attributes=True)
    id: int
    name: str
    level: int
    score: float


class ItemPage(BaseModel):
    """A page of rows, the CRUDRouter's list shape."""

    items: list[ItemRead]
    total: int
    limit: int
    offset: int


async def get_session() -> AsyncIterator[AsyncSession]:
    """Yield a session for one request."""
    async with sessions() as session:
        yield session


RawSession = Annotated[AsyncSession, Depends(get_session)]


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Start Flash DB (through its lifespan) and dispose of the hand-written engine at the end."""
    async with flash_lifespan(URL, **FLASH_OPTIONS)(app):
        yield
    await engine.dispose()


app = FastAPI(lifespan=lifespan)
add_exception_handlers(app)
app.include_router(CRUDRouter(BenchItem, prefix="/items"))


@app.get("/raw/items")
async def list_items(
    session: RawSession,
    limit: Annotated[int, Query(ge=0, le=200)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> ItemPage:
    """List rows ordered by id, with the total."""
    total = await session.scalar(select(func.count()).select_from(Item))
    rows = await session.scalars(select(Item).order_by(Item.id).limit(limit).offset(offset))
    return ItemPage(
        items=[ItemRead.model_validate(row) for row in rows],
        total=total or 0,
        limit=limit,
        offset=offset,
    )


@app.get("/raw/items/{item_id}")
async def get_item(item_id: int, session: RawSession) -> ItemRead:
    """Return one row by id, 404 when missing."""
    row = await session.get(Item, item_id)
    if row is None:
        raise HTTPException(404, "Item not found.")
    return ItemRead.model_validate(row)
