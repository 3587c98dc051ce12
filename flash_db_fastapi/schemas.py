"""model_schema(): Pydantic schemas (read, create, update) generated from Flash DB models."""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import inspect
import types
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Literal, Union, get_args, get_origin

from pydantic import AfterValidator, AliasGenerator, BaseModel, ConfigDict, Field, create_model
from sqlalchemy import types as sqltypes
from sqlalchemy.orm import ColumnProperty, Mapper, RelationshipProperty
from sqlalchemy.schema import Column, ColumnDefault
from typing_extensions import Unpack

from flash_db import Model, SoftDeleteMixin, TimestampMixin

__all__ = [
    "NO_NUL",
    "Aliases",
    "Mode",
    "ModelField",
    "ModelSchema",
    "model_fields",
    "model_schema",
    "python_type",
]

Mode = Literal["read", "create", "update"]
Aliases = Callable[[str], str] | AliasGenerator
"""What ``alias_generator=`` takes: e.g. ``pydantic.alias_generators.to_camel``."""

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
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("Text may not contain lone surrogate characters.") from None
    return value


NO_NUL = AfterValidator(_refuse_nul)
"""Refuses NUL characters and lone surrogates, which no database can store in text (a 422)."""


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


def _read_only_names(model: type[Model[Any]]) -> set[str]:
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


def model_fields(model: type[Model[Any]]) -> dict[str, ModelField]:
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
    model: type[Model[Any]],
    mode: Mode = "read",
    *,
    include: Iterable[str] | None = None,
    exclude: Iterable[str] | None = None,
    name: str | None = None,
    alias_generator: Aliases | None = None,
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
    ``alias_generator`` (e.g. ``pydantic.alias_generators.to_camel``) names the
    fields in JSON: bodies are read by alias or by name, and written by alias.
    For a schema usable as a type, see :class:`ModelSchema`.
    """
    _check_model(model, mode, "model_schema()")
    key = (model, mode, _normalize(include), _normalize(exclude), name, alias_generator)
    cached = _cache.get(key)
    if cached is not None:
        return cached
    schema = _build(model, mode, key[2], key[3], name, alias_generator)
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


def _check_model(model: Any, mode: Any, context: str) -> None:
    if mode not in _MODES:
        raise ValueError(f"{context} got mode={mode!r}; choose one of: {', '.join(_MODES)}.")
    if not (isinstance(model, type) and issubclass(model, Model) and hasattr(model, "__mapper__")):
        raise TypeError(f"{context} takes a mapped Model class, got {model!r}.")


def _config(mode: Mode, alias_generator: Aliases | None) -> ConfigDict:
    """Return the Pydantic configuration of a ``mode`` schema."""
    config = ConfigDict(from_attributes=True)
    if mode != "read":
        config["extra"] = "forbid"
    if alias_generator is not None:
        config["alias_generator"] = alias_generator
        config["validate_by_alias"] = True
        config["validate_by_name"] = True  # bodies may use the names too
        config["serialize_by_alias"] = True  # responses use the aliases

    return config


def _definitions(
    model: type[Model[Any]],
    mode: Mode,
    include: tuple[str, ...] | None,
    exclude: tuple[str, ...] | None,
    context: str,
) -> dict[str, tuple[Any, Any]]:
    """Return ``{name: (annotation, default)}`` for a ``mode`` schema of ``model``."""
    fields = model_fields(model)
    relations: dict[str, RelationshipProperty[Any]] = {
        rel.key: rel for rel in model.__mapper__.relationships
    }
    available = set(fields) | (set(relations) if mode == "read" else set())
    for label, names in (("include", include), ("exclude", exclude)):
        unknown = sorted(set(names or ()) - available)
        if unknown:
            raise ValueError(
                f"{context} got unknown {label} field "
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
    return definitions


def _build(
    model: type[Model[Any]],
    mode: Mode,
    include: tuple[str, ...] | None,
    exclude: tuple[str, ...] | None,
    name: str | None,
    alias_generator: Aliases | None,
) -> type[BaseModel]:
    context = f"model_schema({model.__name__}, {mode!r})"
    definitions: dict[str, Any] = _definitions(model, mode, include, exclude, context)
    schema_name = name or _default_name(model, mode, include, exclude, alias_generator)
    schema: type[BaseModel] = create_model(
        schema_name,
        __config__=_config(mode, alias_generator),
        __doc__=f"{model.__name__} ({mode} schema).",
        __module__=model.__module__,
        **definitions,
    )
    return schema


def _full_read_schema(model: type[Model[Any]]) -> type[BaseModel]:
    """Return the read schema with every field of ``model``: the first one built, or a new one.

    So a relation nests the schema the app already named (``UserRead``) instead of a
    second, identical one under the default name.
    """
    for (cached_model, mode, include, exclude, _name, aliases), schema in _cache.items():
        if (
            cached_model is model
            and mode == "read"
            and include is None
            and exclude is None
            and aliases is None
        ):
            return schema
    return model_schema(model, "read")


def _default_name(
    model: type[Model[Any]],
    mode: Mode,
    include: tuple[str, ...] | None,
    exclude: tuple[str, ...] | None,
    alias_generator: Aliases | None = None,
) -> str:
    base = f"{model.__name__}{mode.capitalize()}"
    if include is None and exclude is None and alias_generator is None:
        return base
    aliases = getattr(alias_generator, "__qualname__", None) or repr(alias_generator)
    fields = (include, exclude) if alias_generator is None else (include, exclude, aliases)
    digest = hashlib.sha1(repr(fields).encode(), usedforsecurity=False)
    return f"{base}_{digest.hexdigest()[:8]}"


# -- the class form ---------------------------------------------------------------------


def _members(annotation: Any) -> list[Any]:
    """Return the non-None members of ``annotation`` (``int | None`` -> ``[int]``), unwrapped."""
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if get_origin(annotation) in (Union, types.UnionType):
        return [m for arg in get_args(annotation) for m in _members(arg)]
    return [] if annotation is type(None) or annotation is None else [annotation]


def _holds(declared: Any, column: Any) -> bool:
    """Return whether a field declared ``declared`` can hold every value of a ``column`` type."""
    if column is Any:
        return True
    targets = _members(column)
    for member in _members(declared):
        if member is Any or member is object:
            return True
        origin = get_origin(member)
        for target in targets:
            if member == target:
                return True
            if (
                origin is Literal
                and get_origin(target) is Literal
                and set(get_args(target)) <= set(get_args(member))
            ):
                return True
            if origin is not None or not isinstance(member, type):
                continue
            if isinstance(target, type) and issubclass(target, member):
                return True
            if member is float and target is int:
                return True  # Pydantic takes an int for a float
            if member is str and (
                get_origin(target) is Literal
                or (isinstance(target, type) and issubclass(target, enum.Enum))
            ):
                return True
    return False


def _allows_none(annotation: Any) -> bool:
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if annotation is Any or annotation is object or annotation is None:
        return True
    if get_origin(annotation) in (Union, types.UnionType):
        return any(_allows_none(arg) for arg in get_args(annotation))
    return annotation is type(None)


def _type_name(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or repr(annotation)


class ModelSchema(BaseModel):
    """A Pydantic model generated from a Flash DB model, usable as a type::

        class AuthorRead(ModelSchema, model=Author):
            id: int
            name: str

    Options, as class keywords: ``mode`` (``"read"``, ``"create"`` or
    ``"update"``), ``include``, ``exclude`` and ``alias_generator``, as for
    :func:`model_schema`. The fields declared in the body are checked against the
    model when the class is created: a name the model lacks, or a type its column
    cannot hold, raises ``TypeError``. Every other field of the model (within
    ``include``/``exclude``) is added at run time; static checkers see only the
    declared ones. Subclasses without ``model=`` inherit their parent's fields.
    """

    model_config = ConfigDict(from_attributes=True)

    __flash_model__: ClassVar[type[Model[Any]] | None] = None
    __flash_mode__: ClassVar[Mode] = "read"
    __flash_declared__: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(
        cls,
        *,
        model: type[Model[Any]] | None = None,
        mode: Mode = "read",
        include: Iterable[str] | None = None,
        exclude: Iterable[str] | None = None,
        **kwargs: Unpack[ConfigDict],
    ) -> None:
        # Runs before Pydantic collects the fields: the model's fields the body did
        # not declare are added here, as if they had been written in the body.
        super().__init_subclass__(**kwargs)
        if model is None:
            if include is not None or exclude is not None or mode != "read":
                raise TypeError(f"{cls.__name__}: mode, include and exclude need model=.")
            return
        context = f"class {cls.__name__}(ModelSchema, model={getattr(model, '__name__', model)})"
        _check_model(model, mode, context)
        definitions = _definitions(model, mode, _normalize(include), _normalize(exclude), context)
        declared: dict[str, Any] = dict(inspect.get_annotations(cls))
        columns = model_fields(model)
        known = set(columns) | {rel.key for rel in model.__mapper__.relationships}
        unknown = sorted(name for name in declared if name not in known)
        if unknown:
            raise TypeError(
                f"{context} declares {unknown[0]!r}, which {model.__name__} does not have. "
                f"Choices are: {', '.join(sorted(known))}."
            )
        for name, annotation in declared.items():
            constraints = columns[name].constraints if name in columns else ()
            if constraints:  # the column's limits (max length, range, no NUL) still apply
                declared[name] = Annotated[annotation, *constraints]
        # The model's order (primary key first), declared fields in their place.
        annotations: dict[str, Any] = {}
        for name, (annotation, default) in definitions.items():
            if name in declared:
                annotations[name] = declared[name]
                continue
            annotations[name] = annotation
            if default is not ...:
                setattr(cls, name, default)
        cls.__annotations__ = {**annotations, **declared}
        cls.__flash_model__ = model
        cls.__flash_mode__ = mode
        cls.__flash_declared__ = tuple(declared)

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        """Check the declared fields' types against the columns; apply the mode's settings."""
        super().__pydantic_init_subclass__(**kwargs)
        model = cls.__dict__.get("__flash_model__")
        if model is None:
            return
        columns = model_fields(model)
        for name in cls.__flash_declared__:
            column = columns.get(name)
            if column is None:
                continue  # a relation: its nested schema is the author's choice
            declared = cls.model_fields[name].annotation
            if not _holds(declared, column.python_type):
                raise TypeError(
                    f"{cls.__name__}.{name} is declared {_type_name(declared)}, but "
                    f"{model.__name__}.{name} holds {_type_name(column.python_type)}: declare "
                    f"{_type_name(column.python_type)}."
                )
            if cls.__flash_mode__ == "read" and column.nullable and not _allows_none(declared):
                raise TypeError(
                    f"{cls.__name__}.{name} is declared {_type_name(declared)}, but "
                    f"{model.__name__}.{name} may be NULL: declare "
                    f"{_type_name(column.python_type)} | None."
                )
        if (
            cls.__flash_mode__ == "read"
            and cls.model_config.get("alias_generator") is None
            and set(cls.model_fields) == set(columns)
        ):
            # A full read schema: relations that include this model nest it (by its name).
            _cache.setdefault((model, "read", None, None, cls.__name__, None), cls)
        wanted = _config(cls.__flash_mode__, cls.model_config.get("alias_generator"))
        missing = {key: value for key, value in wanted.items() if key not in cls.model_config}
        if missing:
            cls.model_config = {**cls.model_config, **missing}  # type: ignore[typeddict-item]
            cls.model_rebuild(force=True)
