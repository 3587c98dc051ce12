"""The HTTP benchmark's Tortoise ORM app: the CRUDRouter's five routes on FastAPI + Tortoise.

Written the way Tortoise's FastAPI example does it: ``RegisterTortoise`` in the
lifespan (what ``register_tortoise`` runs), Pydantic models from
``pydantic_model_creator``, ``from_queryset``/``from_queryset_single``/
``from_tortoise_orm`` for the responses, Tortoise's exception handlers (a
``DoesNotExist`` is a 404), an update by ``filter(id=...).update(...)`` then a
get, a delete by ``filter(id=...).delete()`` with a 404 when no row went. The
URLs, status codes and bodies are the CRUDRouter's (``/items`` with
``{items, total, limit, offset}``, 201 on create, PATCH for a partial update,
204 on delete), so one client loads both apps alike. Statements per request:
list 2 (count, page), get 1, create 1, update 2 (UPDATE, SELECT), delete 1;
the CRUDRouter sends the same but for delete (SELECT, DELETE) and update
(SELECT, UPDATE).

It is served by its own uvicorn process next to ``benchmarks.http_app``, with
its own pool: ``$BENCH_DATABASE_URL`` (a SQLAlchemy URL) converted to
Tortoise's form, ``$BENCH_POOL_SIZE`` connections at most on PostgreSQL
(Tortoise's default, 5, when unset). On SQLite Tortoise has no pool: one
connection, taken under a lock by each query.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Annotated

from fastapi import FastAPI, HTTPException, Query, Response
from pydantic import BaseModel
from sqlalchemy.engine import make_url
from tortoise.contrib.fastapi import RegisterTortoise, tortoise_exception_handlers
from tortoise.contrib.pydantic import PydanticModel, pydantic_model_creator

from benchmarks.tortoise_orm import TItem, tortoise_url

URL = os.environ.get("BENCH_DATABASE_URL", "sqlite+aiosqlite:///bench_http.sqlite3")
POOL_SIZE = os.environ.get("BENCH_POOL_SIZE")


def _db_url() -> str:
    """Return Tortoise's URL, with the pool's size on PostgreSQL when one is set."""
    url = tortoise_url(URL)
    if POOL_SIZE and make_url(URL).get_backend_name() == "postgresql":
        url += f"?minsize=1&maxsize={int(POOL_SIZE)}"
    return url


if TYPE_CHECKING:  # the classes pydantic_model_creator makes at runtime, as mypy sees them
    ItemRead = PydanticModel
    ItemCreate = PydanticModel
    ItemUpdate = PydanticModel
else:
    ItemRead = pydantic_model_creator(TItem, name="ItemRead")
    ItemCreate = pydantic_model_creator(TItem, name="ItemCreate", exclude_readonly=True)
    ItemUpdate = pydantic_model_creator(
        TItem, name="ItemUpdate", exclude_readonly=True, optional=("name", "level", "score")
    )


class ItemPage(BaseModel):
    """A page of rows, the CRUDRouter's list shape."""

    items: list[ItemRead]
    total: int
    limit: int
    offset: int


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Start Tortoise for the app's lifetime (no schema generation: the harness owns the table)."""
    async with RegisterTortoise(
        app, db_url=_db_url(), modules={"models": ["benchmarks.tortoise_orm"]}
    ):
        yield


app = FastAPI(lifespan=lifespan, exception_handlers=tortoise_exception_handlers())


@app.get("/items")
async def list_items(
    limit: Annotated[int, Query(ge=0, le=200)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> ItemPage:
    """List rows ordered by id, with the total."""
    total = await TItem.all().count()
    items = await ItemRead.from_queryset(TItem.all().order_by("id").offset(offset).limit(limit))
    return ItemPage(items=items, total=total, limit=limit, offset=offset)


@app.get("/items/{item_id}", response_model=ItemRead)
async def get_item(item_id: int) -> ItemRead:
    """Return one row by id (404 from Tortoise's handler when missing)."""
    return await ItemRead.from_queryset_single(TItem.get(id=item_id))


@app.post("/items", response_model=ItemRead, status_code=201)
async def create_item(item: ItemCreate) -> ItemRead:
    """Create a row and return it."""
    obj = await TItem.create(**item.model_dump(exclude_unset=True))
    return await ItemRead.from_tortoise_orm(obj)


@app.patch("/items/{item_id}", response_model=ItemRead)
async def update_item(item_id: int, item: ItemUpdate) -> ItemRead:
    """Update the fields given and return the row (404 when missing)."""
    await TItem.filter(id=item_id).update(**item.model_dump(exclude_unset=True))
    return await ItemRead.from_queryset_single(TItem.get(id=item_id))


@app.delete("/items/{item_id}", status_code=204)
async def delete_item(item_id: int) -> Response:
    """Delete a row; 404 when there was none."""
    if not await TItem.filter(id=item_id).delete():
        raise HTTPException(404, f"Item {item_id} not found")
    return Response(status_code=204)
