"""Hand-written SQLAlchemy 2 ORM: an ``AsyncSession`` used the way its docs show.

One session per workload with SQLAlchemy's defaults (``expire_on_commit=False``
as the asyncio docs recommend), ``session.commit()`` after each unit of work,
``add_all`` + commit for the bulk insert, and changed attributes flushed by one
commit for the bulk update (the unit of work batches same-shaped UPDATEs).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Float, Integer, String, func, select
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from benchmarks.common import TABLE, Clock, Outcome, RowTuple


class Base(DeclarativeBase):
    """The declarative base of this module's one model."""


class Item(Base):
    """The benchmark row."""

    __tablename__ = TABLE
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(50))
    level: Mapped[int] = mapped_column(index=True)
    score: Mapped[float] = mapped_column(Float)


def _t(obj: Item) -> RowTuple:
    return (obj.id, obj.name, obj.level, obj.score)


class SAORM:
    """SQLAlchemy 2 ORM with hand-written queries."""

    name = "SA ORM"

    def __init__(self) -> None:
        self.engine: AsyncEngine | None = None
        self.sessions: async_sessionmaker[AsyncSession] | None = None

    async def open(self, url: str) -> None:
        """Create the engine and the session factory."""
        self.engine = create_async_engine(url)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    async def close(self) -> None:
        """Dispose of the engine."""
        if self.engine is not None:
            await self.engine.dispose()

    def _session(self) -> AsyncSession:
        assert self.sessions is not None
        return self.sessions()

    async def create_autocommit(self, rows: Sequence[dict[str, Any]]) -> Outcome:
        """Add each object and commit it."""
        objs = []
        async with self._session() as session:
            with Clock() as clock:
                for row in rows:
                    obj = Item(**row)
                    session.add(obj)
                    await session.commit()
                    objs.append(obj)
        return Outcome(clock.elapsed, [obj.id for obj in objs])

    async def create_in_tx(self, rows: Sequence[dict[str, Any]]) -> Outcome:
        """Add and flush each object inside one transaction."""
        objs = []
        async with self._session() as session:
            with Clock() as clock:
                async with session.begin():
                    for row in rows:
                        obj = Item(**row)
                        session.add(obj)
                        await session.flush()
                        objs.append(obj)
        return Outcome(clock.elapsed, [obj.id for obj in objs])

    async def bulk_create(self, rows: Sequence[dict[str, Any]]) -> Outcome:
        """``add_all`` every object and commit."""
        async with self._session() as session:
            with Clock() as clock:
                objs = [Item(**row) for row in rows]
                session.add_all(objs)
                await session.commit()
        return Outcome(clock.elapsed, [obj.id for obj in objs])

    async def fetch_all(self, repeat: int) -> Outcome:
        """Load every row as objects ``repeat`` times (a fresh session each time)."""
        out = []
        stmt = select(Item)
        with Clock() as clock:
            for _ in range(repeat):
                async with self._session() as session:
                    out.append((await session.scalars(stmt)).all())
        return Outcome(clock.elapsed, [[_t(o) for o in objs] for objs in out])

    async def filter_limit(self, levels: Sequence[int]) -> Outcome:
        """Run ``level == k ORDER BY id LIMIT 20`` for each level."""
        out = []
        async with self._session() as session:
            with Clock() as clock:
                for k in levels:
                    stmt = select(Item).where(Item.level == k).order_by(Item.id).limit(20)
                    out.append((await session.scalars(stmt)).all())
                    await session.commit()
        return Outcome(clock.elapsed, [[_t(o) for o in objs] for objs in out])

    async def get_pk(self, pks: Sequence[int]) -> Outcome:
        """``session.get`` each pk."""
        out = []
        async with self._session() as session:
            with Clock() as clock:
                for pk in pks:
                    obj = await session.get(Item, pk)
                    await session.commit()
                    out.append(obj)
        return Outcome(clock.elapsed, [_t(o) for o in out if o is not None])

    async def values(self, repeat: int) -> Outcome:
        """Select every row's columns as dicts ``repeat`` times."""
        out = []
        stmt = select(Item.id, Item.name, Item.level, Item.score)
        async with self._session() as session:
            with Clock() as clock:
                for _ in range(repeat):
                    out.append([dict(m) for m in (await session.execute(stmt)).mappings()])
                    await session.commit()
        return Outcome(clock.elapsed, out)

    async def _load(self, session: AsyncSession, pks: Sequence[int]) -> dict[int, Item]:
        objs = (await session.scalars(select(Item).where(Item.id.in_(pks)))).all()
        await session.commit()
        return {obj.id: obj for obj in objs}

    async def update_one(self, pks: Sequence[int], levels: Sequence[int]) -> Outcome:
        """Set ``level`` on each loaded object and commit it."""
        async with self._session() as session:
            by_pk = await self._load(session, pks)
            with Clock() as clock:
                for pk, level in zip(pks, levels, strict=True):
                    by_pk[pk].level = level
                    await session.commit()
        return Outcome(clock.elapsed)

    async def bulk_update(self, pks: Sequence[int], levels: Sequence[int]) -> Outcome:
        """Set ``level`` on every loaded object and commit once."""
        async with self._session() as session:
            by_pk = await self._load(session, pks)
            with Clock() as clock:
                for pk, level in zip(pks, levels, strict=True):
                    by_pk[pk].level = level
                await session.commit()
        return Outcome(clock.elapsed, len(pks))

    async def count(self, levels: Sequence[int]) -> Outcome:
        """Count the rows of each level."""
        out = []
        async with self._session() as session:
            with Clock() as clock:
                for k in levels:
                    stmt = select(func.count()).select_from(Item).where(Item.level == k)
                    out.append((await session.execute(stmt)).scalar_one())
                    await session.commit()
        return Outcome(clock.elapsed, out)

    async def delete_one(self, pks: Sequence[int]) -> Outcome:
        """Delete each loaded object and commit it."""
        async with self._session() as session:
            by_pk = await self._load(session, pks)
            with Clock() as clock:
                for pk in pks:
                    await session.delete(by_pk[pk])
                    await session.commit()
        return Outcome(clock.elapsed)
