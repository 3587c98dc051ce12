"""Flash DB through its public API only: ``objects``, ``atomic``, ``save``, ``delete``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Float, String
from sqlalchemy.orm import Mapped, mapped_column

from benchmarks.common import TABLE, Clock, Outcome, RowTuple
from flash_db import Database, Model, atomic


class BenchItem(Model):
    """The benchmark row (``id`` is added by Flash DB)."""

    __tablename__ = TABLE
    name: Mapped[str] = mapped_column(String(50))
    level: Mapped[int] = mapped_column(index=True)
    score: Mapped[float] = mapped_column(Float)


def _t(obj: BenchItem) -> RowTuple:
    return (obj.id, obj.name, obj.level, obj.score)


def has_bulk() -> tuple[bool, bool]:
    """Return whether this Flash DB has ``bulk_create`` and ``bulk_update`` yet."""
    manager = type(BenchItem.objects)
    return hasattr(manager, "bulk_create"), hasattr(manager, "bulk_update")


class Flash:
    """Flash DB: one session (one pooled connection) per workload, as in a request."""

    name = "Flash DB"

    def __init__(self) -> None:
        self.database: Database | None = None

    async def open(self, url: str) -> None:
        """Create the Database."""
        self.database = Database(url)

    async def close(self) -> None:
        """Dispose of the engine."""
        if self.database is not None:
            await self.database.close()

    @property
    def _db(self) -> Database:
        assert self.database is not None
        return self.database

    async def create_autocommit(self, rows: Sequence[dict[str, Any]]) -> Outcome:
        """``objects.create`` each row (each commits on its own)."""
        objs = []
        async with self._db.session() as db:
            with Clock() as clock:
                for row in rows:
                    objs.append(await BenchItem.objects.create(db, **row))
        return Outcome(clock.elapsed, [obj.id for obj in objs])

    async def create_in_tx(self, rows: Sequence[dict[str, Any]]) -> Outcome:
        """``objects.create`` each row inside one ``atomic`` block."""
        objs = []
        async with self._db.session() as db:
            with Clock() as clock:
                async with atomic(db):
                    for row in rows:
                        objs.append(await BenchItem.objects.create(db, **row))
        return Outcome(clock.elapsed, [obj.id for obj in objs])

    async def bulk_create(self, rows: Sequence[dict[str, Any]]) -> Outcome | None:
        """``objects.bulk_create`` every object (None until Flash DB has it)."""
        if not has_bulk()[0]:
            return None
        manager: Any = BenchItem.objects
        async with self._db.session() as db:
            with Clock() as clock:
                objs = await manager.bulk_create(db, [BenchItem(**row) for row in rows])
        return Outcome(clock.elapsed, [obj.id for obj in objs])

    async def fetch_all(self, repeat: int) -> Outcome:
        """``objects.fetch`` every row ``repeat`` times (a fresh session each time)."""
        out = []
        with Clock() as clock:
            for _ in range(repeat):
                async with self._db.session() as db:
                    out.append(await BenchItem.objects.fetch(db))
        return Outcome(clock.elapsed, [[_t(o) for o in objs] for objs in out])

    async def filter_limit(self, levels: Sequence[int]) -> Outcome:
        """``filter(level=k).order_by("id")[:20].fetch`` for each level."""
        out = []
        async with self._db.session() as db:
            with Clock() as clock:
                for k in levels:
                    out.append(
                        await BenchItem.objects.filter(level=k).order_by("id")[:20].fetch(db)
                    )
        return Outcome(clock.elapsed, [[_t(o) for o in objs] for objs in out])

    async def get_pk(self, pks: Sequence[int]) -> Outcome:
        """``objects.get(pk=...)`` each pk."""
        out = []
        async with self._db.session() as db:
            with Clock() as clock:
                for pk in pks:
                    out.append(await BenchItem.objects.get(db, pk=pk))
        return Outcome(clock.elapsed, [_t(o) for o in out])

    async def values(self, repeat: int) -> Outcome:
        """``objects.values().fetch`` every row ``repeat`` times."""
        out = []
        async with self._db.session() as db:
            with Clock() as clock:
                for _ in range(repeat):
                    out.append(await BenchItem.objects.values().fetch(db))
        return Outcome(clock.elapsed, out)

    async def update_one(self, pks: Sequence[int], levels: Sequence[int]) -> Outcome:
        """Set ``level`` on each loaded object and ``save`` it."""
        async with self._db.session() as db:
            by_pk = await BenchItem.objects.in_bulk(db, pks)
            with Clock() as clock:
                for pk, level in zip(pks, levels, strict=True):
                    obj = by_pk[pk]
                    obj.level = level
                    await obj.save(db)
        return Outcome(clock.elapsed)

    async def bulk_update(self, pks: Sequence[int], levels: Sequence[int]) -> Outcome | None:
        """Set ``level`` on every loaded object and ``bulk_update`` them (None until it exists)."""
        if not has_bulk()[1]:
            return None
        manager: Any = BenchItem.objects
        async with self._db.session() as db:
            by_pk = await BenchItem.objects.in_bulk(db, pks)
            with Clock() as clock:
                objs = []
                for pk, level in zip(pks, levels, strict=True):
                    obj = by_pk[pk]
                    obj.level = level
                    objs.append(obj)
                updated = await manager.bulk_update(db, objs, ["level"])
        return Outcome(clock.elapsed, updated)

    async def count(self, levels: Sequence[int]) -> Outcome:
        """``filter(level=k).count`` for each level."""
        out = []
        async with self._db.session() as db:
            with Clock() as clock:
                for k in levels:
                    out.append(await BenchItem.objects.filter(level=k).count(db))
        return Outcome(clock.elapsed, out)

    async def delete_one(self, pks: Sequence[int]) -> Outcome:
        """``delete`` each loaded object."""
        async with self._db.session() as db:
            by_pk = await BenchItem.objects.in_bulk(db, pks)
            with Clock() as clock:
                for pk in pks:
                    await by_pk[pk].delete(db)
        return Outcome(clock.elapsed)
