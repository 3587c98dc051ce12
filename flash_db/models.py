"""The Model base class, the timestamp and soft-delete mixins, and instance methods."""

from __future__ import annotations

from collections.abc import Awaitable, Collection
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Self, overload

from sqlalchemy import DateTime, Integer, MetaData, event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    MappedColumn,
    QueryableAttribute,
    mapped_column,
)
from sqlalchemy.schema import Column, PrimaryKeyConstraint
from sqlalchemy.types import TypeDecorator
from typing_extensions import TypeVar

from flash_db import exceptions, instances, schema, signals, validation, writes
from flash_db.database import check_writable
from flash_db.fields import info, pk_name
from flash_db.loading import Prefetch, prefetch_related_objects
from flash_db.manager import ManagerDescriptor
from flash_db.related import RelatedManager, related_manager
from flash_db.transaction import write_block

__all__ = ["AwareDateTime", "Model", "SoftDeleteMixin", "TimestampMixin"]


class AwareDateTime(TypeDecorator[datetime]):
    """A timezone-aware DateTime on every backend (stored as UTC; SQLite keeps no offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        """Store aware datetimes as UTC; naive ones are taken to be UTC."""
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        """Return aware datetimes (UTC where the database kept no offset)."""
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


def _now() -> datetime:
    return datetime.now(UTC)


T = TypeVar("T", bound="Model[Any]")
PK = TypeVar("PK", default=int)
"""The primary key's type: ``int`` (the ``id`` Flash DB adds), else ``Model[UUID]`` etc."""
_STATE_ATTR = instances.STATE_ATTR


def _declares_primary_key(cls: type[Any]) -> bool:
    """Return whether ``cls`` (or a mixin or mapped parent) declares a primary key."""
    for klass in cls.__mro__:
        if klass is Model or klass is object:
            continue
        if "__table__" in klass.__dict__ or "__mapper__" in klass.__dict__:
            return True  # a mapped parent (inheritance) or an explicit Table
        table_args = klass.__dict__.get("__table_args__")
        if isinstance(table_args, tuple) and any(
            isinstance(arg, PrimaryKeyConstraint) for arg in table_args
        ):
            return True
        for value in klass.__dict__.values():
            if isinstance(value, MappedColumn) and value.column.primary_key:
                return True
            if isinstance(value, Column) and value.primary_key:
                return True
    return False


class Model(DeclarativeBase, Generic[PK]):
    """The declarative base for Flash DB models.

    Every concrete model gets an integer primary key ``id`` unless it declares a
    primary key of its own, a ``Manager`` as ``objects``, and its own
    ``DoesNotExist``/``MultipleObjectsReturned`` exceptions.

    For type checkers ``obj.pk`` and ``obj.id`` are ``int``; a model whose key is
    another type names it: ``class Invoice(Model[uuid.UUID])`` (a key not named
    ``id`` still types ``pk``: ``class Country(Model[str])``).
    """

    __abstract__ = True

    metadata: ClassVar[MetaData] = schema.metadata
    objects: ClassVar[ManagerDescriptor] = ManagerDescriptor()
    DoesNotExist: ClassVar[type[exceptions.DoesNotExist]] = exceptions.DoesNotExist
    MultipleObjectsReturned: ClassVar[type[exceptions.MultipleObjectsReturned]] = (
        exceptions.MultipleObjectsReturned
    )

    if TYPE_CHECKING:
        # PK: int by default; a model with another key type says Model[UUID].
        id: Mapped[PK]

    def __init__(self, **kwargs: Any) -> None:
        """Set the attributes named by ``kwargs`` (an unknown name raises ``TypeError``)."""
        instances.construct(self, kwargs)

    if not TYPE_CHECKING:  # a __getattr__ would make every misspelt attribute Any to mypy

        def __getattr__(self, name: str) -> Any:
            # Only for names the object lacks. SQLAlchemy's state of an object built
            # from a row is made when first asked for (flash_db.instances.state_on_demand);
            # an object being constructed (empty) gets it from SQLAlchemy's __init__.
            if name == _STATE_ATTR and self.__dict__:
                return instances.state_on_demand(self)
            if name == _STATE_ATTR:
                raise AttributeError(name)  # the cheap answer to SQLAlchemy's hasattr()
            return object.__getattribute__(self, name)  # the usual AttributeError

    def __init_subclass__(cls, **kwargs: Any) -> None:
        if not cls.__dict__.get("__abstract__", False):
            if "__tablename__" in cls.__dict__ and not _declares_primary_key(cls):
                # Added before SQLAlchemy maps the class; no annotation is needed.
                cls.id = mapped_column(Integer, primary_key=True)
            cls._add_exceptions()
        super().__init_subclass__(**kwargs)

    @classmethod
    def _add_exceptions(cls) -> None:
        for name in ("DoesNotExist", "MultipleObjectsReturned"):
            parents = tuple(
                base.__dict__[name]
                for base in cls.__mro__[1:]
                if name in base.__dict__ and isinstance(base.__dict__[name], type)
            )[:1] or (getattr(exceptions, name),)
            exc = type(
                name,
                parents,
                {"__module__": cls.__module__, "__qualname__": f"{cls.__qualname__}.{name}"},
            )
            setattr(cls, name, exc)

    # -- identity -------------------------------------------------------------------

    @property
    def pk(self) -> PK:
        """The primary-key value, whatever the primary-key column is called."""
        value: PK = getattr(self, pk_name(type(self)))
        return value

    def __repr__(self) -> str:
        pk = self.__dict__.get(info(type(self)).pk)
        return f"<{type(self).__name__} pk={pk!r}>"

    # -- validation -----------------------------------------------------------------

    def clean(self) -> Awaitable[None] | None:
        """Check the object as a whole and raise ``ValidationError``; override (sync or async).

        Runs after the built-in field checks, also when they failed, from
        ``full_clean()``/``afull_clean()`` and so before every validated write.
        """
        return None

    def full_clean(self) -> None:
        """Run the field checks and ``clean()``; raise one ``ValidationError`` with all errors.

        Raises ``TypeError`` when ``clean()`` is async: use ``await afull_clean()``.
        """
        validation.full_clean(self)

    async def afull_clean(self) -> None:
        """Run the field checks and ``clean()``, awaiting an async one; raise ``ValidationError``.

        This is what ``create()``/``save()`` run before writing.
        """
        await validation.afull_clean(self)

    # -- instance methods ------------------------------------------------------------

    async def save(
        self,
        db: AsyncSession,
        *,
        update_fields: list[str] | tuple[str, ...] | None = None,
        validate: bool = True,
    ) -> Self:
        """Insert or update this object; outside ``atomic`` it commits on its own.

        A new object (or one whose primary key is None) is INSERTed; a stored one
        gets one UPDATE of the fields changed since it was loaded or last saved
        (none changed: no statement), or of exactly ``update_fields`` (other
        changed fields stay changed and unsaved). Validates first (as
        ``afull_clean()``, only ``update_fields`` when given) unless
        ``validate=False``; nothing is written when validation fails.
        ``pre_save``/``post_save`` receivers run in the write's transaction.
        """
        check_writable(db, "save()")
        created = not instances.is_stored(self) or self.pk is None
        fields = None if update_fields is None else list(update_fields)
        if fields is not None and not created:
            self._check_update_fields(fields)
            if not fields:
                return self  # Django: an empty update_fields saves nothing, sends nothing
        writes.sync_foreign_keys(self)
        if validate:
            await validation.afull_clean(self, None if created or fields is None else fields)
        sender = type(self)
        if not signals.has_save_receivers(sender):
            await self._write(db, created, fields)
            return self
        arguments = {
            "instance": self,
            "db": db,
            "created": created,
            "update_fields": None if fields is None else frozenset(fields),
        }
        async with write_block(db):
            await signals.pre_save.send(sender, **arguments)
            await self._write(db, created, fields)
            await signals.post_save.send(sender, **arguments)
        return self

    async def _write(self, db: AsyncSession, created: bool, fields: list[str] | None) -> None:
        if created:
            await writes.insert_one(db, self)
            return
        if fields is None:
            fields = instances.changed_fields(self)
            if not fields:
                return  # nothing changed: nothing is sent
        await writes.update_one(db, self, fields)

    def _check_update_fields(self, update_fields: list[str]) -> None:
        columns = dict(info(type(self)).columns)
        unknown = [name for name in update_fields if name not in columns]
        if unknown:
            raise exceptions.FieldError(
                type(self), unknown[0], columns, context="save(update_fields=...)"
            )

    async def delete(self, db: AsyncSession) -> None:
        """Delete this object's row (soft-delete models set ``deleted_at`` instead).

        Afterwards the object is new again with its primary key None (as in
        Django), unless it was soft-deleted. ``pre_delete``/``post_delete``
        receivers run in the delete's transaction.
        """
        check_writable(db, "delete()")
        await self._delete(db, soft=isinstance(self, SoftDeleteMixin))

    async def hard_delete(self, db: AsyncSession) -> None:
        """Delete this object's row, also on soft-delete models."""
        await self._delete(db, soft=False)

    async def _delete(self, db: AsyncSession, *, soft: bool) -> None:
        if not instances.is_stored(self) or self.pk is None:
            raise ValueError(
                f"{type(self).__name__} object can't be deleted because its row is not stored."
            )
        sender = type(self)
        if not signals.has_delete_receivers(sender):
            await self._delete_row(db, soft=soft)
        else:
            async with write_block(db):
                await signals.pre_delete.send(sender, instance=self, db=db)
                await self._delete_row(db, soft=soft)
                await signals.post_delete.send(sender, instance=self, db=db)
        if not soft:
            writes.deleted(self)

    async def _delete_row(self, db: AsyncSession, *, soft: bool) -> None:
        if soft:
            setattr(self, "deleted_at", _now())  # noqa: B010 - declared by the mixin, not Model
            await writes.update_one(db, self, ["deleted_at"])
            return
        await writes.delete_one(db, self)

    async def refresh_from_db(self, db: AsyncSession, fields: list[str] | None = None) -> None:
        """Reload this object's columns (or only ``fields``) from the database.

        A loaded many-to-one relation whose foreign key changed is dropped.
        Raises ``DoesNotExist`` when the row no longer exists.
        """
        if fields is not None:
            columns = self.__mapper__.column_attrs
            unknown = [name for name in fields if name not in columns]
            if unknown:
                raise exceptions.FieldError(
                    type(self), unknown[0], columns.keys(), context="refresh_from_db()"
                )
        if not await writes.refresh(db, self, fields):
            raise type(self).DoesNotExist(
                f"{type(self).__name__} with pk={self.pk!r} no longer exists."
            )

    async def fetch_related(self, db: AsyncSession, *relations: str | Prefetch) -> Self:
        """Load ``relations`` (``"posts"``, ``"posts__tags"``, ``Prefetch(...)``) onto this object.

        One query per relation and level; the last level of each path is reloaded,
        intermediate levels already loaded are reused. For a list of objects use
        ``flash_db.prefetch_related_objects(db, objects, ...)`` (one query per level
        for the whole list, instead of one per object).
        """
        await prefetch_related_objects(db, [self], *relations)
        return self

    @overload
    def related(self, relation: QueryableAttribute[Collection[T]]) -> RelatedManager[T]: ...

    @overload
    def related(self, relation: str) -> RelatedManager[Any]: ...

    def related(self, relation: str | QueryableAttribute[Any]) -> RelatedManager[Any]:
        """Return the manager of this object's related rows through a to-many ``relation``.

        ``post.related("tags")`` (or ``post.related(Post.tags)``) offers every
        QuerySet builder and terminal scoped to the related rows, and ``add``,
        ``remove``, ``set``, ``clear`` and ``create``.
        """
        if isinstance(relation, QueryableAttribute):
            owner = relation.parent.class_
            if not isinstance(self, owner):
                raise TypeError(
                    f"related() got {relation!r}, an attribute of {owner.__name__}, "
                    f"not of {type(self).__name__}."
                )
            relation = relation.key
        if not isinstance(relation, str):
            raise TypeError(
                f"related() takes a relation name or attribute such as 'tags', got {relation!r}."
            )
        prop = self.__mapper__.relationships.get(relation)
        if prop is None or not prop.uselist:
            to_many = [p.key for p in self.__mapper__.relationships if p.uselist]
            raise exceptions.FieldError(
                type(self), relation, to_many, kind="to-many relation", context="related()"
            )
        return related_manager(self, prop)


event.listen(Model.registry, "after_configured", instances.instrument)


class TimestampMixin:
    """Adds ``created_at`` (set on insert) and ``updated_at`` (set on every update)."""

    created_at: Mapped[datetime] = mapped_column(AwareDateTime(), default=_now)
    updated_at: Mapped[datetime] = mapped_column(AwareDateTime(), default=_now, onupdate=_now)


class SoftDeleteMixin:
    """Adds ``deleted_at``: ``objects`` hides deleted rows, ``all_objects`` shows them."""

    __soft_delete__: ClassVar[bool] = True
    deleted_at: Mapped[datetime | None] = mapped_column(AwareDateTime(), default=None, index=True)
    all_objects: ClassVar[ManagerDescriptor] = ManagerDescriptor(include_deleted=True)

    async def restore(self, db: AsyncSession) -> None:
        """Clear ``deleted_at`` so the row is visible through ``objects`` again."""
        self.deleted_at = None
        await writes.update_one(db, self, ["deleted_at"])
