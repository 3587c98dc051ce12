"""Manager[M] (``Model.objects``) and the descriptor that binds it to the model class."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar, overload

from sqlalchemy import ColumnElement
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from flash_db import bulk
from flash_db.database import check_writable
from flash_db.exceptions import FieldError
from flash_db.expressions import Expression
from flash_db.fields import pk_name
from flash_db.query import QuerySet
from flash_db.transaction import atomic, in_atomic

if TYPE_CHECKING:
    from flash_db.models import Model

__all__ = ["Manager", "ManagerDescriptor"]

M = TypeVar("M", bound="Model[Any]")


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

    def annotate(self, *aggregates: Any, **expressions: Any) -> QuerySet[M]:
        """Return a QuerySet with computed attributes."""
        return self.get_queryset().annotate(*aggregates, **expressions)

    def alias(self, *aggregates: Any, **expressions: Any) -> QuerySet[M]:
        """Return a QuerySet with named expressions to filter and order by, not selected."""
        return self.get_queryset().alias(*aggregates, **expressions)

    def select_for_update(
        self, *, nowait: bool = False, skip_locked: bool = False, of: Sequence[Any] = ()
    ) -> QuerySet[M]:
        """Return a QuerySet locking its rows."""
        return self.get_queryset().select_for_update(nowait=nowait, skip_locked=skip_locked, of=of)

    def values(self, *fields: str, **expressions: Any) -> QuerySet[M, dict[str, Any]]:
        """Return a QuerySet of dicts."""
        return self.get_queryset().values(*fields, **expressions)

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
        """Return a QuerySet of tuples (or single values with ``flat=True``)."""
        qs: QuerySet[M, Any] = self.get_queryset().values_list(  # type: ignore[call-overload]  # plain bools forwarded to the overloads
            *fields, flat=flat, named=named, **expressions
        )
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

    async def aggregate(self, db: AsyncSession, *args: Any, **aggregates: Any) -> dict[str, Any]:
        """Return aggregate values over every (visible) row."""
        return await self.get_queryset().aggregate(db, *args, **aggregates)

    def union(self, *others: QuerySet[Any, Any], all: bool = False) -> QuerySet[M]:
        """Return every (visible) row and the rows of ``others`` (``UNION``)."""
        return self.get_queryset().union(*others, all=all)

    def intersection(self, *others: QuerySet[Any, Any]) -> QuerySet[M]:
        """Return the (visible) rows also found in every one of ``others`` (``INTERSECT``)."""
        return self.get_queryset().intersection(*others)

    def difference(self, *others: QuerySet[Any, Any]) -> QuerySet[M]:
        """Return the (visible) rows found in none of ``others`` (``EXCEPT``)."""
        return self.get_queryset().difference(*others)

    def dates(self, field: str, kind: str, order: str = "ASC") -> QuerySet[M, date]:
        """Return a QuerySet of the distinct dates of ``field`` truncated to ``kind``."""
        return self.get_queryset().dates(field, kind, order)

    def datetimes(self, field: str, kind: str, order: str = "ASC") -> QuerySet[M, datetime]:
        """Return a QuerySet of the distinct datetimes of ``field`` truncated to ``kind``."""
        return self.get_queryset().datetimes(field, kind, order)

    def sql(self, db: AsyncSession) -> str:
        """Return the SELECT of every (visible) row as ``db``'s database would get it."""
        return self.get_queryset().sql(db)

    async def explain(self, db: AsyncSession, *, analyze: bool = False) -> str:
        """Return the database's plan for the SELECT of every (visible) row."""
        return await self.get_queryset().explain(db, analyze=analyze)

    def iterator(self, db: AsyncSession, chunk_size: int = 1000) -> AsyncIterator[M]:
        """Stream every (visible) row in chunks."""
        return self.get_queryset().iterator(db, chunk_size)

    def stream(self, db: AsyncSession, chunk_size: int = 1000) -> AsyncIterator[M]:
        """Stream every (visible) row in chunks."""
        return self.get_queryset().stream(db, chunk_size)

    # -- write shortcuts ------------------------------------------------------------

    async def create(self, db: AsyncSession, *, validate: bool = True, **fields: Any) -> M:
        """Insert a new row and return it, with database defaults loaded.

        Validates first (``afull_clean()``) unless ``validate=False``; nothing is
        written when validation fails.
        """
        obj = self.model(**fields)
        await obj.save(db, validate=validate)
        return obj

    async def get_or_create(
        self,
        db: AsyncSession,
        defaults: Mapping[str, Any] | None = None,
        *,
        validate: bool = True,
        **lookups: Any,
    ) -> tuple[M, bool]:
        """Return ``(obj, created)``: the row matching ``lookups``, or a new one.

        The new row is built from the lookups without ``__`` and ``defaults``
        (callables are called), validated unless ``validate=False``, and inserted.
        Safe under concurrency: when a concurrent insert wins a unique constraint,
        the winner's row is returned (``created=False``) instead of raising; inside
        ``atomic`` the insert runs in a savepoint, so the caller's transaction
        survives the conflict.
        """
        check_writable(db, "get_or_create()")
        qs = self.get_queryset()
        try:
            return await qs.get(db, **lookups), False
        except self.model.DoesNotExist:
            pass
        return await self._create_or_get(db, qs, lookups, defaults, validate=validate)

    async def update_or_create(
        self,
        db: AsyncSession,
        defaults: Mapping[str, Any] | None = None,
        create_defaults: Mapping[str, Any] | None = None,
        *,
        validate: bool = True,
        **lookups: Any,
    ) -> tuple[M, bool]:
        """Update the row matching ``lookups`` with ``defaults``, or create it; ``(obj, created)``.

        A new row gets ``create_defaults`` (``defaults`` when that is None). Runs in
        one transaction with the row locked (``SELECT ... FOR UPDATE`` on
        PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` serialises writers), and, like
        ``get_or_create``, returns the winner's row, updated, when a concurrent
        insert wins. The UPDATE writes only the ``defaults`` fields.
        """
        check_writable(db, "update_or_create()")
        qs = self.get_queryset()
        async with atomic(db):
            try:
                obj = await qs.select_for_update().get(db, **lookups)
            except self.model.DoesNotExist:
                obj, created = await self._create_or_get(
                    db,
                    qs.select_for_update(),
                    lookups,
                    defaults if create_defaults is None else create_defaults,
                    validate=validate,
                )
                if created:
                    return obj, True
            values = self._resolve(defaults, "defaults")
            if values:
                for name, value in values.items():
                    setattr(obj, name, value)
                await obj.save(db, update_fields=list(values), validate=validate)
        return obj, False

    async def _create_or_get(
        self,
        db: AsyncSession,
        qs: QuerySet[M],
        lookups: Mapping[str, Any],
        defaults: Mapping[str, Any] | None,
        *,
        validate: bool,
    ) -> tuple[M, bool]:
        """Insert a row from ``lookups`` and ``defaults``; on a unique conflict, get the winner."""
        params = self._resolve(
            {name: value for name, value in lookups.items() if "__" not in name}, "lookups"
        )
        params.update(self._resolve(defaults, "defaults"))
        obj = self.model(**params)
        if validate:
            await obj.afull_clean()
        try:
            # Inside atomic a failed INSERT would abort the caller's transaction
            # (PostgreSQL): a savepoint confines it. Outside atomic the INSERT
            # autocommits on its own and a failure leaves the session usable.
            async with atomic(db) if in_atomic(db) else contextlib.nullcontext():
                await obj.save(db, validate=False)
        except IntegrityError as error:
            try:
                return await qs.get(db, **lookups), False
            except self.model.DoesNotExist:
                raise error from None
        return obj, True

    def _resolve(self, values: Mapping[str, Any] | None, argument: str) -> dict[str, Any]:
        """Check field names (``pk`` allowed) and call callable values, as Django does."""
        if not values:
            return {}
        mapper = self.model.__mapper__
        names = {*mapper.column_attrs.keys(), *mapper.relationships.keys()}
        result: dict[str, Any] = {}
        for name, value in values.items():
            key = pk_name(self.model) if name == "pk" else name
            if key not in names:
                raise FieldError(self.model, name, [*names, "pk"], context=argument)
            result[key] = value() if callable(value) else value
        return result

    async def bulk_create(
        self,
        db: AsyncSession,
        objs: Iterable[M | Mapping[str, Any]],
        batch_size: int | None = None,
        ignore_conflicts: bool = False,
        update_conflicts: bool = False,
        update_fields: Sequence[str] | None = None,
        unique_fields: Sequence[str] | None = None,
    ) -> list[M]:
        """Insert ``objs`` (instances or dicts) with one multi-row INSERT per batch.

        Returns the objects with primary keys and defaults set (rows skipped by
        ``ignore_conflicts`` have none). ``update_conflicts=True`` upserts: on a
        conflict over ``unique_fields`` it updates ``update_fields`` (and
        ``updated_at``). No validation and no signals; several batches are one
        transaction. A related object (``author=user``, in an instance or a dict)
        sets the foreign key and must be saved. Objects for dicts are made as
        loaded rows are, without calling ``__init__``: the returned row fills them.
        """
        return await bulk.bulk_create(
            db,
            self.model,
            objs,
            batch_size=batch_size,
            ignore_conflicts=ignore_conflicts,
            update_conflicts=update_conflicts,
            update_fields=update_fields,
            unique_fields=unique_fields,
        )

    async def bulk_update(
        self,
        db: AsyncSession,
        objs: Iterable[M],
        fields: Sequence[str],
        batch_size: int | None = None,
    ) -> int:
        """Write ``fields`` of ``objs`` with one UPDATE per batch; return the rows updated.

        ``updated_at`` is bumped on ``TimestampMixin`` models. No validation and
        no signals; several batches are one transaction.
        """
        return await bulk.bulk_update(db, self.model, objs, fields, batch_size=batch_size)


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
