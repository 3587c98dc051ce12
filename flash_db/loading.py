"""Loading related objects: select_related, prefetch_related/Prefetch, only/defer, streaming.

Async code cannot load a relation implicitly: SQLAlchemy's lazy load would need
I/O inside an attribute access, which fails with ``MissingGreenlet``. Flash DB
therefore loads relations explicitly -- ``select_related`` (a JOIN in the main
query), ``prefetch_related`` (one ``SELECT ... WHERE key IN (...)`` per relation
and level) and ``obj.fetch_related(db, ...)`` -- and turns the implicit load of
anything not loaded into :class:`~flash_db.exceptions.RelationNotLoaded`, which
names the attribute and the fix.

That check is a ``do_orm_execute`` listener on every SQLAlchemy ``Session``: a
relationship or column load that starts outside SQLAlchemy's greenlet (that is,
from plain async code) on an async engine is refused before any I/O. Relations
declared with a plain ``relationship(...)`` are covered without any ``lazy=``
setting, and synchronous code keeps lazy loading: inside
``await db.run_sync(fn)`` (or with a synchronous engine) a touched relation is
loaded as SQLAlchemy always does. A to-one relation whose object is already in
the session is returned without a query, also in async code.
"""

from __future__ import annotations

import gc
import inspect as pyinspect
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, event, inspect, tuple_
from sqlalchemy.engine import IteratorResult
from sqlalchemy.engine.result import SimpleResultMetaData
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
from sqlalchemy.orm import (
    Mapper,
    ORMExecuteState,
    QueryableAttribute,
    RelationshipProperty,
    Session,
    defer,
    joinedload,
    load_only,
    selectinload,
)
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.util.concurrency import in_greenlet

from flash_db.concurrency import LENDING_KEY, hold_session
from flash_db.exceptions import FieldError, RelationNotLoaded
from flash_db.lookups import pk_name
from flash_db.transaction import in_atomic

if TYPE_CHECKING:
    from flash_db.query import QuerySet, _State

__all__ = [
    "Prefetch",
    "apply_loading",
    "gc_paused",
    "prefetch",
    "prefetch_related_objects",
    "stream",
]


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a block builds many objects.

    Building model objects (or dicts) from rows allocates several containers per
    row, and CPython's collector runs every 700 net allocations, walking the
    young objects each time and, as they pile up, older ones: measured on a
    10,000-row fetch with 50,000 objects alive, 13.3 µs a row with the collector
    against 4.4 µs without. Loading creates no garbage cycles, so pausing it
    loses nothing; use it around synchronous code that builds objects. The
    ``selectinload`` queries of ``prefetch_related`` paths run while the ORM
    builds the rows, so other tasks may run during those queries with the
    collector still paused: collection is delayed by one query, no more. A
    collector the program disabled stays so.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


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
        queryset: QuerySet[Any, Any] | None = None,
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

    @property
    def is_custom(self) -> bool:
        """Whether this item needs Flash DB's own query (a queryset or a ``to_attr``)."""
        return self.queryset is not None or self.to_attr is not None

    def __repr__(self) -> str:
        return f"Prefetch({self.lookup!r}, queryset={self.queryset!r}, to_attr={self.to_attr!r})"


# -- RelationNotLoaded ---------------------------------------------------------------


@event.listens_for(Session, "do_orm_execute")
def _refuse_implicit_load(orm_execute_state: ORMExecuteState) -> None:
    """Raise ``RelationNotLoaded`` for a lazy or deferred load started from async code."""
    if in_greenlet():
        return  # run by AsyncSession (or inside run_sync): I/O is possible here
    if not (orm_execute_state.is_relationship_load or orm_execute_state.is_column_load):
        return
    session = orm_execute_state.session
    bind = session.get_bind(mapper=orm_execute_state.bind_mapper)
    if not bind.dialect.is_async:
        return  # a synchronous engine loads lazily as usual
    mapper = orm_execute_state.bind_mapper
    fallback = (mapper.class_ if mapper is not None else object, "?")
    if orm_execute_state.is_relationship_load:
        touched: tuple[type[Any], str] | None
        owner = orm_execute_state.lazy_loaded_from
        path = orm_execute_state.loader_strategy_path
        if owner is not None and path is not None:
            prop: Any = path[-1]  # the relationship being loaded
            touched = (owner.class_, prop.key)
        else:
            touched = _touched_attribute()
        model, attribute = touched or fallback
        relation = inspect(model).relationships.get(attribute) if attribute != "?" else None
        raise RelationNotLoaded(model, attribute, to_many=relation is not None and relation.uselist)
    model, attribute = _touched_attribute() or fallback
    raise RelationNotLoaded(model, attribute, column=True)


def _touched_attribute() -> tuple[type[Any], str] | None:
    """Return the (model, attribute) whose ``__get__`` started the load in progress.

    For a deferred or expired column SQLAlchemy's execute event has no public
    trace of the attribute being loaded, but the attribute access that
    triggered the load is a frame of ``QueryableAttribute.__get__`` on the
    stack. Only reached on the error path.
    """
    frame = pyinspect.currentframe()
    depth = 0
    while frame is not None and depth < 60:
        if frame.f_code.co_name == "__get__":
            descriptor = frame.f_locals.get("self")
            instance = frame.f_locals.get("instance")
            if isinstance(descriptor, QueryableAttribute) and instance is not None:
                return type(instance), descriptor.key
        frame = frame.f_back
        depth += 1
    return None


# -- statement options ----------------------------------------------------------------


def _relationship(model: type[Any], name: str, context: str) -> RelationshipProperty[Any]:
    mapper: Mapper[Any] = inspect(model)
    prop = mapper.relationships.get(name)
    if prop is None:
        raise FieldError(model, name, mapper.relationships.keys(), kind="relation", context=context)
    return prop


def _column_key(model: type[Any], name: str, context: str) -> str:
    mapper: Mapper[Any] = inspect(model)
    key = pk_name(model) if name == "pk" else name
    if key not in mapper.column_attrs:
        raise FieldError(model, name, [*mapper.column_attrs.keys(), "pk"], context=context)
    return key


def _walk(model: type[Any], path: str, context: str) -> list[RelationshipProperty[Any]]:
    """Return the relationships along ``path`` (``"posts__tags"``), validating every name."""
    props = []
    current = model
    for name in path.split("__"):
        prop = _relationship(current, name, context)
        props.append(prop)
        current = prop.mapper.class_
    return props


def _lookup(item: str | Prefetch) -> str:
    if isinstance(item, Prefetch):
        return item.lookup
    if isinstance(item, str):
        return item
    raise TypeError(f"prefetch_related() takes relation names or Prefetch(), got {item!r}.")


def apply_loading(stmt: Select[Any], model: type[Any], state: _State) -> Select[Any]:
    """Add the ``only``/``defer``/``select_related``/``prefetch_related`` options to ``stmt``.

    Names are validated here, so a bad one raises ``FieldError`` before any SQL.
    Plain ``prefetch_related`` paths become ``selectinload`` (SQLAlchemy batches
    them, also per chunk when streaming); ``Prefetch`` items with a queryset or a
    ``to_attr`` run after the rows are loaded, in :func:`prefetch`.
    """
    options: list[Any] = []  # loader options (joinedload, selectinload, load_only, defer)
    if state.only:
        keys = {_column_key(model, name, "only()") for name in state.only}
        keys.add(pk_name(model))
        options.append(load_only(*(getattr(model, key) for key in sorted(keys))))
    for name in state.defer:
        key = _column_key(model, name, "defer()")
        if key != pk_name(model):  # the primary key is always loaded, as in Django
            options.append(defer(getattr(model, key)))
    for path in state.select_related:
        options.append(_joined(model, path))
    custom: set[str] = set()
    for item in state.prefetch_related:
        lookup = _lookup(item)
        props = _walk(model, lookup, "prefetch_related()")
        if isinstance(item, Prefetch) and item.is_custom:
            _check_prefetch(props[-1], item.queryset, item.to_attr)
            if item.to_attr is None:
                custom.add(lookup)
            props = props[:-1]  # the last level is loaded by prefetch()
        if props:
            loader = selectinload(props[0].class_attribute)
            for prop in props[1:]:
                loader = loader.selectinload(prop.class_attribute)
            options.append(loader)
    plain = {_lookup(item) for item in state.prefetch_related if not _is_custom(item)}
    both = custom & plain
    if both:
        raise ValueError(
            f"prefetch_related() got {sorted(both)[0]!r} both as a name and as a "
            "Prefetch() with a queryset; use one of them (or give the Prefetch a to_attr)."
        )
    return stmt.options(*options) if options else stmt


def _is_custom(item: Any) -> bool:
    return isinstance(item, Prefetch) and item.is_custom


def _joined(model: type[Any], path: str) -> Any:
    current = model
    loader: Any = None  # a joinedload() chain
    for name in path.split("__"):
        prop = _relationship(current, name, "select_related()")
        if prop.uselist:
            mapper: Mapper[Any] = inspect(current)
            to_one = [p.key for p in mapper.relationships if not p.uselist]
            error = FieldError(
                current, name, to_one, kind="to-one relation", context="select_related()"
            )
            error.args = (
                f"{error} {current.__name__}.{name} is a to-many relation: "
                f"load it with prefetch_related({path!r}).",
            )
            raise error
        attr = prop.class_attribute
        loader = joinedload(attr) if loader is None else loader.joinedload(attr)
        current = prop.mapper.class_
    return loader


# -- prefetching ----------------------------------------------------------------------


async def prefetch(db: AsyncSession, objects: Sequence[Any], state: _State) -> None:
    """Run the ``Prefetch`` items of ``state`` that need their own query, for ``objects``."""
    if not objects or not state.prefetch_related or state.kind != "model":
        return
    items = [item for item in state.prefetch_related if _is_custom(item)]
    if items:
        await prefetch_related_objects(db, objects, *items)


async def prefetch_related_objects(
    db: AsyncSession, objects: Sequence[Any], *lookups: str | Prefetch
) -> None:
    """Load ``lookups`` (``"posts"``, ``"posts__tags"``, ``Prefetch(...)``) onto ``objects``.

    One query per relation and level (intermediate levels already loaded are
    reused); the last level of each lookup is always (re)loaded.
    """
    if not objects:
        return
    model = type(objects[0])
    for item in lookups:
        lookup = _lookup(item)
        props = _walk(model, lookup, "prefetch_related()")
        level: list[Any] = _unique(objects)
        for index, prop in enumerate(props):
            last = index == len(props) - 1
            if last:
                queryset = item.queryset if isinstance(item, Prefetch) else None
                to_attr = item.to_attr if isinstance(item, Prefetch) else None
                await _load_relation(db, level, prop, queryset, to_attr)
                break
            missing = [obj for obj in level if prop.key in inspect(obj).unloaded]
            if missing:
                await _load_relation(db, missing, prop, None, None)
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
    queryset: QuerySet[Any, Any] | None,
    to_attr: str | None,
) -> None:
    """Load ``prop`` for ``parents`` with one query per batch and assign the results."""
    from flash_db.query import QuerySet

    _check_prefetch(prop, queryset, to_attr)
    parent_model = prop.parent.class_
    if queryset is None:
        queryset = QuerySet(prop.mapper.class_)
    if prop.secondary is not None:
        # Many-to-many: parent key -> secondary column; join the secondary table.
        pairs = list(prop.synchronize_pairs)
    else:
        pairs = list(prop.local_remote_pairs)
    parent_mapper: Mapper[Any] = inspect(parent_model)
    local_keys = [parent_mapper.get_property_by_column(local).key for local, _ in pairs]
    remote_columns = [remote for _, remote in pairs]

    def key_of(parent: Any) -> tuple[Any, ...]:
        return tuple(getattr(parent, key) for key in local_keys)

    keys = _unique_keys(key_of(parent) for parent in parents)
    groups: dict[tuple[Any, ...], list[Any]] = {}
    children: list[Any] = []
    labels = [f"flash_prefetch_key_{i}" for i in range(len(remote_columns))]
    for start in range(0, len(keys), _IN_BATCH):
        batch = keys[start : start + _IN_BATCH]
        if not batch:
            break
        stmt = queryset._select()
        if prop.secondary is not None:
            stmt = stmt.join(prop.secondary, prop.secondaryjoin)
        stmt = stmt.add_columns(
            *(column.label(label) for column, label in zip(remote_columns, labels, strict=True))
        )
        if len(remote_columns) == 1:
            stmt = stmt.where(remote_columns[0].in_([key[0] for key in batch]))
        else:
            stmt = stmt.where(tuple_(*remote_columns).in_(batch))
        result = await db.execute(stmt)
        width = len(labels)
        for row in result:
            child = row[0]
            key = tuple(row[len(row) - width :])  # the key columns come last
            groups.setdefault(key, []).append(child)
            children.append(child)
    if children and queryset.state.prefetch_related:
        await prefetch(db, _unique(children), queryset.state)
    for parent in parents:
        found = groups.get(key_of(parent), [])
        value: Any = found if prop.uselist else (found[0] if found else None)
        if to_attr is not None:
            setattr(parent, to_attr, value)
        else:
            set_committed_value(parent, prop.key, value)


def _check_prefetch(
    prop: RelationshipProperty[Any], queryset: QuerySet[Any, Any] | None, to_attr: str | None
) -> None:
    target = prop.mapper.class_
    if queryset is not None and not issubclass(queryset.model, target):
        raise TypeError(
            f"Prefetch({prop.key!r}) needs a queryset of {target.__name__}, "
            f"got one of {queryset.model.__name__}."
        )
    parent_model = prop.parent.class_
    if to_attr is not None and to_attr in inspect(parent_model).attrs:
        raise ValueError(
            f"Prefetch to_attr={to_attr!r} conflicts with a field on {parent_model.__name__}."
        )


def _unique_keys(keys: Iterable[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return [key for key in dict.fromkeys(keys) if None not in key]


# -- streaming ------------------------------------------------------------------------


async def stream(
    qs: QuerySet[Any, Any], db: AsyncSession, chunk_size: int
) -> AsyncIterator[list[Any]]:
    """Yield the results of ``qs`` in lists of at most ``chunk_size``, from a server-side cursor.

    On PostgreSQL a server-side cursor lives in a transaction. Inside ``atomic``
    the stream runs on the session's own connection and transaction. Outside it,
    it runs on a connection of its own in a short read transaction (the session
    stays in autocommit mode, so writes in the loop body commit as usual); the
    objects belong to a private session until ``db`` takes them over
    (``save(db)``, ``db.add()``), and are detached when the stream ends. SQLite
    reads in chunks on the session's connection. ``prefetch_related`` runs once
    per chunk.
    """
    stmt = qs._select().execution_options(yield_per=chunk_size)
    kind = qs.state.kind
    bind = db.bind
    if bind is not None and bind.dialect.name == "postgresql" and not in_atomic(db):
        async with _engine_of(bind).connect() as raw:
            connection = await raw.execution_options(isolation_level="READ COMMITTED")
            async with connection.begin(), AsyncSession(bind=connection) as private:
                # Objects stay in the private session (its identity map holds them
                # weakly); a Flash session takes one over when it is added to it,
                # so obj.save(db) works in the loop.
                private.sync_session.info[LENDING_KEY] = True
                async for chunk in _chunks(qs, private, stmt, kind, chunk_size):
                    yield chunk
        return
    with hold_session(db):
        async for chunk in _chunks(qs, db, stmt, kind, chunk_size):
            yield chunk


async def _chunks(
    qs: QuerySet[Any, Any], db: AsyncSession, stmt: Select[Any], kind: str, chunk_size: int
) -> AsyncIterator[list[Any]]:
    result = await db.stream(stmt)
    try:
        keys = list(result.keys())
        async for rows in result.partitions(chunk_size):
            # Each partition is shaped as a Result, so the QuerySet turns it into
            # objects, dicts or tuples exactly as fetch() does (annotations included).
            partition: IteratorResult[Any] = IteratorResult(
                SimpleResultMetaData(keys), iter([tuple(r) for r in rows])
            )
            chunk = qs._rows(partition)
            if kind == "model":
                await prefetch(db, chunk, qs.state)
            yield chunk
    finally:
        await result.close()


def _engine_of(bind: AsyncConnection | AsyncEngine) -> AsyncEngine:
    return bind if isinstance(bind, AsyncEngine) else bind.engine
