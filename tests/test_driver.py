"""Statement templates on the driver connection (``flash_db.driver``).

The same answers, the same errors and the same transactions as through
SQLAlchemy's ``Connection.execute()``, which is the oracle here: every value
written and read on the driver is compared with the same work done with
``driver_path=False``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

import flash_db
from flash_db import TransactionError, atomic
from flash_db.testing import capture_queries
from tests.models import Sample, Status, User

SAMPLE: dict[str, Any] = {
    "label": "every type",
    "at": dt.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=dt.UTC),
    "naive": dt.datetime(2026, 1, 2, 3, 4, 5, 678901),
    "day": dt.date(2026, 1, 2),
    "clock": dt.time(3, 4, 5),
    "price": Decimal("12.34"),
    "ratio": 0.25,
    "flag": True,
    "status": Status.PUBLISHED,
    "data": {"a": [1, "b", None], "n": 1.5},
    "token": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "blob": b"\x00\x01\xff",
    "scaled": 7,
}


@asynccontextmanager
async def through_sqlalchemy(database: flash_db.Database) -> AsyncIterator[list[str]]:
    """Record what SQLAlchemy's ``Connection.execute()`` sends (its engine event), nothing else."""
    statements: list[str] = []

    def record(conn: Connection, cursor: Any, statement: str, *args: Any) -> None:
        control = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")
        if not statement.lstrip().upper().startswith(control):
            statements.append(statement)

    engine = database.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)


async def test_templates_go_to_the_driver_and_other_statements_through_sqlalchemy(
    database: flash_db.Database, db: AsyncSession
) -> None:
    user = await User.objects.create(db, name="a", email="a@x")
    async with capture_queries(db) as captured, through_sqlalchemy(database) as sqlalchemy:
        assert (await User.objects.get(db, pk=user.pk)).email == "a@x"  # a template
        assert await User.objects.filter(email="a@x").count(db) == 1  # a template
        assert len(await User.objects.filter(pk__in=[user.pk]).fetch(db)) == 1  # IN: built
    assert len(captured) == 3
    assert len(sqlalchemy) == 1
    assert " IN " in sqlalchemy[0]


async def test_driver_path_off_sends_every_statement_through_sqlalchemy(backend_url: str) -> None:
    database = flash_db.Database(backend_url, driver_path=False)
    try:
        async with database.session() as db, through_sqlalchemy(database) as sqlalchemy:
            user = await User.objects.create(db, name="a", email="off@x")
            await User.objects.get(db, pk=user.pk)
            await User.objects.filter(pk=user.pk).update(db, age=3)
            await User.objects.filter(pk=user.pk).delete(db)
        assert [sql.split()[0] for sql in sqlalchemy] == ["INSERT", "SELECT", "UPDATE", "DELETE"]
    finally:
        await database.close()


async def _write_and_read(database: flash_db.Database) -> dict[str, Any]:
    """Write SAMPLE with Flash DB's templates, find it by its values, change it; return it."""
    async with database.session() as db:
        sample = await Sample.objects.create(db, **SAMPLE)
        found = await Sample.objects.get(
            db,
            day=SAMPLE["day"],
            price=SAMPLE["price"],
            token=SAMPLE["token"],
            flag=True,
            scaled=SAMPLE["scaled"],
        )
        assert found.pk == sample.pk
        assert await Sample.objects.filter(naive__gte=SAMPLE["naive"]).count(db) == 1
        assert await Sample.objects.filter(pk=sample.pk).update(db, scaled=9, ratio=0.5) == 1
        sample.label = "saved"
        await sample.save(db)
        loaded = await Sample.objects.get(db, pk=sample.pk)
        stored = (await db.execute(text("SELECT scaled FROM samples"))).scalar_one()
        assert stored == 90  # Scaled's bind processor ran on the way in
        values = (await Sample.objects.filter(pk=sample.pk).values().fetch(db))[0]
        await Sample.objects.filter(pk=sample.pk).delete(db)
    fields = {key: getattr(loaded, key) for key in [*SAMPLE, "created"]}
    assert {key: value for key, value in values.items() if key != "id"} == fields
    return fields


async def test_every_type_reads_and_writes_as_it_does_through_sqlalchemy(backend_url: str) -> None:
    results = []
    for driver_path in (True, False):
        database = flash_db.Database(backend_url, driver_path=driver_path)
        try:
            results.append(await _write_and_read(database))
        finally:
            await database.close()
    on_driver, through = results
    created = on_driver.pop("created"), through.pop("created")
    assert all(isinstance(value, dt.datetime) for value in created)
    assert on_driver == through
    assert {key: type(value) for key, value in on_driver.items()} == {
        key: type(value) for key, value in through.items()
    }
    assert on_driver["label"] == "saved"
    assert on_driver["scaled"] == 9
    assert on_driver["ratio"] == 0.5
    for key in ("naive", "day", "clock", "price", "flag", "status", "data", "token", "blob"):
        assert on_driver[key] == SAMPLE[key], key


async def test_a_constraint_violation_on_the_driver_is_sqlalchemys_integrity_error(
    db: AsyncSession,
) -> None:
    await User.objects.create(db, name="a", email="dup@x")
    with pytest.raises(IntegrityError) as raised:
        await User.objects.create(db, name="b", email="dup@x")
    assert "INSERT INTO users" in str(raised.value.statement)
    assert raised.value.orig is not None
    assert await User.objects.count(db) == 1  # the session goes on
    with pytest.raises(TransactionError):
        async with atomic(db):
            with pytest.raises(IntegrityError):
                await User.objects.create(db, name="c", email="dup@x")
            await User.objects.count(db)  # refused: the block can only roll back
    assert await User.objects.count(db) == 1


async def test_writes_on_the_driver_roll_back_with_their_atomic_block(
    database: flash_db.Database, db: AsyncSession
) -> None:
    kept = await User.objects.create(db, name="kept", email="kept@x")
    with pytest.raises(RuntimeError):
        async with through_sqlalchemy(database) as sqlalchemy, atomic(db):
            ada = await User.objects.create(db, name="ada", email="ada@x")
            await User.objects.filter(pk=kept.pk).update(db, age=40)
            await User.objects.filter(pk=ada.pk).update(db, age=3)
            async with atomic(db):
                await User.objects.create(db, name="bob", email="bob@x")
            await User.objects.get(db, pk=kept.pk)
            raise RuntimeError("roll back")
    # PostgreSQL's transaction begins with SQLAlchemy's first statement of the block;
    # the rest went to the driver, inside it.
    assert len(sqlalchemy) == (1 if database.backend == "postgresql" else 0)
    assert [u.name for u in await User.objects.fetch(db)] == ["kept"]
    assert (await User.objects.get(db, pk=kept.pk)).age is None


async def test_queryset_update_on_the_driver_sets_updated_at(db: AsyncSession) -> None:
    user = await User.objects.create(db, name="a", email="a@x")
    await asyncio.sleep(0.01)
    assert await User.objects.filter(pk=user.pk).update(db, age=5) == 1
    assert await User.objects.filter(pk=user.pk + 1000).update(db, age=5) == 0
    stored = await User.objects.get(db, pk=user.pk)
    assert stored.age == 5
    assert stored.updated_at > user.updated_at


async def test_a_connection_killed_under_a_session_raises_and_the_session_reconnects(
    postgresql_url: str,
) -> None:
    database = flash_db.Database(postgresql_url)
    admin = flash_db.Database(postgresql_url)
    try:
        async with database.session() as db:
            assert await User.objects.count(db) == 0  # on the driver
            pid = (await db.execute(text("SELECT pg_backend_pid()"))).scalar_one()
            async with admin.session() as other:
                await other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            await asyncio.sleep(0.2)
            with pytest.raises(OperationalError) as raised:
                await User.objects.count(db)
            assert raised.value.connection_invalidated
            assert await User.objects.count(db) == 0  # a new connection
            new_pid = (await db.execute(text("SELECT pg_backend_pid()"))).scalar_one()
            assert new_pid != pid
            assert await User.objects.filter(email="x").count(db) == 0  # on the driver again
    finally:
        await admin.close()
        await database.close()
