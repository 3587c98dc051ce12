"""The Model base class, the timestamp and soft-delete mixins, and instance methods."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar, Self, cast

from sqlalchemy import DateTime, Integer, inspect
from sqlalchemy.exc import InvalidRequestError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, MappedColumn, mapped_column
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.schema import Column, PrimaryKeyConstraint
from sqlalchemy.types import TypeDecorator

from flash_db import exceptions
from flash_db.lookups import pk_name
from flash_db.manager import ManagerDescriptor
from flash_db.transaction import execute_write, flush_write

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


class Model(DeclarativeBase):
    """The declarative base for Flash DB models.

    Every concrete model gets an integer primary key ``id`` unless it declares a
    primary key of its own, a ``Manager`` as ``objects``, and its own
    ``DoesNotExist``/``MultipleObjectsReturned`` exceptions.
    """

    __abstract__ = True

    objects: ClassVar[ManagerDescriptor] = ManagerDescriptor()
    DoesNotExist: ClassVar[type[exceptions.DoesNotExist]] = exceptions.DoesNotExist
    MultipleObjectsReturned: ClassVar[type[exceptions.MultipleObjectsReturned]] = (
        exceptions.MultipleObjectsReturned
    )

    if TYPE_CHECKING:
        # Typed Any because models may declare their own (e.g. UUID) ``id``.
        id: Mapped[Any]

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
    def pk(self) -> Any:
        """The primary-key value, whatever the primary-key column is called."""
        return getattr(self, pk_name(type(self)))

    def __repr__(self) -> str:
        state = inspect(self)
        pk = state.identity[0] if state.identity else None
        return f"<{type(self).__name__} pk={pk!r}>"

    # -- instance methods ------------------------------------------------------------

    async def save(
        self,
        db: AsyncSession,
        *,
        update_fields: list[str] | tuple[str, ...] | None = None,
        validate: bool = True,
    ) -> Self:
        """Insert or update this object; outside ``atomic`` it commits on its own.

        ``update_fields`` limits the UPDATE to those columns (plus ``updated_at``).
        """
        state = inspect(self)
        if update_fields is not None and state.key is not None:
            await self._update_fields(db, list(update_fields))
            return self
        db.add(self)
        pending = len(db.new) + len(db.dirty) + len(db.deleted)
        await flush_write(db, single_statement=pending <= 1 and self.__mapper__.inherits is None)
        return self

    async def _update_fields(self, db: AsyncSession, update_fields: list[str]) -> None:
        from sqlalchemy import update

        column_attrs = self.__mapper__.column_attrs
        unknown = [name for name in update_fields if name not in column_attrs]
        if unknown:
            raise exceptions.FieldError(
                type(self), unknown[0], column_attrs.keys(), context="save(update_fields=...)"
            )
        values = {name: getattr(self, name) for name in update_fields}
        if isinstance(self, TimestampMixin) and "updated_at" not in values:
            values["updated_at"] = _now()
        # As in Django, changes to other fields stay in memory only: mark them
        # unchanged so that no later autoflush writes them behind the caller's back.
        state = inspect(self)
        for key in list(state.committed_state):
            if key in column_attrs:
                set_committed_value(self, key, getattr(self, key))
        pk = pk_name(type(self))
        stmt = (
            update(type(self))
            .where(getattr(type(self), pk) == self.pk)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        await execute_write(db, stmt)
        for name, value in values.items():
            set_committed_value(self, name, value)

    async def delete(self, db: AsyncSession) -> None:
        """Delete this object's row (soft-delete models set ``deleted_at`` instead)."""
        if isinstance(self, SoftDeleteMixin):
            setattr(self, "deleted_at", _now())  # noqa: B010 - declared by the mixin, not Model
            await self.save(db, update_fields=["deleted_at"], validate=False)
            return
        await self.hard_delete(db)

    async def hard_delete(self, db: AsyncSession) -> None:
        """Delete this object's row, also on soft-delete models."""
        if inspect(self).session is not db.sync_session:
            self = await db.merge(self, load=False)
        await db.delete(self)
        await flush_write(
            db,
            single_statement=self.__mapper__.inherits is None and not self.__mapper__.relationships,
        )

    async def refresh_from_db(self, db: AsyncSession, fields: list[str] | None = None) -> None:
        """Reload this object's columns (or only ``fields``) from the database."""
        if inspect(self).session is not db.sync_session:
            db.add(self)
        try:
            await db.refresh(self, attribute_names=fields)
        except InvalidRequestError as error:
            identity = inspect(self).identity
            pk = identity[0] if identity else None
            raise type(self).DoesNotExist(
                f"{type(self).__name__} with pk={pk!r} no longer exists."
            ) from error


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
        model = cast(Model, self)  # the mixin is always combined with Model
        await model.save(db, update_fields=["deleted_at"], validate=False)
