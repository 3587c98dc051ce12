"""Writing one instance: INSERT, UPDATE of the changed fields, DELETE, and reading it back.

Each write is one Core statement on the model's table, built once per model
(and, by SQLAlchemy's cache, compiled once per set of columns sent):

- INSERT sends the columns the object has a value for (None where the column
  has a default means "use the default", as SQLAlchemy's ORM does) and returns
  every column (``RETURNING``): generated keys, database and Python defaults
  land on the object, which then is stored.
- UPDATE sends the fields changed since the object was loaded or last saved
  (``flash_db.instances.changed_fields``), or exactly ``update_fields``, plus
  the columns with a Python ``onupdate`` (``updated_at``), ``WHERE`` the primary
  key the row is stored under. No row matched raises ``DoesNotExist``: the row
  was deleted meanwhile.
- DELETE removes the row by its stored primary key; the object is then new
  again, with its primary key set to None (as in Django).

Before writing, a many-to-one relation that holds an object sets its foreign
key (``post.author = user`` before ``user`` was saved); an unsaved related
object is refused with ``ValueError`` (Django's message).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, insert, literal_column, select, update
from sqlalchemy.engine import Connection, CursorResult
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapper
from sqlalchemy.orm.attributes import instance_state
from sqlalchemy.schema import Column
from sqlalchemy.sql.dml import Delete, Insert, Update

from flash_db import execution
from flash_db.fields import PYTHON_ONLY, column_value, info
from flash_db.instances import (
    RELATED,
    forget_stored,
    load_fields,
    store,
    stored_pk,
)

__all__ = ["delete_one", "deleted", "insert_one", "refresh", "sync_foreign_keys", "update_one"]


#: (attribute key, column, function computing its value) of a Python default or onupdate.
_Computed = tuple[str, Column[Any], Callable[[], Any]]


@dataclass(frozen=True, slots=True)
class _Plan:
    """One model's write statements and what they need, made once per mapping."""

    attrs: object  # mapper.column_attrs when the plan was made
    table: Table
    columns: tuple[tuple[str, Column[Any]], ...]  # (attribute key, column), table order
    pk: tuple[tuple[str, Column[Any]], ...]  # the primary-key columns
    has_default: frozenset[str]  # attribute keys whose None means "the default"
    onupdate: tuple[tuple[str, str], ...]  # (attribute key, column key) with a Python onupdate
    insert: Insert
    update: Update
    delete: Delete
    delete_counted: Any  # the DELETE returning a constant per row (SQLite's row count)
    # Python defaults and onupdates computed here, so that each INSERT/UPDATE is a
    # template naming every value it sends (None: one takes SQLAlchemy's execution
    # context, so the statements above run through SQLAlchemy).
    defaults: tuple[_Computed, ...] | None
    onupdates: tuple[_Computed, ...] | None
    inserts: dict[tuple[str, ...], Insert] = field(default_factory=dict)
    updates: dict[tuple[str, ...], tuple[Update, Any]] = field(default_factory=dict)


def _computed(
    columns: Sequence[tuple[str, Column[Any]]], attr: str
) -> tuple[_Computed, ...] | None:
    """Return the columns' Python defaults (``attr="default"``) or onupdates.

    None when one of them takes SQLAlchemy's execution context.
    """
    found = []
    for key, column in columns:
        compute = column_value(getattr(column, attr))
        if compute is PYTHON_ONLY:
            return None
        if compute is not None:
            found.append((key, column, compute))
    return tuple(found)


_PLANS: dict[Mapper[Any], _Plan] = {}


def _plan(model: type[Any]) -> _Plan:
    mapper: Mapper[Any] = model.__mapper__
    model_info = info(model)
    found = _PLANS.get(mapper)
    if found is not None and found.attrs is model_info.attrs:
        return found
    table = model_info.table
    if table is None or mapper.inherits is not None:
        raise TypeError(
            f"Flash DB writes models mapped to one table; {model.__name__} is mapped to "
            f"{mapper.persist_selectable!r}. Write it with a SQLAlchemy Session instead."
        )
    columns = tuple(sorted(model_info.columns, key=lambda kc: list(table.columns).index(kc[1])))
    by_column = {column: key for key, column in columns}
    pk = tuple((by_column[column], column) for column in table.primary_key.columns)
    where = [column == bindparam(f"flash_pk_{i}") for i, (_, column) in enumerate(pk)]
    found = _Plan(
        attrs=model_info.attrs,
        table=table,
        columns=columns,
        pk=pk,
        has_default=frozenset(
            key
            for key, column in columns
            if (
                column.default is not None
                or column.server_default is not None
                or column is table.autoincrement_column  # generated by the database
            )
            and not column.type.should_evaluate_none
        ),
        onupdate=tuple(
            (key, column.key)
            for key, column in columns
            if column.onupdate is not None
            and (column.onupdate.is_scalar or column.onupdate.is_callable)
        ),
        insert=insert(table).returning(*(column for _, column in columns)),
        update=update(table).where(*where),
        delete=delete(table).where(*where),
        delete_counted=delete(table).where(*where).returning(literal_column("1")),
        defaults=_computed(columns, "default"),
        onupdates=_computed(columns, "onupdate"),
    )
    _PLANS[mapper] = found
    return found


def sync_foreign_keys(obj: Any) -> None:
    """Copy the keys of the objects ``obj``'s many-to-one relations hold into its foreign keys.

    Raises ``ValueError`` for a related object that is not saved yet, as Django does.
    """
    loaded = obj.__dict__
    names = loaded.get(RELATED)
    if not names:
        return
    mapper: Mapper[Any] = type(obj).__mapper__
    for name, keys in info(type(obj)).foreign_keys.items():
        if name not in names:
            continue
        related = loaded.get(name)
        if related is None:
            continue
        rel = mapper.relationships[name]
        for key, (_, remote) in zip(keys, rel.local_remote_pairs, strict=True):
            value = related.__dict__.get(rel.mapper.get_property_by_column(remote).key)
            if value is None:
                raise ValueError(
                    f"save() prohibited to prevent data loss due to unsaved related object "
                    f"{name!r}."
                )
            if loaded.get(key) != value:
                setattr(obj, key, value)


def _pk_params(pk: Sequence[Any]) -> dict[str, Any]:
    return {f"flash_pk_{i}": value for i, value in enumerate(pk)}


# -- INSERT ------------------------------------------------------------------------


async def insert_one(db: AsyncSession, obj: Any) -> None:
    """INSERT the new ``obj`` and put the stored row's values on it."""
    plan = _plan(type(obj))
    loaded = obj.__dict__
    params: dict[str, Any] = {}
    for key, column in plan.columns:
        value = loaded.get(key)
        if value is None and (key not in loaded or key in plan.has_default):
            continue  # the column default (or NULL) applies
        params[column.key] = value
    sent = frozenset(params)  # the rest is read back (RETURNING every column)
    if plan.defaults is None:
        row = await execution.write(db, _insert, plan, params)
    else:
        for _, column, compute in plan.defaults:
            if column.key not in params:
                params[column.key] = compute()
        keys = tuple(params)
        stmt = plan.inserts.get(keys)
        if stmt is None:
            stmt = plan.inserts[keys] = (
                insert(plan.table)
                .values({key: bindparam(key, type_=plan.table.c[key].type) for key in keys})
                .returning(*(column for _, column in plan.columns))
            )
        row = (await execution.write_returning(db, stmt, params))[0]
    for index, (key, column) in enumerate(plan.columns):
        if column.key not in sent:
            loaded[key] = row[index]
    store(obj)


def _insert(connection: Connection, plan: _Plan, params: dict[str, Any]) -> Any:
    return connection.execute(plan.insert, params).one()


# -- UPDATE ------------------------------------------------------------------------


async def update_one(db: AsyncSession, obj: Any, fields: Sequence[str]) -> None:
    """UPDATE ``fields`` (attribute keys) of the stored ``obj``, plus Python ``onupdate`` columns.

    Raises ``DoesNotExist`` when no row has ``obj``'s stored primary key.
    """
    plan = _plan(type(obj))
    loaded = obj.__dict__
    columns = dict(plan.columns)
    params = {columns[key].key: loaded.get(key) for key in fields}
    written = list(fields)
    if plan.onupdates is None:
        params.update(_pk_params(stored_pk(obj)))
        result = await execution.write(db, _update, plan, params)
        matched = result is not None
        for key, column_key in plan.onupdate:
            if result is not None and column_key not in params and column_key in result:
                loaded[key] = result[column_key]
                written.append(key)
    else:
        computed = []
        for key, column, compute in plan.onupdates:
            if column.key not in params:
                params[column.key] = compute()
                computed.append((key, column.key))
        keys = tuple(params)
        statements = plan.updates.get(keys)
        if statements is None:
            stmt = plan.update.values(
                {key: bindparam(key, type_=plan.table.c[key].type) for key in keys}
            )
            statements = plan.updates[keys] = (stmt, stmt.returning(literal_column("1")))
        params.update(_pk_params(stored_pk(obj)))
        matched = await execution.write_statement(db, statements[0], params, statements[1]) > 0
        if matched:
            for key, column_key in computed:
                loaded[key] = params[column_key]
                written.append(key)
    if not matched:
        model = cast(Any, type(obj))
        raise model.DoesNotExist(
            f"save() found no {type(obj).__name__} row with pk={obj.pk!r} to update; "
            "it was deleted."
        )
    store(obj, written)


def _update(connection: Connection, plan: _Plan, params: dict[str, Any]) -> dict[str, Any] | None:
    result: CursorResult[Any] = connection.execute(plan.update, params)
    if result.rowcount == 0:
        return None
    # The values sent, Python onupdate values included (a list only for executemany).
    return cast(dict[str, Any], result.last_updated_params())


# -- DELETE ------------------------------------------------------------------------


async def delete_one(db: AsyncSession, obj: Any) -> int:
    """DELETE ``obj``'s row and return the number of rows deleted (see :func:`deleted`)."""
    plan = _plan(type(obj))
    params = _pk_params(stored_pk(obj))
    return await execution.write_statement(db, plan.delete, params, plan.delete_counted)


def deleted(obj: Any) -> None:
    """Make ``obj``, whose row was deleted, a new object with its primary key None (Django).

    An object a SQLAlchemy session holds is taken out of it first: its row is gone.
    """
    state = instance_state(obj)
    if state.session is not None:
        state.session.expunge(obj)
    forget_stored(obj)
    for key in info(type(obj)).pk_keys:
        setattr(obj, key, None)


# -- reading one row back ---------------------------------------------------------


async def refresh(db: AsyncSession, obj: Any, fields: Sequence[str] | None) -> bool:
    """Read ``fields`` (every column attribute if None) of ``obj``'s row onto it.

    Returns False, changing nothing, when the row no longer exists. A loaded
    many-to-one relation whose foreign key changed is dropped.
    """
    model = type(obj)
    mapper: Mapper[Any] = model.__mapper__
    keys = list(fields) if fields is not None else [prop.key for prop in mapper.column_attrs]
    pk = stored_pk(obj)
    stmt = select(*(getattr(model, key) for key in keys)).where(
        *(getattr(model, key) == value for key, value in zip(info(model).pk_keys, pk, strict=True))
    )
    row = await execution.run(db, _read_one, stmt)
    if row is None:
        return False
    for key, value in zip(keys, row, strict=True):
        if obj.__dict__.get(key) != value:
            setattr(obj, key, value)  # a changed foreign key drops its loaded relation
    load_fields(obj, keys, row)
    return True


def _read_one(connection: Connection, stmt: Any) -> tuple[Any, ...] | None:
    row = connection.execute(stmt).first()
    return None if row is None else tuple(row)
