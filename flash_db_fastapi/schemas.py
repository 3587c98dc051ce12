"""model_schema(): Pydantic schemas (read, create, update) generated from Flash DB models."""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, create_model
from sqlalchemy import types as sqltypes
from sqlalchemy.orm import ColumnProperty, Mapper, RelationshipProperty
from sqlalchemy.schema import Column, ColumnDefault

from flash_db import Model, SoftDeleteMixin, TimestampMixin

__all__ = ["NO_NUL", "Mode", "ModelField", "model_fields", "model_schema", "python_type"]

Mode = Literal["read", "create", "update"]

_MODES: tuple[str, ...] = ("read", "create", "update")
_TIMESTAMPS = ("created_at", "updated_at")
_cache: dict[tuple[Any, ...], type[BaseModel]] = {}
_names: dict[tuple[str, str], tuple[Any, ...]] = {}


@dataclass(frozen=True, slots=True)
class ModelField:
    """One mapped column of a model, as schemas and routers see it."""

    name: str
    column: Column[Any]
    python_type: Any
    constraints: tuple[Any, ...]
    nullable: bool
    primary_key: bool
    read_only: bool
    has_default: bool
    default: Any


def _refuse_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("Text may not contain NUL (\\x00) characters.")
    return value


NO_NUL = AfterValidator(_refuse_nul)
"""Refuses NUL characters, which PostgreSQL cannot store in text (a 422, not a 500)."""


def python_type(column_type: sqltypes.TypeEngine[Any]) -> tuple[Any, tuple[Any, ...]]:
    """Return the Python type for a SQLAlchemy column type and its Pydantic constraints."""
    if isinstance(column_type, sqltypes.Interval):
        return dt.timedelta, ()  # a TypeDecorator over DateTime on some backends
    if isinstance(column_type, sqltypes.TypeDecorator):
        return python_type(column_type.impl_instance)
    if isinstance(column_type, sqltypes.Enum):
        if column_type.enum_class is not None:
            return column_type.enum_class, ()
        return Literal[tuple(column_type.enums)], ()
    if isinstance(column_type, sqltypes.ARRAY):
        item, _ = python_type(column_type.item_type)
        return list[item], ()  # type: ignore[valid-type]  # built at runtime from the column
    if isinstance(column_type, sqltypes.String):
        if column_type.length is not None and not isinstance(column_type, sqltypes.Text):
            return str, (Field(max_length=column_type.length), NO_NUL)
        return str, (NO_NUL,)
    if isinstance(column_type, sqltypes.Boolean):
        return bool, ()
    if isinstance(column_type, sqltypes.Integer):
        # The column's range: a larger number would reach the database as an error.
        bits = (
            16
            if isinstance(column_type, sqltypes.SmallInteger)
            else 64
            if isinstance(column_type, sqltypes.BigInteger)
            else 32
        )
        return int, (Field(ge=-(2 ** (bits - 1)), le=2 ** (bits - 1) - 1),)
    if isinstance(column_type, sqltypes.Float):
        return float, ()
    if isinstance(column_type, sqltypes.Numeric):
        if not column_type.asdecimal:
            return float, ()
        precision, scale = column_type.precision, column_type.scale
        if precision is None and scale is None:
            return Decimal, ()
        return Decimal, (Field(max_digits=precision, decimal_places=scale),)
    simple: list[tuple[type[Any], Any]] = [
        (sqltypes.DateTime, dt.datetime),
        (sqltypes.Date, dt.date),
        (sqltypes.Time, dt.time),
        (sqltypes.Uuid, uuid.UUID),
        (sqltypes.LargeBinary, bytes),
        (sqltypes.JSON, Any),
    ]
    for sql_type, py_type in simple:
        if isinstance(column_type, sql_type):
            return py_type, ()
    try:
        return column_type.python_type, ()
    except NotImplementedError:
        return Any, ()


def _read_only_names(model: type[Model]) -> set[str]:
    names: set[str] = set()
    if issubclass(model, TimestampMixin):
        names.update(_TIMESTAMPS)
    if issubclass(model, SoftDeleteMixin):
        names.add("deleted_at")
    return names


def _generated_pk(column: Column[Any]) -> bool:
    """Return whether the database or the model fills in this primary-key column."""
    if column.default is not None or column.server_default is not None:
        return True
    return isinstance(column.type, sqltypes.Integer) and column.autoincrement in (True, "auto")


def model_fields(model: type[Model]) -> dict[str, ModelField]:
    """Return every column-mapped attribute of ``model`` as a :class:`ModelField`."""
    mapper: Mapper[Any] = model.__mapper__
    read_only = _read_only_names(model)
    fields: dict[str, ModelField] = {}
    # Primary keys first: ``id`` leads every schema, as it leads every table.
    props = sorted(
        mapper.column_attrs, key=lambda prop: not any(c.primary_key for c in prop.columns)
    )
    for prop in props:
        if not isinstance(prop, ColumnProperty) or len(prop.columns) != 1:
            continue
        column = prop.columns[0]
        if not isinstance(column, Column):
            continue  # a column_property() expression: read-only, computed
        py_type, constraints = python_type(column.type)
        default: Any = None
        if isinstance(column.default, ColumnDefault) and column.default.is_scalar:
            default = column.default.arg
        has_default = bool(
            column.default is not None or column.server_default is not None or column.nullable
        )
        fields[prop.key] = ModelField(
            name=prop.key,
            column=column,
            python_type=py_type,
            constraints=constraints,
            nullable=bool(column.nullable),
            primary_key=column.primary_key,
            read_only=prop.key in read_only or (column.primary_key and _generated_pk(column)),
            has_default=has_default,
            default=default,
        )
    return fields


def _annotation(field: ModelField, *, optional: bool) -> Any:
    base = field.python_type
    if field.constraints:
        base = Annotated[base, *field.constraints]
    if field.nullable or optional:
        return base | None
    return base


def _normalize(names: Iterable[str] | None) -> tuple[str, ...] | None:
    if names is None:
        return None
    if isinstance(names, str):
        raise TypeError(f"include/exclude take a list of field names, got the string {names!r}.")
    return tuple(sorted(set(names)))


def model_schema(
    model: type[Model],
    mode: Mode = "read",
    *,
    include: Iterable[str] | None = None,
    exclude: Iterable[str] | None = None,
    name: str | None = None,
) -> type[BaseModel]:
    """Return a Pydantic model for ``model``: ``read``, ``create`` or ``update`` (PATCH).

    Read schemas validate from ORM objects (``from_attributes``) and may name
    relations in ``include`` to nest their read schemas (the relation must be
    loaded; the related model's first full read schema is reused). Create and
    update schemas leave out generated primary keys and timestamps and reject
    unknown fields; every field of an update schema is
    optional, and only the fields a client sent should be applied
    (``model_dump(exclude_unset=True)``). Schemas are cached per arguments and
    named ``UserRead``/``UserCreate``/``UserUpdate`` (with a stable suffix when
    ``include``/``exclude`` change the fields and no ``name`` is given).
    """
    if mode not in _MODES:
        raise ValueError(f"model_schema() got mode={mode!r}; choose one of: {', '.join(_MODES)}.")
    if not (isinstance(model, type) and issubclass(model, Model) and hasattr(model, "__mapper__")):
        raise TypeError(f"model_schema() takes a mapped Model class, got {model!r}.")
    key = (model, mode, _normalize(include), _normalize(exclude), name)
    cached = _cache.get(key)
    if cached is not None:
        return cached
    schema = _build(model, mode, key[2], key[3], name)
    # Two schemas named alike in one app would get module-qualified OpenAPI names;
    # refuse that for models of one module (models of different apps may share names).
    previous = _names.setdefault((model.__module__, schema.__name__), key)
    if previous[0] is not model and previous[0].__qualname__ == model.__qualname__:
        _names[(model.__module__, schema.__name__)] = previous = key  # a redefined class
    if previous != key:
        raise ValueError(
            f"model_schema() name {schema.__name__!r} is already used by another schema "
            f"({previous[0].__name__}, mode={previous[1]!r}); pass a different name=."
        )
    _cache[key] = schema
    return schema


def _build(
    model: type[Model],
    mode: Mode,
    include: tuple[str, ...] | None,
    exclude: tuple[str, ...] | None,
    name: str | None,
) -> type[BaseModel]:
    fields = model_fields(model)
    relations: dict[str, RelationshipProperty[Any]] = {
        rel.key: rel for rel in model.__mapper__.relationships
    }
    available = set(fields) | (set(relations) if mode == "read" else set())
    for label, names in (("include", include), ("exclude", exclude)):
        unknown = sorted(set(names or ()) - available)
        if unknown:
            raise ValueError(
                f"model_schema({model.__name__}, {mode!r}) got unknown {label} field "
                f"{unknown[0]!r}. Choices are: {', '.join(sorted(available))}."
            )
    selected = [
        field
        for field in fields.values()
        if (include is None or field.name in include) and field.name not in (exclude or ())
    ]
    definitions: dict[str, Any] = {}
    for field in selected:
        if mode == "read":
            definitions[field.name] = (_annotation(field, optional=False), ...)
        elif field.read_only or (mode == "update" and field.primary_key):
            continue
        elif mode == "create":
            required = not field.has_default
            definitions[field.name] = (
                _annotation(field, optional=False),
                ... if required else field.default,
            )
        else:
            definitions[field.name] = (_annotation(field, optional=False), None)
    if mode == "read":
        for rel_name in include or ():
            rel = relations.get(rel_name)
            if rel is not None and rel_name not in (exclude or ()):
                nested = _full_read_schema(rel.mapper.class_)
                annotation = list[nested] if rel.uselist else nested | None  # type: ignore[valid-type]  # built at runtime
                definitions[rel_name] = (annotation, ...)
    config = (
        ConfigDict(from_attributes=True)
        if mode == "read"
        else ConfigDict(extra="forbid", from_attributes=True)
    )
    schema_name = name or _default_name(model, mode, include, exclude)
    schema: type[BaseModel] = create_model(
        schema_name,
        __config__=config,
        __doc__=f"{model.__name__} ({mode} schema).",
        __module__=model.__module__,
        **definitions,
    )
    return schema


def _full_read_schema(model: type[Model]) -> type[BaseModel]:
    """Return the read schema with every field of ``model``: the first one built, or a new one.

    So a relation nests the schema the app already named (``UserRead``) instead of a
    second, identical one under the default name.
    """
    for (cached_model, mode, include, exclude, _name), schema in _cache.items():
        if cached_model is model and mode == "read" and include is None and exclude is None:
            return schema
    return model_schema(model, "read")


def _default_name(
    model: type[Model],
    mode: Mode,
    include: tuple[str, ...] | None,
    exclude: tuple[str, ...] | None,
) -> str:
    base = f"{model.__name__}{mode.capitalize()}"
    if include is None and exclude is None:
        return base
    digest = hashlib.sha1(repr((include, exclude)).encode(), usedforsecurity=False)
    return f"{base}_{digest.hexdigest()[:8]}"
