"""RelatedManager: ``obj.related("tags")``, the related rows of one object as a manager.

A related manager offers every QuerySet builder and terminal scoped to the rows
related to one object (``post.related("tags").filter(...).count(db)``), and the
writes that change which rows those are, each in as few statements as the
databases allow:

- many-to-many (``relationship(secondary=...)``): ``add`` is one
  ``INSERT ... ON CONFLICT DO NOTHING`` of the missing links when the link
  table has a primary key or unique constraint over its link columns (so a
  link that exists, also one a concurrent request just inserted, is no error),
  else a SELECT of the existing links and one INSERT of the others; ``remove``
  and ``clear`` are one ``DELETE``; ``set`` is a DELETE of the other links and
  an ``add``, in one transaction.
- one-to-many (a reverse foreign key): ``add`` sets the objects' foreign key in
  one ``UPDATE``; ``remove`` and ``clear`` set it to NULL in one ``UPDATE`` and
  refuse, before any SQL, a foreign key that cannot be NULL; ``set`` is both.

``create(db, **fields)`` creates a related object (with the foreign key set, or
the link added). After any of these the object's loaded relation of that name
is dropped: reading it raises ``RelationNotLoaded`` until it is loaded again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import ColumnElement, Table, and_, delete, exists, insert, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapper, RelationshipProperty
from sqlalchemy.schema import Column, UniqueConstraint

from flash_db import execution
from flash_db.fields import info
from flash_db.instances import forget_related, is_stored, store
from flash_db.manager import Manager
from flash_db.query import QuerySet
from flash_db.transaction import write_block

if TYPE_CHECKING:
    from flash_db.models import Model

__all__ = ["RelatedManager", "related_manager"]

M = TypeVar("M", bound="Model[Any]")


class RelatedManager(Manager[M]):
    """The rows related to one object through a to-many relation (``obj.related("tags")``)."""

    def __init__(self, instance: Any, prop: RelationshipProperty[Any]) -> None:
        model = prop.mapper.class_
        soft = bool(getattr(model, "__soft_delete__", False))
        super().__init__(model, include_deleted=not soft)
        self.instance = instance
        self.prop = prop
        if not is_stored(instance) or instance.pk is None:
            raise ValueError(
                f"{type(instance).__name__} object needs to be saved before its "
                f"{prop.key!r} relation can be used."
            )
        parent: Mapper[Any] = prop.parent
        pairs = prop.synchronize_pairs if prop.secondary is not None else prop.local_remote_pairs
        # (parent column's value, the column on the far side that holds it)
        self._parent_values: list[tuple[Any, Any]] = [
            (remote, instance.__dict__.get(parent.get_property_by_column(local).key))
            for local, remote in pairs or ()
        ]

    def __repr__(self) -> str:
        return f"<RelatedManager {type(self.instance).__name__}.{self.prop.key}>"

    def get_queryset(self) -> QuerySet[M]:
        """Return the related rows (soft-deleted ones hidden, as by ``objects``)."""
        return super().get_queryset().filter(self._condition())

    def _condition(self) -> ColumnElement[bool]:
        prop = self.prop
        if prop.secondary is None:
            return and_(*(column == value for column, value in self._parent_values))
        table = prop.secondary
        link = [column == value for column, value in self._parent_values]
        target = [target == column for target, column in prop.secondary_synchronize_pairs or ()]
        result: ColumnElement[bool] = exists(select(1).select_from(table).where(*link, *target))
        return result

    # -- writes -----------------------------------------------------------------------

    def _writable(self, method: str) -> None:
        prop = self.prop
        plain = (
            prop.secondary_synchronize_pairs
            if prop.secondary is not None
            else prop.local_remote_pairs
        )
        if prop.viewonly or not plain or not self._parent_values:
            raise TypeError(
                f"related({prop.key!r}).{method}() needs a relationship that is not viewonly "
                "and joins on plain foreign keys."
            )

    def _targets(self, objs: Iterable[Any], method: str) -> list[Any]:
        """Return ``objs`` checked: stored instances of the related model, one per row.

        Two objects of one row (no identity map: two queries give two) count once.
        """
        result: list[Any] = []
        seen: set[Any] = set()
        pk_keys = info(self.model).pk_keys
        for obj in objs:
            if not isinstance(obj, self.model):
                raise TypeError(
                    f"related({self.prop.key!r}).{method}() takes {self.model.__name__} "
                    f"instances, got {obj!r}."
                )
            if not is_stored(obj) or obj.pk is None:
                raise ValueError(
                    f"related({self.prop.key!r}).{method}() takes saved objects; {obj!r} "
                    "is not saved yet (save it first, or use create())."
                )
            key = tuple(obj.__dict__.get(name) for name in pk_keys)
            if key not in seen:
                seen.add(key)
                result.append(obj)
        return result

    def _done(self) -> None:
        forget_related(self.instance, self.prop.key)

    async def add(self, db: AsyncSession, *objs: M) -> None:
        """Relate ``objs`` to the object (links that exist already are kept, never an error)."""
        self._writable("add")
        targets = self._targets(objs, "add")
        if targets:
            if self.prop.secondary is not None:
                await self._link(db, targets)
            else:
                await self._point(db, targets, to_parent=True)
        self._done()

    async def remove(self, db: AsyncSession, *objs: M) -> None:
        """Unrelate ``objs`` from the object (a missing link is no error)."""
        self._writable("remove")
        targets = self._targets(objs, "remove")
        if self.prop.secondary is None:
            self._nullable("remove")
        if targets:
            if self.prop.secondary is not None:
                await execution.write_statement(
                    db, self._unlink_statement().where(self._target_in(targets))
                )
            else:
                await self._point(db, targets, to_parent=False)
        self._done()

    async def clear(self, db: AsyncSession) -> None:
        """Unrelate every related row from the object (one statement)."""
        self._writable("clear")
        if self.prop.secondary is not None:
            await execution.write_statement(db, self._unlink_statement())
        else:
            self._nullable("clear")
            await execution.write_statement(db, self._unpoint_statement())
        self._done()

    async def set(self, db: AsyncSession, objs: Iterable[M]) -> None:
        """Make the related rows exactly ``objs`` (one transaction, at most three statements)."""
        self._writable("set")
        targets = self._targets(objs, "set")
        if self.prop.secondary is None:
            self._nullable("set")
        async with write_block(db):
            if self.prop.secondary is not None:
                stmt = self._unlink_statement()
                if targets:
                    stmt = stmt.where(~self._target_in(targets))
                await execution.write_statement(db, stmt)
                if targets:
                    await self._link(db, targets)
            else:
                stmt = self._unpoint_statement()
                if targets:
                    stmt = stmt.where(~self._pk_in(targets))
                await execution.write_statement(db, stmt)
                if targets:
                    await self._point(db, targets, to_parent=True)
        self._done()

    async def create(self, db: AsyncSession, *, validate: bool = True, **fields: Any) -> M:
        """Create a related object: its foreign key set, or its link added (one transaction)."""
        self._writable("create")
        if self.prop.secondary is None:
            obj = await super().create(db, validate=validate, **{**fields, **self._key_fields()})
        else:
            async with write_block(db):
                obj = await super().create(db, validate=validate, **fields)
                await self._link(db, [obj])
        self._done()
        return obj

    async def get_or_create(
        self,
        db: AsyncSession,
        defaults: Mapping[str, Any] | None = None,
        *,
        validate: bool = True,
        **lookups: Any,
    ) -> tuple[M, bool]:
        """Return ``(obj, created)``: a related row matching ``lookups``, or a new related one.

        As ``Manager.get_or_create``, scoped to the related rows; a new object gets
        the foreign key (one-to-many) or its link (many-to-many), in one transaction.
        """
        self._writable("get_or_create")
        if self.prop.secondary is None:
            obj, created = await super().get_or_create(
                db, defaults, validate=validate, **lookups, **self._key_fields()
            )
            self._done()
            return obj, created
        async with write_block(db):
            obj, created = await super().get_or_create(db, defaults, validate=validate, **lookups)
            if created:
                await self._link(db, [obj])
        self._done()
        return obj, created

    async def update_or_create(
        self,
        db: AsyncSession,
        defaults: Mapping[str, Any] | None = None,
        create_defaults: Mapping[str, Any] | None = None,
        *,
        validate: bool = True,
        **lookups: Any,
    ) -> tuple[M, bool]:
        """Update a related row matching ``lookups``, or create a related one; ``(obj, created)``.

        As ``Manager.update_or_create``, scoped to the related rows (see :meth:`get_or_create`).
        """
        self._writable("update_or_create")
        if self.prop.secondary is None:
            obj, created = await super().update_or_create(
                db, defaults, create_defaults, validate=validate, **lookups, **self._key_fields()
            )
            self._done()
            return obj, created
        async with write_block(db):
            obj, created = await super().update_or_create(
                db, defaults, create_defaults, validate=validate, **lookups
            )
            if created:
                await self._link(db, [obj])
        self._done()
        return obj, created

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
        """Insert related objects with their foreign key set (one-to-many relations only)."""
        self._writable("bulk_create")
        if self.prop.secondary is not None:
            raise TypeError(
                f"related({self.prop.key!r}).bulk_create() is for one-to-many relations; "
                "bulk_create() the objects, then add() them."
            )
        keys = self._key_fields()
        items: list[Any] = []
        for obj in objs:
            if isinstance(obj, Mapping):
                items.append({**obj, **keys})
            else:
                for key, value in keys.items():
                    setattr(obj, key, value)
                items.append(obj)
        created = await super().bulk_create(
            db,
            items,
            batch_size=batch_size,
            ignore_conflicts=ignore_conflicts,
            update_conflicts=update_conflicts,
            update_fields=update_fields,
            unique_fields=unique_fields,
        )
        self._done()
        return created

    def _key_fields(self) -> dict[str, Any]:
        """Return the related model's foreign-key fields and the object's values for them."""
        return {key: value for key, _, value in self._foreign_keys()}

    # -- many-to-many -------------------------------------------------------------

    def _link_rows(self, targets: Sequence[Any]) -> list[dict[str, Any]]:
        prop = self.prop
        mapper: Mapper[Any] = self.model.__mapper__
        parent = {str(column.key): value for column, value in self._parent_values}
        pairs = [
            (str(column.key), mapper.get_property_by_column(target).key)
            for target, column in prop.secondary_synchronize_pairs or ()
        ]
        return [
            {**parent, **{key: obj.__dict__.get(attr) for key, attr in pairs}} for obj in targets
        ]

    async def _link(self, db: AsyncSession, targets: Sequence[Any]) -> None:
        table = self.prop.secondary
        assert isinstance(table, Table)
        rows = self._link_rows(targets)
        columns = {key for row in rows for key in row}
        if _unique_over(table, columns):
            dialect = db.get_bind().dialect.name
            build = postgresql.insert if dialect == "postgresql" else sqlite.insert
            await execution.write_statement(db, build(table).values(rows).on_conflict_do_nothing())
            return
        # No constraint to conflict on: insert the links not there yet.
        await execution.write(db, _insert_missing, table, rows)

    def _unlink_statement(self) -> Any:
        table = self.prop.secondary
        assert isinstance(table, Table)
        return delete(table).where(*(column == value for column, value in self._parent_values))

    def _target_in(self, targets: Sequence[Any]) -> ColumnElement[bool]:
        mapper: Mapper[Any] = self.model.__mapper__
        pairs = list(self.prop.secondary_synchronize_pairs or ())
        columns = [column for _, column in pairs]
        keys = [mapper.get_property_by_column(target).key for target, _ in pairs]
        if len(columns) == 1:
            return columns[0].in_([obj.__dict__.get(keys[0]) for obj in targets])
        return tuple_(*columns).in_(
            [tuple(obj.__dict__.get(key) for key in keys) for obj in targets]
        )

    # -- one-to-many --------------------------------------------------------------

    def _foreign_keys(self) -> list[tuple[str, Column[Any], Any]]:
        """Return ``(attribute key, column, parent value)`` of the related model's foreign key."""
        mapper: Mapper[Any] = self.model.__mapper__
        return [
            (mapper.get_property_by_column(column).key, column, value)
            for column, value in self._parent_values
        ]

    def _nullable(self, method: str) -> None:
        for _, column, _ in self._foreign_keys():
            if not column.nullable:
                raise ValueError(
                    f"related({self.prop.key!r}).{method}() would set "
                    f"{self.model.__name__}.{column.key} to NULL, which that column does not "
                    f"allow (nullable=False); delete the related rows, or give them another "
                    f"{type(self.instance).__name__}, instead."
                )

    def _pk_in(self, targets: Sequence[Any]) -> ColumnElement[bool]:
        keys = info(self.model).pk_keys
        columns = [getattr(self.model, key) for key in keys]
        result: ColumnElement[bool]
        if len(columns) == 1:
            result = columns[0].in_([obj.__dict__.get(keys[0]) for obj in targets])
        else:
            values = [tuple(obj.__dict__.get(k) for k in keys) for obj in targets]
            result = tuple_(*columns).in_(values)
        return result

    def _table(self) -> Table:
        table = info(self.model).table
        if table is None:
            raise TypeError(f"{self.model.__name__} is not mapped to one table.")
        return table

    def _unpoint_statement(self) -> Any:
        table = self._table()
        foreign = self._foreign_keys()
        return (
            update(table)
            .where(*(column == value for _, column, value in foreign))
            .values({column: None for _, column, _ in foreign})
        )

    async def _point(self, db: AsyncSession, targets: Sequence[Any], *, to_parent: bool) -> None:
        """Set the foreign key of ``targets`` to the object (``to_parent``) or to NULL."""
        table = self._table()
        foreign = self._foreign_keys()
        stmt = update(table).where(self._pk_in(targets))
        if not to_parent:
            stmt = stmt.where(*(column == value for _, column, value in foreign))
        stmt = stmt.values({column: (value if to_parent else None) for _, column, value in foreign})
        await execution.write_statement(db, stmt)
        for obj in targets:
            loaded = obj.__dict__
            if not to_parent and any(loaded.get(key) != value for key, _, value in foreign):
                continue  # another object's row: the UPDATE did not touch it
            for key, _, value in foreign:
                new = value if to_parent else None
                if loaded.get(key) != new:
                    setattr(obj, key, new)  # drops a loaded relation that points elsewhere
            store(obj, [key for key, _, _ in foreign])


def _unique_over(table: Table, columns: set[str]) -> bool:
    """Return whether a primary key or unique constraint of ``table`` spans only ``columns``."""
    keys = [{column.key for column in table.primary_key.columns}]
    keys.extend(
        {column.key for column in constraint.columns}
        for constraint in table.constraints
        if isinstance(constraint, UniqueConstraint)
    )
    keys.extend({column.key for column in index.columns} for index in table.indexes if index.unique)
    return any(key and key <= columns for key in keys)


def _insert_missing(connection: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    names = sorted({key for row in rows for key in row})
    columns = [table.c[name] for name in names]
    wanted = [tuple(row.get(name) for name in names) for row in rows]
    found = connection.execute(select(*columns).where(tuple_(*columns).in_(wanted)))
    existing = {tuple(row) for row in found}
    missing = [dict(zip(names, values, strict=True)) for values in wanted if values not in existing]
    if missing:
        connection.execute(insert(table), missing)


def related_manager(instance: Any, prop: RelationshipProperty[Any]) -> RelatedManager[Any]:
    """Return the :class:`RelatedManager` of ``instance``'s to-many relation ``prop``."""
    return RelatedManager(instance, prop)
