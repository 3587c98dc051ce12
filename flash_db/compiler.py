"""The query compiler: a QuerySet's state to one SQLAlchemy statement, and the statement templates.

:class:`QueryState` is everything a QuerySet knows (names and expressions, never
SQL); the functions here turn a model and a state into the statement a terminal
runs: the SELECT of :func:`select_statement` (with the :class:`Layout` that says
where each loaded model's columns sit in its rows), ``count``, ``exists``,
aggregates, ``UPDATE`` and ``DELETE``. Names are resolved here, so an unknown
one raises ``FieldError`` before any SQL is sent.

Statement templates: building a statement costs more than running it
(resolving the lookups and constructing the SELECT, then SQLAlchemy's cache key
of the new statement object). A state whose filters are plain keyword lookups
on the model's own columns (``filter(level=k)``, ``get(pk=x)``, the soft-delete
``deleted_at=None``) has a *shape*: everything but those values. Its statement
is built once per shape with bound parameters in place of the values, by the
same code as any other statement, and executed with the values (see
:func:`template`). Values whose SQL depends on the value itself (None, integers
outside the column's range, NUL characters, lists) are part of the shape or not
templated.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import (
    ColumnElement,
    ScalarSelect,
    Select,
    SelectBase,
    bindparam,
    delete,
    except_,
    func,
    intersect,
    literal_column,
    select,
    union,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.orm import InstrumentedAttribute, Mapper, QueryableAttribute, RelationshipProperty
from sqlalchemy.sql import operators, visitors
from sqlalchemy.sql.dml import Delete, Update
from sqlalchemy.sql.elements import (
    BindParameter,
    BooleanClauseList,
    ColumnClause,
    Label,
    UnaryExpression,
)

from flash_db.constructs import is_empty, is_false
from flash_db.exceptions import FieldError, FlashDBError
from flash_db.expressions import Aggregate, Count, Expression, F, OrderBy, Q, Queryable
from flash_db.fields import PYTHON_ONLY, column_value, field_choices, info, integer_range, pk_name
from flash_db.functions import Random
from flash_db.lookups import EXACT_TYPES, outside, sendable, takes_as_is, value_kind
from flash_db.resolver import Resolver

__all__ = [
    "MAX_ROWS",
    "Layout",
    "QueryState",
    "RelatedLayout",
    "ResultKind",
    "aggregate_statement",
    "check_backend",
    "count_statement",
    "delete_statement",
    "exists_statement",
    "prefetch_paths",
    "provably_empty",
    "relation_path",
    "select_statement",
    "template",
    "update_statement",
    "write_template",
]

ResultKind = Literal["model", "dict", "tuple", "flat", "named"]

# The largest LIMIT/OFFSET the databases take (a signed 64-bit integer).
MAX_ROWS = 2**63 - 1


@dataclass(frozen=True, slots=True)
class QueryState:
    """Everything a QuerySet knows; never mutated, only replaced (:meth:`clone`)."""

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
    kind: ResultKind = "model"
    group_by: tuple[str, ...] = ()
    # For each annotation, how many filter() calls came before it (Django: those
    # restrict what an aggregate over the same to-many relation counts).
    annotation_filters: tuple[int, ...] = ()
    for_update: tuple[bool, bool, tuple[Any, ...]] | None = None
    # Annotations made by alias(): usable in filter()/order_by(), never selected.
    aliases: tuple[str, ...] = ()
    # union()/intersection()/difference(): (operator, ALL, the combined QuerySets).
    combinator: tuple[str, bool, tuple[Any, ...]] | None = None

    def clone(self, **changes: Any) -> QueryState:
        """Return a copy with ``changes`` applied (field by field: cheaper than ``replace``)."""
        new = object.__new__(QueryState)
        for name in _STATE_FIELDS:
            object.__setattr__(new, name, changes.pop(name, getattr(self, name)))
        if changes:
            raise TypeError(f"Unknown QuerySet state {sorted(changes)!r}.")
        return new


_STATE_FIELDS = tuple(f.name for f in dataclasses.fields(QueryState))


# -- layouts ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RelatedLayout:
    """One ``select_related`` model in the rows: its columns and where it hangs."""

    model: type[Any]
    parent: int  # index of the owner in Layout.related, or -1 for the queried model
    relation: str  # the relation name on the owner
    keys: tuple[str, ...]  # attribute keys of its columns
    start: int  # its first column in the row
    pk_index: int  # the row index of its primary key (None there: no related row)


@dataclass(frozen=True, slots=True)
class Layout:
    """Where each loaded model's columns sit in a row of a model SELECT."""

    model: type[Any]
    keys: tuple[str, ...]  # the queried model's attribute keys: row[0:len(keys)]
    related: tuple[RelatedLayout, ...]
    annotations: tuple[str, ...]  # the annotation names: the row's last columns


# -- resolving a state ---------------------------------------------------------------


def _subquery(query: Queryable, resolver: Resolver, ordered: bool, pk_only: bool) -> Select[Any]:
    """Compile a query standing inside another (``Exists``, ``Subquery``, ``field__in=qs``)."""
    # Eager loading has no meaning inside a subquery.
    state: QueryState = query.state.clone(select_related=(), prefetch_related=(), only=(), defer=())
    if not ordered:
        state = state.clone(order_by=())
    if pk_only and state.kind == "model":
        state = state.clone(kind="flat", fields=("pk",))
    stmt, _ = _select(query.model, state, resolver=resolver)
    return stmt


def _resolver(model: type[Any], state: QueryState) -> Resolver:
    return Resolver(model, grouping=bool(state.group_by), subquery_compiler=_subquery)


def _annotate(state: QueryState, resolver: Resolver) -> None:
    """Resolve the annotations in order (each may use the ones before it)."""
    marks = state.annotation_filters
    for i, (name, expression) in enumerate(state.annotations):
        before = resolver.plain_aggregates
        resolver.flags.aggregate = False
        resolver.prior_filters = state.where[: marks[i] if i < len(marks) else 0]
        column = expression.resolve(resolver) if isinstance(expression, Expression) else expression
        resolver.prior_filters = ()
        plain = resolver.plain_aggregates > before or resolver.flags.aggregate
        resolver.add_annotation(name, column, plain)


def _where(state: QueryState, resolver: Resolver) -> list[ColumnElement[bool]]:
    """Compile the filters; those on SQL aggregates go to ``resolver.having``."""
    where = []
    for item in state.where:
        resolver.flags.aggregate = False
        resolver.annotations_named = set()
        condition = resolver.compile(item)
        if resolver.flags.aggregate:
            resolver.having.append(condition)
            resolver.having_names |= resolver.annotations_named
        else:
            where.append(condition)
    return where


def _group_by(state: QueryState, resolver: Resolver) -> list[ColumnElement[Any]]:
    """Return GROUP BY: the ``values()`` fields, or the primary key for SQL aggregates."""
    if state.group_by:
        return [resolver.column(name, context="values()") for name in state.group_by]
    if resolver.aggregate_annotations or (
        # Aggregates computed per row (correlated subqueries) beside a to-many join
        # an annotation made: grouped as Django groups, one row per object and
        # annotation value (annotate(n=Count("books"), p=F("books__pages"))), not
        # one per joined row.
        any(join.many for join in resolver.joins.values())
        and any(
            isinstance(expression, Expression) and expression.contains_aggregate
            for _, expression in state.annotations
        )
    ):
        # The primary key, and those of the to-one rows joined to each row: a
        # subquery correlated to a joined row (Count("book__reviews")) may name
        # its columns, and PostgreSQL wants them grouped.
        return [resolver.column("pk"), *resolver.to_one_keys()]
    return []


def _ordering(state: QueryState, item: Any) -> OrderBy | Any:
    if item == "?":
        return OrderBy(Random(), descending=False)
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
        if state.reversed:
            raise TypeError(
                "reverse() cannot flip a raw SQLAlchemy ordering; use field names or F()."
            )
        return item
    raise TypeError(f"order_by() takes field names or expressions, got {item!r}.")


@dataclass(slots=True)
class _Ordered:
    """One ORDER BY item: its SQL, the expression ordered by, whether that is an aggregate."""

    sql: Any
    column: ColumnElement[Any] | None  # None for a raw SQLAlchemy ordering
    aggregate: bool


def _order(state: QueryState, resolver: Resolver, *, default_pk: bool = False) -> list[Any]:
    return [item.sql for item in _ordered(state, resolver, default_pk=default_pk)]


def _ordered(state: QueryState, resolver: Resolver, *, default_pk: bool = False) -> list[_Ordered]:
    items: Iterable[Any]
    if state.order_by is None or (not state.order_by and state.reversed):
        # Grouped rows have no primary key: their default order is the grouping.
        default = state.group_by or ("pk",)
        items = default if (default_pk or state.reversed) else ()
    else:
        items = state.order_by
    result = []
    for item in items:
        ordering = _ordering(state, item)
        if state.reversed:
            ordering = ordering.reversed() if isinstance(ordering, OrderBy) else ordering
        if not isinstance(ordering, OrderBy):
            result.append(_Ordered(ordering, None, False))
            continue
        before = resolver.flags.aggregate
        resolver.flags.aggregate = False
        try:
            sql = ordering.resolve(resolver)
        except FieldError as error:
            if not isinstance(item, str) or "in F()" not in str(error) or not error.choices:
                raise  # (no choices: the path is too long, and its message says so)
            raise FieldError(
                error.model,
                error.name,
                error.choices,
                kind=error.kind,
                context=f"order_by({item!r})",
            ) from None
        aggregate = resolver.flags.aggregate or ordering.expression.contains_aggregate
        resolver.flags.aggregate = before
        column: Any = sql
        while isinstance(column, UnaryExpression):
            column = column.element  # under DESC / NULLS LAST
        result.append(_Ordered(sql, column, aggregate))
    return result


def _expression(column: Any) -> Any:
    """Return the SQL expression of a column attribute or a label (for comparing)."""
    if isinstance(column, QueryableAttribute):
        column = column.expression
    while isinstance(column, Label):
        column = column.element
    return column


def _contains(columns: Iterable[Any], column: Any) -> bool:
    """Return whether ``column`` is one of ``columns`` (as SQL, through labels and attributes)."""
    target = _expression(column)
    return any(_same(_expression(other), target) for other in columns)


def _same(a: Any, b: Any) -> bool:
    """Return whether two SQL expressions are the same (``ClauseElement.compare``).

    SQLAlchemy's ``compare()`` raises ``AttributeError`` for two ORM expressions
    built on different entities (``abs(Book.rating)`` and a function of an
    aliased ``Author``'s column: it compares the entities themselves); such
    expressions name different columns, so they are not the same.
    """
    if a is b:
        return True
    try:
        return bool(a.compare(b))
    except AttributeError:
        return False


def _by_position(stmt: Select[Any], group_by: list[Any]) -> list[Any]:
    """Return GROUP BY (or ORDER BY) terms, a selected one holding a bound value by position.

    PostgreSQL matches a GROUP BY expression, and the ORDER BY of a grouped
    query, with the select list's as text, and each bound value is a parameter
    of its own (``data -> $1`` is not ``data -> $2``):
    ``values("data__room").annotate(n=Count("id"))`` is grouped by the
    expression's position in the select list instead (``GROUP BY 1``).
    """
    selected = list(stmt.selected_columns)
    result: list[Any] = []
    for item in group_by:
        target = _expression(item)
        if any(isinstance(element, BindParameter) for element in visitors.iterate(target)):
            position = next(
                (i for i, c in enumerate(selected, 1) if _same(_expression(c), target)), None
            )
            if position is not None:
                # Its position in the select list (a label could name a joined column).
                result.append(literal_column(str(position)))
                continue
        result.append(item)
    return result


def _ordered_by_position(stmt: Select[Any], item: _Ordered) -> Any:
    """Return an ORDER BY term of a grouped query (see :func:`_by_position`)."""
    if item.column is None:
        return item.sql
    by = _by_position(stmt, [item.column])[0]
    return item.sql if by is item.column else _reorder(item.sql, by)


def _by_label(stmt: Select[Any], ordered: list[_Ordered]) -> list[_Ordered]:
    """Return ``ordered`` with each selected expression ordered by its label (``ORDER BY a0``).

    PostgreSQL's SELECT DISTINCT wants each ORDER BY expression to be one of the
    select list's, as text; an annotation through a many-to-many relation renders
    its secondary table under a new anonymous alias each time it is written.
    """
    labels = {id(c.element): c for c in stmt.selected_columns if isinstance(c, Label)}
    result = []
    for item in ordered:
        label = labels.get(id(item.column))
        if label is None:
            result.append(item)
        else:
            result.append(_Ordered(_reorder(item.sql, label), item.column, item.aggregate))
    return result


def _distinct_ordered(
    stmt: Select[Any], ordered: list[_Ordered], state: QueryState
) -> Select[Any] | None:
    """Return ``SELECT DISTINCT`` ordered by columns it does not select, as Django does it.

    Django adds each ORDER BY expression missing from the select list to it, so
    DISTINCT applies to those too (``order_by("posts__title").distinct()`` has
    one row per post title); PostgreSQL requires them there. The rows keep
    their own columns: the DISTINCT select is a subquery, ordered and sliced
    outside. None when every ordering is already selected.
    """
    selected = list(stmt.selected_columns)
    missing = [
        item for item in ordered if item.column is not None and not _contains(selected, item.column)
    ]
    if not missing or any(item.column is None for item in ordered):
        return None
    extra = {id(item): f"flash_order_{i}" for i, item in enumerate(missing)}
    inner = stmt.add_columns(
        *(item.column.label(extra[id(item)]) for item in missing if item.column is not None)
    ).subquery()
    columns = list(inner.c)
    outer = select(*columns[: len(selected)])
    order = []
    for item in ordered:
        if id(item) in extra:
            column: Any = inner.c[extra[id(item)]]
        else:
            index = next(i for i, c in enumerate(selected) if _contains([c], item.column))
            column = columns[index]
        order.append(_reorder(item.sql, column))
    outer = outer.order_by(*order)
    if state.limit is not None:
        outer = outer.limit(state.limit)
    if state.offset is not None:
        outer = outer.offset(state.offset)
    return outer


def _reorder(sql: Any, column: Any) -> Any:
    """Return the ordering ``sql`` (ASC/DESC, NULLS FIRST/LAST) applied to ``column``."""
    modifiers = []
    while isinstance(sql, UnaryExpression):
        modifiers.append(sql.modifier)
        sql = sql.element
    for modifier in reversed(modifiers):
        if modifier is operators.desc_op:
            column = column.desc()
        elif modifier is operators.asc_op:
            column = column.asc()
        elif modifier is operators.nulls_first_op:
            column = column.nulls_first()
        elif modifier is operators.nulls_last_op:
            column = column.nulls_last()
    return column


def _value_columns(
    model: type[Any], state: QueryState, resolver: Resolver
) -> list[ColumnElement[Any]]:
    names = state.fields or (
        *(prop.key for prop in model.__mapper__.column_attrs),
        *(name for name, _ in state.annotations if name not in state.aliases),
    )
    for name in names:
        if name in state.aliases:
            choices = [*field_choices(model), *(n for n, _ in state.annotations)]
            error = FieldError(model, name, set(choices) - set(state.aliases), context="values()")
            error.args = (f"Cannot select the {name!r} alias. Use annotate() to promote it.",)
            raise error
    return [resolver.column(name, context="values()").label(name) for name in names]


def _column_key(model: type[Any], name: str, context: str) -> str:
    mapper: Mapper[Any] = model.__mapper__
    key = pk_name(model) if name == "pk" else name
    if key not in mapper.column_attrs:
        raise FieldError(model, name, [*mapper.column_attrs.keys(), "pk"], context=context)
    return key


def _loaded_keys(model: type[Any], state: QueryState) -> tuple[str, ...]:
    """Return the column attributes a model SELECT loads (``only``/``defer`` applied)."""
    mapper: Mapper[Any] = model.__mapper__
    keys = [prop.key for prop in mapper.column_attrs]
    pks = set(info(model).pk_keys)  # always loaded, as in Django
    if state.only:
        wanted = {_column_key(model, name, "only()") for name in state.only} | pks
        keys = [key for key in keys if key in wanted]
    if state.defer:
        skipped = {_column_key(model, name, "defer()") for name in state.defer} - pks
        keys = [key for key in keys if key not in skipped]
    return tuple(keys)


def relation_path(model: type[Any], path: str, context: str) -> list[RelationshipProperty[Any]]:
    """Return the relationships along ``path`` (``"posts__tags"``), validating every name."""
    props = []
    current = model
    for name in path.split("__"):
        mapper: Mapper[Any] = current.__mapper__
        prop = mapper.relationships.get(name)
        if prop is None:
            raise FieldError(
                current, name, mapper.relationships.keys(), kind="relation", context=context
            )
        props.append(prop)
        current = prop.mapper.class_
    return props


def _to_one_path(model: type[Any], path: str) -> list[RelationshipProperty[Any]]:
    """Return the to-one relationships of a ``select_related`` path, or raise ``FieldError``."""
    props = relation_path(model, path, "select_related()")
    current = model
    for prop in props:
        if prop.uselist:
            mapper: Mapper[Any] = current.__mapper__
            to_one = sorted(p.key for p in mapper.relationships if not p.uselist)
            error = FieldError(
                current, prop.key, to_one, kind="to-one relation", context="select_related()"
            )
            others = f" Its to-one relations: {', '.join(to_one)}." if to_one else ""
            error.args = (
                f"select_related() follows to-one relations only, and "
                f"{current.__name__}.{prop.key} is a to-many relation: load it with "
                f"prefetch_related({path!r}).{others}",
            )
            raise error
        current = prop.mapper.class_
    return props


def prefetch_paths(model: type[Any], items: Iterable[Any]) -> list[list[RelationshipProperty[Any]]]:
    """Validate ``prefetch_related`` items before any SQL; return each one's relationships.

    Items are relation paths or ``Prefetch`` objects (read through their
    ``lookup``, ``queryset`` and ``to_attr``).
    """
    paths = []
    seen: list[str] = []  # the paths loaded so far, in order (intermediate levels too)
    for item in items:
        lookup = getattr(item, "lookup", item)
        if not isinstance(lookup, str):
            raise TypeError(f"prefetch_related() takes relation names or Prefetch(), got {item!r}.")
        props = relation_path(model, lookup, "prefetch_related()")
        queryset = getattr(item, "queryset", None)
        to_attr = getattr(item, "to_attr", None)
        prop = props[-1]
        target = prop.mapper.class_
        if queryset is not None and not issubclass(queryset.model, target):
            raise TypeError(
                f"Prefetch({prop.key!r}) needs a queryset of {target.__name__}, "
                f"got one of {queryset.model.__name__}."
            )
        parent: Mapper[Any] = prop.parent
        if to_attr is not None and to_attr in parent.attrs:
            raise ValueError(
                f"Prefetch to_attr={to_attr!r} conflicts with a field on {parent.class_.__name__}."
            )
        path = lookup if to_attr is None else f"{lookup.rpartition('__')[0]}__{to_attr}".lstrip("_")
        if queryset is not None and path in seen:
            # As Django: the queryset would not be used for what is loaded already.
            raise ValueError(
                f"prefetch_related(): {path!r} lookup was already seen with a different "
                "queryset; put the Prefetch() with the queryset before the lookups through it."
            )
        names = lookup.split("__")
        seen.extend("__".join(names[:i]) for i in range(1, len(names)))
        seen.append(path)
        paths.append(props)
    return paths


def _select_related(
    model: type[Any], state: QueryState, resolver: Resolver, start: int
) -> tuple[list[Any], tuple[RelatedLayout, ...]]:
    """Join every ``select_related`` path and return its columns and layouts."""
    columns: list[Any] = []
    layouts: list[RelatedLayout] = []
    index_of: dict[str, int] = {}
    for path in state.select_related:
        props = _to_one_path(model, path)
        names = path.split("__")
        for depth in range(1, len(props) + 1):
            prefix = "__".join(names[:depth])
            if prefix in index_of:
                continue
            prop = props[depth - 1]
            target = prop.mapper.class_
            entity = resolver.join_path(props[:depth], names[:depth])
            keys = tuple(p.key for p in target.__mapper__.column_attrs)
            parent = index_of["__".join(names[: depth - 1])] if depth > 1 else -1
            pk_key = info(target).pk
            layouts.append(
                RelatedLayout(
                    model=target,
                    parent=parent,
                    relation=prop.key,
                    keys=keys,
                    start=start,
                    pk_index=start + keys.index(pk_key),
                )
            )
            index_of[prefix] = len(layouts) - 1
            columns.extend(getattr(entity, key) for key in keys)
            start += len(keys)
    return columns, tuple(layouts)


def _select(
    model: type[Any],
    state: QueryState,
    *,
    default_pk: bool = False,
    resolver: Resolver | None = None,
    lift: Callable[[Resolver], list[ColumnElement[Any]]] | None = None,
) -> tuple[Select[Any], Layout | None]:
    """Build the SELECT for ``state`` (names resolved, FieldError raised here).

    ``resolver`` is given for a subquery (``Exists``/``Subquery``): it selects
    from an alias of the model and resolves ``OuterRef`` in the enclosing query.
    ``lift`` returns more columns to select (and group by), resolved after the
    annotations (``aggregate()`` over this query as a subquery).
    """
    if state.combinator is not None:
        return _combined_select(model, state, default_pk=default_pk)
    if resolver is None:
        resolver = _resolver(model, state)
    resolver.grouping = resolver.grouping or bool(state.group_by)
    _annotate(state, resolver)
    lifted = lift(resolver) if lift is not None else []
    layout: Layout | None = None
    if state.kind == "model":
        keys = _loaded_keys(model, state)
        entity = resolver.entity
        columns: list[Any] = [getattr(entity, key) for key in keys]
        related_columns, related = _select_related(model, state, resolver, len(keys))
        names = tuple(name for name, _ in state.annotations if name not in state.aliases)
        annotations = [resolver.annotations[name].label(name) for name in names]
        stmt: Select[Any] = select(*columns, *related_columns, *annotations)
        layout = Layout(model=model, keys=keys, related=related, annotations=names)
        prefetch_paths(model, state.prefetch_related)
    else:
        stmt = select(*_value_columns(model, state, resolver))
    if lifted:
        stmt = stmt.add_columns(*lifted)
    stmt = stmt.select_from(resolver.entity)
    where = _where(state, resolver)
    ordered = _ordered(state, resolver, default_pk=default_pk)
    if state.distinct and not state.distinct_fields:
        ordered = _by_label(stmt, ordered)
    order = [item.sql for item in ordered]
    group_by = _group_by(state, resolver)
    if group_by and not state.group_by:
        # The other annotations that read the rows' columns are grouped, as Django
        # does: by their value (Coalesce("books__x", "books__reviews__y") is one
        # group per author and value, not per pair of columns). One holding a
        # subquery is grouped by the columns it reads. An alias() is not selected,
        # so not grouped (as in Django): unless the rows are ordered by it or a
        # HAVING names it, it is not computed at all.
        tables = resolver.from_selectables()
        for name, _ in state.annotations:
            if name in resolver.aggregate_annotations:
                continue
            if name in state.aliases and name not in resolver.having_names:
                continue
            expression = _expression(resolver.annotations[name])
            elements = list(visitors.iterate(expression))
            columns = [
                element
                for element in elements
                if isinstance(element, ColumnClause)
                and any(element.table is table for table in tables)
            ]
            if columns and not any(isinstance(e, SelectBase | ScalarSelect) for e in elements):
                columns = [expression]
            for column in columns:
                if not _contains(group_by, column):
                    group_by.append(column)
    if group_by and not state.group_by and state.kind != "model":
        # values() of a query with aggregate annotations: as Django, the selected
        # columns that are not aggregates are grouped too (books__title: per book).
        for name, selected in zip(state.fields, stmt.selected_columns, strict=False):
            if name not in resolver.aggregate_annotations and not _contains(group_by, selected):
                group_by.append(_expression(selected))
    if group_by:
        group_by.extend(lifted)
        # As Django: what the rows are ordered by is grouped by too (not aggregates).
        for item in ordered:
            column = item.column
            if column is not None and not item.aggregate and not _contains(group_by, column):
                group_by.append(column)
    stmt = resolver.apply_joins(stmt)
    stmt = _filtered(stmt, where)
    if group_by:
        stmt = stmt.group_by(*_by_position(stmt, group_by))
        order = [_ordered_by_position(stmt, item) for item in ordered]
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
            if order and state.for_update is None:
                wrapped = _distinct_ordered(stmt.order_by(None), ordered, state)
                if wrapped is not None:
                    return _marked_as(stmt, wrapped), layout
    if state.limit is not None:
        stmt = stmt.limit(state.limit)
    if state.offset is not None:
        stmt = stmt.offset(state.offset)
    if state.for_update is not None:
        nowait, skip_locked, of = state.for_update
        stmt = stmt.with_for_update(nowait=nowait, skip_locked=skip_locked, of=of or None)
    return stmt, layout


_COMPOUNDS = {
    ("union", False): union,
    ("union", True): union_all,
    ("intersection", False): intersect,
    ("difference", False): except_,
}


def _combined_select(
    model: type[Any], state: QueryState, *, default_pk: bool
) -> tuple[Select[Any], Layout | None]:
    """Return ``SELECT * FROM (a UNION b ...)`` with the combined query's order and slice.

    Each query keeps its filters and annotations; its ordering is dropped unless
    it is sliced (then it stands in a subquery of its own, which both databases
    take). The combined rows are ordered by the names of the first query's columns.
    """
    op, all_rows, parts = state.combinator or ("union", False, ())
    selects: list[Select[Any]] = []
    layout: Layout | None = None
    names: list[str] = []
    for index, part in enumerate(parts):
        part_state: QueryState = part.state.clone(select_related=(), prefetch_related=())
        sliced = part_state.limit is not None or part_state.offset is not None
        if not sliced:
            part_state = part_state.clone(order_by=())
        stmt, part_layout = _select(part.model, part_state)
        if sliced or part_state.combinator is not None:
            inner = stmt.subquery()
            stmt = select(*inner.c)
        if index == 0:
            layout = part_layout
            if part_layout is not None:
                names = [*part_layout.keys, *part_layout.annotations]
            else:
                names = list(stmt.selected_columns.keys())
        elif len(stmt.selected_columns) != len(selects[0].selected_columns):
            raise TypeError(
                f"{op}() needs queries of the same number of columns: "
                f"{len(selects[0].selected_columns)} and {len(stmt.selected_columns)}."
            )
        selects.append(stmt)
    combined = _COMPOUNDS[op, all_rows](*selects).subquery()
    columns = list(combined.c)
    if state.kind == "model":
        stmt = select(*columns)
    else:
        # Rows are named by the combined query's values() (else the first query's columns).
        names = list(state.fields or names)
        stmt = select(*(column.label(name) for column, name in zip(columns, names, strict=True)))
    order = _combined_order(model, state, names, columns, default_pk=default_pk)
    if order:
        stmt = stmt.order_by(*order)
    if state.limit is not None:
        stmt = stmt.limit(state.limit)
    if state.offset is not None:
        stmt = stmt.offset(state.offset)
    return stmt, layout


def _combined_order(
    model: type[Any], state: QueryState, names: list[str], columns: list[Any], *, default_pk: bool
) -> list[Any]:
    """Return the ORDER BY of a combined query: names of the first query's columns."""
    items: tuple[Any, ...]
    if state.order_by is None or (not state.order_by and state.reversed):
        wanted = default_pk or state.reversed
        items = ("pk",) if wanted and pk_name(model) in names else ()
    else:
        items = state.order_by
    result = []
    for item in items:
        if not isinstance(item, str) or item == "?":
            raise TypeError(
                "A combined QuerySet (union(), intersection(), difference()) is ordered by "
                f"the names of its columns, like order_by('-name'); got {item!r}."
            )
        descending = item.startswith("-")
        name = item.lstrip("-")
        key = pk_name(model) if name == "pk" and "pk" not in names else name
        if key not in names:
            raise FieldError(model, name, names, context="order_by() of a combined QuerySet")
        column = columns[names.index(key)]
        if state.reversed:
            descending = not descending
        result.append(column.desc() if descending else column.asc())
    return result


#: The execution option that marks a statement whose WHERE is provably FALSE.
_EMPTY = "flash_db_provably_empty"


def _mark_empty(stmt: Select[Any]) -> Select[Any]:
    return stmt.execution_options(**{_EMPTY: True})


def _marked_as(inner: Select[Any], outer: Select[Any]) -> Select[Any]:
    """Return ``outer`` (a SELECT over ``inner``) marked empty when ``inner`` is."""
    return _mark_empty(outer) if provably_empty(inner) else outer


def provably_empty(stmt: Any) -> bool:
    """Return whether ``stmt`` selects no row whatever the data (a WHERE that is FALSE).

    As Django's ``EmptyResultSet`` (an empty ``IN`` ANDed in): ``fetch()``,
    ``count()``, ``exists()``, ``iterator()``, ``update()`` and ``delete()``
    answer without sending it. An ``UPDATE``/``DELETE`` is empty when its WHERE
    folded to FALSE.
    """
    if isinstance(stmt, Update | Delete):
        return stmt.whereclause is not None and _never(stmt.whereclause)
    return bool(stmt.get_execution_options().get(_EMPTY, False))


def _filtered(stmt: Select[Any], where: list[ColumnElement[bool]]) -> Select[Any]:
    """Return ``stmt`` with ``where``, marked empty when a condition is provably FALSE."""
    if not where:
        return stmt
    stmt = stmt.where(*where)
    return _mark_empty(stmt) if any(_never(condition) for condition in where) else stmt


def _never(condition: Any) -> bool:
    """Return whether ``condition`` is FALSE, or an AND with a FALSE term."""
    if is_false(condition):
        return True
    return (
        isinstance(condition, BooleanClauseList)
        and condition.operator is operators.and_
        and any(_never(term) for term in condition.clauses)
    )


def select_statement(
    model: type[Any], state: QueryState, *, first: bool = False
) -> tuple[Select[Any], Layout | None]:
    """Return the SELECT of ``fetch()`` (``first``: ordered by pk unless ordered) and its layout."""
    return _select(model, state, default_pk=first)


def check_backend(state: QueryState, dialect_name: str) -> None:
    """Refuse what the session's database cannot do, before any SQL is sent."""
    if state.distinct_fields and dialect_name != "postgresql":
        raise FlashDBError(
            f"distinct({', '.join(map(repr, state.distinct_fields))}) is DISTINCT ON, "
            "which only PostgreSQL supports; use distinct() without fields, or values(...)"
            ".distinct(), on this database."
        )


# -- count, exists, aggregates --------------------------------------------------------


def count_statement(model: type[Any], state: QueryState) -> Select[Any]:
    """Return ``SELECT count(*)`` of the rows the query would return."""
    if state.combinator is not None:
        inner, _ = _select(model, state.clone(order_by=()))
        return select(func.count()).select_from(inner.subquery())
    sliced = state.limit is not None or state.offset is not None
    # values("posts__title") has one row per related row: count those rows.
    joined = state.kind != "model" and any("__" in name for name in state.fields)
    if sliced or state.distinct or state.annotations or joined:
        # Count the rows the query would return: DISTINCT applies to the selected
        # values. All columns of a model row are as distinct as its pk, but not its
        # annotations: annotate(n=F("books__pages")).distinct() has a row per
        # author and page count, as in Django.
        if state.kind != "model" and state.fields:
            fields = state.fields
        else:
            shown = (name for name, _ in state.annotations if name not in state.aliases)
            fields = ("pk", *shown) if state.distinct else ("pk",)
        if state.group_by or state.distinct_fields:
            inner, _ = _select(model, _unused_aggregates_dropped(state).clone(order_by=()))
        else:
            inner, _ = _select(model, state.clone(order_by=(), kind="tuple", fields=fields))
        return _marked_as(inner, select(func.count()).select_from(inner.subquery()))
    resolver = _resolver(model, state)
    stmt = select(func.count()).select_from(resolver.entity)
    where = _where(state, resolver)
    stmt = resolver.apply_joins(stmt)
    return _filtered(stmt, where)


def _unused_aggregates_dropped(state: QueryState) -> QueryState:
    """Return ``state`` without the aggregate annotations nothing after them uses.

    Counting the groups of ``values(...).annotate(n=Count(...))``, an aggregate that
    no later filter() or annotation can name changes neither the groups nor their
    number, so it is not computed (as Django's count() leaves it out: PostgreSQL
    is not asked to compare what the aggregate's ``filter=`` compares).
    """
    if state.distinct or state.distinct_fields:
        return state  # DISTINCT applies to the selected values, the aggregate's too
    annotations = list(state.annotations)
    marks = list(state.annotation_filters)
    dropped: set[str] = set()
    while annotations and len(marks) == len(annotations):
        name, expression = annotations[-1]
        if not isinstance(expression, Aggregate) or name in state.group_by:
            break
        if marks[-1] != len(state.where):  # a later filter() may name it (HAVING)
            break
        dropped.add(name)
        annotations.pop()
        marks.pop()
    if not dropped:
        return state
    return state.clone(
        annotations=tuple(annotations),
        annotation_filters=tuple(marks),
        fields=tuple(f for f in state.fields if f not in dropped),
        aliases=tuple(a for a in state.aliases if a not in dropped),
    )


def _unread_aggregates_counted(state: QueryState, aggregates: Mapping[str, Any]) -> QueryState:
    """Return ``state`` with the aggregate annotations ``aggregates`` do not read as ``Count("*")``.

    As Django's ``aggregate()`` over an annotated query: the subquery stays grouped
    per row (its rows are unchanged), but an annotation nothing reads is not
    computed (PostgreSQL is not asked to compare what its ``filter=`` compares).
    Annotations a later ``filter()`` may name (HAVING), ``values()`` fields and
    grouped queries are left alone.
    """
    if state.group_by or state.distinct or state.distinct_fields:
        return state
    read: set[str] = set()
    for agg in aggregates.values():
        if not isinstance(agg, Aggregate) or not isinstance(agg.expression, str):
            return state  # an expression may read any annotation
        read.add(agg.expression.split("__")[0])
    marks = state.annotation_filters
    annotations = []
    changed = False
    for i, (name, expression) in enumerate(state.annotations):
        unread = (
            isinstance(expression, Aggregate)
            and name not in read
            and name not in state.fields
            and i < len(marks)
            and marks[i] == len(state.where)
            and not any(name in _referenced_names(e) for _, e in state.annotations[i + 1 :])
        )
        if unread:
            expression = Count("*")
            changed = True
        annotations.append((name, expression))
    return state.clone(annotations=tuple(annotations)) if changed else state


def _referenced_names(expression: Any) -> set[str]:
    """Return the first parts of the names an expression reads (``F("a0")``: ``a0``)."""
    names: set[str] = set()
    stack = [expression]
    while stack:
        item = stack.pop()
        if isinstance(item, F):
            names.add(item.name.split("__")[0])
        elif isinstance(item, Aggregate) and isinstance(item.expression, str):
            names.add(item.expression.split("__")[0])
        if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
            names.add(item[0].split("__")[0])  # a Q's lookup (filter=Q(a0__gt=1))
            stack.append(item[1])
        elif isinstance(item, Expression):
            stack.extend(getattr(item, "__dict__", {}).values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return names


def exists_statement(model: type[Any], state: QueryState) -> Select[Any]:
    """Return ``SELECT EXISTS (...)`` of the query."""
    if state.group_by or state.combinator is not None:
        inner, _ = _select(model, state.clone(order_by=()))
    else:
        inner, _ = _select(model, state.clone(order_by=(), kind="tuple", fields=("pk",)))
    return _marked_as(inner, select(inner.exists()))


def aggregate_statement(
    model: type[Any], state: QueryState, aggregates: Mapping[str, Any]
) -> Select[Any]:
    """Return the one-row SELECT of ``aggregate(**aggregates)`` over the query's rows."""
    probe = _resolver(model, state)
    _annotate(state, probe)
    if (
        state.limit is not None
        or state.offset is not None
        or state.distinct
        or state.group_by
        or probe.aggregate_annotations
    ):
        return _aggregate_over_subquery(model, state, aggregates)
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
        parts = [_aggregate_select(model, state, {name: agg}) for name, agg in aggregates.items()]
        outer = select(
            *(
                part.scalar_subquery().label(name)
                for part, name in zip(parts, aggregates, strict=True)
            )
        )
        return _marked_as(parts[0], outer)  # the same WHERE in each
    return _aggregate_select(model, state, aggregates)


def _aggregate_select(
    model: type[Any], state: QueryState, aggregates: Mapping[str, Any]
) -> Select[Any]:
    """Return ``SELECT agg, ... FROM model [joins] WHERE filters`` (no GROUP BY)."""
    resolver = _resolver(model, state)
    _annotate(state, resolver)
    where = _where(state, resolver)
    resolver.grouping = True  # aggregates over the matching rows, not per row
    columns = [
        (expr.resolve(resolver) if isinstance(expr, Expression) else expr).label(name)
        for name, expr in aggregates.items()
    ]
    stmt = resolver.apply_joins(select(*columns).select_from(resolver.entity))
    return _filtered(stmt, where)


def _aggregate_over_subquery(
    model: type[Any], state: QueryState, aggregates: Mapping[str, Any]
) -> Select[Any]:
    """Return aggregates over this (sliced, distinct or grouped) query as a subquery.

    As Django: an aggregate of a selected name (a field, an annotation) reads
    that column of the subquery. Any other (a relation path, ``filter=``, an
    expression) is resolved on the subquery's rows, joins included, and the
    columns it reads are selected there (``__colN`` in Django) for the outer
    aggregate to read.
    """
    sliced = state.limit is not None or state.offset is not None
    if not sliced:
        state = state.clone(order_by=())  # ordering matters to a slice only
    state = _unread_aggregates_counted(state, aggregates)
    selected = _selected_names(model, state)
    lifted: dict[str, ColumnElement[Any]] = {}
    columns: dict[tuple[int, str], tuple[str, ColumnElement[Any]]] = {}

    def lift(resolver: Resolver) -> list[ColumnElement[Any]]:
        previous = resolver.grouping, resolver.many_as_join
        resolver.grouping = resolver.many_as_join = True
        try:
            for name, agg in aggregates.items():
                if _reads_selected(agg, selected):
                    continue
                if not isinstance(agg, Expression):
                    raise TypeError(
                        "aggregate() over a sliced, distinct or grouped QuerySet takes "
                        f"aggregates such as Sum('views'); got {agg!r}."
                    )
                lifted[name] = agg.resolve(resolver)
        finally:
            resolver.grouping, resolver.many_as_join = previous
        tables = resolver.from_selectables()
        for expression in lifted.values():
            for element in visitors.iterate(expression):
                if isinstance(element, ColumnClause) and any(
                    element.table is table for table in tables
                ):
                    key = (id(element.table), element.key)
                    if key not in columns:
                        columns[key] = (f"flash_col{len(columns)}", element)
        return [element.label(label) for label, element in columns.values()]

    inner_select, _ = _select(model, state, lift=lift)
    inner = inner_select.subquery()

    def repoint(element: Any, **kw: Any) -> Any:
        if isinstance(element, ColumnClause) and element.table is not None:
            found = columns.get((id(element.table), element.key))
            if found is not None:
                return inner.c[found[0]]
        return None

    result = []
    for name, agg in aggregates.items():
        if name in lifted:
            outer: Any = visitors.replacement_traverse(lifted[name], {}, repoint)
            result.append(outer.label(name))
            continue
        source = agg.expression
        if source == "*":
            result.append(agg.sql(None, None).label(name))
        else:
            result.append(agg.sql(inner.c[source], None).label(name))
    outer = select(*result).select_from(inner)
    if any(is_empty(expression) for expression in lifted.values()):
        # As Django: an aggregate whose filter= is provably empty, computed over the
        # subquery, empties the whole aggregate() (its EmptyResultSet reaches the
        # subquery): every aggregate takes its value over no row.
        return _mark_empty(outer)
    return _marked_as(inner_select, outer)


def _selected_names(model: type[Any], state: QueryState) -> set[str]:
    """Return the names a query's rows have as columns (fields, annotations)."""
    if state.kind != "model" and state.fields:
        return set(state.fields)
    names = {prop.key for prop in model.__mapper__.column_attrs}
    return names | {name for name, _ in state.annotations}


def _reads_selected(agg: Any, selected: set[str]) -> bool:
    """Return whether ``agg`` aggregates one selected column as it is (``Sum("views")``)."""
    return (
        isinstance(agg, Aggregate)
        and type(agg).sql is Aggregate.sql
        and agg.filter is None
        and isinstance(agg.expression, str)
        and (agg.expression == "*" or agg.expression in selected)
    )


# -- UPDATE and DELETE --------------------------------------------------------------


def _pk_filter(model: type[Any], state: QueryState, resolver: Resolver) -> list[Any]:
    """Return WHERE conditions for UPDATE/DELETE (a pk IN subquery when joins are needed)."""
    pk = getattr(model, pk_name(model))
    if state.annotations:
        inner, _ = _select(model, state.clone(kind="tuple", fields=("pk",), order_by=()))
        return [pk.in_(inner.scalar_subquery())]
    where = _where(state, resolver)
    needs_subquery = bool(resolver.joins)
    if not needs_subquery and any(isinstance(item, ColumnElement) for item in _leaves(state)):
        # A plain SQLAlchemy condition may name another table (an implicit FROM):
        # only then is the statement's FROM list worth computing.
        probe = select(pk).where(*where)
        needs_subquery = len(probe.get_final_froms()) > 1
    if not needs_subquery:
        return where
    inner = resolver.apply_joins(select(pk)).where(*where)
    return [pk.in_(inner.scalar_subquery())]


def _leaves(state: QueryState) -> Iterable[Any]:
    stack = list(state.where)
    while stack:
        item = stack.pop()
        if isinstance(item, Q):
            stack.extend(item.children)
        else:
            yield item


def _refuse_sliced(state: QueryState, method: str) -> None:
    if state.limit is not None or state.offset is not None:
        raise TypeError(f"Cannot {method}() a sliced QuerySet; filter it instead.")


def update_statement(model: type[Any], state: QueryState, values: Mapping[str, Any]) -> Update:
    """Return the ``UPDATE`` of ``QuerySet.update(**values)`` (``F()`` values allowed)."""
    if not values:
        raise TypeError("update() needs at least one field=value.")
    _refuse_sliced(state, "update")
    table = _table(model, "update")
    resolver = _resolver(model, state)
    values_resolver = _resolver(model, state)
    columns = dict(info(model).columns)
    assignments: dict[Any, Any] = {}
    for name, value in values.items():
        key = pk_name(model) if name == "pk" else name
        if key not in columns:
            raise FieldError(model, name, [*columns], context="update()")
        if isinstance(value, Expression):
            value = value.resolve(values_resolver)
        assignments[columns[key]] = value
    if values_resolver.joins or values_resolver.plain_aggregates:
        raise ValueError(
            "update() values may use F() on this model's own fields only, not related "
            "fields or aggregates; use a Subquery() with OuterRef() for those."
        )
    return update(table).values(assignments).where(*_pk_filter(model, state, resolver))


def delete_statement(model: type[Any], state: QueryState) -> Delete:
    """Return the ``DELETE`` of ``QuerySet.delete()``."""
    _refuse_sliced(state, "delete")
    table = _table(model, "delete")
    resolver = _resolver(model, state)
    return delete(table).where(*_pk_filter(model, state, resolver))


def _table(model: type[Any], method: str) -> Any:
    table = info(model).table
    if table is None:
        raise TypeError(f"{method}() needs a model mapped to one table, not {model.__name__}.")
    return table


# -- statement templates ----------------------------------------------------------

_TEMPLATE_LOOKUPS = frozenset({"exact", "lt", "lte", "gt", "gte"})
# Values a lookup binds as they are (see lookups._bound/_wide): their SQL never changes.
_TEMPLATE_TYPES = frozenset(
    {int, str, float, bool, Decimal, dt.datetime, dt.date, dt.time, uuid.UUID}
)
# Templates kept per model; a model queried in more shapes starts over.
_TEMPLATE_LIMIT = 256


class _Templates:
    """One model's statement templates, and the integer range of each column."""

    __slots__ = ("accepts", "attrs", "kinds", "ranges", "statements")

    def __init__(self, model: type[Any]) -> None:
        mapper = model.__mapper__
        self.attrs = mapper.column_attrs
        self.ranges: dict[str, tuple[int, int] | None] = {
            prop.key: integer_range(prop.columns[0].type) for prop in mapper.column_attrs
        }
        # The value types each column takes unconverted; others are converted (or
        # refused with InvalidValue) by a statement built for the call.
        self.accepts: dict[str, frozenset[type]] = {}
        self.kinds: dict[str, str | None] = {}
        for prop in mapper.column_attrs:
            kind = value_kind(prop.columns[0].type)
            self.kinds[prop.key] = kind
            self.accepts[prop.key] = _TEMPLATE_TYPES if kind is None else EXACT_TYPES[kind]
        if "pk" not in self.ranges:
            self.ranges["pk"] = self.ranges[pk_name(model)]
            self.accepts["pk"] = self.accepts[pk_name(model)]
            self.kinds["pk"] = self.kinds[pk_name(model)]
        self.statements: dict[tuple[Any, ...], Any] = {}


_TEMPLATES: dict[type[Any], _Templates] = {}


def _templates(model: type[Any]) -> _Templates:
    """Return ``model``'s templates (made anew when its mapping changed)."""
    entry = _TEMPLATES.get(model)
    if entry is None or entry.attrs is not model.__mapper__.column_attrs:
        entry = _Templates(model)
        _TEMPLATES[model] = entry
    return entry


def _takes_as_is(entry: _Templates, name: str, value_type: type) -> bool:
    """Return whether column ``name`` takes a subclass of its types (asyncpg's UUID) as it is."""
    kind = entry.kinds[name]
    return kind is not None and takes_as_is(kind, value_type)


def _where_shape(
    entry: _Templates, where: tuple[Any, ...]
) -> tuple[tuple[Any, ...], list[Any]] | None:
    """Return ``(shape, values)`` of filters made of plain lookups on own columns, else None."""
    ranges = entry.ranges
    accepts = entry.accepts
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
            if kind not in accepts[name] and not _takes_as_is(entry, name, kind):
                return None  # converted (or refused) by the statement built for it
            if kind is int:
                bounds = ranges[name]
                if bounds is not None and outside(bounds, value):
                    return None  # settled before SQL (no match), as the lookup does
            elif kind is str and not sendable(value):
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


def template(
    model: type[Any],
    state: QueryState,
    terminal: str,
    build: Callable[[type[Any], QueryState], Any],
) -> tuple[Any, dict[str, Any] | None]:
    """Return ``build(model, state)`` and its parameters: a cached template when the shape allows.

    ``terminal`` names what ``build`` makes of the state (the rows, the first
    row, the count); the result is cached per model and shape. The parameters
    are a dict (maybe empty) for a template and None for a statement built for
    this call only: ``flash_db.execution`` runs templates on the driver.
    """
    if (
        state.annotations
        or state.group_by
        or state.combinator is not None
        or (state.for_update is not None and state.for_update[2])
        or (state.order_by is not None and any(type(o) is not str for o in state.order_by))
        or any(type(p) is not str for p in state.prefetch_related)
    ):
        return build(model, state), None
    entry = _templates(model)
    found = _where_shape(entry, state.where)
    if found is None:
        return build(model, state), None
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
    built = entry.statements.get(key)
    if built is None:
        built = build(model, state.clone(where=_template_where(state.where)))
        if len(entry.statements) >= _TEMPLATE_LIMIT:
            entry.statements.clear()
        entry.statements[key] = built
    return built, {f"flash_p{i}": value for i, value in enumerate(values)}


class _WriteTemplate:
    """A QuerySet ``update()``/``delete()`` template: the statement and what each call adds."""

    __slots__ = ("counted", "onupdates", "stmt")

    def __init__(self, stmt: Any, onupdates: tuple[tuple[str, Callable[[], Any]], ...]) -> None:
        self.stmt = stmt
        # The same statement returning a constant per row: SQLite's driver counts rows.
        self.counted = stmt.returning(literal_column("1"))
        self.onupdates = onupdates  # (parameter name, function) of Python onupdate values


def _value_shape(entry: _Templates, values: Mapping[str, Any]) -> tuple[Any, ...] | None:
    """Return the shape of ``update(**values)``: plain values on own columns, else None."""
    shape = []
    for name, value in values.items():
        if name not in entry.ranges:
            return None
        kind = type(value)
        if value is not None:
            if kind not in _TEMPLATE_TYPES:
                return None  # expressions, F(), lists: built per call
            if kind is int:
                bounds = entry.ranges[name]
                if bounds is not None and outside(bounds, value):
                    return None
            elif kind is str and not sendable(value):
                return None
        shape.append((name, None if value is None else kind))
    return tuple(shape)


def _build_write(
    model: type[Any], state: QueryState, values: Mapping[str, Any] | None
) -> _WriteTemplate | None:
    """Build the template of ``update(**values)`` (``delete()`` when None) for a shape."""
    state = state.clone(where=_template_where(state.where))
    if values is None:
        return _WriteTemplate(delete_statement(model, state), ())
    columns = dict(info(model).columns)
    assignments: dict[str, Any] = {}
    for index, name in enumerate(values):
        column = columns[pk_name(model) if name == "pk" else name]
        assignments[name] = bindparam(f"flash_v{index}", type_=column.type)
    onupdates: list[tuple[str, Callable[[], Any]]] = []
    sent = {columns[pk_name(model) if name == "pk" else name].key for name in values}
    for key, column in columns.items():
        compute = column_value(column.onupdate)
        if compute is None or column.key in sent:
            continue
        if compute is PYTHON_ONLY:
            return None  # only SQLAlchemy's execution can compute it
        name = f"flash_u{len(onupdates)}"
        assignments[key] = bindparam(name, type_=column.type)
        onupdates.append((name, compute))
    return _WriteTemplate(update_statement(model, state, assignments), tuple(onupdates))


def write_template(
    model: type[Any], state: QueryState, values: Mapping[str, Any] | None
) -> tuple[Any, Any, dict[str, Any]] | None:
    """Return ``(statement, counted, params)`` of ``update(**values)``/``delete()`` from a template.

    ``values`` None means ``delete()``. The template is cached per model and
    shape as :func:`template`'s are (plain keyword filters on own columns, plain
    values); Python ``onupdate`` values (``updated_at``) are computed here, per
    call. None when the shape has no template: build the statement instead.
    """
    if (
        state.annotations
        or state.group_by
        or state.limit is not None
        or state.offset is not None
        or (values is not None and not values)
    ):
        return None
    entry = _templates(model)
    found = _where_shape(entry, state.where)
    if found is None:
        return None
    shape, where_values = found
    value_shape = None if values is None else _value_shape(entry, values)
    if values is not None and value_shape is None:
        return None
    key = ("update" if values is not None else "delete", shape, value_shape)
    built = entry.statements.get(key)
    if built is None:
        # False: this shape is built per call (an onupdate needs SQLAlchemy's execution).
        built = _build_write(model, state, values) or False
        if len(entry.statements) >= _TEMPLATE_LIMIT:
            entry.statements.clear()
        entry.statements[key] = built
    if not isinstance(built, _WriteTemplate):
        return None
    params = {f"flash_p{i}": value for i, value in enumerate(where_values)}
    if values is not None:
        params.update({f"flash_v{i}": value for i, value in enumerate(values.values())})
        for name, compute in built.onupdates:
            params[name] = compute()
    return built.stmt, built.counted, params
