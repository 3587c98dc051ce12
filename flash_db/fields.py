"""What Flash DB reads off a model's mapping: primary keys, field names, columns and their ranges.

Everything here is a question about a mapped class, answered from SQLAlchemy's
public mapper API; nothing touches a database or an instance.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger, Integer, SmallInteger, Table
from sqlalchemy.orm import ColumnProperty, Mapper, RelationshipDirection, RelationshipProperty
from sqlalchemy.orm.exc import UnmappedColumnError
from sqlalchemy.schema import Column
from sqlalchemy.sql.elements import BinaryExpression
from sqlalchemy.types import TypeDecorator

__all__ = [
    "PYTHON_ONLY",
    "ModelInfo",
    "column_value",
    "field_choices",
    "info",
    "integer_range",
    "local_foreign_key",
    "pk_name",
]


def pk_name(model: type[Any]) -> str:
    """Return the attribute name of the model's (first) primary-key column."""
    return info(model).pk


def field_choices(model: type[Any]) -> list[str]:
    """Return the names a string API accepts on ``model``: columns, relations and ``pk``."""
    mapper: Mapper[Any] = model.__mapper__
    names = [prop.key for prop in mapper.attrs if not prop.key.startswith("_")]
    return sorted({*names, "pk"})


def integer_range(type_: Any) -> tuple[int, int] | None:
    """Return the ``(min, max)`` an integer column type holds on PostgreSQL; None for others."""
    while isinstance(type_, TypeDecorator):
        type_ = type_.impl_instance
    if not isinstance(type_, Integer):
        return None  # Boolean and Enum are not Integer subclasses
    bits = 16 if isinstance(type_, SmallInteger) else 64 if isinstance(type_, BigInteger) else 32
    return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1


def _needs_context() -> Any:
    raise TypeError("This column default takes SQLAlchemy's execution context.")


#: :func:`column_value` of a default that needs SQLAlchemy's execution context.
PYTHON_ONLY: Callable[[], Any] = _needs_context


def column_value(default: Any) -> Callable[[], Any] | None:
    """Return a zero-argument function computing a column default's (or onupdate's) value.

    A scalar gives itself; a callable SQLAlchemy calls without an execution
    context (a function of no arguments, which SQLAlchemy wraps: its
    ``__wrapped__``) gives that function. Returns None when the database computes
    it (no default, a SQL expression, a sequence) and :data:`PYTHON_ONLY` for a
    function that takes SQLAlchemy's execution context: only SQLAlchemy's
    execution can call it.
    """
    if default is None or default.is_clause_element or default.is_sequence:
        return None
    if default.is_scalar:
        value = default.arg
        return lambda: value
    if default.is_callable:
        wrapped = getattr(default.arg, "__wrapped__", None)
        if callable(wrapped):
            return wrapped  # type: ignore[no-any-return]
    return PYTHON_ONLY


def local_foreign_key(rel: RelationshipProperty[Any]) -> Column[Any] | None:
    """Return the single local foreign-key column of a plain many-to-one relation, or None."""
    if rel.direction is not RelationshipDirection.MANYTOONE or rel.secondary is not None:
        return None
    if not isinstance(rel.primaryjoin, BinaryExpression):
        return None  # a custom join condition with more criteria needs the join
    pairs = list(rel.local_remote_pairs or ())
    if len(pairs) != 1 or not isinstance(pairs[0][0], Column):
        return None
    return pairs[0][0]


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What Flash DB needs to know about one mapped class, read once per mapping."""

    attrs: object  # mapper.column_attrs when this was read (a new object after a change)
    pk: str  # the attribute name of the first primary-key column
    pk_keys: tuple[str, ...]  # attribute names of every primary-key column
    table: Table | None  # the one table holding every column, when there is one
    #: (attribute key, column) for every column attribute that is a column of ``table``
    columns: tuple[tuple[str, Column[Any]], ...]
    #: attribute key -> the column type's equality (``TypeEngine.compare_values``)
    compare: dict[str, Callable[[Any, Any], bool]]
    #: attribute keys of column attributes that are SQL expressions (column_property)
    expressions: tuple[str, ...]
    #: relation name -> attribute keys of its local foreign-key columns (many-to-one)
    foreign_keys: dict[str, tuple[str, ...]]
    #: attribute key -> the class attribute, for each column of ``columns``
    attributes: dict[str, Any]


# Per mapper, for the life of the process (as SQLAlchemy's registry keeps the classes):
# a plain dict, since a WeakKeyDictionary lookup makes a weak reference each time.
_INFO: dict[Mapper[Any], ModelInfo] = {}


def info(model: type[Any]) -> ModelInfo:
    """Return ``model``'s :class:`ModelInfo`, read from its mapper on first use."""
    mapper: Mapper[Any] = model.__mapper__
    attrs = mapper.column_attrs
    found = _INFO.get(mapper)
    if found is not None and found.attrs is attrs:
        return found
    found = _read(mapper, attrs)
    _INFO[mapper] = found
    return found


def _read(mapper: Mapper[Any], attrs: Any) -> ModelInfo:
    table = mapper.local_table if isinstance(mapper.local_table, Table) else None
    columns: list[tuple[str, Column[Any]]] = []
    expressions: list[str] = []
    for prop in attrs:
        column = prop.columns[0] if isinstance(prop, ColumnProperty) and prop.columns else None
        if (
            isinstance(column, Column)
            and len(prop.columns) == 1
            and (table is None or column.table is table)
        ):
            columns.append((prop.key, column))
        else:
            expressions.append(prop.key)
    pk_keys = tuple(mapper.get_property_by_column(column).key for column in mapper.primary_key)
    foreign_keys: dict[str, tuple[str, ...]] = {}
    for rel in mapper.relationships:
        if rel.direction is RelationshipDirection.MANYTOONE and rel.secondary is None:
            keys = []
            for local, _ in rel.local_remote_pairs or ():
                try:
                    keys.append(mapper.get_property_by_column(local).key)
                except UnmappedColumnError:  # a column of another table (custom primaryjoin)
                    keys = []
                    break
            if keys:
                foreign_keys[rel.key] = tuple(keys)
    return ModelInfo(
        attrs=attrs,
        pk=pk_keys[0],
        pk_keys=pk_keys,
        table=table,
        columns=tuple(columns),
        compare={key: column.type.compare_values for key, column in columns},
        expressions=tuple(expressions),
        foreign_keys=foreign_keys,
        attributes={key: mapper.class_manager[key] for key, _ in columns},
    )
