"""Loading rows into instances: fetching, prefetch_related/Prefetch, and streaming.

Async code cannot load a relation implicitly (that would need I/O inside an
attribute access), so Flash DB loads relations explicitly: ``select_related``
(a JOIN in the main query, see ``flash_db.compiler``), ``prefetch_related``
(one ``SELECT ... WHERE key IN (...)`` per relation and level, here) and
``obj.fetch_related(db, ...)``. Anything else touched raises
:class:`~flash_db.exceptions.RelationNotLoaded` (see ``flash_db.instances``).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Iterable, Sequence
from contextlib import aclosing
from typing import Any

from sqlalchemy import Select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
from sqlalchemy.orm import Mapper, RelationshipProperty

from flash_db import driver, execution
from flash_db.compiler import Layout, QueryState, prefetch_paths, select_statement
from flash_db.concurrency import hold_session
from flash_db.execution import Build
from flash_db.expressions import Queryable
from flash_db.instances import build, gc_paused, is_related, set_related
from flash_db.transaction import in_atomic

__all__ = [
    "Prefetch",
    "fetch",
    "prefetch_related_objects",
    "rows",
    "stream",
]

# Keys per ``IN (...)`` list: far below the bound-parameter limits of SQLite
# (32766) and asyncpg (32767), so a prefetch of up to this many parents is one query.
_IN_BATCH = 5000


class Prefetch:
    """A ``prefetch_related()`` item: load ``lookup`` with ``queryset``, optionally to ``to_attr``.

    ``Prefetch("posts", queryset=Post.objects.filter(published=True).order_by("-id"),
    to_attr="published_posts")`` sets ``user.published_posts`` to a list; without
    ``to_attr`` the relation itself (``user.posts``) holds the filtered objects.
    """

    __slots__ = ("lookup", "queryset", "to_attr")

    def __init__(
        self,
        lookup: str,
        queryset: Queryable | None = None,
        to_attr: str | None = None,
    ) -> None:
        if not isinstance(lookup, str) or not lookup:
            raise TypeError(f"Prefetch() takes a relation name such as 'posts', got {lookup!r}.")
        if queryset is not None and queryset.state.kind != "model":
            raise TypeError(
                "Prefetch() querysets must return model instances; "
                "drop values()/values_list() from the queryset."
            )
        if queryset is not None and (
            queryset.state.limit is not None or queryset.state.offset is not None
        ):
            raise TypeError("Prefetch() querysets cannot be sliced; filter them instead.")
        self.lookup = lookup
        self.queryset = queryset
        self.to_attr = to_attr

    def __repr__(self) -> str:
        return f"Prefetch({self.lookup!r}, queryset={self.queryset!r}, to_attr={self.to_attr!r})"


def rows(layout: Layout | None, kind: str) -> Build[list[Any]]:
    """Return the function that makes results of ``kind`` from a SELECT's rows and column names."""
    if kind == "model":
        assert layout is not None  # a model SELECT always has one

        def models(found: Sequence[Any], keys: Sequence[str]) -> list[Any]:
            return build(layout, found)

        return models
    if kind == "dict":

        def dicts(found: Sequence[Any], keys: Sequence[str]) -> list[Any]:
            # dict(zip()) over rows made plain tuples first (map(tuple) iterates each
            # Row in C): 0.4 µs a row, against 0.65-1.5 zipping the Row itself.
            # Not strict: the SELECT has exactly these columns (0.15 µs a row).
            return [dict(zip(keys, row)) for row in map(tuple, found)]  # noqa: B905

        return dicts
    if kind == "flat":
        return lambda found, keys: [row[0] for row in found]
    if kind == "named":
        return lambda found, keys: list(found)
    return lambda found, keys: list(map(tuple, found))


async def fetch(
    db: AsyncSession, stmt: Any, params: Any, layout: Layout | None, state: QueryState
) -> list[Any]:
    """Run a SELECT and return its results (instances, dicts, tuples), prefetches done."""
    results: list[Any] = await execution.fetch(
        db,
        stmt,
        params,
        rows(layout, state.kind),
        on_driver=state.kind != "named",  # named rows are SQLAlchemy's Row objects
        tuples=state.kind == "model",  # objects keep their row as their snapshot
    )
    if state.kind == "model" and state.prefetch_related and results:
        await prefetch_related_objects(db, results, *state.prefetch_related)
    return results


async def prefetch_related_objects(
    db: AsyncSession, objects: Sequence[Any], *lookups: str | Prefetch
) -> None:
    """Load ``lookups`` (``"posts"``, ``"posts__tags"``, ``Prefetch(...)``) onto ``objects``.

    One query per relation and level (intermediate levels already loaded are
    reused); the last level of each lookup is (re)loaded, once per call: as in
    Django, a path this call loaded already (``Prefetch("posts", queryset=qs)``
    then ``"posts__tags"`` or ``"posts"``) is not loaded again.
    """
    if not objects:
        return
    model = type(objects[0])
    items = zip(lookups, prefetch_paths(model, lookups), strict=True)
    done: set[str] = set()  # the paths loaded by this call
    for item, props in items:
        level: list[Any] = _unique(objects)
        names = [prop.key for prop in props]
        for index, prop in enumerate(props):
            if index == len(props) - 1:
                queryset = item.queryset if isinstance(item, Prefetch) else None
                to_attr = item.to_attr if isinstance(item, Prefetch) else None
                path = "__".join([*names[:index], to_attr or prop.key])
                if path in done:
                    break  # (a queryset for it was refused by compiler.prefetch_paths)
                await _load_relation(db, level, prop, queryset, to_attr)
                done.add(path)
                break
            path = "__".join(names[: index + 1])
            # An earlier level: reuse what is loaded, load what is not.
            missing = [obj for obj in level if not is_related(obj, prop.key)]
            if missing:
                await _load_relation(db, missing, prop, None, None)
            done.add(path)
            level = _unique(_related(level, prop.key))


def _unique(objects: Iterable[Any]) -> list[Any]:
    seen: set[int] = set()
    result = []
    for obj in objects:
        if obj is not None and id(obj) not in seen:
            seen.add(id(obj))
            result.append(obj)
    return result


def _related(objects: Iterable[Any], key: str) -> Iterable[Any]:
    for obj in objects:
        value = getattr(obj, key)
        if isinstance(value, Iterable):
            yield from value
        else:
            yield value


async def _load_relation(
    db: AsyncSession,
    parents: list[Any],
    prop: RelationshipProperty[Any],
    queryset: Queryable | None,
    to_attr: str | None,
) -> None:
    """Load ``prop`` for ``parents`` with one query per batch and assign the results."""
    model = prop.mapper.class_ if queryset is None else queryset.model
    state: QueryState = QueryState() if queryset is None else queryset.state
    parent_mapper: Mapper[Any] = prop.parent
    if prop.secondary is not None:
        # Many-to-many: parent key -> secondary column; join the secondary table.
        pairs = list(prop.synchronize_pairs)
    else:
        pairs = list(prop.local_remote_pairs)
    local_keys = [parent_mapper.get_property_by_column(local).key for local, _ in pairs]
    remote_columns = [remote for _, remote in pairs]

    def key_of(parent: Any) -> tuple[Any, ...]:
        loaded = parent.__dict__
        return tuple(loaded.get(key) for key in local_keys)

    keys = [key for key in dict.fromkeys(key_of(parent) for parent in parents) if None not in key]
    base, layout = select_statement(model, state.clone(prefetch_related=()))
    if prop.secondary is not None:
        base = base.join(prop.secondary, prop.secondaryjoin)
    width = len(remote_columns)
    base = base.add_columns(
        *(column.label(f"flash_prefetch_key_{i}") for i, column in enumerate(remote_columns))
    )
    assert layout is not None
    groups: dict[tuple[Any, ...], list[Any]] = {}
    children: list[Any] = []
    for start in range(0, len(keys), _IN_BATCH):
        batch = keys[start : start + _IN_BATCH]
        if len(remote_columns) == 1:
            stmt: Select[Any] = base.where(remote_columns[0].in_([key[0] for key in batch]))
        else:
            stmt = base.where(tuple_(*remote_columns).in_(batch))
        found = await execution.fetch(db, stmt, None, _with_keys(layout, width))
        for child, key in found:
            groups.setdefault(key, []).append(child)
            children.append(child)
    if children and state.prefetch_related:
        await prefetch_related_objects(db, children, *state.prefetch_related)
    for parent in parents:
        value: Any = groups.get(key_of(parent), [])
        if not prop.uselist:
            value = value[0] if value else None
        if to_attr is not None:
            setattr(parent, to_attr, value)
        else:
            set_related(parent, prop.key, value)


def _with_keys(layout: Layout, width: int) -> Any:
    """Return a result builder for rows of ``layout`` followed by ``width`` key columns."""

    def objects_and_keys(
        found: Sequence[Any], keys: Sequence[str]
    ) -> list[tuple[Any, tuple[Any, ...]]]:
        rows = [tuple(row) for row in found]
        objects = build(layout, [row[:-width] for row in rows])
        return [(obj, row[-width:]) for obj, row in zip(objects, rows, strict=True)]

    return objects_and_keys


# -- streaming ------------------------------------------------------------------------


async def stream(
    db: AsyncSession, stmt: Any, layout: Layout | None, state: QueryState, chunk_size: int
) -> AsyncGenerator[list[Any]]:
    """Yield the results of a SELECT in lists of at most ``chunk_size``, from a server-side cursor.

    On PostgreSQL a server-side cursor lives in a transaction. Inside ``atomic``
    the stream runs on the session's own connection and transaction. Outside it,
    it reads a ``WITH HOLD`` cursor on the session's own connection
    (``flash_db.driver.HeldCursor``): no second pooled connection, so streams
    cannot deadlock the pool, and writes in the loop body commit as usual (the
    objects, tied to no session, can be saved with ``db``). A statement the
    driver path cannot send (``IN`` lists, ``driver_path=False``, named rows) streams on a
    connection of its own in a short read transaction instead. SQLite reads in
    chunks on the session's connection. ``prefetch_related`` runs once per
    chunk, on ``db``.
    """
    build_rows = rows(layout, state.kind)
    postgres = db.get_bind().dialect.name == "postgresql"
    # values_list(named=True) yields SQLAlchemy's Row objects: SQLAlchemy's path.
    direct = postgres and not in_atomic(db) and state.kind != "named"
    held = driver.held_cursor(db, stmt) if direct else None
    if held is not None:
        with hold_session(db):
            async with aclosing(held.chunks(db, chunk_size)) as held_chunks:
                async for found in held_chunks:
                    with gc_paused():
                        chunk = build_rows(found, held.keys)
                    if state.kind == "model" and state.prefetch_related:
                        await prefetch_related_objects(db, chunk, *state.prefetch_related)
                    yield chunk
        return
    stmt = stmt.execution_options(yield_per=chunk_size)
    bind = db.bind
    if postgres and not in_atomic(db):
        engine = bind.engine if isinstance(bind, AsyncConnection) else bind
        if not isinstance(engine, AsyncEngine):
            raise TypeError(f"iterator() needs a session bound to an async engine, not {bind!r}.")
        async with engine.connect() as raw:
            connection = await raw.execution_options(isolation_level="READ COMMITTED")
            async with (
                connection.begin(),
                aclosing(_chunks(db, connection, stmt, build_rows, state, chunk_size)) as chunks,
            ):
                async for chunk in chunks:
                    yield chunk
        return
    with hold_session(db):
        connection = await db.connection()
        async with aclosing(_chunks(db, connection, stmt, build_rows, state, chunk_size)) as chunks:
            async for chunk in chunks:
                yield chunk


async def _chunks(
    db: AsyncSession,
    connection: AsyncConnection,
    stmt: Any,
    build_rows: Any,
    state: QueryState,
    chunk_size: int,
) -> AsyncGenerator[list[Any]]:
    result = await connection.stream(stmt)
    try:
        keys = list(result.keys())
        async for partition in result.partitions(chunk_size):
            with gc_paused():
                chunk = build_rows(partition, keys)
            if state.kind == "model" and state.prefetch_related:
                await prefetch_related_objects(db, chunk, *state.prefetch_related)
            yield chunk
    finally:
        await result.close()
