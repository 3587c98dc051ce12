"""Flash DB through its public API only: ``objects``, ``atomic``, ``save``, ``delete``.

Used as a web request uses it: every single-row or per-query operation
(``create_autocommit``, ``filter_limit``, ``get_pk``, ``count``, ``update_one``,
``update_qs``, ``delete_one``, ``delete_qs``) opens its own ``async with
database.session() as db:`` inside the timed block, so the pool checkout (and
the PostgreSQL ``pool_pre_ping``) and the session's set-up and close are paid
per operation; ``fetch_all`` and ``values`` open one per pass.
``create_in_tx``, ``bulk_create`` and ``bulk_update`` are one transaction or
one call: one session for the timed call. The objects ``update_one`` and
``delete_one`` change are loaded beforehand (untimed) in a session of their
own; Flash DB objects are not tied to a session, so each is then saved or
deleted in a fresh one. ``update_qs`` and ``delete_qs`` load nothing:
``filter(pk=pk).update(db, ...)`` and ``filter(pk=pk).delete(db)`` each send
one statement.
"""

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
    """Flash DB: one session (one pooled connection) per operation, as in a request."""

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

    async def _load(self, pks: Sequence[int]) -> dict[int, BenchItem]:
        """Load the objects by pk in a session of their own (untimed)."""
        async with self._db.session() as db:
            return await BenchItem.objects.in_bulk(db, pks)

    async def create_autocommit(self, rows: Sequence[dict[str, Any]]) -> Outcome:
        """``objects.create`` each row in its own session (each commits on its own)."""
        objs = []
        with Clock() as clock:
            for row in rows:
                async with self._db.session() as db:
                    objs.append(await BenchItem.objects.create(db, **row))
        return Outcome(clock.elapsed, [obj.id for obj in objs])

    async def create_in_tx(self, rows: Sequence[dict[str, Any]]) -> Outcome:
        """``objects.create`` each row inside one ``atomic`` block (one session)."""
        objs = []
        async with self._db.session() as db:
            with Clock() as clock:
                async with atomic(db):
                    for row in rows:
                        objs.append(await BenchItem.objects.create(db, **row))
        return Outcome(clock.elapsed, [obj.id for obj in objs])

    async def bulk_create(self, rows: Sequence[dict[str, Any]]) -> Outcome | None:
        """``objects.bulk_create`` the rows as dicts, the input SA Core's bulk_create gets."""
        if not has_bulk()[0]:
            return None
        manager: Any = BenchItem.objects
        async with self._db.session() as db:
            with Clock() as clock:
                objs = await manager.bulk_create(db, rows)
        return Outcome(clock.elapsed, [obj.id for obj in objs])

    async def bulk_create_objects(self, rows: Sequence[dict[str, Any]]) -> Outcome | None:
        """``objects.bulk_create`` of model objects built from the rows (``BenchItem(**row)``).

        Building the objects is timed: SQLAlchemy's instrumented constructor runs
        for each one.
        """
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
        """``filter(level=k).order_by("id")[:20].fetch`` for each level, each in its own session."""
        out = []
        with Clock() as clock:
            for k in levels:
                async with self._db.session() as db:
                    out.append(
                        await BenchItem.objects.filter(level=k).order_by("id")[:20].fetch(db)
                    )
        return Outcome(clock.elapsed, [[_t(o) for o in objs] for objs in out])

    async def get_pk(self, pks: Sequence[int]) -> Outcome:
        """``objects.get(pk=...)`` each pk, each in its own session."""
        out = []
        with Clock() as clock:
            for pk in pks:
                async with self._db.session() as db:
                    out.append(await BenchItem.objects.get(db, pk=pk))
        return Outcome(clock.elapsed, [_t(o) for o in out])

    async def values(self, repeat: int) -> Outcome:
        """``objects.values().fetch`` every row ``repeat`` times (a fresh session each time)."""
        out = []
        with Clock() as clock:
            for _ in range(repeat):
                async with self._db.session() as db:
                    out.append(await BenchItem.objects.values().fetch(db))
        return Outcome(clock.elapsed, out)

    async def update_one(self, pks: Sequence[int], levels: Sequence[int]) -> Outcome:
        """Set ``level`` on each loaded object and ``save`` it in its own session."""
        by_pk = await self._load(pks)
        with Clock() as clock:
            for pk, level in zip(pks, levels, strict=True):
                async with self._db.session() as db:
                    obj = by_pk[pk]
                    obj.level = level
                    await obj.save(db)
        return Outcome(clock.elapsed)

    async def update_qs(self, pks: Sequence[int], levels: Sequence[int]) -> Outcome:
        """``filter(pk=pk).update(db, level=level)`` for each pair, each in its own session."""
        out = []
        with Clock() as clock:
            for pk, level in zip(pks, levels, strict=True):
                async with self._db.session() as db:
                    out.append(await BenchItem.objects.filter(pk=pk).update(db, level=level))
        return Outcome(clock.elapsed, out)

    async def bulk_update(self, pks: Sequence[int], levels: Sequence[int]) -> Outcome | None:
        """Set ``level`` on every loaded object and ``bulk_update`` them (None until it exists).

        One session: the objects are loaded in it (untimed), then changed and written.
        """
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
        """``filter(level=k).count`` for each level, each in its own session."""
        out = []
        with Clock() as clock:
            for k in levels:
                async with self._db.session() as db:
                    out.append(await BenchItem.objects.filter(level=k).count(db))
        return Outcome(clock.elapsed, out)

    async def delete_one(self, pks: Sequence[int]) -> Outcome:
        """``delete`` each loaded object in its own session."""
        by_pk = await self._load(pks)
        with Clock() as clock:
            for pk in pks:
                async with self._db.session() as db:
                    await by_pk[pk].delete(db)
        return Outcome(clock.elapsed)

    async def delete_qs(self, pks: Sequence[int]) -> Outcome:
        """``filter(pk=pk).delete(db)`` for each pk, each in its own session."""
        out = []
        with Clock() as clock:
            for pk in pks:
                async with self._db.session() as db:
                    out.append(await BenchItem.objects.filter(pk=pk).delete(db))
        return Outcome(clock.elapsed, out)
