"""Single-row INSERT and UPDATE as one cached Core statement, where that equals the ORM's flush.

``save()`` of a new object and ``save()`` of a loaded one are, for most models,
one statement that the unit of work spends most of its time planning. For a
model and an object that pass :func:`_plan` and the per-call checks below, this
module runs the statement the flush would send as a Core statement built once
per mapper and executed with a parameter dict (no new statement object, so no
new cache key per call), on the session's connection, and then puts the object
in the state the flush would have left it in, through SQLAlchemy's public
functions (``make_transient``, ``make_transient_to_detached``, ``Session.add``).

Everything else, and every case not listed as equivalent, takes the unit of work.
``delete()`` always does: an object deleted by a flush is marked
``was_deleted``, and saving it again raises ``InvalidRequestError``; no public
SQLAlchemy function produces that state without a flush.

Inside ``atomic`` the objects written here are recorded on the open block
(``flash_db.transaction.record_write``); when the block rolls back, inserted
objects become transient again and updated ones are expired, as the ORM does
for the objects it flushed in a rolled-back transaction or savepoint.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, update
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import (
    ColumnProperty,
    Mapper,
    Session,
    make_transient,
    make_transient_to_detached,
)
from sqlalchemy.orm.attributes import get_history, instance_state
from sqlalchemy.orm.exc import StaleDataError
from sqlalchemy.schema import Column
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.dml import Insert, Update

from flash_db.concurrency import hold_session
from flash_db.transaction import (
    _rollback_failed_write,
    in_atomic,
    marking_failure,
    record_write,
)

__all__ = ["insert_one", "update_one"]

# Session events whose listeners a flush would call (or that observe the
# transitions a flush makes); with any of them present the flush is kept.
_SESSION_EVENTS = (
    "before_flush",
    "after_flush",
    "after_flush_postexec",
    "transient_to_pending",
    "pending_to_persistent",
    "pending_to_transient",
    "persistent_to_transient",
    "persistent_to_detached",
    "detached_to_persistent",
    "persistent_to_deleted",
    "deleted_to_detached",
)
# Mapper events a flush calls for an INSERT or UPDATE.
_MAPPER_EVENTS = ("before_insert", "after_insert", "before_update", "after_update")
# Instance events that make_transient_to_detached() would call and a flush does not.
_INSTANCE_EVENTS = ("expire",)


@dataclass(frozen=True, slots=True)
class _Plan:
    """What the fast path needs to know about one mapper, computed once."""

    attrs: object  # mapper.column_attrs when the plan was made (a new object after a change)
    mapper: Mapper[Any]
    columns: tuple[tuple[str, Column[Any]], ...]  # (attribute key, column), table order
    relationships: frozenset[str]
    pk_keys: tuple[str, ...]  # attribute keys of the primary-key columns
    as_none: tuple[tuple[str, str], ...]  # (attribute, column key) sent as NULL when unset
    evaluates_none: frozenset[str]  # attribute keys whose None is sent (the type says so)
    onupdate: tuple[tuple[str, str], ...]  # (attribute, column key) with a Python onupdate
    can_update: bool  # no column the database changes on UPDATE (server_onupdate, Computed)
    insert: Insert
    update: Update


# Per mapper: its plan, or None when the mapper can never take the fast path.
_PLANS: weakref.WeakKeyDictionary[Mapper[Any], _Plan | None] = weakref.WeakKeyDictionary()


def _plan(mapper: Mapper[Any]) -> _Plan | None:
    """Return ``mapper``'s plan, or None when its writes must go through the unit of work.

    A mapper qualifies when one Table holds all of it: no inheritance (joined
    or single-table, where the flush writes several tables or sets a
    discriminator), no ``version_id_col`` (the flush checks and bumps it), and
    every column attribute is one column of that table (no ``column_property``
    expressions, which the flush expires).
    """
    attrs = mapper.column_attrs
    if mapper in _PLANS:
        cached = _PLANS[mapper]
        if cached is None or cached.attrs is attrs:
            return cached
    plan = _make_plan(mapper, attrs)
    _PLANS[mapper] = plan
    return plan


def _make_plan(mapper: Mapper[Any], attrs: Any) -> _Plan | None:
    table = mapper.local_table
    if (
        mapper.inherits is not None
        or mapper.polymorphic_on is not None
        or mapper.version_id_col is not None
        or not isinstance(table, Table)
        or mapper.persist_selectable is not table
    ):
        return None
    by_column: dict[Column[Any], str] = {}
    for prop in attrs:
        if not isinstance(prop, ColumnProperty) or len(prop.columns) != 1:
            return None
        column = prop.columns[0]
        if not isinstance(column, Column) or column.table is not table:
            return None
        by_column[column] = prop.key
    columns = tuple((by_column[c], c) for c in table.columns if c in by_column)
    pk_binds = [f"flash_pk_{i}" for i in range(len(table.primary_key.columns))]
    if not pk_binds or {c.key for _, c in columns} & set(pk_binds):
        return None
    pk_keys = tuple(by_column[c] for c in table.primary_key.columns if c in by_column)
    if len(pk_keys) != len(pk_binds):
        return None
    for _, column in columns:
        default = column.default
        if default is not None and not (default.is_scalar or default.is_callable):
            return None  # a SQL-expression or Sequence default: left to the flush
    onupdate: list[tuple[str, str]] = []
    can_update = True
    for key, column in columns:
        if column.server_onupdate is not None:
            can_update = False  # the flush would expire (or fetch) it after an UPDATE
        hook = column.onupdate
        if hook is not None:
            if hook.is_scalar or hook.is_callable:
                onupdate.append((key, column.key))
            else:
                can_update = False  # a SQL expression: the flush expires the attribute
    where = [
        column == bindparam(name)
        for column, name in zip(table.primary_key.columns, pk_binds, strict=True)
    ]
    return _Plan(
        attrs=attrs,
        mapper=mapper,
        columns=columns,
        relationships=frozenset(mapper.relationships.keys()),
        pk_keys=pk_keys,
        # The flush sends NULL for unset columns without any default (SQLAlchemy's
        # "insert cols as none"); sending the same keys gives the same SQL.
        as_none=tuple(
            (key, column.key)
            for key, column in columns
            if not column.primary_key
            and column.default is None
            and column.server_default is None
            and not column.type.should_evaluate_none
        ),
        evaluates_none=frozenset(key for key, c in columns if c.type.should_evaluate_none),
        onupdate=tuple(onupdate),
        can_update=can_update,
        insert=insert(table).returning(*(column for _, column in columns)),
        update=update(table).where(*where),
    )


def _no_listeners(session: Session, mapper: Mapper[Any]) -> bool:
    """Return whether no flush, lifecycle or write listener would miss the flush."""
    dispatch: Any = session.dispatch
    if any(getattr(dispatch, name) for name in _SESSION_EVENTS):
        return False
    mapper_dispatch: Any = mapper.dispatch
    if any(getattr(mapper_dispatch, name) for name in _MAPPER_EVENTS):
        return False
    instance_dispatch: Any = mapper.class_manager.dispatch
    return not any(getattr(instance_dispatch, name) for name in _INSTANCE_EVENTS)


def _is_expression(value: Any) -> bool:
    return isinstance(value, ClauseElement) or hasattr(value, "__clause_element__")


async def insert_one(db: AsyncSession, obj: Any) -> bool:
    """INSERT the new ``obj`` as one Core statement; return False (nothing done) when not equal.

    Equal to the flush when, besides the mapper's plan: the object is transient
    (not yet added to a session), its state holds no relationship value (the
    flush would cascade, set foreign keys, or update backrefs), no attribute
    holds a SQL expression, the session has no other pending, changed or deleted
    object (the flush would write them too, ordered with this one), and nothing
    listens to flush, lifecycle or insert events.

    The INSERT sends the columns the flush sends (set values; NULL for unset
    columns without defaults; ``None`` omitted where a default applies) and
    returns every column: values the object holds stay as they are, values from
    Python defaults are the ones computed for the INSERT, and the rest (the
    generated key, server defaults) come from ``RETURNING``. The object then is
    persistent in ``db``, in its identity map, unmodified, with nothing expired.
    Outside ``atomic`` the statement commits on its own (AUTOCOMMIT); a failure
    rolls the session back as a failed flush would (``_rollback_failed_write``).
    """
    plan = _plan(type(obj).__mapper__)
    if plan is None:
        return False
    session = db.sync_session
    state = instance_state(obj)
    if not state.transient or session.new or session.dirty or session.deleted:
        return False
    loaded = state.dict
    if not plan.relationships.isdisjoint(loaded) or not _no_listeners(session, plan.mapper):
        return False
    params: dict[str, Any] = {}
    sent: set[str] = set()
    for key, column in plan.columns:
        if key in loaded:
            value = loaded[key]
            if value is None and key not in plan.evaluates_none:
                continue  # the column default (or NULL) applies, as in the flush
            if _is_expression(value):
                return False
            params[column.key] = value
            sent.add(key)
    for _, column_key in plan.as_none:
        params.setdefault(column_key, None)
    await _run(db, _insert, plan, obj, params, sent)
    return True


def _insert(
    session: Session,
    connection: Connection,
    plan: _Plan,
    obj: Any,
    params: dict[str, Any],
    sent: set[str],
) -> None:
    result = connection.execute(plan.insert, params)
    row = result.one()
    # The values sent, Python defaults included (a list only for executemany).
    used = cast(dict[str, Any], result.last_inserted_params())
    loaded = instance_state(obj).dict
    for index, (key, column) in enumerate(plan.columns):
        if key in sent:
            continue  # the flush keeps the object's own value
        loaded[key] = used[column.key] if column.key in used else row[index]
    make_transient_to_detached(obj)  # identity key from the primary key; all committed
    session.add(obj)


async def update_one(db: AsyncSession, obj: Any) -> bool:
    """UPDATE the loaded ``obj``'s changed columns as one Core statement.

    Return True when written here, False when the flush must do it (nothing
    done). Equal to the flush when, besides the mapper's plan: the object is
    persistent in ``db`` with every column loaded and no relationship value in
    its state, the only changed object in the session is this one, its primary
    key is unchanged, no changed attribute holds a SQL expression, and nothing
    listens to flush, lifecycle or update events.

    The UPDATE sets the attributes whose value differs from the loaded one (the
    flush's history) and the columns with a Python ``onupdate`` (``updated_at``),
    whose values are copied onto the object. No row matched raises
    ``StaleDataError`` as the flush does. The object is then unmodified.
    """
    plan = _plan(type(obj).__mapper__)
    if plan is None or not plan.can_update:
        return False
    session = db.sync_session
    state = instance_state(obj)
    if state.session is not session or state.key is None or state.deleted:
        return False
    if session.new or session.deleted:
        return False
    dirty = session.dirty
    if len(dirty) > 1 or (dirty and obj not in dirty):
        return False
    loaded = state.dict
    if not plan.relationships.isdisjoint(loaded) or state.expired_attributes:
        return False
    if not _no_listeners(session, plan.mapper):
        return False
    changed = state.committed_state
    params: dict[str, Any] = {}
    for key, column in plan.columns:
        if key not in loaded:
            return False  # deferred or expired: make_transient_to_detached would expire it
        if key not in changed:
            continue
        added = get_history(obj, key).added  # every column is loaded: no SQL
        if not added:
            continue  # set back to the loaded value: the flush writes nothing for it
        if key in plan.pk_keys or _is_expression(added[0]):
            return False
        params[column.key] = added[0]
    if not params:
        return False  # the flush sends nothing and only settles the state
    for index, value in enumerate(state.key[1]):
        params[f"flash_pk_{index}"] = value
    await _run(db, _update, plan, obj, params)
    return True


def _update(
    session: Session, connection: Connection, plan: _Plan, obj: Any, params: dict[str, Any]
) -> None:
    result = connection.execute(plan.update, params)
    if result.rowcount != 1:
        raise StaleDataError(
            f"UPDATE statement on table {plan.mapper.local_table.description!r} expected to "
            f"update 1 row(s); {result.rowcount} were matched."
        )
    used = cast(dict[str, Any], result.last_updated_params())  # a list only for executemany
    loaded = instance_state(obj).dict
    for key, column_key in plan.onupdate:
        if column_key not in params:
            loaded[key] = used[column_key]
    # Mark every attribute committed and the object unmodified, as the flush does
    # (SQLAlchemy has no public call for that on a persistent object): take it
    # out of the session, give it its identity back, and add it again.
    make_transient(obj)
    make_transient_to_detached(obj)
    session.add(obj)


async def _run(db: AsyncSession, write: Any, plan: _Plan, obj: Any, *args: Any) -> None:
    """Run ``write`` in one ``run_sync`` (the ``SessionBusy`` guard); record it inside atomic."""
    if in_atomic(db):
        with marking_failure(db), hold_session(db, "write"):
            await db.run_sync(_write, write, False, plan, obj, *args)
        record_write(db, obj, inserted=write is _insert)
        return
    try:
        with hold_session(db, "write"):
            await db.run_sync(_write, write, True, plan, obj, *args)
    except BaseException:
        await _rollback_failed_write(db)
        raise


def _write(session: Session, write: Any, settle: bool, plan: _Plan, obj: Any, *args: Any) -> None:
    """Run ``write`` on the session's connection; outside ``atomic`` settle where it shows.

    Outside ``atomic`` the unit-of-work path ends with ``commit()``, which in
    AUTOCOMMIT mode sends nothing and costs 40-120 us. It is observable only
    when the session keeps a savepoint of its own on the connection (the
    testing kit's ``join_transaction_mode="create_savepoint"``: a later failed
    write must roll back to after this one) or when something listens to commits.
    """
    connection = session.connection(bind_arguments={"mapper": plan.mapper})
    write(session, connection, plan, obj, *args)
    if settle and (
        connection.in_nested_transaction()
        or session.dispatch.after_commit
        or session.dispatch.after_transaction_end
    ):
        session.commit()
