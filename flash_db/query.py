"""QuerySet[M]: lazy, immutable query state, synchronous builders and async terminals.

A QuerySet holds names and expressions in a frozen dataclass; every builder
returns a copy (field by field). The SQLAlchemy statement is built inside the
terminal that runs it, so nothing touches the database, and no name is
resolved, before a terminal is awaited with a session. Statements of QuerySets
whose filters are plain lookups on the model's own columns are built once per
shape and reused with each call's values (see "statement templates" below).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import AsyncGenerator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Generic, Literal, Self, cast, overload

from sqlalchemy import (
    ColumnElement,
    Select,
    UniqueConstraint,
    bindparam,
    delete,
    func,
    inspect,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute, Session
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.sql.elements import UnaryExpression
from typing_extensions import TypeVar

from flash_db import signals
from flash_db.exceptions import FieldError, FlashDBError
from flash_db.expressions import Aggregate, Expression, F, OrderBy, Q
from flash_db.loading import apply_loading, gc_paused, prefetch, stream
from flash_db.lookups import Resolver, _outside, integer_range, pk_name
from flash_db.transaction import atomic, execute_write

if TYPE_CHECKING:
    from flash_db.models import Model

__all__ = ["QuerySet"]

M = TypeVar("M", bound="Model")
R = TypeVar("R", default=M)

_ResultKind = Literal["model", "dict", "tuple", "flat", "named"]
# Primary keys per "pk IN (...)" statement when deleting loaded rows (bound-parameter limits).
_PK_CHUNK = 10_000
# The largest LIMIT/OFFSET the databases take (a signed 64-bit integer).
MAX_ROWS = 2**63 - 1


def _check_rows(method: str, n: int | None) -> None:
    """Refuse a row count the databases cannot take, before any SQL is built."""
    if n is not None and n > MAX_ROWS:
        raise ValueError(
            f"{method} takes at most 2**63 - 1 (the largest LIMIT/OFFSET the databases "
            f"accept), got {n!r}."
        )


# -- statement templates ----------------------------------------------------------
#
# Building a statement costs more than running it: resolving the lookups and
# constructing the SELECT (~80 µs for a get by pk) and SQLAlchemy's cache key of
# the new statement object (~70 µs). A QuerySet whose filters are plain keyword
# lookups on the model's own columns (``filter(level=k)``, ``get(pk=x)``, the
# soft-delete ``deleted_at=None``) has a *shape*: everything but those values.
# Its statement is built once per shape with bound parameters in place of the
# values, by the same code as any other statement, and executed with the values.
# Values whose SQL depends on the value itself (None, integers outside the
# column's range, NUL characters, lists) are part of the shape or not templated.

_TEMPLATE_LOOKUPS = frozenset({"exact", "lt", "lte", "gt", "gte"})
# Values a lookup binds as they are (see lookups._bound/_wide): their SQL never changes.
_TEMPLATE_TYPES = frozenset(
    {int, str, float, bool, Decimal, dt.datetime, dt.date, dt.time, uuid.UUID}
)
# Templates kept per model; a model queried in more shapes starts over.
_TEMPLATE_LIMIT = 256


class _Templates:
    """One model's statement templates, and the integer range of each column."""

    __slots__ = ("attrs", "ranges", "statements")

    def __init__(self, model: type[Any]) -> None:
        mapper = model.__mapper__
        self.attrs = mapper.column_attrs
        self.ranges: dict[str, tuple[int, int] | None] = {
            prop.key: integer_range(prop.columns[0].type) for prop in mapper.column_attrs
        }
        if "pk" not in self.ranges:
            self.ranges["pk"] = self.ranges[pk_name(model)]
        self.statements: dict[tuple[Any, ...], Any] = {}


def _templates(model: type[Any]) -> _Templates:
    """Return ``model``'s templates (kept on the class, so they go with it)."""
    entry = model.__dict__.get("_flash_templates")
    if entry is None or entry.attrs is not model.__mapper__.column_attrs:
        entry = _Templates(model)
        # type.__setattr__: declarative's own __setattr__ would reset the mapper's memos.
        type.__setattr__(model, "_flash_templates", entry)
    return cast(_Templates, entry)


def _where_shape(
    entry: _Templates, where: tuple[Any, ...]
) -> tuple[tuple[Any, ...], list[Any]] | None:
    """Return ``(shape, values)`` of filters made of plain lookups on own columns, else None."""
    ranges = entry.ranges
    shape: list[Any] = []
    values: list[Any] = []
    for item in where:
        if type(item) is not Q or item.negated or item.connector != Q.AND:
            return None
        keys: list[Any] = []
        for child in item.children:
            if type(child) is not tuple:
                return None
            key, value = child
            name, _, lookup = key.partition("__")
            if name not in ranges or (lookup and lookup not in _TEMPLATE_LOOKUPS):
                return None
            kind = type(value)
            if value is None:
                if lookup not in ("", "exact"):
                    return None  # an error, raised by the lookup itself
                keys.append((key, None))
                continue
            if kind not in _TEMPLATE_TYPES:
                return None
            if kind is int:
                bounds = ranges[name]
                if bounds is not None and _outside(bounds, value):
                    return None  # settled before SQL (no match), as the lookup does
            elif kind is str and "\x00" in value:
                return None  # refused by the lookup
            keys.append((key, kind))
            values.append(value)
        shape.append(tuple(keys))
    return tuple(shape), values


def _template_where(where: tuple[Any, ...]) -> tuple[Any, ...]:
    """Return ``where`` with every non-None value replaced by a bound parameter."""
    result = []
    index = 0
    for item in where:
        q = Q()
        children = []
        for key, value in item.children:
            if value is not None:
                value = bindparam(f"flash_p{index}")
                index += 1
            children.append((key, value))
        q.children = children
        result.append(q)
    return tuple(result)


@dataclass(frozen=True, slots=True)
class _State:
    """Everything a QuerySet knows; never mutated, only replaced."""

    where: tuple[Any, ...] = ()
    order_by: tuple[Any, ...] | None = None
    reversed: bool = False
    limit: int | None = None
    offset: int | None = None
    distinct: bool = False
    distinct_fields: tuple[str, ...] = ()
    only: tuple[str, ...] = ()
    defer: tuple[str, ...] = ()
    select_related: tuple[str, ...] = ()
    prefetch_related: tuple[Any, ...] = ()
    annotations: tuple[tuple[str, Any], ...] = ()
    fields: tuple[str, ...] = ()
    kind: _ResultKind = "model"
    group_by: tuple[str, ...] = ()
    # For each annotation, how many filter() calls came before it (Django: those
    # restrict what an aggregate over the same to-many relation counts).
    annotation_filters: tuple[int, ...] = ()
    for_update: tuple[bool, bool, tuple[Any, ...]] | None = None


_STATE_FIELDS = tuple(f.name for f in dataclasses.fields(_State))


@dataclass(frozen=True, slots=True)
class QuerySet(Generic[M, R]):
    """A lazy, immutable query over one model; ``R`` is the type of each result."""

    model: type[M]
    state: _State = field(default_factory=_State)

    # -- builders -------------------------------------------------------------

    def _clone(self, **changes: Any) -> Self:
        # Field by field rather than dataclasses.replace(): a quarter of the cost, per builder call.
        state = self.state
        new_state = object.__new__(_State)
        for name in _STATE_FIELDS:
            object.__setattr__(new_state, name, changes.pop(name, getattr(state, name)))
        if changes:
            raise TypeError(f"Unknown QuerySet state {sorted(changes)!r}.")
        clone = object.__new__(type(self))
        object.__setattr__(clone, "model", self.model)
        object.__setattr__(clone, "state", new_state)
        return clone

    def all(self) -> Self:
        """Return a copy of this QuerySet."""
        return self._clone()

    def filter(self, *conditions: Any, **lookups: Any) -> Self:
        """Return a new QuerySet with the conditions and lookups ANDed to the filters."""
        if not conditions and not lookups:
            return self._clone()
        return self._clone(where=(*self.state.where, Q(*conditions, **lookups)))

    def exclude(self, *conditions: Any, **lookups: Any) -> Self:
        """Return a new QuerySet with NOT (conditions AND lookups) ANDed to the filters.

        Rows where a compared column is NULL are kept, as in Django.
        """
        if not conditions and not lookups:
            return self._clone()
        return self._clone(where=(*self.state.where, ~Q(*conditions, **lookups)))

    def order_by(self, *fields: str | Any) -> Self:
        """Return a new QuerySet ordered by ``fields`` (``"name"``, ``"-created_at"``, expressions).

        A later call replaces an earlier one; ``order_by()`` with no fields clears it.
        """
        return self._clone(order_by=tuple(fields), reversed=False)

    def reverse(self) -> Self:
        """Return a new QuerySet with the ordering flipped."""
        return self._clone(reversed=not self.state.reversed)

    def distinct(self, *fields: str) -> Self:
        """Return a new QuerySet with ``SELECT DISTINCT`` (PostgreSQL: ``DISTINCT ON (fields)``)."""
        return self._clone(distinct=True, distinct_fields=tuple(fields))

    def limit(self, n: int | None) -> Self:
        """Return a new QuerySet returning at most ``n`` rows."""
        if n is not None and n < 0:
            raise ValueError(f"limit() takes a non-negative number, got {n!r}.")
        _check_rows("limit()", n)
        return self._clone(limit=n)

    def offset(self, n: int | None) -> Self:
        """Return a new QuerySet skipping the first ``n`` rows."""
        if n is not None and n < 0:
            raise ValueError(f"offset() takes a non-negative number, got {n!r}.")
        _check_rows("offset()", n)
        return self._clone(offset=n)

    def __getitem__(self, item: slice) -> Self:
        """Slice the QuerySet (``qs[10:20]``): LIMIT/OFFSET, still lazy."""
        if not isinstance(item, slice):
            raise TypeError(
                "QuerySets support slicing (qs[a:b]) only; use await qs.first(db) or "
                f"(await qs.fetch(db))[i] for one row, not qs[{item!r}]."
            )
        if item.step not in (None, 1):
            raise ValueError("QuerySet slicing does not support a step.")
        start, stop = item.start, item.stop
        if (start is not None and start < 0) or (stop is not None and stop < 0):
            raise ValueError("Negative indexing is not supported on QuerySets.")
        base_offset = self.state.offset or 0
        base_limit = self.state.limit
        new_offset = base_offset + (start or 0)
        if stop is None:
            new_limit = None if base_limit is None else max(base_limit - (start or 0), 0)
        else:
            new_limit = max(stop - (start or 0), 0)
            if base_limit is not None:
                new_limit = min(new_limit, max(base_limit - (start or 0), 0))
        _check_rows("Slicing", new_offset)
        _check_rows("Slicing", new_limit)
        return self._clone(limit=new_limit, offset=new_offset or None)

    def only(self, *fields: str) -> Self:
        """Return a new QuerySet that loads only ``fields`` (and the primary key) now."""
        return self._clone(only=tuple(fields), defer=())

    def defer(self, *fields: str) -> Self:
        """Return a new QuerySet that does not load ``fields`` now."""
        return self._clone(defer=(*self.state.defer, *fields))

    def select_related(self, *relations: str) -> Self:
        """Return a new QuerySet that JOIN-loads the to-one ``relations``."""
        return self._clone(select_related=(*self.state.select_related, *relations))

    def prefetch_related(self, *relations: Any) -> Self:
        """Return a new QuerySet that loads ``relations`` with one extra query each."""
        return self._clone(prefetch_related=(*self.state.prefetch_related, *relations))

    def annotate(self, **expressions: Any) -> Self:
        """Return a new QuerySet with computed values set as attributes on each result.

        After ``values(*fields)``, aggregates group the rows by those fields (GROUP BY)
        and the annotations are added to each dict/tuple.
        """
        attrs = self.model.__mapper__.attrs
        for name, expression in expressions.items():
            if name in attrs or name == "pk":
                raise ValueError(
                    f"The annotation {name!r} conflicts with a field on {self.model.__name__}."
                )
            if not isinstance(expression, Expression | ColumnElement):
                raise TypeError(
                    f"annotate() takes expressions (F, Count, Exists, Value, SQLAlchemy "
                    f"expressions), got {name}={expression!r}."
                )
        state = self.state
        changes: dict[str, Any] = {
            "annotations": (*state.annotations, *expressions.items()),
            "annotation_filters": (
                *state.annotation_filters,
                *(len(state.where) for _ in expressions),
            ),
        }
        if state.kind != "model":
            new = tuple(name for name in expressions if name not in state.fields)
            if state.fields:
                changes["fields"] = (*state.fields, *new)
            grouping = any(
                isinstance(e, Expression) and e.contains_aggregate for e in expressions.values()
            )
            if grouping and not state.group_by:
                columns = tuple(prop.key for prop in self.model.__mapper__.column_attrs)
                changes["group_by"] = state.fields or columns
        return self._clone(**changes)

    def select_for_update(
        self, *, nowait: bool = False, skip_locked: bool = False, of: Sequence[Any] = ()
    ) -> Self:
        """Return a new QuerySet that locks its rows (``FOR UPDATE``; no effect on SQLite)."""
        return self._clone(for_update=(nowait, skip_locked, tuple(of)))

    def values(self, *fields: str) -> QuerySet[M, dict[str, Any]]:
        """Return a QuerySet whose results are dicts of ``fields`` (all columns by default)."""
        qs = self._clone(fields=tuple(fields), kind="dict")
        return cast("QuerySet[M, dict[str, Any]]", qs)  # only the result type changes

    @overload
    def values_list(
        self, *fields: str, flat: Literal[True], named: Literal[False] = False
    ) -> QuerySet[M, Any]: ...

    @overload
    def values_list(
        self, *fields: str, flat: Literal[False] = False, named: Literal[True]
    ) -> QuerySet[M, Row[Any]]: ...

    @overload
    def values_list(
        self, *fields: str, flat: Literal[False] = False, named: Literal[False] = False
    ) -> QuerySet[M, tuple[Any, ...]]: ...

    def values_list(
        self, *fields: str, flat: bool = False, named: bool = False
    ) -> QuerySet[M, Any]:
        """Return a QuerySet whose results are tuples (``flat=True``: single values)."""
        if flat and named:
            raise TypeError("values_list() takes flat=True or named=True, not both.")
        if flat and len(fields) != 1:
            raise TypeError(
                f"values_list(flat=True) takes exactly one field, got {len(fields)}: {fields!r}."
            )
        kind: _ResultKind = "flat" if flat else "named" if named else "tuple"
        qs = self._clone(fields=tuple(fields), kind=kind)
        return cast("QuerySet[M, Any]", qs)  # only the result type changes

    # -- statement building ---------------------------------------------------

    def _resolver(self) -> Resolver:
        return Resolver(self.model, grouping=bool(self.state.group_by))

    def _annotate(self, resolver: Resolver) -> None:
        """Resolve the annotations in order (each may use the ones before it)."""
        marks = self.state.annotation_filters
        for i, (name, expression) in enumerate(self.state.annotations):
            before = resolver.plain_aggregates
            resolver.flags.aggregate = False
            resolver.prior_filters = self.state.where[: marks[i] if i < len(marks) else 0]
            if isinstance(expression, Expression):
                column = expression.resolve(resolver)
            else:
                column = expression
            resolver.prior_filters = ()
            plain = resolver.plain_aggregates > before or resolver.flags.aggregate
            resolver.add_annotation(name, column, plain)

    def _where(self, resolver: Resolver) -> list[ColumnElement[bool]]:
        """Compile the filters; those on SQL aggregates go to ``resolver.having``."""
        where = []
        for item in self.state.where:
            resolver.flags.aggregate = False
            condition = resolver.compile(item)
            if resolver.flags.aggregate:
                resolver.having.append(condition)
            else:
                where.append(condition)
        return where

    def _group_by(self, resolver: Resolver) -> list[ColumnElement[Any]]:
        """Return GROUP BY: the ``values()`` fields, or the primary key for SQL aggregates."""
        if self.state.group_by:
            return [resolver.column(name, context="values()") for name in self.state.group_by]
        if resolver.aggregate_annotations:
            return [resolver.column("pk")]
        return []

    def _order(self, resolver: Resolver, *, default_pk: bool = False) -> list[Any]:
        state = self.state
        items: Iterable[Any]
        if state.order_by is None or (not state.order_by and state.reversed):
            # Grouped rows have no primary key: their default order is the grouping.
            default = state.group_by or ("pk",)
            items = default if (default_pk or state.reversed) else ()
        else:
            items = state.order_by
        result = []
        for item in items:
            ordering = self._ordering(item)
            if state.reversed:
                ordering = ordering.reversed() if isinstance(ordering, OrderBy) else ordering
            result.append(ordering.resolve(resolver) if isinstance(ordering, OrderBy) else ordering)
        return result

    def _ordering(self, item: Any) -> OrderBy | Any:
        if isinstance(item, str):
            descending = item.startswith("-")
            return OrderBy(F(item.lstrip("-")), descending=descending)
        if isinstance(item, OrderBy):
            return item
        if isinstance(item, Expression):
            return item.asc()
        if isinstance(item, InstrumentedAttribute):
            return OrderBy(F(item.key), descending=False)
        if isinstance(item, UnaryExpression | ColumnElement):
            if self.state.reversed:
                raise TypeError(
                    "reverse() cannot flip a raw SQLAlchemy ordering; use field names or F()."
                )
            return item
        raise TypeError(f"order_by() takes field names or expressions, got {item!r}.")

    def _value_columns(self, resolver: Resolver) -> list[ColumnElement[Any]]:
        names = self.state.fields or (
            *(prop.key for prop in self.model.__mapper__.column_attrs),
            *(name for name, _ in self.state.annotations),
        )
        return [resolver.column(name, context="values()").label(name) for name in names]

    def _select(self, *, default_pk: bool = False, resolver: Resolver | None = None) -> Select[Any]:
        """Build the SELECT for this QuerySet (names resolved, FieldError raised here).

        ``resolver`` is given for a subquery (``Exists``/``Subquery``): it selects
        from an alias of the model and resolves ``OuterRef`` in the enclosing query.
        """
        state = self.state
        if resolver is None:
            resolver = self._resolver()
        resolver.grouping = resolver.grouping or bool(state.group_by)
        self._annotate(resolver)
        if state.kind == "model":
            annotations = [resolver.annotations[name].label(name) for name, _ in state.annotations]
            stmt: Select[Any] = select(resolver.entity, *annotations)
        else:
            stmt = select(*self._value_columns(resolver))
            stmt = stmt.select_from(resolver.entity)
        where = self._where(resolver)
        order = self._order(resolver, default_pk=default_pk)
        group_by = self._group_by(resolver)
        stmt = resolver.apply_joins(stmt)
        if where:
            stmt = stmt.where(*where)
        if group_by:
            stmt = stmt.group_by(*group_by)
        if resolver.having:
            stmt = stmt.having(*resolver.having)
        if order:
            stmt = stmt.order_by(*order)
        if state.distinct:
            if state.distinct_fields:
                cols = [resolver.column(f, context="distinct()") for f in state.distinct_fields]
                stmt = stmt.ext(distinct_on(*cols))
            else:
                stmt = stmt.distinct()
        if state.limit is not None:
            stmt = stmt.limit(state.limit)
        if state.offset is not None:
            stmt = stmt.offset(state.offset)
        if state.for_update is not None:
            nowait, skip_locked, of = state.for_update
            stmt = stmt.with_for_update(nowait=nowait, skip_locked=skip_locked, of=of or None)
        if state.kind == "model":
            stmt = apply_loading(stmt, self.model, state)
        return stmt

    def _rows(self, result: Any) -> list[R]:
        kind = self.state.kind
        if kind == "model":
            if self.state.annotations:
                return [self._annotated(row) for row in result.all()]
            return list(result.scalars().all())
        rows: list[Any]
        if kind == "dict":
            # dict(zip()) over rows made plain tuples first (map(tuple) iterates each
            # Row in C): measured 0.4 µs a row, against 0.65-1.5 zipping the Row
            # itself and 2.4 copying its RowMapping.
            keys = list(result.keys())
            rows = [dict(zip(keys, row, strict=True)) for row in map(tuple, result.all())]
        elif kind == "flat":
            rows = list(result.scalars().all())
        elif kind == "named":
            rows = list(result.all())
        else:
            rows = list(map(tuple, result.all()))
        return rows

    def _annotated(self, row: Any) -> Any:
        """Return the model instance of ``row`` with its annotations set as attributes."""
        obj = row[0]
        for (name, _), value in zip(self.state.annotations, row[1:], strict=False):
            setattr(obj, name, value)
        return obj

    def _check_backend(self, db: AsyncSession) -> None:
        """Refuse what the session's database cannot do, before any SQL is sent."""
        if self.state.distinct_fields and db.get_bind().dialect.name != "postgresql":
            raise FlashDBError(
                f"distinct({', '.join(map(repr, self.state.distinct_fields))}) is DISTINCT ON, "
                "which only PostgreSQL supports; use distinct() without fields, or values(...)"
                ".distinct(), on this database."
            )

    def _statement(
        self, terminal: str, build: Callable[[Self], Any]
    ) -> tuple[Any, dict[str, Any] | None]:
        """Return ``build(self)`` and its parameters: a cached template when the shape allows.

        ``terminal`` names what ``build`` makes of the QuerySet (the rows, the
        first row, the count); see "statement templates" above.
        """
        state = self.state
        if (
            state.annotations
            or state.group_by
            or (state.for_update is not None and state.for_update[2])
            or (state.order_by is not None and any(type(o) is not str for o in state.order_by))
            or any(type(p) is not str for p in state.prefetch_related)
        ):
            return build(self), None
        entry = _templates(self.model)
        found = _where_shape(entry, state.where)
        if found is None:
            return build(self), None
        shape, values = found
        key = (
            terminal,
            shape,
            state.order_by,
            state.reversed,
            state.limit,
            state.offset,
            state.distinct,
            state.distinct_fields,
            state.only,
            state.defer,
            state.select_related,
            state.prefetch_related,
            state.fields,
            state.kind,
            state.for_update,
        )
        stmt = entry.statements.get(key)
        if stmt is None:
            stmt = build(self._clone(where=_template_where(state.where)))
            if len(entry.statements) >= _TEMPLATE_LIMIT:
                entry.statements.clear()
            entry.statements[key] = stmt
        if not values:
            return stmt, None
        return stmt, {f"flash_p{i}": value for i, value in enumerate(values)}

    async def _fetch_rows(self, db: AsyncSession, stmt: Any, params: Any) -> list[R]:
        """Run the SELECT and build the results in one synchronous step.

        The results are built right after the rows arrive, with the garbage
        collector paused (:func:`~flash_db.loading.gc_paused`): model objects
        through the ORM (``Session.execute``), other kinds as in :meth:`_execute`.
        """
        if self.state.kind == "model" or not _core_allowed(db):
            return await db.run_sync(_run_orm, stmt, params, self._rows)
        return await db.run_sync(_run_core, stmt, self.model.__mapper__, params, self._rows)

    async def _execute(self, db: AsyncSession, stmt: Any, params: Any = None) -> Any:
        """Run a statement whose rows are not model objects (count, values, aggregates).

        When nothing but Flash DB listens to the session's ORM execution, it runs as
        a Core statement on the session's connection: the same SQL, autoflush and
        ``SessionBusy`` guard, without the ORM execution layer (about a quarter of
        the CPU of a filtered count). Otherwise through ``db.execute`` as usual.
        """
        if not _core_allowed(db):
            return await db.execute(stmt, params)
        return await db.run_sync(_run_core, stmt, self.model.__mapper__, params)

    # -- terminals --------------------------------------------------------------

    async def fetch(self, db: AsyncSession) -> list[R]:
        """Run the query and return every result."""
        self._check_backend(db)
        stmt, params = self._statement("fetch", _build_select)
        rows = await self._fetch_rows(db, stmt, params)
        await prefetch(db, rows, self.state)
        return rows

    async def first(self, db: AsyncSession) -> R | None:
        """Return the first result by the ordering (else by primary key), or None."""
        self._check_backend(db)
        stmt, params = self._slice_one()._statement("first", _build_first)
        rows = await self._fetch_rows(db, stmt, params)
        await prefetch(db, rows, self.state)
        return rows[0] if rows else None

    async def last(self, db: AsyncSession) -> R | None:
        """Return the last result by the ordering (else by primary key), or None."""
        qs = self
        if qs.state.order_by is None:
            qs = qs.order_by("pk")
        return await qs.reverse().first(db)

    def _slice_one(self) -> Self:
        return self[:1]

    async def get(self, db: AsyncSession, *conditions: Any, **lookups: Any) -> R:
        """Return the one result matching the filters and ``conditions``/``lookups``.

        Raises ``Model.DoesNotExist`` for none and ``Model.MultipleObjectsReturned``
        for more than one.
        """
        qs = self
        if conditions or lookups:
            where = (*self.state.where, Q(*conditions, **lookups))
            qs = self._clone(
                where=where, limit=21 if self.state.limit is None else self.state.limit
            )
        elif qs.state.limit is None:
            qs = qs.limit(21)
        rows = await qs.fetch(db)
        if len(rows) == 1:
            return rows[0]
        model = cast(Any, self.model)  # the per-model exception classes are set on subclasses
        if not rows:
            raise model.DoesNotExist(f"{self.model.__name__} matching query does not exist.")
        count = "more than 20" if len(rows) > 20 else str(len(rows))
        raise model.MultipleObjectsReturned(
            f"get() returned more than one {self.model.__name__} -- it returned {count}!"
        )

    async def count(self, db: AsyncSession) -> int:
        """Return the number of rows (``SELECT count(*)``; no rows are loaded)."""
        self._check_backend(db)
        state = self.state
        sliced = state.limit is not None or state.offset is not None
        # values("posts__title") has one row per related row: count those rows.
        joined = state.kind != "model" and any("__" in name for name in state.fields)
        if sliced or state.distinct or state.annotations or joined:
            # Count the rows the query would return: DISTINCT applies to the selected
            # values (all columns of a model row are as distinct as its pk).
            fields = state.fields if state.kind != "model" and state.fields else ("pk",)
            if state.group_by or state.distinct_fields:
                inner = self._clone(order_by=())._select()
            else:
                inner = self._clone(order_by=(), kind="tuple", fields=fields)._select()
            stmt = select(func.count()).select_from(inner.subquery())
        else:
            stmt, params = self._statement("count", _build_count)
            return int((await self._execute(db, stmt, params)).scalar_one())
        return int((await self._execute(db, stmt)).scalar_one())

    def _count_select(self) -> Select[Any]:
        """Return ``SELECT count(*) FROM model [joins] WHERE filters``."""
        resolver = self._resolver()
        stmt = select(func.count()).select_from(self.model)
        where = self._where(resolver)
        stmt = resolver.apply_joins(stmt)
        if where:
            stmt = stmt.where(*where)
        return stmt

    async def exists(self, db: AsyncSession) -> bool:
        """Return whether any row matches (``SELECT EXISTS``; no rows are loaded)."""
        self._check_backend(db)
        if self.state.group_by:
            inner = self._clone(order_by=())._select()
            return bool((await self._execute(db, select(inner.exists()))).scalar())
        stmt, params = self._statement("exists", _build_exists)
        return bool((await self._execute(db, stmt, params)).scalar())

    async def in_bulk(
        self, db: AsyncSession, ids: Iterable[Any] | None = None, *, field_name: str = "pk"
    ) -> dict[Any, M]:
        """Return ``{key: object}`` for rows whose ``field_name`` is in ``ids`` (or all rows)."""
        qs = cast("QuerySet[M, M]", self._clone(kind="model", fields=()))
        key = pk_name(self.model) if field_name == "pk" else field_name
        column_attrs = self.model.__mapper__.column_attrs
        if key not in column_attrs:
            raise FieldError(
                self.model, field_name, [*column_attrs.keys(), "pk"], context="in_bulk()"
            )
        if not _is_unique(self.model, column_attrs[key].columns[0]):
            raise ValueError(
                f"in_bulk()'s field_name must be a unique field but {field_name!r} isn't "
                f"on {self.model.__name__}."
            )
        if ids is not None:
            ids = list(ids)
            if not ids:
                return {}
            qs = qs.filter(**{f"{key}__in": ids})
        return {getattr(obj, key): obj for obj in await qs.fetch(db)}

    async def latest(self, db: AsyncSession, field: str = "created_at") -> M:
        """Return the object with the largest ``field`` (rows where it is NULL are ignored).

        Raises ``DoesNotExist`` when there is none.
        """
        return await self._extreme(field, descending=True)._one(db)

    async def earliest(self, db: AsyncSession, field: str = "created_at") -> M:
        """Return the object with the smallest ``field`` (rows where it is NULL are ignored).

        Raises ``DoesNotExist`` when there is none.
        """
        return await self._extreme(field, descending=False)._one(db)

    def _extreme(self, field: str, *, descending: bool) -> QuerySet[M, M]:
        qs = cast("QuerySet[M, M]", self._clone(kind="model", fields=()))
        # NULL sorts first on one database and last on the other: leave it out.
        return qs.filter(**{f"{field}__isnull": False}).order_by(
            f"-{field}" if descending else field
        )

    async def _one(self, db: AsyncSession) -> R:
        result = await self.first(db)
        if result is None:
            model = cast(Any, self.model)
            raise model.DoesNotExist(f"{self.model.__name__} matching query does not exist.")
        return result

    async def aggregate(self, db: AsyncSession, **aggregates: Any) -> dict[str, Any]:
        """Return ``{name: value}`` for aggregate expressions over the matching rows."""
        if not aggregates:
            raise TypeError("aggregate() needs at least one name=aggregate.")
        for name, expression in aggregates.items():
            if not isinstance(expression, Expression | ColumnElement):
                raise TypeError(f"aggregate() takes aggregates, got {name}={expression!r}.")
        self._check_backend(db)
        state = self.state
        probe = self._resolver()
        self._annotate(probe)
        if (
            state.limit is not None
            or state.offset is not None
            or state.distinct
            or state.group_by
            or probe.aggregate_annotations
        ):
            stmt = self._aggregate_over_subquery(aggregates)
        else:
            many = [
                name
                for name, agg in aggregates.items()
                if isinstance(agg, Aggregate)
                and isinstance(agg.expression, str)
                and agg.expression != "*"
                and probe.split_many(agg.expression, "aggregate()", lookups=False) is not None
            ]
            if many and len(aggregates) > 1:
                # Joins for two to-many aggregates would multiply each other's rows:
                # compute each one in its own scalar subquery.
                stmt = select(
                    *(
                        self._aggregate_select({name: agg}).scalar_subquery().label(name)
                        for name, agg in aggregates.items()
                    )
                )
            else:
                stmt = self._aggregate_select(aggregates)
        return dict((await self._execute(db, stmt)).mappings().one())

    def _aggregate_select(self, aggregates: dict[str, Any]) -> Select[Any]:
        """Return ``SELECT agg, ... FROM model [joins] WHERE filters`` (no GROUP BY)."""
        resolver = self._resolver()
        self._annotate(resolver)
        where = self._where(resolver)
        resolver.grouping = True  # aggregates over the matching rows, not per row
        columns = [
            (expr.resolve(resolver) if isinstance(expr, Expression) else expr).label(name)
            for name, expr in aggregates.items()
        ]
        stmt = resolver.apply_joins(select(*columns).select_from(resolver.entity))
        if where:
            stmt = stmt.where(*where)
        return stmt

    def _aggregate_over_subquery(self, aggregates: dict[str, Any]) -> Select[Any]:
        """Return aggregates over this (sliced, distinct or grouped) query as a subquery."""
        inner = self._select().subquery()
        columns = []
        for name, agg in aggregates.items():
            source = agg.expression if isinstance(agg, Aggregate) else None
            if (
                not isinstance(agg, Aggregate)
                or agg.filter is not None
                or not isinstance(source, str)
            ):
                raise TypeError(
                    "aggregate() over a sliced, distinct or grouped QuerySet takes aggregates "
                    f"of its selected fields without filter=, like Sum('views'); got {agg!r}."
                )
            if source == "*":
                columns.append(agg.sql(None, None).label(name))
                continue
            if source not in inner.c:
                raise FieldError(self.model, source, inner.c.keys(), context="aggregate()")
            columns.append(agg.sql(inner.c[source], None).label(name))
        return select(*columns).select_from(inner)

    async def update(self, db: AsyncSession, **values: Any) -> int:
        """Update every matching row with ``values`` (which may be ``F`` expressions).

        Returns the number of rows matched. Sends one ``UPDATE``; validation does
        not run. Objects of this model already loaded in ``db`` get the new column
        values (read back with ``RETURNING``), so a later query or attribute read
        sees what the database holds, as in Django.
        """
        if not values:
            raise TypeError("update() needs at least one field=value.")
        self._refuse_sliced("update")
        resolver = self._resolver()
        values_resolver = self._resolver()
        column_attrs = self.model.__mapper__.column_attrs
        assignments: dict[str, Any] = {}
        for name, value in values.items():
            key = pk_name(self.model) if name == "pk" else name
            if key not in column_attrs:
                raise FieldError(self.model, name, [*column_attrs.keys()], context="update()")
            if isinstance(value, Expression):
                value = value.resolve(values_resolver)
            assignments[key] = value
        if values_resolver.joins or values_resolver.plain_aggregates:
            raise ValueError(
                "update() values may use F() on this model's own fields only, not related "
                "fields or aggregates; use a Subquery() with OuterRef() for those."
            )
        stmt = update(self.model).values(**assignments)
        stmt = stmt.where(*self._pk_filter(resolver)).execution_options(synchronize_session=False)
        loaded = {
            identity[0]: obj
            for obj in db.identity_map.values()
            if type(obj) is self.model
            and (identity := inspect(obj).identity) is not None
            and len(identity) == 1
        }
        if not loaded:
            result = await execute_write(db, stmt)
            return int(result.rowcount)
        # The session's identity map would hand the old values to later queries
        # (SQLAlchemy does not overwrite loaded objects): copy the new row values
        # in, without expiring anything (an expired attribute cannot load in async).
        keys = [prop.key for prop in self.model.__mapper__.column_attrs]
        pk = pk_name(self.model)
        returning = stmt.returning(getattr(self.model, pk), *(getattr(self.model, k) for k in keys))
        rows = (await execute_write(db, returning)).all()
        for row in rows:
            obj = loaded.get(row[0])
            if obj is not None:
                for key, value in zip(keys, row[1:], strict=True):
                    set_committed_value(obj, key, value)
        return len(rows)

    async def delete(self, db: AsyncSession) -> int:
        """Delete every matching row; return the number deleted.

        On soft-delete models this sets ``deleted_at`` on the rows not yet deleted
        instead (``hard_delete()`` removes rows). Sends one statement, unless a
        ``pre_delete``/``post_delete`` receiver is connected for the model: then
        the rows are loaded and the receivers run once per row, around one
        statement, all in one transaction.
        """
        return await self._delete(db, soft=bool(getattr(self.model, "__soft_delete__", False)))

    async def hard_delete(self, db: AsyncSession) -> int:
        """Delete every matching row, also on soft-delete models (signals as for ``delete``)."""
        return await self._delete(db, soft=False)

    async def _delete(self, db: AsyncSession, *, soft: bool) -> int:
        self._refuse_sliced("delete")
        qs = self.filter(deleted_at=None) if soft else self
        now = datetime.now(UTC) if soft else None
        if not signals.has_delete_receivers(self.model):
            return await qs._delete_rows(db, now)
        model_qs = cast("QuerySet[M, M]", qs._clone(kind="model", fields=(), annotations=()))
        async with atomic(db):
            objs = await model_qs.fetch(db)
            for obj in objs:
                await signals.pre_delete.send(self.model, instance=obj, db=db)
            count = 0
            base = QuerySet(self.model)
            for start in range(0, len(objs), _PK_CHUNK):
                pks = [obj.pk for obj in objs[start : start + _PK_CHUNK]]
                count += await base.filter(pk__in=pks)._delete_rows(db, now)
            for obj in objs:
                if now is not None:
                    set_committed_value(obj, "deleted_at", now)
                else:
                    db.expunge(obj)
            for obj in objs:
                await signals.post_delete.send(self.model, instance=obj, db=db)
        return count

    async def _delete_rows(self, db: AsyncSession, deleted_at: datetime | None) -> int:
        """Send the one DELETE (or, given ``deleted_at``, the soft-delete UPDATE)."""
        if deleted_at is not None:
            return await self.update(db, deleted_at=deleted_at)
        resolver = self._resolver()
        stmt = delete(self.model).where(*self._pk_filter(resolver))
        stmt = stmt.execution_options(synchronize_session=False)
        result = await execute_write(db, stmt)
        return int(result.rowcount)

    async def restore(self, db: AsyncSession) -> int:
        """Clear ``deleted_at`` on every matching deleted row of a soft-delete model.

        Use it through ``all_objects`` (``objects`` hides deleted rows):
        ``await Note.all_objects.filter(...).restore(db)``. Sends no signals.
        """
        if not getattr(self.model, "__soft_delete__", False):
            raise TypeError(
                f"restore() needs a SoftDeleteMixin model; {self.model.__name__} is not."
            )
        return await self.filter(deleted_at__isnull=False).update(db, deleted_at=None)

    def _refuse_sliced(self, method: str) -> None:
        if self.state.limit is not None or self.state.offset is not None:
            raise TypeError(f"Cannot {method}() a sliced QuerySet; filter it instead.")

    def _pk_filter(self, resolver: Resolver) -> list[ColumnElement[bool]]:
        """Return WHERE conditions for UPDATE/DELETE (a pk IN subquery when joins are needed)."""
        if self.state.annotations:
            pk = getattr(self.model, pk_name(self.model))
            inner = self._clone(kind="tuple", fields=("pk",), order_by=())._select()
            return [pk.in_(inner.scalar_subquery())]
        where = self._where(resolver)
        probe = resolver.apply_joins(select(self.model))
        if probe.get_final_froms() == select(self.model).get_final_froms():
            return where
        pk = getattr(self.model, pk_name(self.model))
        inner = resolver.apply_joins(select(pk)).where(*where)
        return [pk.in_(inner.scalar_subquery())]

    async def iterator(self, db: AsyncSession, chunk_size: int = 1000) -> AsyncGenerator[R, None]:
        """Stream the results in chunks of ``chunk_size`` without loading them all.

        A server-side cursor on PostgreSQL; ``prefetch_related`` runs per chunk.
        See :func:`flash_db.loading.stream` for the transaction it needs.
        """
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be positive, got {chunk_size!r}.")
        self._check_backend(db)
        async for chunk in stream(self, db, chunk_size):
            for row in chunk:
                yield row

    def stream(self, db: AsyncSession, chunk_size: int = 1000) -> AsyncGenerator[R, None]:
        """Stream the results (the same as :meth:`iterator`): ``async for obj in qs.stream(db)``."""
        return self.iterator(db, chunk_size)


def _is_unique(model: type[Any], column: Any) -> bool:
    """Return whether ``column`` alone is unique (primary key, unique flag, index or constraint)."""
    table = model.__table__
    if column.primary_key and len(table.primary_key.columns) == 1:
        return True
    if column.unique:
        return True
    for index in table.indexes:
        if index.unique and list(index.columns) == [column]:
            return True
    return any(
        isinstance(constraint, UniqueConstraint) and list(constraint.columns) == [column]
        for constraint in table.constraints
    )


def _core_allowed(db: AsyncSession) -> bool:
    """Return whether only Flash DB's own listener watches ``db``'s ORM execution.

    Then statements whose rows are not model objects may run as Core statements
    (a user's ``do_orm_execute`` listener must keep seeing them).
    """
    return len(db.sync_session.dispatch.do_orm_execute) == 1


def _build_select(qs: QuerySet[Any, Any]) -> Select[Any]:
    return qs._select()


def _build_first(qs: QuerySet[Any, Any]) -> Select[Any]:
    return qs._select(default_pk=True)


def _build_count(qs: QuerySet[Any, Any]) -> Select[Any]:
    return qs._count_select()


def _build_exists(qs: QuerySet[Any, Any]) -> Select[Any]:
    inner = qs._clone(order_by=(), kind="tuple", fields=("pk",))._select()
    return select(inner.exists())


def _run_core(
    session: Session,
    stmt: Any,
    mapper: Any,
    params: Any = None,
    rows_of: Callable[[Any], Any] | None = None,
) -> Any:
    """Autoflush as ``Session.execute`` would, then run ``stmt`` on the session's connection.

    Given ``rows_of``, return ``rows_of(result)``, built with the collector paused.
    """
    if session.autoflush:
        session.flush()
    result = session.connection(bind_arguments={"mapper": mapper}).execute(stmt, params)
    if rows_of is None:
        return result
    with gc_paused():
        return rows_of(result)


def _run_orm(session: Session, stmt: Any, params: Any, rows_of: Callable[[Any], Any]) -> Any:
    """Run an ORM SELECT and return ``rows_of(result)``, built with the collector paused."""
    result = session.execute(stmt, params)
    with gc_paused():
        return rows_of(result)
