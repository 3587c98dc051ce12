"""Manager[M] (``Model.objects``) and the descriptor that binds it to the model class."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar, overload

from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from flash_db.query import QuerySet

if TYPE_CHECKING:
    from flash_db.models import Model

__all__ = ["Manager", "ManagerDescriptor"]

M = TypeVar("M", bound="Model")


class Manager(Generic[M]):
    """The entry point to a model's QuerySets and write shortcuts (``User.objects``)."""

    def __init__(self, model: type[M], *, include_deleted: bool = True) -> None:
        self.model = model
        self.include_deleted = include_deleted

    def get_queryset(self) -> QuerySet[M]:
        """Return the base QuerySet (soft-deleted rows hidden unless this is ``all_objects``)."""
        qs: QuerySet[M] = QuerySet(self.model)
        if not self.include_deleted:
            qs = qs.filter(deleted_at=None)
        return qs

    def __repr__(self) -> str:
        return f"<Manager for {self.model.__name__}>"

    # -- builders (each one is get_queryset().<builder>) ------------------------

    def all(self) -> QuerySet[M]:
        """Return a QuerySet over every (visible) row."""
        return self.get_queryset()

    def filter(self, *conditions: Any, **lookups: Any) -> QuerySet[M]:
        """Return a QuerySet filtered by conditions and lookups."""
        return self.get_queryset().filter(*conditions, **lookups)

    def exclude(self, *conditions: Any, **lookups: Any) -> QuerySet[M]:
        """Return a QuerySet excluding rows that match conditions and lookups."""
        return self.get_queryset().exclude(*conditions, **lookups)

    def order_by(self, *fields: Any) -> QuerySet[M]:
        """Return an ordered QuerySet."""
        return self.get_queryset().order_by(*fields)

    def reverse(self) -> QuerySet[M]:
        """Return a QuerySet with the default ordering reversed."""
        return self.get_queryset().reverse()

    def distinct(self, *fields: str) -> QuerySet[M]:
        """Return a DISTINCT QuerySet."""
        return self.get_queryset().distinct(*fields)

    def limit(self, n: int | None) -> QuerySet[M]:
        """Return a QuerySet limited to ``n`` rows."""
        return self.get_queryset().limit(n)

    def offset(self, n: int | None) -> QuerySet[M]:
        """Return a QuerySet skipping ``n`` rows."""
        return self.get_queryset().offset(n)

    def only(self, *fields: str) -> QuerySet[M]:
        """Return a QuerySet loading only ``fields`` now."""
        return self.get_queryset().only(*fields)

    def defer(self, *fields: str) -> QuerySet[M]:
        """Return a QuerySet not loading ``fields`` now."""
        return self.get_queryset().defer(*fields)

    def select_related(self, *relations: str) -> QuerySet[M]:
        """Return a QuerySet JOIN-loading to-one relations."""
        return self.get_queryset().select_related(*relations)

    def prefetch_related(self, *relations: Any) -> QuerySet[M]:
        """Return a QuerySet prefetching relations."""
        return self.get_queryset().prefetch_related(*relations)

    def annotate(self, **expressions: Any) -> QuerySet[M]:
        """Return a QuerySet with computed attributes."""
        return self.get_queryset().annotate(**expressions)

    def select_for_update(
        self, *, nowait: bool = False, skip_locked: bool = False, of: Sequence[Any] = ()
    ) -> QuerySet[M]:
        """Return a QuerySet locking its rows."""
        return self.get_queryset().select_for_update(nowait=nowait, skip_locked=skip_locked, of=of)

    def values(self, *fields: str) -> QuerySet[M, dict[str, Any]]:
        """Return a QuerySet of dicts."""
        return self.get_queryset().values(*fields)

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
        """Return a QuerySet of tuples (or single values with ``flat=True``)."""
        qs: QuerySet[M, Any] = self.get_queryset().values_list(*fields, flat=flat, named=named)  # type: ignore[call-overload]  # plain bools forwarded to the overloads
        return qs

    # -- terminals ----------------------------------------------------------------

    async def fetch(self, db: AsyncSession) -> list[M]:
        """Return every (visible) row."""
        return await self.get_queryset().fetch(db)

    async def first(self, db: AsyncSession) -> M | None:
        """Return the first row by primary key, or None."""
        return await self.get_queryset().first(db)

    async def last(self, db: AsyncSession) -> M | None:
        """Return the last row by primary key, or None."""
        return await self.get_queryset().last(db)

    async def get(self, db: AsyncSession, *conditions: Any, **lookups: Any) -> M:
        """Return the one row matching; raise ``DoesNotExist``/``MultipleObjectsReturned``."""
        return await self.get_queryset().get(db, *conditions, **lookups)

    async def count(self, db: AsyncSession) -> int:
        """Return the number of rows."""
        return await self.get_queryset().count(db)

    async def exists(self, db: AsyncSession) -> bool:
        """Return whether any row exists."""
        return await self.get_queryset().exists(db)

    async def in_bulk(
        self, db: AsyncSession, ids: Iterable[Any] | None = None, *, field_name: str = "pk"
    ) -> dict[Any, M]:
        """Return ``{key: object}`` for ``ids`` (or every row)."""
        return await self.get_queryset().in_bulk(db, ids, field_name=field_name)

    async def latest(self, db: AsyncSession, field: str = "created_at") -> M:
        """Return the row with the largest ``field``."""
        return await self.get_queryset().latest(db, field)

    async def earliest(self, db: AsyncSession, field: str = "created_at") -> M:
        """Return the row with the smallest ``field``."""
        return await self.get_queryset().earliest(db, field)

    async def update(self, db: AsyncSession, **values: Any) -> int:
        """Update every (visible) row; return the number matched."""
        return await self.get_queryset().update(db, **values)

    async def delete(self, db: AsyncSession) -> int:
        """Delete every (visible) row; return the number deleted."""
        return await self.get_queryset().delete(db)

    async def aggregate(self, db: AsyncSession, **aggregates: Any) -> dict[str, Any]:
        """Return aggregate values over every (visible) row."""
        return await self.get_queryset().aggregate(db, **aggregates)

    def iterator(self, db: AsyncSession, chunk_size: int = 1000) -> AsyncIterator[M]:
        """Stream every (visible) row in chunks."""
        return self.get_queryset().iterator(db, chunk_size)

    def stream(self, db: AsyncSession, chunk_size: int = 1000) -> AsyncIterator[M]:
        """Stream every (visible) row in chunks."""
        return self.get_queryset().stream(db, chunk_size)

    # -- write shortcuts ------------------------------------------------------------

    async def create(self, db: AsyncSession, *, validate: bool = True, **fields: Any) -> M:
        """Insert a new row and return it, with database defaults loaded."""
        obj = self.model(**fields)
        await obj.save(db, validate=validate)
        return obj


class ManagerDescriptor:
    """Hands out one ``Manager[M]`` per model class: ``User.objects`` is ``Manager[User]``."""

    def __init__(self, *, include_deleted: bool = False) -> None:
        self.include_deleted = include_deleted
        self._managers: dict[type[Any], Manager[Any]] = {}
        self.name = "objects"

    def __set_name__(self, owner: type[Any], name: str) -> None:
        self.name = name

    def __get__(self, instance: object | None, owner: type[M]) -> Manager[M]:
        if instance is not None:
            raise AttributeError(
                f"Manager isn't accessible via {owner.__name__} instances; "
                f"use {owner.__name__}.{self.name}."
            )
        manager = self._managers.get(owner)
        if manager is None:
            soft = bool(getattr(owner, "__soft_delete__", False))
            manager = Manager(owner, include_deleted=self.include_deleted or not soft)
            self._managers[owner] = manager
        return manager
