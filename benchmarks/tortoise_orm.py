"""Tortoise ORM, used the way its docs show (module-level models, no session).

Tortoise has no session to open: every query already takes its connection per
operation, so nothing here changed when the suite moved to one session per
operation. On PostgreSQL each query acquires a connection from Tortoise's
asyncpg pool and releases it afterwards (asyncpg resets it on release); on
SQLite Tortoise keeps one aiosqlite connection for its lifetime and each query
takes it under a lock (it has no pool there). ``in_transaction()`` holds one
connection for the whole ``create_in_tx`` block; ``bulk_create`` and
``bulk_update`` are one call. The objects ``update_one``, ``bulk_update`` and
``delete_one`` change are loaded beforehand, untimed; ``update_qs`` and
``delete_qs`` load nothing (``TItem.filter(id=pk).update(...)``/``.delete()``,
one statement each).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.engine import make_url
from tortoise import Tortoise, fields
from tortoise.models import Model
from tortoise.transactions import in_transaction

from benchmarks.common import TABLE, Clock, Outcome, RowTuple


class TItem(Model):
    """The benchmark row."""

    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=50)
    level = fields.IntField(db_index=True)
    score = fields.FloatField()

    class Meta:
        table = TABLE


def _t(obj: TItem) -> RowTuple:
    return (obj.id, obj.name, obj.level, obj.score)


def tortoise_url(url: str) -> str:
    """Convert a SQLAlchemy URL to Tortoise's form."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return f"sqlite://{parsed.database}"
    user = parsed.username or "postgres"
    password = f":{parsed.password}" if parsed.password else ""
    port = parsed.port or 5432
    return f"asyncpg://{user}{password}@{parsed.host}:{port}/{parsed.database}"


class TortoiseORM:
    """Tortoise ORM 1.x."""

    name = "Tortoise"

    async def open(self, url: str) -> None:
        """Initialise Tortoise on ``url`` (no schema generation: the harness owns the table)."""
        await Tortoise.init(db_url=tortoise_url(url), modules={"models": [__name__]})

    async def close(self) -> None:
        """Close Tortoise's connections."""
        await Tortoise.close_connections()

    async def create_autocommit(self, rows: Sequence[dict[str, Any]]) -> Outcome:
        """``create`` each row (autocommit)."""
        with Clock() as clock:
            objs = [await TItem.create(**row) for row in rows]
        return Outcome(clock.elapsed, [obj.id for obj in objs])

    async def create_in_tx(self, rows: Sequence[dict[str, Any]]) -> Outcome:
        """``create`` each row inside ``in_transaction()``."""
        with Clock() as clock:
            async with in_transaction() as conn:
                objs = [await TItem.create(using_db=conn, **row) for row in rows]
        return Outcome(clock.elapsed, [obj.id for obj in objs])

    async def bulk_create(self, rows: Sequence[dict[str, Any]]) -> Outcome:
        """``bulk_create`` every object; pks are reported when Tortoise sets them."""
        with Clock() as clock:
            objs = [TItem(**row) for row in rows]
            await TItem.bulk_create(objs)
        pks = [obj.id for obj in objs]
        return Outcome(clock.elapsed, pks if all(pk is not None for pk in pks) else None)

    async def fetch_all(self, repeat: int) -> Outcome:
        """``all()`` every row ``repeat`` times."""
        with Clock() as clock:
            out = [await TItem.all() for _ in range(repeat)]
        return Outcome(clock.elapsed, [[_t(o) for o in objs] for objs in out])

    async def filter_limit(self, levels: Sequence[int]) -> Outcome:
        """``filter(level=k).order_by("id").limit(20)`` for each level."""
        with Clock() as clock:
            out = [await TItem.filter(level=k).order_by("id").limit(20) for k in levels]
        return Outcome(clock.elapsed, [[_t(o) for o in objs] for objs in out])

    async def get_pk(self, pks: Sequence[int]) -> Outcome:
        """``get(id=pk)`` each pk."""
        with Clock() as clock:
            out = [await TItem.get(id=pk) for pk in pks]
        return Outcome(clock.elapsed, [_t(o) for o in out])

    async def values(self, repeat: int) -> Outcome:
        """``all().values()`` every row ``repeat`` times."""
        with Clock() as clock:
            out = [await TItem.all().values() for _ in range(repeat)]
        return Outcome(clock.elapsed, out)

    async def _load(self, pks: Sequence[int]) -> dict[int, TItem]:
        return {obj.id: obj for obj in await TItem.filter(id__in=list(pks))}

    async def update_one(self, pks: Sequence[int], levels: Sequence[int]) -> Outcome:
        """Set ``level`` on each loaded object and ``save()`` it."""
        by_pk = await self._load(pks)
        with Clock() as clock:
            for pk, level in zip(pks, levels, strict=True):
                obj = by_pk[pk]
                obj.level = level
                await obj.save()
        return Outcome(clock.elapsed)

    async def update_qs(self, pks: Sequence[int], levels: Sequence[int]) -> Outcome:
        """``filter(id=pk).update(level=level)`` for each pair."""
        with Clock() as clock:
            out = [
                await TItem.filter(id=pk).update(level=level)
                for pk, level in zip(pks, levels, strict=True)
            ]
        return Outcome(clock.elapsed, out)

    async def bulk_update(self, pks: Sequence[int], levels: Sequence[int]) -> Outcome:
        """Set ``level`` on every loaded object and ``bulk_update`` them."""
        by_pk = await self._load(pks)
        with Clock() as clock:
            objs = []
            for pk, level in zip(pks, levels, strict=True):
                obj = by_pk[pk]
                obj.level = level
                objs.append(obj)
            await TItem.bulk_update(objs, fields=["level"])
        return Outcome(clock.elapsed, len(objs))

    async def count(self, levels: Sequence[int]) -> Outcome:
        """``filter(level=k).count()`` for each level."""
        with Clock() as clock:
            out = [await TItem.filter(level=k).count() for k in levels]
        return Outcome(clock.elapsed, out)

    async def delete_one(self, pks: Sequence[int]) -> Outcome:
        """``delete()`` each loaded object."""
        by_pk = await self._load(pks)
        with Clock() as clock:
            for pk in pks:
                await by_pk[pk].delete()
        return Outcome(clock.elapsed)

    async def delete_qs(self, pks: Sequence[int]) -> Outcome:
        """``filter(id=pk).delete()`` for each pk."""
        with Clock() as clock:
            out = [await TItem.filter(id=pk).delete() for pk in pks]
        return Outcome(clock.elapsed, out)
