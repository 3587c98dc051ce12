"""QuerySet[M]: lazy, immutable query state, synchronous builders and async terminals.

A QuerySet holds its model and a :class:`~flash_db.compiler.QueryState` (names
and expressions, never SQL); every builder returns a copy. The statement is
built by the compiler inside the terminal that runs it (once per shape for
plain lookups: see "statement templates" in ``flash_db.compiler``), so nothing
touches the database, and no name is resolved, before a terminal is awaited
with a session. Every terminal that returns model instances returns new ones,
holding the row as it is now (SPEC §2.1).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Iterable, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, Generic, Literal, Self, cast, overload

from sqlalchemy import ColumnElement, Date, DateTime, UniqueConstraint
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession
from typing_extensions import TypeVar

from flash_db import compiler, execution, loading, signals
from flash_db.compiler import (
    MAX_ROWS,
    Layout,
    QueryState,
    ResultKind,
    aggregate_statement,
    check_backend,
    delete_statement,
    select_statement,
    template,
    update_statement,
    write_template,
)
from flash_db.constructs import Explain
from flash_db.exceptions import FieldError
from flash_db.expressions import Aggregate, Expression, F, Q, Queryable
from flash_db.fields import pk_name
from flash_db.functions import Trunc
from flash_db.instances import store
from flash_db.transaction import write_block
from flash_db.writes import deleted

if TYPE_CHECKING:
    from flash_db.models import Model

__all__ = ["MAX_ROWS", "QuerySet"]

M = TypeVar("M", bound="Model[Any]")
R = TypeVar("R", default=M)

# Primary keys per "pk IN (...)" statement when deleting loaded rows (bound-parameter limits).
_PK_CHUNK = 10_000


def _check_rows(method: str, n: int | None) -> None:
    """Refuse a row count the databases cannot take, before any SQL is built."""
    if n is not None and n > MAX_ROWS:
        raise ValueError(
            f"{method} takes at most 2**63 - 1 (the largest LIMIT/OFFSET the databases "
            f"accept), got {n!r}."
        )


# What each terminal builds (through the module, so a test can count the builds).


def _build_select(model: type[Any], state: QueryState) -> tuple[Any, Layout | None]:
    return compiler.select_statement(model, state)


def _build_first(model: type[Any], state: QueryState) -> tuple[Any, Layout | None]:
    return compiler.select_statement(model, state, first=True)


def _build_count(model: type[Any], state: QueryState) -> Any:
    return compiler.count_statement(model, state)


def _build_exists(model: type[Any], state: QueryState) -> Any:
    return compiler.exists_statement(model, state)


@dataclass(frozen=True, slots=True)
class QuerySet(Queryable, Generic[M, R]):
    """A lazy, immutable query over one model; ``R`` is the type of each result."""

    model: type[M]
    state: QueryState = field(default_factory=QueryState)

    # -- builders -------------------------------------------------------------

    def _clone(self, **changes: Any) -> Self:
        new_state = self.state.clone(**changes)
        clone = object.__new__(type(self))
        object.__setattr__(clone, "model", self.model)
        object.__setattr__(clone, "state", new_state)
        return clone

    def _refuse_combined(self, method: str) -> None:
        if self.state.combinator is not None:
            op = self.state.combinator[0]
            raise TypeError(
                f"Calling {method}() after {op}() is not supported (as in Django): "
                f"call it on each QuerySet before combining them."
            )

    def all(self) -> Self:
        """Return a copy of this QuerySet."""
        return self._clone()

    def filter(self, *conditions: Any, **lookups: Any) -> Self:
        """Return a new QuerySet with the conditions and lookups ANDed to the filters."""
        self._refuse_combined("filter")
        if not conditions and not lookups:
            return self._clone()
        return self._clone(where=(*self.state.where, Q(*conditions, **lookups)))

    def exclude(self, *conditions: Any, **lookups: Any) -> Self:
        """Return a new QuerySet with NOT (conditions AND lookups) ANDed to the filters.

        Rows where a compared column is NULL are kept, as in Django.
        """
        self._refuse_combined("exclude")
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
        self._refuse_combined("distinct")
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
        self._refuse_combined("only")
        return self._clone(only=tuple(fields), defer=())

    def defer(self, *fields: str) -> Self:
        """Return a new QuerySet that does not load ``fields`` now."""
        self._refuse_combined("defer")
        return self._clone(defer=(*self.state.defer, *fields))

    def select_related(self, *relations: str) -> Self:
        """Return a new QuerySet that JOIN-loads the to-one ``relations``."""
        self._refuse_combined("select_related")
        return self._clone(select_related=(*self.state.select_related, *relations))

    def prefetch_related(self, *relations: Any) -> Self:
        """Return a new QuerySet that loads ``relations`` with one extra query each."""
        return self._clone(prefetch_related=(*self.state.prefetch_related, *relations))

    def annotate(self, *aggregates: Any, **expressions: Any) -> Self:
        """Return a new QuerySet with computed values set as attributes on each result.

        After ``values(*fields)``, aggregates group the rows by those fields (GROUP BY)
        and the annotations are added to each dict/tuple. A positional aggregate
        takes Django's name: ``annotate(Count("posts"))`` sets ``posts__count``.
        """
        return self._annotate(_named(aggregates, expressions, "annotate"), select=True)

    def alias(self, *aggregates: Any, **expressions: Any) -> Self:
        """Return a new QuerySet with named expressions to filter and order by, not selected.

        Like :meth:`annotate`, but the values are not loaded (Django's ``alias()``):
        ``qs.alias(n=Count("posts")).filter(n__gt=1)``.
        """
        return self._annotate(_named(aggregates, expressions, "alias"), select=False)

    def _annotate(self, expressions: dict[str, Any], *, select: bool) -> Self:
        self._refuse_combined("annotate" if select else "alias")
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
        if not select:
            changes["aliases"] = (*state.aliases, *expressions)
        if state.kind != "model":
            new = tuple(name for name in expressions if name not in state.fields)
            if state.fields and select:
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
        self._refuse_combined("select_for_update")
        return self._clone(for_update=(nowait, skip_locked, tuple(of)))

    def values(self, *fields: str, **expressions: Any) -> QuerySet[M, dict[str, Any]]:
        """Return a QuerySet whose results are dicts of ``fields`` (all columns by default).

        ``expressions`` are annotated first and selected under their names:
        ``values("id", lower=Lower("name"))``. After ``union()`` and the other
        combinators it names the columns of the combined rows (see :meth:`union`).
        """
        if self.state.combinator is not None:
            qs = self._combined_values(fields, expressions, "dict", "values")
        else:
            base = self._annotate(expressions, select=True) if expressions else self
            qs = base._clone(fields=(*fields, *expressions), kind="dict")
        return cast("QuerySet[M, dict[str, Any]]", qs)  # only the result type changes

    @overload
    def values_list(
        self,
        *fields: str | Expression | ColumnElement[Any],
        flat: Literal[True],
        named: Literal[False] = False,
        **expressions: Any,
    ) -> QuerySet[M, Any]: ...

    @overload
    def values_list(
        self,
        *fields: str | Expression | ColumnElement[Any],
        flat: Literal[False] = False,
        named: Literal[True],
        **expressions: Any,
    ) -> QuerySet[M, Row[Any]]: ...

    @overload
    def values_list(
        self,
        *fields: str | Expression | ColumnElement[Any],
        flat: Literal[False] = False,
        named: Literal[False] = False,
        **expressions: Any,
    ) -> QuerySet[M, tuple[Any, ...]]: ...

    def values_list(
        self,
        *fields: str | Expression | ColumnElement[Any],
        flat: bool = False,
        named: bool = False,
        **expressions: Any,
    ) -> QuerySet[M, Any]:
        """Return a QuerySet whose results are tuples (``flat=True``: single values).

        ``fields`` may mix names and expressions (``values_list("id", Lower("name"))``):
        an expression is annotated under Django's name for it (its default alias or
        its class name, then a counter: ``lower1``), which ``named=True`` rows show;
        ``expressions`` by keyword are selected after them under their own names.
        """
        if flat and named:
            raise TypeError("values_list() takes flat=True or named=True, not both.")
        names, generated = _list_names(fields)
        for name in expressions:
            if name in names:
                raise ValueError(f"values_list() got the name {name!r} twice.")
        generated.update(expressions)
        names = (*names, *expressions)
        if flat and len(names) != 1:
            raise TypeError(
                f"values_list(flat=True) takes exactly one field, got {len(names)}: {names!r}."
            )
        kind: ResultKind = "flat" if flat else "named" if named else "tuple"
        if self.state.combinator is not None:
            return self._combined_values(names, generated, kind, "values_list")
        base = self._annotate(generated, select=True) if generated else self
        qs = base._clone(fields=names, kind=kind)
        return cast("QuerySet[M, Any]", qs)  # only the result type changes

    def _combined_values(
        self, fields: tuple[str, ...], expressions: dict[str, Any], kind: ResultKind, method: str
    ) -> QuerySet[M, Any]:
        """Return this combined QuerySet selecting ``fields`` of each query, as Django does.

        A query combined without ``values()`` of its own selects ``fields``; one
        with its own columns keeps them (the first one's names must be ``fields``,
        which name the combined columns).
        """
        op, all_rows, parts = self.state.combinator or ("union", False, ())
        if expressions:
            raise TypeError(
                f"Calling {method}() with expressions after {op}() is not supported (as in "
                f"Django: it is annotate()): annotate each QuerySet before combining them."
            )
        new_parts = []
        for index, part in enumerate(parts):
            if part.state.kind == "model":
                if part.state.combinator is not None:
                    part = part._combined_values(fields, {}, "tuple", method)
                else:
                    part = part._clone(fields=fields, kind="tuple")
            elif index == 0 and fields and tuple(part.state.fields) != tuple(fields):
                own = ", ".join(map(repr, part.state.fields)) or "all of them"
                raise TypeError(
                    f"{method}({', '.join(map(repr, fields))}) after {op}() cannot rename the "
                    f"columns the first QuerySet selects ({own}): call {method}() on each "
                    "QuerySet before combining them, or name the same fields."
                )
            new_parts.append(part)
        names = fields or (new_parts[0].state.fields if new_parts else ())
        qs = self._clone(kind=kind, fields=names, combinator=(op, all_rows, tuple(new_parts)))
        return cast("QuerySet[M, Any]", qs)  # only the result type changes

    def union(self, *others: QuerySet[Any, Any], all: bool = False) -> Self:
        """Return the rows of this QuerySet and ``others`` (``UNION``; ``all=True`` keeps repeats).

        The queries must select the same number of columns; the combined QuerySet
        can be ordered (by the first query's column names), sliced, counted and
        fetched, as in Django.
        """
        return self._combine("union", others, all)

    def intersection(self, *others: QuerySet[Any, Any]) -> Self:
        """Return the rows found in this QuerySet and in every one of ``others`` (``INTERSECT``)."""
        return self._combine("intersection", others, False)

    def difference(self, *others: QuerySet[Any, Any]) -> Self:
        """Return the rows of this QuerySet found in none of ``others`` (``EXCEPT``)."""
        return self._combine("difference", others, False)

    def _combine(self, op: str, others: tuple[Any, ...], all_rows: bool) -> Self:
        for other in others:
            if not isinstance(other, QuerySet):
                raise TypeError(f"{op}() takes QuerySets, got {other!r}.")
        if not others:
            return self._clone()
        state = QueryState(
            kind=self.state.kind,
            fields=self.state.fields,
            combinator=(op, all_rows, (self, *others)),
        )
        clone = object.__new__(type(self))
        object.__setattr__(clone, "model", self.model)
        object.__setattr__(clone, "state", state)
        return clone

    def dates(self, field: str, kind: str, order: str = "ASC") -> QuerySet[M, date]:
        """Return a QuerySet of the distinct dates of ``field`` truncated to ``kind``.

        ``kind`` is ``year``, ``quarter``, ``month``, ``week`` or ``day``; ``order``
        is ``ASC`` or ``DESC``. Rows where the field is NULL are left out, as in Django.
        """
        if kind not in _DATE_KINDS:
            raise ValueError(
                f"dates()'s kind must be one of {', '.join(_DATE_KINDS)}; got {kind!r}."
            )
        qs = self._truncated(field, Trunc(field, kind, output_field=Date()), "datefield", order)
        return cast("QuerySet[M, date]", qs)  # only the result type changes

    def datetimes(self, field: str, kind: str, order: str = "ASC") -> QuerySet[M, datetime]:
        """Return a QuerySet of the distinct datetimes of ``field`` truncated to ``kind``.

        ``kind`` is ``year``, ``quarter``, ``month``, ``week``, ``day``, ``hour``,
        ``minute`` or ``second``; timezone-aware fields are truncated in UTC.
        """
        if kind not in _DATETIME_KINDS:
            raise ValueError(
                f"datetimes()'s kind must be one of {', '.join(_DATETIME_KINDS)}; got {kind!r}."
            )
        prop = self.model.__mapper__.column_attrs.get(field)
        if prop is not None and not isinstance(_impl(prop.columns[0].type), DateTime):
            raise TypeError(f"datetimes() needs a datetime field; {field!r} is not one.")
        qs = self._truncated(field, Trunc(field, kind), "datetimefield", order)
        return cast("QuerySet[M, datetime]", qs)  # only the result type changes

    def _truncated(self, field: str, trunc: Trunc, name: str, order: str) -> QuerySet[M, Any]:
        self._refuse_combined("dates" if name == "datefield" else "datetimes")
        if order not in ("ASC", "DESC"):
            raise ValueError(f"order must be 'ASC' or 'DESC', got {order!r}.")
        qs = self._clone(kind="model", fields=(), annotations=(), aliases=(), group_by=())
        return (
            qs._annotate({name: trunc}, select=True)
            .values_list(name, flat=True)
            .filter(**{f"{name}__isnull": False})
            .distinct()
            .order_by(f"-{name}" if order == "DESC" else name)
        )

    # -- terminals --------------------------------------------------------------

    def _check_backend(self, db: AsyncSession) -> None:
        """Refuse what the session's database cannot do, before any SQL is sent."""
        if self.state.distinct_fields:  # the one backend-specific feature (DISTINCT ON)
            check_backend(self.state, db.get_bind().dialect.name)

    async def _fetch(self, db: AsyncSession, terminal: str, build: Any) -> list[R]:
        self._check_backend(db)
        (stmt, layout), params = template(self.model, self.state, terminal, build)
        if compiler.provably_empty(stmt):
            return []  # as Django (EmptyResultSet): no query for a WHERE that is FALSE
        return await loading.fetch(db, stmt, params, layout, self.state)

    async def fetch(self, db: AsyncSession) -> list[R]:
        """Run the query and return every result."""
        return await self._fetch(db, "fetch", _build_select)

    async def first(self, db: AsyncSession) -> R | None:
        """Return the first result by the ordering (else by primary key), or None."""
        rows = await self[:1]._fetch(db, "first", _build_first)
        return rows[0] if rows else None

    async def last(self, db: AsyncSession) -> R | None:
        """Return the last result by the ordering (else by primary key), or None."""
        qs = self
        if qs.state.order_by is None:
            qs = qs.order_by("pk")
        return await qs.reverse().first(db)

    async def get(self, db: AsyncSession, *conditions: Any, **lookups: Any) -> R:
        """Return the one result matching the filters and ``conditions``/``lookups``.

        Raises ``Model.DoesNotExist`` for none and ``Model.MultipleObjectsReturned``
        for more than one.
        """
        qs = self
        if conditions or lookups:
            self._refuse_combined("get")
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
        stmt, params = template(self.model, self.state, "count", _build_count)
        if compiler.provably_empty(stmt):
            return 0
        return int(await execution.scalar(db, stmt, params))

    async def exists(self, db: AsyncSession) -> bool:
        """Return whether any row matches (``SELECT EXISTS``; no rows are loaded)."""
        self._check_backend(db)
        stmt, params = template(self.model, self.state, "exists", _build_exists)
        if compiler.provably_empty(stmt):
            return False
        return bool(await execution.scalar(db, stmt, params))

    async def in_bulk(
        self, db: AsyncSession, ids: Iterable[Any] | None = None, *, field_name: str = "pk"
    ) -> dict[Any, M]:
        """Return ``{key: object}`` for rows whose ``field_name`` is in ``ids`` (or all rows)."""
        self._refuse_combined("in_bulk")
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

    async def aggregate(self, db: AsyncSession, *args: Any, **named: Any) -> dict[str, Any]:
        """Return ``{name: value}`` for aggregate expressions over the matching rows.

        A positional aggregate takes Django's name (``Sum("views")``: ``views__sum``).
        """
        self._refuse_combined("aggregate")
        aggregates = _named(args, named, "aggregate")
        if not aggregates:
            raise TypeError("aggregate() needs at least one name=aggregate.")
        for name, expression in aggregates.items():
            if not isinstance(expression, Expression | ColumnElement):
                raise TypeError(f"aggregate() takes aggregates, got {name}={expression!r}.")
        self._check_backend(db)
        stmt = aggregate_statement(self.model, self.state, aggregates)
        if compiler.provably_empty(stmt) and all(
            isinstance(agg, Aggregate) for agg in aggregates.values()
        ):
            # As Django: over no row, no query; each aggregate's value over nothing.
            return {name: agg.empty_value for name, agg in aggregates.items()}
        return dict((await execution.execute(db, stmt)).mappings().one())

    async def update(self, db: AsyncSession, **values: Any) -> int:
        """Update every matching row with ``values`` (which may be ``F`` expressions).

        Returns the number of rows matched. Sends one ``UPDATE`` (``updated_at`` is
        set on ``TimestampMixin`` models); validation does not run, and objects
        already loaded keep the values they were loaded with, as in Django.
        """
        self._refuse_combined("update")
        found = write_template(self.model, self.state, values)
        if found is not None:
            stmt, counted, params = found
            return await execution.write_statement(db, stmt, params, counted)
        stmt = update_statement(self.model, self.state, values)
        if compiler.provably_empty(stmt):
            return 0  # as Django: no query for a WHERE that is FALSE
        return await execution.write_statement(db, stmt)

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
        self._refuse_combined("delete")
        if self.state.limit is not None or self.state.offset is not None:
            raise TypeError("Cannot delete() a sliced QuerySet; filter it instead.")
        qs = self.filter(deleted_at=None) if soft else self
        now = datetime.now(UTC) if soft else None
        if not signals.has_delete_receivers(self.model):
            return await qs._delete_rows(db, now)
        model_qs = cast("QuerySet[M, M]", qs._clone(kind="model", fields=(), annotations=()))
        async with write_block(db):
            objs = await model_qs.fetch(db)
            for obj in objs:
                await signals.pre_delete.send(self.model, instance=obj, db=db)
            count = 0
            base: QuerySet[M, M] = QuerySet(self.model)
            for start in range(0, len(objs), _PK_CHUNK):
                pks = [obj.pk for obj in objs[start : start + _PK_CHUNK]]
                count += await base.filter(pk__in=pks)._delete_rows(db, now)
            for obj in objs:
                if now is not None:
                    obj.__dict__["deleted_at"] = now
                    store(obj, ["deleted_at"])
            for obj in objs:
                await signals.post_delete.send(self.model, instance=obj, db=db)
        if now is None:
            for obj in objs:
                deleted(obj)
        return count

    async def _delete_rows(self, db: AsyncSession, deleted_at: datetime | None) -> int:
        """Send the one DELETE (or, given ``deleted_at``, the soft-delete UPDATE)."""
        if deleted_at is not None:
            return await self.update(db, deleted_at=deleted_at)
        found = write_template(self.model, self.state, None)
        if found is not None:
            stmt, counted, params = found
            return await execution.write_statement(db, stmt, params, counted)
        stmt = delete_statement(self.model, self.state)
        if compiler.provably_empty(stmt):
            return 0  # as Django: no query for a WHERE that is FALSE
        return await execution.write_statement(db, stmt)

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

    def sql(self, db: AsyncSession) -> str:
        """Return the SELECT that ``fetch(db)`` would send to ``db``'s database.

        Placeholders stand where the values go (``$1::INTEGER`` on PostgreSQL,
        ``?`` on SQLite); the values are never in the text. Nothing is sent.
        """
        self._check_backend(db)
        (stmt, _), _params = template(self.model, self.state, "fetch", _build_select)
        compiled = stmt.compile(
            dialect=db.get_bind().dialect, compile_kwargs={"render_postcompile": True}
        )
        return str(compiled)

    async def explain(self, db: AsyncSession, *, analyze: bool = False) -> str:
        """Return the database's plan for ``fetch(db)``'s SELECT.

        ``EXPLAIN`` on PostgreSQL (``analyze=True``: ``EXPLAIN ANALYZE``, which runs
        the query), ``EXPLAIN QUERY PLAN`` on SQLite, one line per row of its answer.
        """
        dialect = db.get_bind().dialect.name
        if analyze and dialect != "postgresql":
            raise ValueError(
                f"explain(analyze=True) is EXPLAIN ANALYZE, which only PostgreSQL runs; "
                f"this session's database is {dialect}: use explain(db)."
            )
        self._check_backend(db)
        (stmt, _), params = template(self.model, self.state, "fetch", _build_select)
        result = await execution.execute(db, Explain(stmt, analyze=analyze), params)
        return "\n".join(" ".join(str(value) for value in row) for row in result.all())

    async def iterator(self, db: AsyncSession, chunk_size: int = 1000) -> AsyncGenerator[R, None]:
        """Stream the results in chunks of ``chunk_size`` without loading them all.

        A server-side cursor on PostgreSQL; ``prefetch_related`` runs per chunk.
        See :func:`flash_db.loading.stream` for the transaction it needs.
        """
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be positive, got {chunk_size!r}.")
        self._check_backend(db)
        stmt, layout = select_statement(self.model, self.state)
        if compiler.provably_empty(stmt):
            return  # as fetch(): no query for a WHERE that is FALSE
        # aclosing: breaking out of this stream closes the inner one now (its cursor's
        # CLOSE runs before the next statement), not later in the loop's finalizer.
        async with aclosing(loading.stream(db, stmt, layout, self.state, chunk_size)) as chunks:
            async for chunk in chunks:
                for row in chunk:
                    yield row

    def stream(self, db: AsyncSession, chunk_size: int = 1000) -> AsyncGenerator[R, None]:
        """Stream the results (the same as :meth:`iterator`): ``async for obj in qs.stream(db)``."""
        return self.iterator(db, chunk_size)


_DATE_KINDS = ("year", "quarter", "month", "week", "day")
_DATETIME_KINDS = (*_DATE_KINDS, "hour", "minute", "second")


def _impl(kind: Any) -> Any:
    return getattr(kind, "impl", kind)  # a TypeDecorator (AwareDateTime) or the type


def _list_names(
    fields: tuple[str | Expression | ColumnElement[Any], ...],
) -> tuple[tuple[str, ...], dict[str, Any]]:
    """Return values_list()'s column names and the expressions to annotate, as Django names them.

    An expression is named by its default alias (``Count("pages")``: ``pages__count``)
    or its class name in lower case, followed by a counter that skips the names
    taken (``lower1``); a field named twice is selected again as ``F(name)`` (``title1``).
    """
    taken = {name for name in fields if isinstance(name, str)}
    emitted: set[str] = set()
    names: list[str] = []
    expressions: dict[str, Any] = {}
    counter = 1
    for item in fields:
        expression: Any = None
        if isinstance(item, str):
            name = item
            if name in emitted:
                expression = F(name)
        elif isinstance(item, Expression | ColumnElement):
            expression = item
            name = (
                item.default_alias if isinstance(item, Aggregate) else type(item).__name__.lower()
            )
        else:
            raise TypeError(f"values_list() takes field names and expressions, got {item!r}.")
        if expression is not None:
            prefix = name
            while (name := f"{prefix}{counter}") in taken:
                counter += 1
            expressions[name] = expression
        taken.add(name)
        emitted.add(name)
        names.append(name)
    return tuple(names), expressions


def _named(args: tuple[Any, ...], named: dict[str, Any], method: str) -> dict[str, Any]:
    """Return ``named`` with the positional aggregates under their default alias."""
    result: dict[str, Any] = {}
    for arg in args:
        if not isinstance(arg, Aggregate):
            raise TypeError(
                f"{method}() takes positional aggregates only (Count('posts')); "
                f"name other expressions: {method}(name=...), got {arg!r}."
            )
        alias = arg.default_alias  # raises TypeError for Count("*") and expressions
        if alias in named or alias in result:
            raise ValueError(
                f"The named annotation {alias!r} conflicts with the default name for "
                "another annotation."
            )
        result[alias] = arg
    return {**result, **named}


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
