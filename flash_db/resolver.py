"""The Resolver: ``"__"`` paths (``author__name__icontains``) to columns, joins and conditions.

A :class:`Resolver` is made by the compiler for one statement. It turns field
paths into columns, keyword lookups into conditions and ``Q`` trees into
boolean expressions, and remembers the joins it needed so the statement can add
them. Every value becomes a bound parameter; only names the model declares can
shape the SQL, and unknown names raise :class:`~flash_db.exceptions.FieldError`
before any statement exists.

Relations: a to-one hop (``author__name``) is a LEFT OUTER JOIN on an alias,
reused for the same path within one statement. A to-many hop in a filter
(``posts__title``) is a correlated ``EXISTS``, so parent rows are never
duplicated. Django joins a to-many relation once per ``filter()`` call and every
condition of the call names the joined row (under ``&``, ``|``, ``^``, in
``F()``, in a ``~Q`` after the join): here the call's conditions through the
relation are compiled inside one ``EXISTS`` over its rows, and where Django's
join would be LEFT OUTER, a parent without related rows is judged on a row of
NULLs (``Resolver._compile_and``). In ``order_by``/``values`` and ``F()``
outside a filter a to-many hop is a LEFT OUTER JOIN (one result per related row,
as in Django).

Queries inside queries (``Exists``, ``Subquery``, ``author__in=qs``) are
compiled by the function the compiler hands to the root resolver
(``subquery_compiler``): this layer never builds a whole statement itself.
"""

from __future__ import annotations

import dataclasses
import functools
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    JSON,
    ColumnElement,
    Date,
    DateTime,
    Select,
    Time,
    and_,
    case,
    cast,
    false,
    inspect,
    literal,
    not_,
    null,
    or_,
    select,
    true,
)
from sqlalchemy.orm import (
    ColumnProperty,
    Mapper,
    QueryableAttribute,
    RelationshipProperty,
    aliased,
)
from sqlalchemy.sql.elements import ColumnClause

from flash_db import constructs
from flash_db.constructs import is_empty, is_false
from flash_db.exceptions import FieldError, InvalidValue
from flash_db.expressions import Aggregate, Combined, Expression, F, Q, Queryable
from flash_db.fields import field_choices, info, local_foreign_key, pk_name
from flash_db.lookups import (
    CONVERTED,
    EXPECTED,
    LOOKUP_CHOICES,
    LOOKUPS,
    TRANSFORMS,
    check_nul,
    convert,
    json_keys,
    key_lookup,
    key_value,
    plain,
    value_kind,
)

__all__ = ["MAX_PATH_PARTS", "Resolver", "SubqueryCompiler", "correlated"]

#: The most ``"__"``-separated parts a lookup or field path may have (relation hops,
#: the field, transforms and the lookup).
MAX_PATH_PARTS = 24

#: Compiles a query standing inside another: (query, the resolver to use, ordered, pk only).
SubqueryCompiler = Callable[[Queryable, "Resolver", bool, bool], Select[Any]]


def _is_many(rel: RelationshipProperty[Any]) -> bool:
    return bool(rel.uselist)


def _attr_name(mapper: Mapper[Any], column: Any) -> str:
    return mapper.get_property_by_column(column).key


@dataclass
class _Path:
    """A parsed ``"__"`` path: relation hops, then a field (or none), then lookup parts."""

    relations: list[RelationshipProperty[Any]]
    names: list[str]
    model: type[Any]
    field: str | None
    tail: list[str]
    annotation: bool = False
    #: Keys into a JSON column in values()/order_by()/F() (``data__owner__name``).
    keys: list[str] = dataclasses.field(default_factory=list)

    def first_many(self) -> int | None:
        """Return the index of the first to-many hop, or None."""
        for i, rel in enumerate(self.relations):
            if _is_many(rel):
                return i
        return None


@dataclass
class _Join:
    alias: Any
    onclause: Any
    model: Any = None
    many: bool = False  # a to-many hop on the way: one row per related row


@dataclass
class _Flags:
    """What resolving one expression touched (to route it to WHERE or HAVING)."""

    aggregate: bool = False


class Resolver:
    """Resolve names on one model for one statement, collecting the joins it needs.

    ``entity`` is the model or an alias of it (inside subqueries); ``outer`` is
    the resolver of the enclosing query (``OuterRef``); ``base`` resolves
    ``F()`` values inside a to-many ``EXISTS`` (they name the query's model, as
    in Django). ``grouping`` makes aggregates plain SQL aggregates (for
    ``values().annotate()`` and ``aggregate()``) instead of correlated
    subqueries.
    """

    def __init__(
        self,
        model: type[Any],
        annotations: dict[str, ColumnElement[Any]] | None = None,
        *,
        entity: Any = None,
        outer: Resolver | None = None,
        base: Resolver | None = None,
        grouping: bool = False,
        subquery_compiler: SubqueryCompiler | None = None,
    ) -> None:
        self.model = model
        self.mapper: Mapper[Any] = model.__mapper__
        self.entity: Any = model if entity is None else entity
        self.annotations = annotations if annotations is not None else {}
        self.aggregate_annotations: set[str] = set()
        # The annotation names the condition being compiled resolved (an alias() a
        # HAVING names is grouped; see compiler._where).
        self.annotations_named: set[str] = set()
        self.having_names: set[str] = set()  # those named by the HAVING conditions
        self.outer = outer
        self.base: Resolver = self if base is None else base
        self.grouping = grouping
        self.joins: dict[str, _Join] = {}
        self.plain_aggregates = 0
        self.flags = _Flags()
        self.having: list[ColumnElement[bool]] = []
        # True while compiling an aggregate's filter=Q(...) over joined rows: a
        # to-many path then names the joined row, not an EXISTS.
        self.many_as_join = False
        # The filter() calls made before the annotation being resolved.
        self.prior_filters: tuple[Any, ...] = ()
        # While an EXISTS over a to-many prefix ("books") is compiled: the lookups and
        # F("books__id") of the filter() call name that EXISTS's row (as Django reuses
        # the call's join), not a new one.
        self.correlated_many: dict[str, Resolver] = {}
        # The filter()/exclude() call being compiled (None outside one).
        self.call: _Call | None = None
        # The row of NULLs Django's LEFT OUTER JOIN gives a parent without related
        # rows: every column of it is NULL, so a negated lookup on it holds (as
        # Django's NOT EXISTS tied to that row does).
        self.null_row = False
        if subquery_compiler is None:
            parent = outer if outer is not None else base
            subquery_compiler = parent.subquery_compiler if parent is not None else None
        self.subquery_compiler: SubqueryCompiler | None = subquery_compiler

    # -- names ---------------------------------------------------------------

    def choices(self, model: type[Any] | None = None) -> list[str]:
        """Return every name valid on ``model`` (default: this resolver's, with annotations)."""
        if model is None or model is self.model:
            return sorted({*field_choices(self.model), *self.annotations})
        return field_choices(model)

    def add_annotation(self, name: str, expression: ColumnElement[Any], plain: bool) -> None:
        """Make ``name`` resolvable; ``plain`` marks a SQL aggregate (filters go to HAVING)."""
        self.annotations[name] = expression
        if plain:
            self.aggregate_annotations.add(name)

    def parse(self, key: str, *, lookups: bool, context: str = "") -> _Path:
        """Split ``key`` into relation hops, a field and trailing lookup/transform names.

        A path of more than :data:`MAX_PATH_PARTS` parts raises ``FieldError``: no
        model is that deep, and compiling one would exhaust Python's recursion limit.
        """
        parts = key.split("__")
        if len(parts) > MAX_PATH_PARTS:
            shown = key if len(key) <= 60 else key[:57] + "..."
            error = FieldError(self.model, shown, (), context=context)
            error.args = (
                f"Cannot resolve keyword {shown!r}{f' in {context}' if context else ''} on "
                f"{self.model.__name__}: a path takes at most {MAX_PATH_PARTS} '__'-separated "
                f"parts, this one has {len(parts)}.",
            )
            raise error
        if self.annotations:
            # The longest prefix naming an annotation (``posts__count__gt``: Django's
            # default alias ``posts__count``).
            for end in range(len(parts), 0, -1):
                name = "__".join(parts[:end])
                if name in self.annotations:
                    path = _Path([], [], self.model, name, parts[end:], True)
                    return self._check_tail(path, lookups, context)
        model = self.model
        mapper: Mapper[Any] = self.mapper
        relations: list[RelationshipProperty[Any]] = []
        names: list[str] = []
        for i, part in enumerate(parts):
            name = pk_name(model) if part == "pk" else part
            prop = mapper.attrs.get(name) if not name.startswith("_") else None
            if isinstance(prop, RelationshipProperty):
                relations.append(prop)
                names.append(name)
                model = prop.mapper.class_
                mapper = prop.mapper
                continue
            if isinstance(prop, ColumnProperty):
                path = _Path(relations, names, model, name, parts[i + 1 :])
                return self._check_tail(path, lookups, context)
            if relations and part in LOOKUP_CHOICES:
                # The path ends at a relation (``author=obj``, ``posts__isnull=True``).
                return self._check_tail(
                    _Path(relations, names, model, None, parts[i:]), lookups, context
                )
            raise FieldError(model, part, self.choices(model), context=context)
        return _Path(relations, names, model, None, [])

    def _check_tail(self, path: _Path, lookups: bool, context: str) -> _Path:
        tail = path.tail
        if lookups and tail and not path.annotation and _is_json(path) and json_keys(tail)[0]:
            return path  # keys of a JSON column (``data__owner__name``), as Django's
        if not lookups and tail and not path.annotation and _is_json(path):
            # values("data__owner__name"), order_by(), F(): every part is a key.
            return _Path(path.relations, path.names, path.model, path.field, [], keys=tail)
        for i, part in enumerate(tail):
            last = i == len(tail) - 1
            if part in TRANSFORMS or (last and lookups and part in LOOKUPS):
                continue
            if not lookups:
                # order_by()/values()/F(): only transforms (``created_at__year``) may follow.
                choices = sorted(TRANSFORMS)
                raise FieldError(path.model, part, choices, kind="transform", context=context)
            raise FieldError(path.model, part, LOOKUP_CHOICES, kind="lookup", context=context)
        return path

    def column(self, path: str, *, context: str = "") -> ColumnElement[Any]:
        """Return the column (or annotation) that ``path`` names, joining relations as needed."""
        for prefix in sorted(self.correlated_many, key=len, reverse=True):
            if path == prefix or path.startswith(prefix + "__"):
                sub = self.correlated_many[prefix]
                return sub.column(path[len(prefix) + 2 :] or "pk", context=context)
        parsed = self.parse(path, lookups=False, context=context)
        column, _ = self._resolve(parsed)
        return column

    def _resolve(self, path: _Path) -> tuple[ColumnElement[Any], bool]:
        """Return the column for a parsed path and whether it may be NULL."""
        if path.annotation:
            name = path.field or ""  # an annotation path always names one
            if name in self.aggregate_annotations:
                self.flags.aggregate = True
            column = self.annotations[name]
            self.annotations_named.add(name)
            nullable = True
        else:
            column, nullable = self._field_column(path)
            nullable = nullable or self.null_row
            if path.keys:
                if isinstance(column, QueryableAttribute):
                    column = column.expression
                return key_value(column, path.keys), True
        for name in path.tail:
            if name in TRANSFORMS:
                if not _is_temporal(column):
                    lookups = sorted(LOOKUPS)
                    context = f"{path.field}__{name}"
                    raise FieldError(path.model, name, lookups, kind="lookup", context=context)
                empty = is_empty(column)
                column = TRANSFORMS[name](column)
                if empty:
                    column = constructs.EmptyResult(column)
        return column, nullable

    def _field_column(self, path: _Path) -> tuple[ColumnElement[Any], bool]:
        relations = list(path.relations)
        field = path.field
        if relations:
            last = relations[-1]
            fk = local_foreign_key(last)
            target_pk = pk_name(last.mapper.class_)
            if fk is not None and field in (None, target_pk):
                # ``author`` / ``author__id`` is the local foreign key: no join needed.
                entity = self._entity_for(relations[:-1], path.names[:-1])
                column = getattr(entity, _attr_name(last.parent, fk))
                joined = len(relations) > 1
                return column, joined or _nullable(column)
        entity = self._entity_for(relations, path.names)
        name = field if field is not None else pk_name(path.model)
        column = getattr(entity, name)
        return column, bool(relations) or _nullable(column)

    def _entity_for(self, relations: list[RelationshipProperty[Any]], names: list[str]) -> Any:
        """Return the model or join alias at the end of ``relations``, joining as needed."""
        entity = self.entity
        for i, rel in enumerate(relations):
            key = "__".join(names[: i + 1])
            join = self.joins.get(key)
            if join is None:
                alias = aliased(rel.mapper.class_)
                many = any(_is_many(hop) for hop in relations[: i + 1])
                onclause = getattr(entity, rel.key).of_type(alias)
                join = _Join(alias, onclause, rel.mapper.class_, many)
                self.joins[key] = join
            entity = join.alias
        return entity

    def from_selectables(self) -> list[Any]:
        """Return the tables and aliases this statement selects from (its entity and joins)."""
        return [
            inspect(self.entity).selectable,
            *(inspect(j.alias).selectable for j in self.joins.values()),
        ]

    def to_one_keys(self) -> list[ColumnElement[Any]]:
        """Return the primary keys of the rows joined through to-one relations only."""
        keys: list[ColumnElement[Any]] = []
        for join in self.joins.values():
            if not join.many:
                keys.extend(getattr(join.alias, key) for key in info(join.model).pk_keys)
        return keys

    def join_path(self, relations: list[RelationshipProperty[Any]], names: list[str]) -> Any:
        """Return the alias at the end of the to-one ``relations``, LEFT OUTER JOINed once."""
        return self._entity_for(relations, names)

    def apply_joins(self, stmt: Select[Any]) -> Select[Any]:
        """Return ``stmt`` with the LEFT OUTER JOINs the resolved paths need, in order."""
        for join in self.joins.values():
            stmt = stmt.outerjoin(join.alias, join.onclause)
        return stmt

    # -- to-many subqueries ----------------------------------------------------

    def related_subquery(
        self, relations: list[RelationshipProperty[Any]], names: list[str], *, grouping: bool
    ) -> tuple[Resolver, Any, list[ColumnElement[bool]]]:
        """Return a resolver on the far side of a to-many hop, its FROM and its correlation.

        ``relations`` are to-one hops followed by one to-many hop; the to-one hops
        are joined in this statement and the subquery is correlated to their end.
        """
        parent = self._entity_for(relations[:-1], names[:-1])
        rel = relations[-1]
        target_model = rel.mapper.class_
        target = aliased(target_model)
        sub = Resolver(target_model, entity=target, outer=self.outer, base=self.base)
        sub.grouping = grouping
        # The relationship's own join condition between the two aliases (with an
        # alias of the secondary table for many-to-many), custom primaryjoins included.
        correlation = [getattr(parent, rel.key).of_type(target).expression]
        return sub, target, correlation

    def _exists(self, path: _Path, index: int, items: list[Any]) -> ColumnElement[bool]:
        """Return ``EXISTS`` over the to-many hop ``path.relations[index]`` with ``items`` in it.

        An ``F()`` through the same relation in an item's arithmetic names this
        subquery's row (``~Q(books__pages__lt=F("books__other_num") / 2)``: Django
        resolves it inside the subquery of the negated lookup).
        """
        sub, from_, correlation = self.related_subquery(
            path.relations[: index + 1], path.names[: index + 1], grouping=False
        )
        prefix = "__".join(path.names[: index + 1])
        bind = self.base is self and prefix not in self.correlated_many
        if bind:
            self.correlated_many[prefix] = sub
        try:
            conditions = [sub.compile(item) for item in items]
        finally:
            if bind:
                del self.correlated_many[prefix]
        if any(is_false(condition) for condition in conditions):
            # An empty IN in it (Django: EmptyResultSet): no related row matches. (The
            # subquery's WHERE would fold to FALSE, dropping its join conditions.)
            return false()
        stmt = select(literal(1)).select_from(from_).where(*correlation, *conditions)
        return correlated(sub.apply_joins(stmt), sub.entity).exists()

    def _many(self, path: _Path, index: int, items: list[Any]) -> ColumnElement[bool]:
        """Return the condition of lookups through a to-many hop (one ``EXISTS``).

        A lone lookup that matches NULL (``reviews=None``, ``tags__name=None``,
        ``tags__name__isnull=True``) also matches a row with no related row at
        all, as Django's LEFT OUTER JOIN does.
        """
        if (
            len(items) == 1
            and isinstance(items[0], tuple)
            and _matches_null(*items[0])
            and not (items[0][1] is None and _is_json(path))  # None: the JSON null
        ):
            none = not_(self._exists(path, index, []))
            if items[0][0].split("__")[0] == "pk":
                return none  # a related row's key is never NULL
            return or_(none, self._exists(path, index, items))
        return self._exists(path, index, items)

    def split_many(
        self, key: str, context: str = "", *, lookups: bool = True
    ) -> tuple[_Path, int, str] | None:
        """Return ``(path, index of the first to-many hop, key relative to it)`` or None."""
        if self.many_as_join:
            return None
        path = self.parse(key, lookups=lookups, context=context)
        index = path.first_many()
        if index is None:
            return None
        return path, index, _rest(path, index)

    # -- aggregates ------------------------------------------------------------

    def aggregate(self, agg: Aggregate) -> ColumnElement[Any]:
        """Return the SQL for ``agg``: a plain aggregate, or a correlated subquery per row."""
        source = agg.expression
        context = f"{type(agg).__name__}()"
        if isinstance(source, str) and source != "*" and not self.grouping:
            split = self.split_many(source, context, lookups=False)
            if split is not None:
                path, index, rest = split
                names = path.names[: index + 1]
                sub, from_, correlation = self.related_subquery(
                    path.relations[: index + 1], names, grouping=True
                )
                prefix = "__".join(names)
                condition = None
                hooked = self.base is self and prefix not in self.correlated_many
                if hooked:
                    # F("books__rating") in filter= names the aggregated row (Django: one join).
                    self.correlated_many[prefix] = sub
                try:
                    if agg.filter is not None:
                        rebased = self._rebase(agg.filter, prefix, path.relations[index])
                        condition = sub.compile_joined(rebased)
                finally:
                    if hooked:
                        del self.correlated_many[prefix]
                call = agg.sql(sub.column(rest, context=context), condition)
                # As in Django, filter() calls before annotate() on the same
                # relation restrict the related rows the aggregate sees.
                prior = [
                    sub.compile_joined(self._rebase(Q(*leaves), prefix, path.relations[index]))
                    for leaves in self._prior_leaves(prefix)
                ]
                if any(is_false(condition) for condition in prior):
                    # An empty IN before: the query's WHERE is FALSE too, no row to
                    # compute for (and the subquery's would fold its joins away).
                    return constructs.EmptyResult(cast(null(), call.type))
                stmt = select(call).select_from(from_).where(*correlation, *prior)
                stmt = correlated(sub.apply_joins(stmt), sub.entity)
                result: ColumnElement[Any] = stmt.scalar_subquery()
                return constructs.EmptyResult(result) if is_false(condition) else result
        column: ColumnElement[Any] | None
        if isinstance(source, Expression):
            column = source.resolve(self)
        elif source == "*":
            column = None
        else:
            column = self.column(source, context=context)
        condition = None if agg.filter is None else self.compile_joined(agg.filter)
        self.plain_aggregates += 1
        call = agg.sql(column, condition)
        return constructs.EmptyResult(call) if is_false(condition) else call

    def _prior_leaves(self, prefix: str) -> list[list[Any]]:
        """Return, per earlier filter() call, its ANDed conditions through ``prefix``.

        A lookup through the relation, or a ``Q`` (``|``, ``^``) with one in it: on
        Django's one join they all restrict the rows the aggregate sees.
        """
        found = []
        for item in self.prior_filters:
            if not isinstance(item, Q) or item.negated or item.connector != Q.AND:
                continue
            leaves = [
                child
                for child in _flatten_and(item)
                if (isinstance(child, tuple) and child[0].startswith(prefix + "__"))
                or (isinstance(child, Q) and not child.negated and _names_path(child, prefix))
            ]
            if leaves:
                found.append(leaves)
        return found

    def compile_joined(self, item: Any) -> ColumnElement[bool]:
        """Compile ``item`` with to-many paths as joins (for an aggregate's ``filter=``)."""
        previous, self.many_as_join = self.many_as_join, True
        try:
            return self.compile(item)
        finally:
            self.many_as_join = previous

    def _rebase(self, item: Any, prefix: str, rel: RelationshipProperty[Any]) -> Any:
        """Rewrite a filter Q for a subquery on ``prefix``: its paths lose the prefix.

        Other conditions name the outer row and stay bound to this resolver.
        """
        if isinstance(item, Q):
            q = Q()
            q.connector = item.connector
            q.negated = item.negated
            q.children = [self._rebase(child, prefix, rel) for child in item.children]
            return q
        if isinstance(item, tuple):
            key, value = item
            if key == prefix:
                return ("pk", value)
            if key.startswith(prefix + "__"):
                rest = key[len(prefix) + 2 :]
                head = rest.split("__")[0]
                if head in LOOKUP_CHOICES and head not in rel.mapper.attrs:
                    rest = f"pk__{rest}"
                return (rest, value)
        return _Bound(self, item)

    # -- conditions ----------------------------------------------------------

    def condition(self, key: str, value: Any, *, negated: bool = False) -> ColumnElement[bool]:
        """Return the condition for one keyword lookup (``name__icontains="jo"``)."""
        context = f"filter({key}=...)"
        if (
            key.endswith("__in")
            and isinstance(value, Iterable)
            and not isinstance(value, str | bytes | list | tuple | Expression | ColumnElement)
            and not isinstance(value, Queryable)
        ):
            value = list(value)  # a set or generator: read once, checked below
        check_nul(self.model, key, value)
        if self.call is not None and self.correlated_many:
            shared = self._shared_row_condition(key, value, negated, context)
            if shared is not None:
                return shared
        split = self.split_many(key, context)
        if split is not None:
            path, index, rest = split
            if rest == "pk__isnull":
                # ``posts__isnull=True``: no related row at all.
                if not isinstance(value, bool):
                    raise TypeError(f"The 'isnull' lookup takes True or False, got {value!r}.")
                exists = self._exists(path, index, [])
                return not_(exists) if value else exists
            return self._many(path, index, [(rest, value)])
        path = self.parse(key, lookups=True, context=context)
        if path.tail and not path.annotation and _is_json(path):
            keys, key_lookup_name = json_keys(path.tail)
            if keys:
                return self._json_key(path, keys, key_lookup_name, value, negated=negated)
        column, nullable = self._resolve(path)
        if isinstance(column, QueryableAttribute) and isinstance(column.property, ColumnProperty):
            # The attribute's column: the same SQL as comparing the attribute, without
            # the ORM comparator's proxy hops (about 40% of building a lookup).
            column = column.expression
        lookup = path.tail[-1] if path.tail and path.tail[-1] in LOOKUPS else "exact"
        if value is None and lookup not in ("exact", "iexact"):
            raise ValueError(
                f"Cannot use None as a value for {key}; use {key.rpartition('__')[0]}"
                "__isnull=True to match NULL."
            )
        value_nullable = False
        if isinstance(value, Expression):
            reference = value
            value = value.resolve(self.base)
            if isinstance(value, QueryableAttribute):
                value = value.expression  # a column for the lookups (F("name"))
            # As Django: exclude(a=F("b")) keeps the rows where b is NULL (a plain
            # field reference only, not an annotation or an expression of fields).
            value_nullable = negated and self.base._nullable_field(reference, value)
        elif isinstance(value, Queryable):
            value = self._in_subquery(value)
        elif lookup in ("in", "range") and isinstance(value, list | tuple):
            value = [v.resolve(self.base) if isinstance(v, Expression) else v for v in value]
        else:
            value = plain(value)
        if lookup in CONVERTED and value is not None and not isinstance(value, ColumnElement):
            value = self._convert(path, column, lookup, value)
        if is_empty(column) or is_empty(value):
            return false()  # a lookup on an aggregate over no rows (see EmptyResult)
        cond = LOOKUPS[lookup](column, value)
        if negated and lookup != "isnull" and value is not None:
            # SQL's NOT (col = x) is NULL, not TRUE, where col IS NULL; Django's
            # exclude() keeps those rows, so the negated leaf also requires NOT NULL
            # of a nullable field (not of an annotation: Django leaves those alone),
            # and of a nullable field the value refers to.
            if nullable and not path.annotation:
                cond = and_(cond, column.is_not(None))
            if value_nullable:
                cond = and_(cond, value.is_not(None))
        return cond

    def _json_key(
        self, path: _Path, keys: list[str], lookup: str, value: Any, *, negated: bool
    ) -> ColumnElement[bool]:
        """Return the condition on the keys of a JSON column (``data__owner__name="x"``)."""
        column, nullable = self._resolve(
            _Path(path.relations, path.names, path.model, path.field, [])
        )
        if isinstance(column, QueryableAttribute):
            column = column.expression
        if isinstance(value, Expression | Queryable):
            raise TypeError(
                f"A JSON key lookup takes a value, not an expression: {path.field}__"
                f"{'__'.join(path.tail)}={value!r}."
            )
        cond = key_lookup(column, keys, lookup, value)
        if negated and lookup != "isnull" and value is not None and nullable:
            # As Django's exclude(): the column (not the key) must not be NULL.
            cond = and_(cond, column.is_not(None))
        return cond

    def _convert(self, path: _Path, column: Any, lookup: str, value: Any) -> Any:
        """Return ``value`` as the column's type takes it, or raise ``InvalidValue``.

        As Django (``get_prep_value``): ``"40"`` for an integer is 40, ``5`` for
        text is ``"5"``; a value no such column could hold raises before any SQL.
        ``in`` lists are converted item by item, ``range`` bounds each.
        """
        kind = value_kind(column.type)
        if kind is None:
            return value
        if lookup == "in":
            if isinstance(value, str | bytes | Select) or not isinstance(value, Iterable):
                return value  # the lookup says what it takes
            return [
                item
                if item is None or isinstance(item, ColumnElement)
                else self._converted(path, kind, plain(item), lookup)
                for item in value
            ]
        if lookup == "range":
            if not isinstance(value, list | tuple) or len(value) != 2:
                return value  # the lookup says what it takes
            return [
                item
                if isinstance(item, ColumnElement)
                else self._converted(path, kind, plain(item), lookup)
                for item in value
            ]
        return self._converted(path, kind, value, lookup)

    def _converted(self, path: _Path, kind: str, value: Any, lookup: str) -> Any:
        try:
            return convert(kind, value, round_up=lookup in ("gte", "lt"))
        except (ValueError, TypeError, ArithmeticError):
            raise InvalidValue(path.model, path.field or "pk", value, EXPECTED[kind]) from None

    def _nullable_field(self, reference: Expression, column: Any) -> bool:
        """Return whether ``reference`` is a plain ``F()`` of a nullable field."""
        if type(reference) is not F:
            return False
        path = self.parse(reference.name, lookups=False, context="F()")
        return not path.annotation and not path.tail and _nullable(column)

    def subquery_entity(self, model: type[Any]) -> Any:
        """Return what a subquery over ``model`` inside this query selects from.

        The model itself, so plain SQLAlchemy conditions on it keep working; an
        alias when an enclosing query already uses the model's table, which
        SQLAlchemy would otherwise correlate away.
        """
        table = model.__table__
        resolver: Resolver | None = self
        while resolver is not None:
            if resolver.entity is resolver.model and resolver.model.__table__ is table:
                return aliased(model)
            resolver = resolver.outer
        return model

    def subquery(self, query: Queryable, *, ordered: bool, pk_only: bool = False) -> Select[Any]:
        """Return ``query`` compiled as a SELECT correlated to this statement (and those around it).

        ``ordered=False`` drops its ordering (inside ``EXISTS``); ``pk_only`` selects
        the primary key of a query of model instances (``author__in=qs``).
        """
        if self.subquery_compiler is None:
            raise TypeError(f"{query!r} cannot be used inside this statement.")
        inner = Resolver(query.model, entity=self.subquery_entity(query.model), outer=self)
        stmt = self.subquery_compiler(query, inner, ordered, pk_only)
        return correlated(stmt, inner.entity)

    def _in_subquery(self, query: Queryable) -> Select[Any]:
        """Return a QuerySet used as a value (``author__in=qs``) as a correlated SELECT."""
        stmt = self.base.subquery(query, ordered=True, pk_only=True)
        if len(stmt.selected_columns) != 1:
            raise TypeError(
                f"A QuerySet used as a lookup value must select one column, "
                f"got {len(stmt.selected_columns)}; use values_list('field', flat=True)."
            )
        return stmt

    def compile(self, item: Any, *, negated: bool = False) -> ColumnElement[bool]:
        """Return the boolean expression for a ``Q``, an expression or a ``(key, value)`` pair."""
        if isinstance(item, Q) and self.call is None:
            # The root of one filter()/exclude() call: its to-many paths share rows.
            self.call = _Call(negated ^ item.negated)
            # exclude(): the join types of filter() with the same arguments.
            root = Q()
            root.children = item.children
            root.connector = item.connector
            self._inner_joins(root, False, self.call.inner, root=True)
            try:
                return self.compile(item, negated=negated)
            finally:
                self.call = None
        if isinstance(item, Q):
            inner_negated = negated ^ item.negated
            if item.connector == Q.XOR:
                parts = [self.compile(c, negated=inner_negated) for c in _flatten_xor(item)]
                xor = _xor(parts)
                return not_(xor) if item.negated else xor
            if item.connector == Q.AND:
                parts = self._compile_and(_flatten_and(item), inner_negated)
            else:
                parts = [self.compile(child, negated=inner_negated) for child in item.children]
            if not parts:
                combined: ColumnElement[bool] = true()
            elif len(parts) == 1:
                combined = parts[0]
            elif item.connector == Q.AND:
                combined = and_(*parts)
            else:
                combined = or_(*parts)
            return not_(combined) if item.negated else combined
        if isinstance(item, tuple):
            key, value = item
            return self.condition(key, value, negated=negated)
        if isinstance(item, Expression):
            return item.resolve(self)
        if isinstance(item, ColumnElement):
            return item
        if isinstance(item, bool):
            return true() if item else false()
        hint = f" To match the primary key, write pk={item!r}." if _is_plain_value(item) else ""
        raise TypeError(
            "filter() and get() take SQLAlchemy expressions, Q objects and keyword lookups, "
            f"got {item!r}.{hint}"
        )

    def _compile_and(self, children: list[Any], negated: bool) -> list[ColumnElement[bool]]:
        """Compile ANDed children; those through one to-many relation share one related row.

        Within one ``filter()`` call Django joins a to-many relation once and every
        condition on it (under ``&``, ``|``, ``^``, in ``F()``) names the joined
        row. Here the children that reach a relation not yet bound form one group,
        compiled inside an ``EXISTS`` over its rows (:meth:`_shared_row`); the
        others stay outside it.
        """
        call = self.call
        if call is None:
            return [self.compile(child, negated=negated) for child in children]
        branch = negated != call.negated
        reached = [self._reached(child, branch) for child in children]
        shared = {prefix for positive, _ in reached for prefix in positive}
        # Children linked by a relation they share, in written order (union of groups).
        groups: list[tuple[set[str], list[Any]]] = []
        # A child compiled alone, or the index of a group; compiled below in written
        # order, as Django builds them (a negated lookup reuses only a row an
        # earlier lookup of the call joined).
        parts: list[tuple[Any] | int] = []
        for child, (positive, negative) in zip(children, reached, strict=True):
            links = positive | (negative & shared)
            if not links:
                parts.append((child,))
                continue
            joined = [i for i, (prefixes, _) in enumerate(groups) if prefixes & links]
            if not joined:
                groups.append((set(links), [child]))
                parts.append(len(groups) - 1)
                continue
            first = joined[0]
            for i in joined[1:]:  # this child links earlier groups: merge them into the first
                groups[first][0].update(groups[i][0])
                groups[first][1].extend(groups[i][1])
                groups[i] = (set(), [])
                parts = [first if part == i else part for part in parts]
            groups[first][0].update(links)
            groups[first][1].append(child)
        compiled: list[ColumnElement[bool]] = []
        done: set[int] = set()
        for part in parts:
            if not isinstance(part, int):
                compiled.append(self.compile(part[0], negated=negated))
            elif part not in done:
                done.add(part)
                prefixes, members = groups[part]
                compiled.append(self._shared_row(prefixes & shared, members, negated))
        return compiled

    def _reached(self, item: Any, branch: bool) -> tuple[set[str], set[str]]:
        """Return the unbound to-many prefixes ``item`` joins, and those its negated lookups name.

        ``branch``: ``item`` is under ``~`` inside the call, where Django's lookups on
        a to-many path are subqueries of their own (``split_exclude``) that only
        reuse a row the call already joined; an ``F()`` is always joined.
        """
        positive: set[str] = set()
        negative: set[str] = set()
        if self._uses_aggregate(item):
            # A SQL aggregate of the query's rows (HAVING) cannot stand inside an EXISTS:
            # its to-many lookups keep EXISTS of their own.
            return positive, negative
        if isinstance(item, Q):
            for child in item.children:
                p, n = self._reached(child, branch ^ item.negated)
                positive |= p
                negative |= n
        elif isinstance(item, tuple):
            key, value = item
            keys = [p for p, _, _ in self._hops(key, lookups=True)]
            (negative if branch else positive).update(keys)
            if not (branch and keys and _in_subquery_of_its_own(value)):
                for name in _f_names(value):
                    positive.update(p for p, _, _ in self._hops(name, lookups=False))
        return positive - set(self.correlated_many), negative - set(self.correlated_many)

    def _uses_aggregate(self, item: Any) -> bool:
        """Return whether ``item`` names an annotation that is a SQL aggregate (``GROUP BY``)."""
        if not self.aggregate_annotations:
            return False
        if isinstance(item, Q):
            return any(self._uses_aggregate(child) for child in item.children)
        if not isinstance(item, tuple):
            return False
        names = [item[0], *_f_names(item[1])]
        for name in names:
            path = self.parse(name, lookups=name == item[0], context=f"filter({item[0]}=...)")
            if path.annotation and path.field in self.aggregate_annotations:
                return True
        return False

    def _hops(self, key: str, *, lookups: bool) -> list[tuple[str, _Path, int]]:
        """Return ``(prefix, path, index)`` for each to-many hop of ``key`` (``"tags__books"``)."""
        if self.many_as_join or key.partition("__")[0] not in self.mapper.relationships:
            return []  # own columns and annotations: no hop (and no parsing)
        cache = self.call.hops if self.call is not None else {}
        found = cache.get((key, lookups))
        if found is None:
            path = self.parse(key, lookups=lookups, context=f"filter({key}=...)")
            found = [
                ("__".join(path.names[: i + 1]), path, i)
                for i, rel in enumerate(path.relations)
                if _is_many(rel)
            ]
            cache[(key, lookups)] = found
        return found

    def _shared_row(self, prefixes: set[str], members: list[Any], negated: bool) -> Any:
        """Return the ANDed ``members`` with the shallowest of ``prefixes`` bound to one row.

        ``EXISTS (related rows r WHERE members(r))``; when Django's join would be a
        LEFT OUTER JOIN (no member requires a related row: ``|``, ``^``,
        ``isnull=True``), a parent with no related row is kept when ``members``
        hold for a row of NULLs, as Django's joined NULL row does.
        """
        call = self.call
        assert call is not None  # only inside a call
        # The shallowest first: deeper hops are bound inside its EXISTS.
        prefix = min(sorted(prefixes), key=lambda p: len(self._hops(p, lookups=False)))
        _, path, index = self._hops(prefix, lookups=False)[-1]
        if len(members) == 1 and isinstance(members[0], tuple) and not _f_names(members[0][1]):
            # A lone lookup: its own EXISTS (``_many``, which also knows NULL's rows).
            return self.compile(members[0], negated=negated)
        owner, start = self._owner_of(path, index)
        relations = path.relations[start : index + 1]
        names = path.names[start : index + 1]
        sub, from_, correlation = owner.related_subquery(relations, names, grouping=False)
        # The prefixes the call's lookups joined before ``members`` (see
        # _shared_row_condition): the row of NULLs below compiles ``members`` again
        # and must not take the joins of their first compilation for earlier ones.
        seen_before = set(call.seen)
        inner = self._bound(prefix, sub, members, negated)
        exists: ColumnElement[bool]
        if any(is_false(condition) for condition in inner):
            exists = false()  # an empty IN (see _exists)
        else:
            stmt = select(literal(1)).select_from(from_).where(*correlation, *inner)
            exists = correlated(sub.apply_joins(stmt), sub.entity).exists()
        if call.inner.get(prefix, False):
            return exists
        # LEFT OUTER in Django: the row of NULLs when there is no related row.
        target = relations[-1].mapper.class_
        empty = select(literal(1)).select_from(from_).where(*correlation)
        nothing = not_(correlated(empty, sub.entity).exists())
        nulls = Resolver(target, entity=aliased(target), outer=self.outer, base=self.base)
        nulls.null_row = True
        seen_after, call.seen = call.seen, set(seen_before)
        try:
            on_nulls = self._bound(prefix, nulls, members, negated)
        finally:
            call.seen = seen_after
        if any(is_false(condition) for condition in on_nulls):
            return exists
        stmt = select(literal(1)).select_from(_null_row(nulls.entity)).where(*on_nulls)
        null_exists = correlated(nulls.apply_joins(stmt), nulls.entity).exists()
        return or_(exists, and_(nothing, null_exists))

    def _bound(
        self, prefix: str, sub: Resolver, members: list[Any], negated: bool
    ) -> list[ColumnElement[bool]]:
        """Compile ``members`` with ``prefix`` naming the row of ``sub``.

        Inside the ``EXISTS`` they are compiled as in ``filter()`` even for
        ``exclude()``, whose ``NOT`` stands outside it: ``exclude()`` keeps exactly
        the rows ``filter()`` with the same arguments does not return.
        """
        call = self.call
        assert call is not None  # only inside a call
        self.correlated_many[prefix] = sub
        call_negated, call.negated = call.negated, False
        try:
            return self._compile_and(members, negated != call_negated)
        finally:
            call.negated = call_negated
            del self.correlated_many[prefix]

    def _owner_of(self, path: _Path, index: int) -> tuple[Resolver, int]:
        """Return the resolver the hop ``index`` of ``path`` starts from, and its first hop."""
        for i in range(index - 1, -1, -1):
            prefix = "__".join(path.names[: i + 1])
            if prefix in self.correlated_many:
                return self.correlated_many[prefix], i + 1
        return self, 0

    def _inner_joins(
        self, item: Any, branch: bool, inner: dict[str, bool], *, root: bool = True
    ) -> set[str]:
        """Return the to-many prefixes ``item`` requires a row of; record join types in ``inner``.

        Django's join promotion, which says whether a parent with no related row
        can match: a lookup through a relation needs a row, unless it matches NULL
        (``isnull=True``, ``=None``) or is negated. Bottom-up, ``&`` makes every
        join one of its children needs INNER, ``|`` makes those all its children
        need INNER and the others LEFT OUTER, ``^`` leaves them as they are (``~``
        swaps ``&`` and ``|``); the node nearest the root decides.
        """
        if isinstance(item, tuple):
            key, value = item
            if branch or _matches_null(key, value):
                return set()
            names = {p for p, _, _ in self._hops(key, lookups=True)}
            names.update(self._to_one_prefixes(key))
            for name in _f_names(value):
                names.update(p for p, _, _ in self._hops(name, lookups=False))
                names.update(self._to_one_prefixes(name, lookups=False))
            return names
        if not isinstance(item, Q):
            return set()
        negated = branch ^ item.negated
        children = item.children if root else _squashed(item)
        votes: Counter[str] = Counter()
        for child in children:
            votes.update(self._inner_joins(child, negated, inner, root=False))
        connector = item.connector
        if negated:
            connector = Q.OR if connector == Q.AND else Q.AND
        needed = set()
        for prefix, count in votes.items():
            if connector == Q.AND or (connector == Q.OR and count == len(children)):
                inner[prefix] = True
                needed.add(prefix)
            elif connector == Q.OR:
                # Django promotes the join and every join made through it
                # (publisher_id=2 under | makes publisher__books LEFT OUTER too).
                for other in [prefix, *(p for p in inner if p.startswith(prefix + "__"))]:
                    inner[other] = False
        return needed

    def _to_one_prefixes(self, key: str, *, lookups: bool = True) -> set[str]:
        """Return the nullable to-one relations on ``key``'s path before any to-many hop.

        ``publisher`` of ``publisher__city`` and of ``publisher_id`` (Django joins the
        relation for its foreign key's column): an ``|`` that names one promotes its
        join, and every join made through it, to LEFT OUTER. (A join that cannot
        hold NULLs, a non-null foreign key, is never promoted.)
        """
        head = key.partition("__")[0]
        if head not in self.mapper.relationships and head not in _nullable_fks(self.mapper):
            return set()  # an own column (no parsing)
        try:
            path = self.parse(key, lookups=lookups, context=f"filter({key}=...)")
        except FieldError:
            return set()
        found: set[str] = set()
        mapper = self.mapper
        for i, rel in enumerate(path.relations):
            if _is_many(rel):
                return found
            column = local_foreign_key(rel)
            if column is not None and column.nullable:
                found.add("__".join(path.names[: i + 1]))
            mapper = rel.mapper
        if path.field is not None:
            relation = _nullable_fks(mapper).get(path.field)
            if relation is not None:
                found.add("__".join([*path.names, relation]))
        return found

    def _shared_row_condition(
        self, key: str, value: Any, negated: bool, context: str
    ) -> ColumnElement[bool] | None:
        """Return a lookup of the call on the related row it shares, or None if none is bound.

        Under ``~`` inside the call a lookup reuses the row only when an earlier
        lookup of the call joined it, as Django's ``split_exclude`` does, and
        never when it matches NULL.
        """
        call = self.call
        assert call is not None  # only inside a call
        branch = negated != call.negated
        for name in _f_names(value):
            call.seen.update(p for p, _, _ in self._hops(name, lookups=False))
        hops = self._hops(key, lookups=True)
        target = None
        # A negated lookup that matches NULL (~Q(books__x__isnull=True)) is never tied
        # to the call's row: Django's subquery for it keeps its LEFT OUTER JOIN from
        # the parent, so it is correlated to the parent row only.
        alone = branch and _matches_null(key, value)
        # Negated, it reuses only the row of its first to-many hop (Django's subquery
        # selects from that relation's table; deeper hops are its own rows).
        for prefix, path, index in hops[:1] if branch else reversed(hops):
            if alone:
                break
            if prefix in self.correlated_many and (not branch or prefix in call.seen):
                target = (prefix, path, index)
                break
        if not branch:
            call.seen.update(p for p, _, _ in hops)
        if target is None:
            return None
        prefix, path, index = target
        return self.correlated_many[prefix].condition(_rest(path, index), value, negated=negated)


@dataclass
class _Call:
    """One ``filter()``/``exclude()`` call being compiled."""

    negated: bool  # exclude(): the call's own negation (not a ``~`` branch inside it)
    seen: set[str] = field(default_factory=set)  # to-many prefixes its lookups joined so far
    #: Per to-many prefix, whether Django's join is INNER (else LEFT OUTER).
    inner: dict[str, bool] = field(default_factory=dict)
    #: The to-many hops of each path of the call, by (path, with lookups).
    hops: dict[tuple[str, bool], list[tuple[str, _Path, int]]] = field(default_factory=dict)


def _rest(path: _Path, index: int) -> str:
    """Return ``path`` after its to-many hop ``index`` (``tags__name``, 0: ``name``)."""
    rest = [*path.names[index + 1 :]]
    if path.field is not None:
        rest.append(path.field)
    elif len(path.relations) == index + 1:
        rest.append("pk")
    return "__".join([*rest, *path.tail])


def _null_row(alias: Any) -> Any:
    """Return one row in which ``alias``'s columns are NULL (Django's LEFT OUTER JOIN miss).

    ``(SELECT 1) LEFT OUTER JOIN alias ON false``: the alias stays a real alias of
    its table, so relations from it join as from any row.
    """
    one = select(literal(1).label("one")).subquery()
    return one.outerjoin(inspect(alias).selectable, false())


@functools.cache
def _nullable_fks(mapper: Mapper[Any]) -> dict[str, str]:
    """Return ``{nullable foreign key attribute: relation}`` (``publisher_id``: ``publisher``)."""
    found = {}
    for rel in mapper.relationships:
        column = local_foreign_key(rel)
        if column is not None and column.nullable:
            found[_attr_name(mapper, column)] = rel.key
    return found


def _names_path(q: Q, prefix: str) -> bool:
    """Return whether a lookup of ``q`` (not under ``~``) goes through ``prefix``."""
    for child in q.children:
        if isinstance(child, tuple) and child[0].startswith(prefix + "__"):
            return True
        if isinstance(child, Q) and not child.negated and _names_path(child, prefix):
            return True
    return False


def _in_subquery_of_its_own(value: Any) -> bool:
    """Return whether a negated to-many lookup's value is resolved in its own subquery.

    Django's ``split_exclude`` makes a bare ``F()`` an ``OuterRef`` (the row the
    call joined) but resolves arithmetic of ``F()``s inside the subquery of the
    negated lookup, on that subquery's own row.
    """
    return isinstance(value, Expression) and type(value) is not F


def _f_names(value: Any) -> list[str]:
    """Return the names of the ``F()``s in an arithmetic expression of them."""
    if type(value) is F:
        return [value.name]
    if isinstance(value, Combined):
        return [*_f_names(value.lhs), *_f_names(value.rhs)]
    return []


class _Bound(Expression):
    """A condition compiled by a given resolver (an outer-row condition inside a subquery)."""

    def __init__(self, resolver: Resolver, item: Any) -> None:
        self.resolver = resolver
        self.item = item

    def resolve(self, resolver: Resolver) -> ColumnElement[Any]:
        """Compile the condition on the resolver it was bound to."""
        return self.resolver.compile(self.item)


def correlated(stmt: Select[Any], own: Any) -> Select[Any]:
    """Return ``stmt`` correlated to every enclosing query, not only the nearest one.

    SQLAlchemy auto-correlates a subquery to its immediately enclosing SELECT;
    an ``OuterRef`` or a path inside a nested EXISTS may name a table two levels
    up. The subquery's own FROMs are fresh aliases, never in an enclosing query.
    """
    return stmt.correlate_except(own)


def _matches_null(key: str, value: Any) -> bool:
    """Return whether the lookup ``key=value`` is true for NULL (``x=None``, ``x__isnull=True``)."""
    last = key.rpartition("__")[2]
    if last == "isnull":
        return value is True
    return value is None and (last in ("exact", "iexact") or last not in LOOKUPS)


def _is_json(path: _Path) -> bool:
    """Return whether ``path`` ends at a JSON column (``None`` is its JSON null, not NULL)."""
    prop = path.model.__mapper__.column_attrs.get(path.field) if path.field else None
    if prop is None:
        return False
    kind = prop.columns[0].type
    return isinstance(getattr(kind, "impl", kind), JSON)


def _squashed(q: Q) -> list[Any]:
    """Return the children of ``q`` as Django's tree holds them.

    Combining Qs with ``&``, ``|`` or ``^``, Django puts each operand's children in
    its place when it is not negated and has the same connector or one child
    (``Q(a) ^ Q(b) ^ Q(c)`` is one node over a, b and c); a ``Q(...)`` built by
    its constructor keeps its children as given (``Q(Q(a))`` holds the node ``Q(a)``).
    """
    if not q.combined:
        return q.children
    children: list[Any] = []
    for child in q.children:
        squash = isinstance(child, Q) and not child.negated
        if squash and (child.connector == q.connector or len(child.children) == 1):
            children.extend(_squashed(child))
        else:
            children.append(child)
    return children


def _flatten_and(q: Q) -> list[Any]:
    """Return the children of an AND ``Q``, with non-negated AND sub-``Q``s merged in."""
    children: list[Any] = []
    for child in q.children:
        if isinstance(child, Q) and not child.negated and child.connector == Q.AND:
            children.extend(_flatten_and(child))
        else:
            children.append(child)
    return children


def _flatten_xor(q: Q) -> list[Any]:
    """Return the operands of an XOR ``Q``, with non-negated XOR sub-``Q``s merged in."""
    children: list[Any] = []
    for child in q.children:
        if isinstance(child, Q) and not child.negated and child.connector == Q.XOR:
            children.extend(_flatten_xor(child))
        else:
            children.append(child)
    return children


def _xor(parts: list[ColumnElement[bool]]) -> ColumnElement[bool]:
    """Return "an odd number of ``parts`` are true", as Django writes XOR where SQL has none.

    ``(a OR b OR ...) AND (CASE WHEN a THEN 1 ELSE 0 END + ...) % 2 = 1``: a NULL
    operand counts as false in the sum.
    """
    if len(parts) == 1:
        return parts[0]
    total: ColumnElement[Any] = _sum_of(case((part, 1), else_=0) for part in parts)
    if len(parts) > 2:
        total = total % 2
    return and_(or_(*parts), literal(1) == total)


def _sum_of(terms: Iterable[ColumnElement[Any]]) -> ColumnElement[Any]:
    """Return ``a + b + ...`` of SQL expressions."""
    iterator = iter(terms)
    total = next(iterator)
    for term in iterator:
        total = total + term
    return total


def _is_temporal(column: ColumnElement[Any]) -> bool:
    """Return whether ``column`` holds dates, datetimes or times (date-part transforms apply)."""
    kind = column.type
    impl = getattr(kind, "impl", kind)  # a TypeDecorator such as AwareDateTime
    return isinstance(impl, Date | DateTime | Time)


def _nullable(column: ColumnElement[Any]) -> bool:
    inner = getattr(column, "expression", column)
    return bool(getattr(inner, "nullable", True)) if isinstance(inner, ColumnClause) else True


def _is_plain_value(item: Any) -> bool:
    """Return whether ``item`` looks like a primary-key value passed without ``pk=``."""
    return isinstance(item, int | str | uuid.UUID) and not isinstance(item, bool)
