"""Hand-written SQLAlchemy Core: the baseline every ratio is measured against.

Written the way the SQLAlchemy docs show it: one ``AsyncConnection`` per
workload in the default (non-autocommit) mode, ``commit()`` after each unit of
work, ``insert().returning()`` with ``insertmanyvalues`` for bulk inserts, and
an executemany ``UPDATE ... WHERE id = :b_id`` for the bulk update.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Column, Float, Integer, MetaData, String, Table, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from benchmarks.common import TABLE, Clock, Outcome

metadata = MetaData()
items = Table(
    TABLE,
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(50), nullable=False),
    Column("level", Integer, nullable=False, index=True),
    Column("score", Float, nullable=False),
)


class SACore:
    """SQLAlchemy Core with hand-written statements."""

    name = "SA Core"

    def __init__(self) -> None:
        self.engine: AsyncEngine | None = None

    async def open(self, url: str) -> None:
        """Create the engine (SQLAlchemy's defaults)."""
        self.engine = create_async_engine(url)

    async def close(self) -> None:
        """Dispose of the engine."""
        if self.engine is not None:
            await self.engine.dispose()

    @property
    def _engine(self) -> AsyncEngine:
        assert self.engine is not None
        return self.engine

    async def create_autocommit(self, rows: Sequence[dict[str, Any]]) -> Outcome:
        """Insert each row and commit it."""
        pks = []
        stmt = items.insert().returning(items.c.id)
        async with self._engine.connect() as conn:
            with Clock() as clock:
                for row in rows:
                    result = await conn.execute(stmt, row)
                    await conn.commit()
                    pks.append(result.scalar_one())
        return Outcome(clock.elapsed, pks)

    async def create_in_tx(self, rows: Sequence[dict[str, Any]]) -> Outcome:
        """Insert each row inside one transaction."""
        pks = []
        stmt = items.insert().returning(items.c.id)
        async with self._engine.connect() as conn:
            with Clock() as clock:
                async with conn.begin():
                    for row in rows:
                        result = await conn.execute(stmt, row)
                        pks.append(result.scalar_one())
        return Outcome(clock.elapsed, pks)

    async def bulk_create(self, rows: Sequence[dict[str, Any]]) -> Outcome:
        """Insert every row with one executemany ``INSERT ... RETURNING id``."""
        stmt = items.insert().returning(items.c.id)
        async with self._engine.connect() as conn:
            with Clock() as clock:
                result = await conn.execute(stmt, list(rows))
                pks = list(result.scalars())
                await conn.commit()
        return Outcome(clock.elapsed, pks)

    async def fetch_all(self, repeat: int) -> Outcome:
        """Select every row ``repeat`` times (Core rows are the 'objects')."""
        out = []
        stmt = select(items)
        async with self._engine.connect() as conn:
            with Clock() as clock:
                for _ in range(repeat):
                    out.append((await conn.execute(stmt)).all())
                    await conn.commit()
        return Outcome(clock.elapsed, [[tuple(r) for r in rows] for rows in out])

    async def filter_limit(self, levels: Sequence[int]) -> Outcome:
        """Run ``level == k ORDER BY id LIMIT 20`` for each level."""
        out = []
        stmt = select(items).where(items.c.level == bindparam("k")).order_by(items.c.id).limit(20)
        async with self._engine.connect() as conn:
            with Clock() as clock:
                for k in levels:
                    out.append((await conn.execute(stmt, {"k": k})).all())
                    await conn.commit()
        return Outcome(clock.elapsed, [[tuple(r) for r in rows] for rows in out])

    async def get_pk(self, pks: Sequence[int]) -> Outcome:
        """Select each row by primary key."""
        out = []
        stmt = select(items).where(items.c.id == bindparam("pk"))
        async with self._engine.connect() as conn:
            with Clock() as clock:
                for pk in pks:
                    out.append((await conn.execute(stmt, {"pk": pk})).one())
                    await conn.commit()
        return Outcome(clock.elapsed, [tuple(r) for r in out])

    async def values(self, repeat: int) -> Outcome:
        """Select every row as dicts ``repeat`` times."""
        out = []
        stmt = select(items)
        async with self._engine.connect() as conn:
            with Clock() as clock:
                for _ in range(repeat):
                    out.append([dict(m) for m in (await conn.execute(stmt)).mappings()])
                    await conn.commit()
        return Outcome(clock.elapsed, out)

    async def update_one(self, pks: Sequence[int], levels: Sequence[int]) -> Outcome:
        """Update each row by primary key and commit it."""
        stmt = items.update().where(items.c.id == bindparam("pk"))
        async with self._engine.connect() as conn:
            rows = (await conn.execute(select(items).where(items.c.id.in_(pks)))).all()
            await conn.commit()
            by_pk = {row.id: row for row in rows}
            with Clock() as clock:
                for pk, level in zip(pks, levels, strict=True):
                    row = by_pk[pk]
                    await conn.execute(stmt, {"pk": row.id, "level": level})
                    await conn.commit()
        return Outcome(clock.elapsed)

    async def bulk_update(self, pks: Sequence[int], levels: Sequence[int]) -> Outcome:
        """Update every row with one executemany UPDATE."""
        stmt = (
            items.update().where(items.c.id == bindparam("b_id")).values(level=bindparam("b_level"))
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(select(items).where(items.c.id.in_(pks)))).all()
            await conn.commit()
            by_pk = {row.id: row for row in rows}
            with Clock() as clock:
                params = [
                    {"b_id": by_pk[pk].id, "b_level": level}
                    for pk, level in zip(pks, levels, strict=True)
                ]
                result = await conn.execute(stmt, params)
                await conn.commit()
        # executemany rowcounts are not reported by every driver (asyncpg: -1).
        return Outcome(clock.elapsed, result.rowcount if result.rowcount >= 0 else None)

    async def count(self, levels: Sequence[int]) -> Outcome:
        """Count the rows of each level."""
        out = []
        stmt = select(func.count()).select_from(items).where(items.c.level == bindparam("k"))
        async with self._engine.connect() as conn:
            with Clock() as clock:
                for k in levels:
                    out.append((await conn.execute(stmt, {"k": k})).scalar_one())
                    await conn.commit()
        return Outcome(clock.elapsed, out)

    async def delete_one(self, pks: Sequence[int]) -> Outcome:
        """Delete each row by primary key and commit it."""
        stmt = items.delete().where(items.c.id == bindparam("pk"))
        async with self._engine.connect() as conn:
            rows = (await conn.execute(select(items.c.id).where(items.c.id.in_(pks)))).all()
            await conn.commit()
            with Clock() as clock:
                for row in rows:
                    await conn.execute(stmt, {"pk": row.id})
                    await conn.commit()
        return Outcome(clock.elapsed)


class SACoreAutocommit(SACore):
    """The same hand-written Core on an AUTOCOMMIT engine (Flash DB's commit model).

    Not in the default set: it shows what skipping BEGIN/COMMIT buys per
    statement (``--systems "SA Core,SA Core autocommit"``). In AUTOCOMMIT mode
    SQLAlchemy's ``conn.begin()`` sends no BEGIN, so its create_in_tx and
    bulk workloads are not transactions: compare the single-statement ones.
    """

    name = "SA Core autocommit"

    async def open(self, url: str) -> None:
        """Create the engine in the driver's AUTOCOMMIT mode."""
        self.engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
