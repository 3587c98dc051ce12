"""bulk_create and bulk_update: many rows per statement, one statement per batch.

``bulk_create`` sends one ``INSERT ... VALUES (...), (...) RETURNING ...`` per
batch (``ON CONFLICT DO NOTHING``/``DO UPDATE`` for the conflict options) and
copies every returned column back onto the objects, so primary keys, defaults
and timestamps are set and the objects can be saved or deleted afterwards.
``bulk_update`` sends one ``UPDATE`` per batch: ``UPDATE ... FROM unnest(arrays)``
on PostgreSQL, one executemany'd ``UPDATE ... WHERE pk = ?`` on SQLite (see
``_UPDATE_FORM`` for the measurements).

Neither runs validation nor sends signals (like Django's). Several batches are
written in one transaction: all of them or none. The objects are Flash DB
instances (``flash_db.instances``): after ``bulk_create`` they are stored rows
with the returned values; after ``bulk_update`` the written fields are stored.
"""

from __future__ import annotations

import contextlib
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Mapping,
    Sequence,
)
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any, NoReturn, TypeVar

from sqlalchemy import (
    ARRAY,
    Boolean,
    Date,
    DateTime,
    Enum,
    Float,
    Integer,
    Numeric,
    String,
    Table,
    Time,
    Uuid,
    bindparam,
    func,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, CursorResult
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapper
from sqlalchemy.schema import Column, UniqueConstraint
from sqlalchemy.types import TypeDecorator, TypeEngine

from flash_db import execution
from flash_db.exceptions import FieldError
from flash_db.fields import info, pk_name
from flash_db.instances import RELATED, SNAPSHOT, gc_paused, is_stored, set_related, store_many
from flash_db.transaction import write_block

__all__ = ["bulk_create", "bulk_update"]

M = TypeVar("M")

# Bound parameters per statement: SQLite >= 3.32 allows 32766, asyncpg 32767.
_MAX_PARAMETERS = 32_000
# Rows per INSERT statement of bulk_create. SQLite: as many as the parameter limit
# allows (one statement, often no transaction). PostgreSQL: pages of 1,000 rows, as
# SQLAlchemy's default; measured on 10,000 rows of 3 columns, one 10,000-row statement
# took 8.2 us a row (4.7 of client CPU) against 5.5 (2.6) in pages of 1,000.
_PAGE_ROWS: dict[str, int] = {"postgresql": 1000}

# bulk_update's statement per database, measured by benchmarks/bulk_update_forms.py
# (2,000 and 10,000 objects, median seconds; CASE and UPDATE ... FROM (VALUES ...)
# live in the benchmark): PostgreSQL unnest 0.041 / executemany 0.059 / VALUES 0.32 /
# CASE 0.41; SQLite executemany 0.028 / CASE 0.18. Building a CASE or VALUES statement
# per batch costs more than it saves; unnest() keeps one SQL text whose arrays carry
# the rows, and reports the rows matched (asyncpg's executemany reports none).
_UPDATE_FORM: dict[str, str] = {"postgresql": "unnest", "sqlite": "executemany"}


def _table(model: type[Any], method: str) -> Table:
    mapper = model.__mapper__
    if mapper.inherits is not None and mapper.local_table is not mapper.inherits.local_table:
        raise TypeError(f"{method}() cannot write multi-table inherited model {model.__name__}.")
    table = mapper.local_table
    if not isinstance(table, Table):
        raise TypeError(f"{method}() needs a model mapped to a table, not {model.__name__}.")
    return table


def _columns(model: type[Any]) -> dict[str, Column[Any]]:
    """Return ``{attribute name: column}`` for the model's own table columns."""
    return dict(info(model).columns)


def _field(model: type[Any], name: str, columns: Mapping[str, Column[Any]], method: str) -> str:
    key = pk_name(model) if name == "pk" else name
    if key not in columns:
        raise FieldError(model, name, [*columns, "pk"], context=f"{method}()")
    return key


def _batches(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _parameters_per_row(table: Table, keys: Iterable[str]) -> int:
    """Return the bound parameters an INSERT row of ``keys`` takes (Python defaults add theirs)."""
    sent = set(keys)
    defaults = [
        column
        for column in table.columns
        if column.key not in sent
        and column.default is not None
        and (column.default.is_scalar or column.default.is_callable)
    ]
    return len(sent) + len(defaults)


def _batch_size(requested: int | None, per_row: int) -> int:
    limit = max(1, _MAX_PARAMETERS // max(per_row, 1))
    if requested is None:
        return limit
    if requested < 1:
        raise ValueError(f"batch_size must be a positive integer or None, got {requested!r}.")
    return min(requested, limit)


@contextlib.asynccontextmanager
async def _one_transaction(db: AsyncSession, statements: int) -> AsyncIterator[None]:
    """Wrap several statements in one transaction (a single statement commits on its own)."""
    if statements > 1:
        async with write_block(db):
            yield
    else:
        yield


# -- bulk_create ----------------------------------------------------------------------


def _instances(model: type[M], objs: Iterable[M | Mapping[str, Any]]) -> list[M]:
    mapper: Mapper[Any] = getattr(model, "__mapper__")  # noqa: B009 - typed: M is any mapped class
    relationships = frozenset(mapper.relationships.keys())
    names = frozenset({*_columns(model), *relationships})
    pk = pk_name(model)
    new = object.__new__
    result: list[M] = []
    for item in objs:
        if isinstance(item, model):  # first: a Mapping check goes through the ABC machinery
            if is_stored(item):
                raise ValueError(
                    f"bulk_create() takes new objects; {item!r} is already stored "
                    "(use save() or bulk_update())."
                )
            result.append(item)
        elif type(item) is dict or isinstance(item, Mapping):  # a dict: no ABC check
            data: Mapping[str, Any] = item
            if not names.issuperset(data):
                data = dict(item)
                if "pk" in data:
                    data[pk] = data.pop("pk")
                if not names.issuperset(data):
                    unknown = next(name for name in data if name not in names)
                    raise FieldError(model, unknown, names, context="bulk_create()")
            # Made as a loaded row is (no __init__): the INSERT's returned row fills it.
            obj = new(model)
            loaded = obj.__dict__
            loaded.update(data)
            if relationships and not relationships.isdisjoint(data):
                for name in relationships.intersection(data):
                    # As loading does: no attribute events, so no backref touches the
                    # related object's collection.
                    set_related(obj, name, loaded.pop(name))
            result.append(obj)
        else:
            raise TypeError(
                f"bulk_create() takes {model.__name__} instances or dicts, got {item!r}."
            )
    if len({id(obj) for obj in result}) != len(result):
        raise ValueError("bulk_create() takes each object once; the list repeats one.")
    return result


def _fill_foreign_keys(
    obj: Any, relations: Sequence[tuple[str, tuple[str, ...], list[str]]]
) -> None:
    """Copy primary keys of related objects into foreign-key columns."""
    loaded = obj.__dict__
    names = loaded.get(RELATED)
    if not names:
        return
    for name, keys, remotes in relations:
        related = loaded.get(name) if name in names else None
        if related is None:
            continue
        for key, remote in zip(keys, remotes, strict=True):
            value = related.__dict__.get(remote)
            if value is None:
                raise ValueError(
                    f"bulk_create() prohibited to prevent data loss due to unsaved related "
                    f"object {name!r} on {type(obj).__name__}."
                )
            loaded[key] = value


def _default(column: Column[Any]) -> tuple[bool, Any]:
    """Return ``(True, value)`` for a column whose client-side default can be computed here."""
    default = column.default
    if default is None:
        if column.server_default is not None or (column.primary_key and column.autoincrement):
            return False, None
        return True, None
    if getattr(default, "is_scalar", False):
        return True, getattr(default, "arg", None)
    if getattr(default, "is_callable", False):
        # SQLAlchemy wraps zero-argument callables to take an execution context.
        return True, default.arg(None)  # type: ignore[attr-defined]  # ColumnDefault.arg
    return False, None


def _rows(
    objs: Sequence[Any], columns: Mapping[str, Column[Any]]
) -> tuple[list[dict[str, Any]], list[tuple[tuple[str, ...], Sequence[int] | None]]]:
    """Return each object's ``{column key: value}`` and the groups of rows with the same columns.

    Groups are ``(column keys, object indexes)`` in input order, with ``None`` for
    "every object" (the common case: all objects set the same columns). A column
    set by some objects and not others is filled from its client-side default, so
    normally there is one group (one statement per batch).
    """
    model = type(objs[0])
    mapper = model.__mapper__
    many_to_one = [
        (
            name,
            keys,
            [
                mapper.relationships[name].mapper.get_property_by_column(remote).key
                for _, remote in mapper.relationships[name].local_remote_pairs
            ],
        )
        for name, keys in info(model).foreign_keys.items()
    ]
    names = tuple(columns)
    name_set = frozenset(names)
    values: list[dict[str, Any]] = []
    append = values.append
    reference: Any = None  # the first row's keys
    uniform = True
    for obj in objs:
        if many_to_one:
            _fill_foreign_keys(obj, many_to_one)
        loaded = obj.__dict__
        if loaded.keys() <= name_set:  # an object made from a dict: only columns
            row = dict(loaded)
        else:
            row = {name: loaded[name] for name in names if name in loaded}
        if reference is None:
            reference = row.keys()
        elif uniform and row.keys() != reference:
            uniform = False
        append(row)
    renamed = {name: column.key for name, column in columns.items() if name != column.key}
    if uniform:
        groups: list[tuple[tuple[str, ...], Sequence[int] | None]] = [(tuple(reference), None)]
    else:
        present: dict[str, None] = {}
        for row in values:
            present.update(dict.fromkeys(row))
        by_keys: dict[tuple[str, ...], list[int]] = {}
        for index, row in enumerate(values):
            for name in present:
                if name not in row:
                    known, value = _default(columns[name])
                    if known:
                        row[name] = value
            by_keys.setdefault(tuple(name for name in present if name in row), []).append(index)
        groups = list(by_keys.items())
    if renamed:
        values = [{renamed.get(name, name): value for name, value in row.items()} for row in values]
        groups = [
            (tuple(renamed.get(name, name) for name in keys), indexes) for keys, indexes in groups
        ]
    return values, groups


def _unique_keys(table: Table, sent: Iterable[str]) -> list[tuple[str, ...]]:
    """Return the table's unique column sets whose values are all sent (primary key first)."""
    sent = set(sent)
    keys: list[tuple[str, ...]] = []
    pk = tuple(column.key for column in table.primary_key.columns)
    if pk and set(pk) <= sent:
        keys.append(pk)
    for column in table.columns:
        if column.unique and column.key in sent:
            keys.append((column.key,))
    for constraint in table.constraints:
        if isinstance(constraint, UniqueConstraint):
            names = tuple(column.key for column in constraint.columns)
            if names and set(names) <= sent:
                keys.append(names)
    for index in table.indexes:
        if index.unique:
            names = tuple(column.key for column in index.columns)
            if names and set(names) <= sent:
                keys.append(names)
    return keys


async def bulk_create(
    db: AsyncSession,
    model: type[M],
    objs: Iterable[M | Mapping[str, Any]],
    batch_size: int | None = None,
    ignore_conflicts: bool = False,
    update_conflicts: bool = False,
    update_fields: Sequence[str] | None = None,
    unique_fields: Sequence[str] | None = None,
) -> list[M]:
    """Insert ``objs`` with one multi-row INSERT per batch; return them with primary keys set."""
    table = _table(model, "bulk_create")
    columns = _columns(model)
    if ignore_conflicts and update_conflicts:
        raise ValueError("bulk_create() takes ignore_conflicts or update_conflicts, not both.")
    unique = [_field(model, n, columns, "bulk_create") for n in unique_fields or ()]
    updates = [_field(model, n, columns, "bulk_create") for n in update_fields or ()]
    if update_conflicts:
        if not updates:
            raise ValueError("bulk_create(update_conflicts=True) needs update_fields=[...].")
        if not unique:
            raise ValueError(
                "bulk_create(update_conflicts=True) needs unique_fields=[...], the columns "
                "of the unique constraint that decides a conflict."
            )
        if set(updates) & set(unique):
            raise ValueError(
                f"bulk_create() cannot update the unique_fields it matches on: "
                f"{sorted(set(updates) & set(unique))!r}."
            )
        if "updated_at" in columns and "updated_at" not in updates:
            updates.append("updated_at")  # an upsert that updates a row is an update
    elif updates:
        raise ValueError("bulk_create() takes update_fields only with update_conflicts=True.")
    # The per-object steps run with the collector paused (see gc_paused): they
    # build containers that live until the write is done and no cycles.
    with gc_paused():
        instances = _instances(model, objs)
        if not instances:
            return instances
        values, groups = _rows(instances, columns)
    dialect = db.get_bind().dialect.name
    page = _PAGE_ROWS.get(dialect)
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    target = [columns[n].key for n in unique]
    pk = tuple(column.key for column in table.primary_key.columns)
    conflicts = ignore_conflicts or update_conflicts
    # One statement per group of rows with the same columns (normally one group),
    # planned before anything is sent: several statements share one transaction.
    # PostgreSQL: INSERT ... SELECT FROM unnest(arrays) (see _unnest_insert). Else
    # an executemany, which SQLAlchemy's "insertmanyvalues" sends as one INSERT ...
    # VALUES (...), (...) RETURNING per page of ``size`` rows, compiled once (a
    # .values([...]) statement would be compiled anew for every batch, 5x slower at
    # 10,000 rows). RETURNING rows are paired with objects here, so
    # sort_by_parameter_order (which makes SQLite send one statement per row) is
    # not needed.
    plans = []
    statements = 0
    for keys, indexes in groups:
        if conflicts:
            wanted = list(table.columns)  # a conflict may keep the stored row's values
        else:
            # The objects keep the values they were given (as create() does): only
            # the primary key and what the database filled in come back.
            wanted = [c for c in table.columns if c.primary_key or c.key not in keys]
        if indexes is None:
            sent, group = values, instances
        else:
            sent = [values[i] for i in indexes]
            group = [instances[i] for i in indexes]
        arrays = None
        if dialect == "postgresql" and not conflicts:
            arrays = _unnest_insert(table, keys, sent, wanted, batch_size)
        if arrays is not None:
            work: tuple[Any, ...] = (_insert_arrays, *arrays)
            statements += len(arrays[1])
        else:
            size = _batch_size(batch_size, _parameters_per_row(table, keys))
            size = min(size, page or size)
            stmt = insert(table)
            if ignore_conflicts:
                stmt = stmt.on_conflict_do_nothing(index_elements=target or None)
            elif update_conflicts:
                stmt = stmt.on_conflict_do_update(
                    index_elements=target,
                    set_={columns[n].key: stmt.excluded[columns[n].key] for n in updates},
                )
            returning = stmt.returning(*wanted).execution_options(insertmanyvalues_page_size=size)
            work = (_insert_many, returning, sent)
            statements += -(-len(sent) // size)
        match: Sequence[str] | None = None
        if conflicts:
            candidates = _unique_keys(table, keys)
            match = target or (candidates[0] if candidates else None)
        elif set(pk) <= set(keys) and all(row[k] is not None for row in sent for k in pk):
            match = pk  # the objects carry their keys: pair rows by them
        plans.append((work, wanted, group, sent, match, indexes is not None))
    async with _one_transaction(db, statements):
        for work, wanted, group, sent, match, filled in plans:
            returned = await execution.write(db, *work)
            with gc_paused():
                _assign(table, wanted, group, sent, returned, match, filled=filled)
    return instances


# Column types an unnest() array carries as the column does (asyncpg encodes them natively).
_ARRAY_TYPES = (Integer, String, Float, Numeric, Boolean, Date, DateTime, Time, Uuid, Enum)


def _array_type(type_: TypeEngine[Any]) -> bool:
    while isinstance(type_, TypeDecorator):
        type_ = type_.impl_instance
    return isinstance(type_, _ARRAY_TYPES) and not isinstance(type_, ARRAY)


def _unnest_insert(
    table: Table,
    keys: Sequence[str],
    rows: Sequence[dict[str, Any]],
    wanted: Sequence[Column[Any]],
    batch_size: int | None,
) -> tuple[Any, list[dict[str, Any]]] | None:
    """Return PostgreSQL's ``INSERT ... SELECT * FROM unnest(arrays) RETURNING`` and its batches.

    One array parameter per column, so the SQL text is the same for every batch
    and the rows travel as arrays: measured on 10,000 rows of 3 columns, 1.9 µs
    of client CPU a row against 2.6 for SQLAlchemy's insertmanyvalues. Columns
    not sent that have a Python default get it computed per row, as an
    executemany would. None (use the executemany) for a column type an array
    does not carry as it is, or a default that is not a plain value or callable.
    """
    sent = set(keys)
    defaulted = [c for c in table.columns if c.key not in sent and c.default is not None]
    columns = [table.c[key] for key in keys] + defaulted
    if not all(_array_type(column.type) for column in columns):
        return None
    for column in defaulted:
        default = column.default
        if default is None or not (default.is_scalar or default.is_callable):
            return None
    names = [f"flash_{index}" for index in range(len(columns))]
    arrays = [
        bindparam(name, type_=ARRAY(column.type))
        for name, column in zip(names, columns, strict=True)
    ]
    source = func.unnest(*arrays).table_valued(*names).render_derived(name="flash_rows")
    stmt = (
        postgresql.insert(table)
        .from_select([column.key for column in columns], select(*source.c))
        .returning(*wanted)
    )
    size = batch_size or len(rows)
    batches = []
    for start in range(0, len(rows), size):
        batch = rows[start : start + size]
        params = {name: [row[key] for row in batch] for name, key in zip(names, keys, strict=False)}
        for name, column in zip(names[len(keys) :], defaulted, strict=True):
            params[name] = [_default(column)[1] for _ in batch]
        batches.append(params)
    return stmt, batches


def _insert_arrays(connection: Connection, stmt: Any, batches: list[dict[str, Any]]) -> list[Any]:
    returned: list[Any] = []
    with gc_paused():  # as in _insert_many
        for params in batches:
            returned.extend(connection.execute(stmt, params).all())
    return returned


def _insert_many(connection: Connection, stmt: Any, rows: Sequence[dict[str, Any]]) -> list[Any]:
    # insertmanyvalues: one INSERT ... VALUES (...), (...) RETURNING per page of rows.
    # SQLAlchemy builds a parameter set per row and the driver a row per result: with
    # the new objects alive, collections would walk them all again and again (measured
    # 4.9 against 2.6 µs a row on PostgreSQL). Other tasks run while this one waits for
    # the database, with collection delayed until the INSERT returns.
    with gc_paused():
        return list(connection.execute(stmt, rows).all())  # Rows: read like tuples


def _assign(
    table: Table,
    wanted: Sequence[Column[Any]],
    objs: Sequence[Any],
    sent: Sequence[dict[str, Any]],
    returned: Sequence[Sequence[Any]],
    match_on: Sequence[str] | None,
    *,
    filled: bool,
) -> None:
    """Copy each returned row (the ``wanted`` columns) onto the object it was inserted from.

    Each object then holds its sent values and the returned ones, recorded as
    its stored row (``flash_db.instances``).

    ``match_on`` names the columns that pair a returned row with its object (the
    conflict target, a unique key or the primary key the objects carry): a row
    skipped by ``ON CONFLICT DO NOTHING`` returns nothing, and an upserted row
    returns the stored primary key. Otherwise every object gets a row, and
    generated integer keys put the rows in VALUES order.
    """
    position = {column.key: index for index, column in enumerate(wanted)}
    pk = [position[column.key] for column in table.primary_key.columns]
    pairs: Iterable[tuple[Any, Sequence[Any] | None]]
    if match_on:
        at = [position[name] for name in match_on]
        by_key = {tuple([row[i] for i in at]): row for row in returned}
        pairs = [
            (obj, by_key.get(tuple([values[name] for name in match_on])))
            for obj, values in zip(objs, sent, strict=True)
        ]
    elif len(returned) == len(objs):
        if len(pk) == 1 and returned and isinstance(returned[0][pk[0]], int):
            # Generated keys increase in VALUES order; RETURNING order is not promised.
            returned = sorted(returned, key=itemgetter(pk[0]))
        pairs = zip(objs, returned, strict=True)
    else:
        return
    mapper = type(objs[0]).__mapper__
    attribute = {column.key: mapper.get_property_by_column(column).key for column in table.columns}
    names = tuple(attribute[column.key] for column in wanted)
    every = tuple(attribute[column.key] for column in table.columns)
    if len(wanted) == len(table.columns):
        for obj, row in pairs:  # the returned row is the stored row
            if row is not None:
                loaded = obj.__dict__
                loaded.update(zip(names, row))  # noqa: B905 - RETURNING gives these columns
                loaded[SNAPSHOT] = (every, row)
        return
    # Values sent from a column default (``filled`` groups) are not on the objects yet.
    renamed = any(key != name for key, name in attribute.items())
    read = itemgetter(*every)
    single = len(every) == 1
    for (obj, row), values in zip(pairs, sent, strict=True):
        if row is not None:
            loaded = obj.__dict__
            loaded.update(zip(names, row))  # noqa: B905 - RETURNING gives these columns
            if renamed:
                loaded.update((attribute[key], value) for key, value in values.items())
            elif filled:
                loaded.update(values)
            stored = read(loaded)
            loaded[SNAPSHOT] = (every, (stored,) if single else stored)


# -- bulk_update ----------------------------------------------------------------------


async def bulk_update(
    db: AsyncSession,
    model: type[M],
    objs: Iterable[M],
    fields: Sequence[str],
    batch_size: int | None = None,
) -> int:
    """Write ``fields`` of each object with one UPDATE per batch; return the rows updated."""
    table = _table(model, "bulk_update")
    columns = _columns(model)
    if isinstance(fields, str):
        raise TypeError(f"bulk_update() takes a list of field names, got the string {fields!r}.")
    names = [_field(model, name, columns, "bulk_update") for name in fields]
    if not names:
        raise ValueError("bulk_update() needs at least one field name.")
    pk = pk_name(model)
    if pk in names:
        raise ValueError(f"bulk_update() cannot update the primary key {pk!r}.")
    objects = list(objs)
    if not objects:
        return 0
    timestamped = "updated_at" in columns and "updated_at" not in names
    written = [*names, "updated_at"] if timestamped else names
    now = datetime.now(UTC)
    form = _UPDATE_FORMS[_UPDATE_FORM.get(db.get_bind().dialect.name, "executemany")]
    size = _batch_size(batch_size, 1 + len(written))
    with gc_paused():  # as in bulk_create
        rows = _update_rows(model, objects, pk, names, (now,) if timestamped else ())
    batches = -(-len(rows) // size)
    count = 0
    # executemany is one statement per row to SQLite: always give it a transaction.
    async with _one_transaction(db, 2 if form is _update_executemany else batches):
        for batch in _batches(rows, size):
            count += await form(db, table, columns, pk, written, batch)
    with gc_paused():
        if timestamped:
            for obj in objects:
                obj.__dict__["updated_at"] = now
        store_many(objects, written)
    return count


def _update_rows(
    model: type[Any],
    objects: Sequence[Any],
    pk: str,
    names: Sequence[str],
    stamp: tuple[Any, ...],
) -> list[tuple[Any, ...]]:
    """Return ``(primary key, *values of names, *stamp)`` for each object, checked."""
    read = itemgetter(pk, *names)  # a tuple: at least two names
    rows: list[tuple[Any, ...]] = []
    append = rows.append
    for obj in objects:
        if not isinstance(obj, model):
            raise TypeError(f"bulk_update() takes {model.__name__} instances, got {obj!r}.")
        if not is_stored(obj):
            raise ValueError(f"bulk_update() needs saved objects; {obj!r} has no primary key.")
        try:
            row = read(obj.__dict__)
        except KeyError:
            row = ()
        if not row or row[0] is None:
            _check_loaded(obj, pk, names)
        append(row + stamp)
    return rows


def _check_loaded(obj: Any, pk: str, names: Sequence[str]) -> NoReturn:
    """Raise the error for an object without a primary key or without a field loaded."""
    loaded = obj.__dict__
    if loaded.get(pk) is None:
        raise ValueError(f"bulk_update() needs saved objects; {obj!r} has no primary key.")
    missing = [name for name in names if name not in loaded]
    raise ValueError(
        f"bulk_update() needs the fields it writes loaded; {obj!r} has not loaded "
        f"{missing!r} (drop them from only()/defer() or refresh_from_db() first)."
    )


async def _update_unnest(
    db: AsyncSession,
    table: Table,
    columns: Mapping[str, Column[Any]],
    pk: str,
    names: Sequence[str],
    rows: Sequence[tuple[Any, ...]],
) -> int:
    """PostgreSQL: ``UPDATE t SET f = v.f FROM unnest($1::int[], $2::text[]) AS v(pk, f)``.

    One array parameter per column, so the SQL text is the same for every batch.
    ``rows`` are ``(primary key, *values of names)``.
    """
    pk_column = columns[pk]
    keys, *values = zip(*rows, strict=True)
    arrays = [bindparam("_flash_pk", list(keys), type_=ARRAY(pk_column.type))]
    arrays.extend(
        bindparam(f"_flash_{name}", list(column), type_=ARRAY(columns[name].type))
        for name, column in zip(names, values, strict=True)
    )
    source = (
        func.unnest(*arrays)
        .table_valued("_flash_pk", *(f"_flash_{name}" for name in names))
        .render_derived(name="_flash_rows")
    )
    stmt = update_from_rows(table, pk_column, columns, names, source)
    return await execution.write(db, _rowcount, stmt, None)


def update_from_rows(
    table: Table,
    pk_column: Column[Any],
    columns: Mapping[str, Column[Any]],
    names: Sequence[str],
    source: Any,
) -> Any:
    """Return ``UPDATE table SET f = source._flash_f ... WHERE pk = source._flash_pk``.

    ``source`` is a row source (``unnest(...)``, ``VALUES``) with a ``_flash_pk``
    column and one ``_flash_<name>`` column per field in ``names``.
    """
    return (
        update(table)
        .where(pk_column == source.c._flash_pk)
        .values({columns[name].key: source.c[f"_flash_{name}"] for name in names})
    )


async def _update_executemany(
    db: AsyncSession,
    table: Table,
    columns: Mapping[str, Column[Any]],
    pk: str,
    names: Sequence[str],
    rows: Sequence[tuple[Any, ...]],
) -> int:
    """One ``UPDATE t SET f = ? WHERE pk = ?`` run by the driver's executemany."""
    pk_column = columns[pk]
    stmt = (
        update(table)
        .where(pk_column == bindparam("_flash_pk", type_=pk_column.type))
        .values({columns[name].key: bindparam(f"_flash_{name}") for name in names})
    )
    keys = ("_flash_pk", *(f"_flash_{name}" for name in names))
    params = [dict(zip(keys, row, strict=True)) for row in rows]
    return await execution.write(db, _rowcount, stmt, params)


def _rowcount(connection: Connection, stmt: Any, params: Any) -> int:
    result: CursorResult[Any] = connection.execute(stmt, params)
    return int(result.rowcount)


UpdateForm = Callable[
    [
        AsyncSession,
        Table,
        Mapping[str, Column[Any]],
        str,
        Sequence[str],
        Sequence[tuple[Any, ...]],
    ],
    Awaitable[int],
]
_UPDATE_FORMS: dict[str, UpdateForm] = {
    "unnest": _update_unnest,
    "executemany": _update_executemany,
}
