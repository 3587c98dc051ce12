"""Hand-written SQLAlchemy Core: the baseline every ratio is measured against.

Written the way the SQLAlchemy docs show it, on an engine in the default
(non-autocommit) mode, used as a web request uses it: every single-row or
per-query operation (``create_autocommit``, ``filter_limit``, ``get_pk``,
``count``, ``update_one``, ``update_qs``, ``delete_one``, ``delete_qs``) takes
its own ``async with engine.connect() as conn:`` inside the timed block, with
``commit()`` after a write; a read is not committed (closing the connection
ends its transaction, the pool's reset-on-return ROLLBACK). ``fetch_all`` and
``values`` take one connection per pass. ``create_in_tx``, ``bulk_create`` and
``bulk_update`` are one transaction or one call on one connection:
``insert().returning()`` with ``insertmanyvalues`` for the bulk insert, an
executemany ``UPDATE ... WHERE id = :b_id`` for the bulk update. The rows
``update_one`` and ``delete_one`` change are loaded beforehand (untimed) on a
connection of their own; ``update_qs`` and ``delete_qs`` send the same
``UPDATE``/``DELETE ... WHERE id = :pk`` with nothing loaded.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Column, Float, Integer, MetaData, String, Table, bindparam, func, select
from sqlalchemy.engine import Row
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
        """Insert each row on its own connection and commit it."""
        pks = []
        stmt = items.insert().returning(items.c.id)
        with Clock() as clock:
            for row in rows:
                async with self._engine.connect() as conn:
                    result = await conn.execute(stmt, row)
                    await conn.commit()
                    pks.append(result.scalar_one())
        return Outcome(clock.elapsed, pks)

    async def create_in_tx(self, rows: Sequence[dict[str, Any]]) -> Outcome:
        """Insert each row inside one transaction (one connection)."""
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
        """Insert every row with one executemany ``INSERT ... RETURNING id`` (one connection)."""
        stmt = items.insert().returning(items.c.id)
        async with self._engine.connect() as conn:
            with Clock() as clock:
                result = await conn.execute(stmt, list(rows))
                pks = list(result.scalars())
                await conn.commit()
        return Outcome(clock.elapsed, pks)

    async def fetch_all(self, repeat: int) -> Outcome:
        """Select every row ``repeat`` times, a fresh connection each time (rows as objects)."""
        out = []
        stmt = select(items)
        with Clock() as clock:
            for _ in range(repeat):
                async with self._engine.connect() as conn:
                    out.append((await conn.execute(stmt)).all())
        return Outcome(clock.elapsed, [[tuple(r) for r in rows] for rows in out])

    async def filter_limit(self, levels: Sequence[int]) -> Outcome:
        """Run ``level == k ORDER BY id LIMIT 20`` for each level, each on its own connection."""
        out = []
        stmt = select(items).where(items.c.level == bindparam("k")).order_by(items.c.id).limit(20)
        with Clock() as clock:
            for k in levels:
                async with self._engine.connect() as conn:
                    out.append((await conn.execute(stmt, {"k": k})).all())
        return Outcome(clock.elapsed, [[tuple(r) for r in rows] for rows in out])

    async def get_pk(self, pks: Sequence[int]) -> Outcome:
        """Select each row by primary key, each on its own connection."""
        out = []
        stmt = select(items).where(items.c.id == bindparam("pk"))
        with Clock() as clock:
            for pk in pks:
                async with self._engine.connect() as conn:
                    out.append((await conn.execute(stmt, {"pk": pk})).one())
        return Outcome(clock.elapsed, [tuple(r) for r in out])

    async def values(self, repeat: int) -> Outcome:
        """Select every row as dicts ``repeat`` times, a fresh connection each time."""
        out = []
        stmt = select(items)
        with Clock() as clock:
            for _ in range(repeat):
                async with self._engine.connect() as conn:
                    out.append([dict(m) for m in (await conn.execute(stmt)).mappings()])
        return Outcome(clock.elapsed, out)

    async def _load(self, pks: Sequence[int]) -> dict[int, Row[Any]]:
        """Load the rows by pk on a connection of their own (untimed)."""
        async with self._engine.connect() as conn:
            rows = (await conn.execute(select(items).where(items.c.id.in_(pks)))).all()
        return {row.id: row for row in rows}

    async def update_one(self, pks: Sequence[int], levels: Sequence[int]) -> Outcome:
        """Update each loaded row by primary key on its own connection and commit it."""
        stmt = items.update().where(items.c.id == bindparam("pk"))
        by_pk = await self._load(pks)
        with Clock() as clock:
            for pk, level in zip(pks, levels, strict=True):
                async with self._engine.connect() as conn:
                    await conn.execute(stmt, {"pk": by_pk[pk].id, "level": level})
                    await conn.commit()
        return Outcome(clock.elapsed)

    async def update_qs(self, pks: Sequence[int], levels: Sequence[int]) -> Outcome:
        """``UPDATE ... WHERE id = :pk`` for each pair on its own connection, committed."""
        out = []
        stmt = items.update().where(items.c.id == bindparam("pk"))
        with Clock() as clock:
            for pk, level in zip(pks, levels, strict=True):
                async with self._engine.connect() as conn:
                    result = await conn.execute(stmt, {"pk": pk, "level": level})
                    await conn.commit()
                    out.append(result.rowcount)
        return Outcome(clock.elapsed, out)

    async def bulk_update(self, pks: Sequence[int], levels: Sequence[int]) -> Outcome:
        """Update every loaded row with one executemany UPDATE (one connection)."""
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
        """Count the rows of each level, each on its own connection."""
        out = []
        stmt = select(func.count()).select_from(items).where(items.c.level == bindparam("k"))
        with Clock() as clock:
            for k in levels:
                async with self._engine.connect() as conn:
                    out.append((await conn.execute(stmt, {"k": k})).scalar_one())
        return Outcome(clock.elapsed, out)

    async def delete_one(self, pks: Sequence[int]) -> Outcome:
        """Delete each loaded row by primary key on its own connection and commit it."""
        stmt = items.delete().where(items.c.id == bindparam("pk"))
        by_pk = await self._load(pks)
        with Clock() as clock:
            for pk in pks:
                async with self._engine.connect() as conn:
                    await conn.execute(stmt, {"pk": by_pk[pk].id})
                    await conn.commit()
        return Outcome(clock.elapsed)

    async def delete_qs(self, pks: Sequence[int]) -> Outcome:
        """``DELETE ... WHERE id = :pk`` for each pk on its own connection, committed."""
        out = []
        stmt = items.delete().where(items.c.id == bindparam("pk"))
        with Clock() as clock:
            for pk in pks:
                async with self._engine.connect() as conn:
                    result = await conn.execute(stmt, {"pk": pk})
                    await conn.commit()
                    out.append(result.rowcount)
        return Outcome(clock.elapsed, out)


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
