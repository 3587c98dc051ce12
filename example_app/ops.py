"""Operational routes of the example app: health, accounts and transfers, counters, labels.

They exist to show (and let ``tests/reliability`` prove) how Flash DB behaves
under concurrency: ``atomic`` transfers keep the sum of balances constant,
``select_for_update`` counters lose no increment, ``get_or_create`` and
``update_or_create`` stampedes create one row, and no pooled connection is
left checked out.

Every ``/ops`` route needs the admin token (``X-Admin-Token`` equal to
``$BLOG_ADMIN_TOKEN``; 401 without the header, 403 with another value): they
write rows no user owns and show the pool's state, so an app copied from this
one exposes none of it. Without ``$BLOG_ADMIN_TOKEN`` they are closed to all.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, Field
from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.pool import QueuePool

from example_app.auth import ADMIN_RESPONSES, require_admin
from flash_db import Model, atomic, get_database
from flash_db_fastapi import CRUDRouter, Session

__all__ = ["Account", "Counter", "Label", "router"]


class Account(Model):
    """A bank account; transfers between accounts never change the sum of balances."""

    __tablename__ = "accounts"
    owner: Mapped[str] = mapped_column(String(50), unique=True)
    balance: Mapped[int] = mapped_column(default=0)


class Counter(Model):
    """A named counter incremented under ``select_for_update``."""

    __tablename__ = "counters"
    name: Mapped[str] = mapped_column(String(50), unique=True)
    value: Mapped[int] = mapped_column(default=0)


class Label(Model):
    """A label created by ``get_or_create`` / ``update_or_create``."""

    __tablename__ = "labels"
    name: Mapped[str] = mapped_column(String(50), unique=True)
    hits: Mapped[int] = mapped_column(default=0)


# The admin token guards every route below, the CRUD routers' included (401/403 in OpenAPI).
router = APIRouter(
    prefix="/ops", dependencies=[Depends(require_admin)], responses=dict(ADMIN_RESPONSES)
)
router.include_router(
    CRUDRouter(
        Account,
        prefix="/accounts",
        tags=["ops"],
        filter_fields=["owner", "balance"],
        order_fields=["owner", "balance"],
    )
)
router.include_router(CRUDRouter(Counter, prefix="/counters", tags=["ops"], filter_fields=["name"]))
router.include_router(
    CRUDRouter(Label, prefix="/labels", tags=["ops"], filter_fields=["name"], routes=("list",))
)


class Health(BaseModel):
    """The app's database pool, as seen from inside the app."""

    backend: str
    pool_size: int
    checked_out: int


@router.get("/health", tags=["ops"])
async def health() -> Health:
    """Report the pool: connections checked out right now (0 when the app is idle)."""
    database = get_database()
    pool = database.engine.pool
    size = pool.size() if isinstance(pool, QueuePool) else 0
    checked_out = pool.checkedout() if isinstance(pool, QueuePool) else 0
    return Health(backend=database.backend, pool_size=size, checked_out=checked_out)


class TransferIn(BaseModel):
    """A transfer between two accounts."""

    # Primary keys are 32-bit integers: a larger id is a 422, not a database error.
    source: int = Field(ge=1, le=2**31 - 1)
    target: int = Field(ge=1, le=2**31 - 1)
    amount: int = Field(gt=0, le=1_000_000)


@router.post("/transfers", tags=["ops"], responses={404: {}, 422: {}})
async def transfer(body: TransferIn, db: Session) -> dict[str, int]:
    """Move ``amount`` from one account to another in one transaction."""
    if body.source == body.target:
        raise HTTPException(422, "source and target must differ.")
    async with atomic(db):
        # Lock both rows in primary-key order, so concurrent transfers cannot deadlock.
        accounts = (
            await Account.objects.select_for_update()
            .filter(pk__in=[body.source, body.target])
            .order_by("pk")
            .fetch(db)
        )
        by_pk = {account.pk: account for account in accounts}
        if len(by_pk) != 2:
            raise HTTPException(404, "No such account.")
        by_pk[body.source].balance -= body.amount
        by_pk[body.target].balance += body.amount
        await by_pk[body.source].save(db, update_fields=["balance"])
        await by_pk[body.target].save(db, update_fields=["balance"])
    return {"source": by_pk[body.source].balance, "target": by_pk[body.target].balance}


class CounterOut(BaseModel):
    """A counter's value after an increment."""

    name: str
    value: int


@router.post("/counters/{name}/increment", tags=["ops"], responses={404: {}})
async def increment(name: str, db: Session) -> CounterOut:
    """Add one to a counter, reading it under ``SELECT ... FOR UPDATE``."""
    async with atomic(db):
        counter = await Counter.objects.select_for_update().get(db, name=name)
        counter.value += 1
        await counter.save(db, update_fields=["value"])
    return CounterOut(name=counter.name, value=counter.value)


class LabelIn(BaseModel):
    """A label name, and the hits to store for ``update-or-create``."""

    name: str = Field(min_length=1, max_length=50)
    hits: int = Field(default=0, ge=0, le=1_000_000)


class LabelOut(BaseModel):
    """A label and whether this request created it."""

    id: int
    name: str
    hits: int
    created: bool


def _label_out(label: Label, created: bool) -> LabelOut:
    return LabelOut(id=label.id, name=label.name, hits=label.hits, created=created)


@router.post("/labels/get-or-create", tags=["ops"])
async def get_or_create_label(body: LabelIn, db: Session) -> LabelOut:
    """Return the label with this name, creating it when missing."""
    label, created = await Label.objects.get_or_create(db, name=body.name)
    return _label_out(label, created)


@router.post("/labels/update-or-create", tags=["ops"])
async def update_or_create_label(body: LabelIn, db: Session) -> LabelOut:
    """Set the label's hits, creating the label when missing."""
    defaults: dict[str, Any] = {"hits": body.hits}
    label, created = await Label.objects.update_or_create(db, defaults=defaults, name=body.name)
    return _label_out(label, created)
