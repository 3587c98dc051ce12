"""Resolving ``"__"`` paths (``author__name__icontains``) against a model, and the lookup table.

A :class:`Resolver` is created by a QuerySet terminal for one statement. It turns
field paths into columns, keyword lookups into conditions and ``Q`` trees into
boolean expressions, and remembers the joins it needed so the statement can add
them. Every value becomes a bound parameter; only names the model declares can
shape the SQL, and unknown names raise :class:`~flash_db.exceptions.FieldError`
before any statement exists.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, false, not_, or_, true
from sqlalchemy.orm import ColumnProperty, Mapper, RelationshipProperty
from sqlalchemy.sql.elements import ColumnClause

from flash_db.exceptions import FieldError
from flash_db.expressions import Expression, Q

__all__ = ["LOOKUPS", "Resolver", "field_choices", "pk_name"]

LookupFn = Callable[[ColumnElement[Any], Any], ColumnElement[bool]]


def _escape_like(value: Any) -> str:
    text = str(value)
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _contains(col: ColumnElement[Any], value: Any) -> ColumnElement[bool]:
    return col.like(f"%{_escape_like(value)}%", escape="\\")


def _icontains(col: ColumnElement[Any], value: Any) -> ColumnElement[bool]:
    return col.ilike(f"%{_escape_like(value)}%", escape="\\")


def _startswith(col: ColumnElement[Any], value: Any) -> ColumnElement[bool]:
    return col.like(f"{_escape_like(value)}%", escape="\\")


def _istartswith(col: ColumnElement[Any], value: Any) -> ColumnElement[bool]:
    return col.ilike(f"{_escape_like(value)}%", escape="\\")


def _endswith(col: ColumnElement[Any], value: Any) -> ColumnElement[bool]:
    return col.like(f"%{_escape_like(value)}", escape="\\")


def _iendswith(col: ColumnElement[Any], value: Any) -> ColumnElement[bool]:
    return col.ilike(f"%{_escape_like(value)}", escape="\\")


def _iexact(col: ColumnElement[Any], value: Any) -> ColumnElement[bool]:
    if value is None:
        return col.is_(None)
    return col.ilike(_escape_like(value), escape="\\")


def _exact(col: ColumnElement[Any], value: Any) -> ColumnElement[bool]:
    if value is None:
        return col.is_(None)
    result: ColumnElement[bool] = col == value
    return result


def _in(col: ColumnElement[Any], value: Any) -> ColumnElement[bool]:
    if isinstance(value, str | bytes) or not isinstance(value, Iterable | Select):
        raise TypeError(f"The 'in' lookup takes an iterable of values, got {value!r}.")
    if isinstance(value, Select):
        return col.in_(value)
    return col.in_(list(value))


def _range(col: ColumnElement[Any], value: Any) -> ColumnElement[bool]:
    try:
        low, high = value
    except (TypeError, ValueError):
        raise TypeError(f"The 'range' lookup takes a (low, high) pair, got {value!r}.") from None
    return col.between(low, high)


def _isnull(col: ColumnElement[Any], value: Any) -> ColumnElement[bool]:
    if not isinstance(value, bool):
        raise TypeError(f"The 'isnull' lookup takes True or False, got {value!r}.")
    return col.is_(None) if value else col.is_not(None)


LOOKUPS: dict[str, LookupFn] = {
    "exact": _exact,
    "iexact": _iexact,
    "contains": _contains,
    "icontains": _icontains,
    "startswith": _startswith,
    "istartswith": _istartswith,
    "endswith": _endswith,
    "iendswith": _iendswith,
    "in": _in,
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
    "range": _range,
    "isnull": _isnull,
}


def pk_name(model: type[Any]) -> str:
    """Return the attribute name of the model's (first) primary-key column."""
    mapper: Mapper[Any] = model.__mapper__
    return mapper.get_property_by_column(mapper.primary_key[0]).key


def field_choices(model: type[Any]) -> list[str]:
    """Return the names a string API accepts on ``model``: columns, relations and ``pk``."""
    mapper: Mapper[Any] = model.__mapper__
    names = [prop.key for prop in mapper.attrs if not prop.key.startswith("_")]
    return sorted({*names, "pk"})


class Resolver:
    """Resolve names on one model for one statement, collecting the joins it needs."""

    def __init__(
        self,
        model: type[Any],
        annotations: dict[str, ColumnElement[Any]] | None = None,
    ) -> None:
        self.model = model
        self.mapper: Mapper[Any] = model.__mapper__
        self.annotations = annotations if annotations is not None else {}

    # -- names ---------------------------------------------------------------

    def choices(self) -> list[str]:
        """Return every name valid at the top level (fields, relations, pk, annotations)."""
        return sorted({*field_choices(self.model), *self.annotations})

    def column(self, path: str, *, context: str = "") -> ColumnElement[Any]:
        """Return the column (or annotation) that ``path`` names."""
        if path in self.annotations:
            return self.annotations[path]
        parts = path.split("__")
        if len(parts) > 1:
            # Relation paths are resolved by _walk_relation (joins added as needed).
            return self._walk_relation(parts, context=context)
        name = pk_name(self.model) if path == "pk" else path
        prop = self.mapper.attrs.get(name)
        if isinstance(prop, ColumnProperty):
            column: ColumnElement[Any] = getattr(self.model, name)
            return column
        raise FieldError(self.model, path, self.choices(), context=context)

    def _walk_relation(self, parts: list[str], *, context: str) -> ColumnElement[Any]:
        prop = self.mapper.attrs.get(parts[0])
        if not isinstance(prop, RelationshipProperty):
            raise FieldError(self.model, parts[0], self.choices(), context=context)
        raise FieldError(self.model, "__".join(parts), self.choices(), context=context)

    # -- conditions ----------------------------------------------------------

    def split_lookup(self, key: str) -> tuple[str, str]:
        """Split ``"name__icontains"`` into ``("name", "icontains")`` (default ``exact``)."""
        field, sep, lookup = key.rpartition("__")
        if sep and lookup in LOOKUPS:
            return field, lookup
        return key, "exact"

    def condition(self, key: str, value: Any, *, negated: bool = False) -> ColumnElement[bool]:
        """Return the condition for one keyword lookup (``name__icontains="jo"``)."""
        field, lookup = self.split_lookup(key)
        try:
            column = self.column(field, context="filter()")
        except FieldError:
            head, _, tail = key.rpartition("__")
            if head and self._is_field(head):
                raise FieldError(
                    self.model, tail, LOOKUPS, kind="lookup", context=f"{head}__{tail}"
                ) from None
            raise
        if isinstance(value, Expression):
            value = value.resolve(self)
        cond = LOOKUPS[lookup](column, value)
        if negated and lookup != "isnull" and value is not None and self._nullable(column):
            # SQL's NOT (col = x) is NULL, not TRUE, where col IS NULL; Django's
            # exclude() keeps those rows, so the negated leaf also requires NOT NULL.
            cond = and_(cond, column.is_not(None))
        return cond

    def _is_field(self, path: str) -> bool:
        try:
            self.column(path)
        except FieldError:
            return False
        return True

    @staticmethod
    def _nullable(column: ColumnElement[Any]) -> bool:
        inner = getattr(column, "expression", column)
        return bool(getattr(inner, "nullable", True)) if isinstance(inner, ColumnClause) else True

    def compile(self, item: Any, *, negated: bool = False) -> ColumnElement[bool]:
        """Return the boolean expression for a ``Q``, an expression or a ``(key, value)`` pair."""
        if isinstance(item, Q):
            inner_negated = negated ^ item.negated
            parts = [self.compile(child, negated=inner_negated) for child in item.children]
            if not parts:
                combined: ColumnElement[bool] = true()
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
        raise TypeError(
            f"filter() takes SQLAlchemy expressions, Q objects and keyword lookups, got {item!r}."
        )

    def apply_joins(self, stmt: Select[Any]) -> Select[Any]:
        """Return ``stmt`` with the joins the resolved paths need."""
        return stmt
