"""Hand-written SQLAlchemy 2 ORM: an ``AsyncSession`` used the way its docs show.

SQLAlchemy's defaults (``expire_on_commit=False`` as the asyncio docs
recommend), used as a web request uses it: every single-row or per-query
operation (``create_autocommit``, ``filter_limit``, ``get_pk``, ``count``,
``update_one``, ``update_qs``, ``delete_one``, ``delete_qs``) opens its own
``async with sessionmaker() as session:`` inside the timed block, with
``session.commit()`` after a write; a read is not committed (closing the
session ends its transaction). ``fetch_all``
and ``values`` open one session per pass. ``create_in_tx``, ``bulk_create``
and ``bulk_update`` are one transaction or one call in one session: ``add_all``
+ commit for the bulk insert, changed attributes flushed by one commit for the
bulk update (the unit of work batches same-shaped UPDATEs).

The objects ``update_one`` and ``delete_one`` change are loaded beforehand
(untimed) in a session that is then closed, which leaves them detached. Each
operation re-attaches its object to a fresh session (``session.add`` /
``session.delete`` accept a detached object) without reloading it, so the
timed work is the one UPDATE or DELETE and its commit, as for Flash DB's
``save``/``delete`` of an object loaded elsewhere; a request that loads by pk,
changes and saves would pay one SELECT more.

``update_qs`` and ``delete_qs`` load nothing: an ORM-enabled
``update(Item).where(Item.id == pk)`` (or ``delete``) run by
``session.execute`` and committed, SQLAlchemy's form of a QuerySet write
(with its default ``synchronize_session``, which has no objects to match in a
fresh session).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import Float, Integer, String, delete, func, select, update
from sqlalchemy.engine import CursorResult, Result
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


def _rowcount(result: Result[Any]) -> int:
    """Return the rows an ORM-enabled UPDATE/DELETE matched (a ``CursorResult`` at runtime)."""
    return cast(CursorResult[Any], result).rowcount


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
        """Add each object in its own session and commit it."""
        objs = []
        with Clock() as clock:
            for row in rows:
                async with self._session() as session:
                    obj = Item(**row)
                    session.add(obj)
                    await session.commit()
                    objs.append(obj)
        return Outcome(clock.elapsed, [obj.id for obj in objs])

    async def create_in_tx(self, rows: Sequence[dict[str, Any]]) -> Outcome:
        """Add and flush each object inside one transaction (one session)."""
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
        """``add_all`` every object and commit (one session)."""
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
        """Run ``level == k ORDER BY id LIMIT 20`` for each level, each in its own session."""
        out = []
        with Clock() as clock:
            for k in levels:
                async with self._session() as session:
                    stmt = select(Item).where(Item.level == k).order_by(Item.id).limit(20)
                    out.append((await session.scalars(stmt)).all())
        return Outcome(clock.elapsed, [[_t(o) for o in objs] for objs in out])

    async def get_pk(self, pks: Sequence[int]) -> Outcome:
        """``session.get`` each pk, each in its own session."""
        out = []
        with Clock() as clock:
            for pk in pks:
                async with self._session() as session:
                    out.append(await session.get(Item, pk))
        return Outcome(clock.elapsed, [_t(o) for o in out if o is not None])

    async def values(self, repeat: int) -> Outcome:
        """Select every row's columns as dicts ``repeat`` times (a fresh session each time)."""
        out = []
        stmt = select(Item.id, Item.name, Item.level, Item.score)
        with Clock() as clock:
            for _ in range(repeat):
                async with self._session() as session:
                    out.append([dict(m) for m in (await session.execute(stmt)).mappings()])
        return Outcome(clock.elapsed, out)

    async def _load(self, pks: Sequence[int]) -> dict[int, Item]:
        """Load the objects by pk in a session of their own (untimed); they leave it detached."""
        async with self._session() as session:
            objs = (await session.scalars(select(Item).where(Item.id.in_(pks)))).all()
        return {obj.id: obj for obj in objs}

    async def update_one(self, pks: Sequence[int], levels: Sequence[int]) -> Outcome:
        """``add`` each loaded (detached) object to its own session, set ``level``, commit.

        No reload: ``session.add`` re-attaches the detached object with its loaded
        state, so the commit sends the one UPDATE, as Flash DB's ``save`` does.
        """
        by_pk = await self._load(pks)
        with Clock() as clock:
            for pk, level in zip(pks, levels, strict=True):
                async with self._session() as session:
                    obj = by_pk[pk]
                    session.add(obj)
                    obj.level = level
                    await session.commit()
        return Outcome(clock.elapsed)

    async def update_qs(self, pks: Sequence[int], levels: Sequence[int]) -> Outcome:
        """``session.execute(update(Item)...)`` for each pair in its own session, committed."""
        out = []
        with Clock() as clock:
            for pk, level in zip(pks, levels, strict=True):
                async with self._session() as session:
                    stmt = update(Item).where(Item.id == pk).values(level=level)
                    result = await session.execute(stmt)
                    await session.commit()
                    out.append(_rowcount(result))
        return Outcome(clock.elapsed, out)

    async def bulk_update(self, pks: Sequence[int], levels: Sequence[int]) -> Outcome:
        """Set ``level`` on every loaded object and commit once (one session, loaded untimed)."""
        async with self._session() as session:
            objs = (await session.scalars(select(Item).where(Item.id.in_(pks)))).all()
            await session.commit()
            by_pk = {obj.id: obj for obj in objs}
            with Clock() as clock:
                for pk, level in zip(pks, levels, strict=True):
                    by_pk[pk].level = level
                await session.commit()
        return Outcome(clock.elapsed, len(pks))

    async def count(self, levels: Sequence[int]) -> Outcome:
        """Count the rows of each level, each in its own session."""
        out = []
        with Clock() as clock:
            for k in levels:
                async with self._session() as session:
                    stmt = select(func.count()).select_from(Item).where(Item.level == k)
                    out.append((await session.execute(stmt)).scalar_one())
        return Outcome(clock.elapsed, out)

    async def delete_one(self, pks: Sequence[int]) -> Outcome:
        """``session.delete`` each loaded (detached) object in its own session and commit.

        No reload: ``session.delete`` attaches the detached object and the commit
        sends the one DELETE.
        """
        by_pk = await self._load(pks)
        with Clock() as clock:
            for pk in pks:
                async with self._session() as session:
                    await session.delete(by_pk[pk])
                    await session.commit()
        return Outcome(clock.elapsed)

    async def delete_qs(self, pks: Sequence[int]) -> Outcome:
        """``session.execute(delete(Item)...)`` for each pk in its own session, committed."""
        out = []
        with Clock() as clock:
            for pk in pks:
                async with self._session() as session:
                    result = await session.execute(delete(Item).where(Item.id == pk))
                    await session.commit()
                    out.append(_rowcount(result))
        return Outcome(clock.elapsed, out)
