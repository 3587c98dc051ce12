"""The error messages a newcomer meets first, as they read them (issue 16, item 6)."""

from __future__ import annotations

import traceback

import pytest
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

import flash_db
from flash_db import FieldError, FlashDBError
from tests.models import Company, User
from tests.test_migrations import migration_url  # noqa: F401  (an empty database per test)


async def test_a_missing_table_says_to_migrate_or_create_all(
    migration_url: str,  # noqa: F811
) -> None:
    database = flash_db.Database(migration_url)  # no tables in it
    try:
        async with database.session() as db:
            with pytest.raises(DBAPIError) as read:
                await User.objects.fetch(db)
            with pytest.raises(DBAPIError) as write:
                await Company.objects.create(db, name="Acme")
            with pytest.raises(DBAPIError) as raw:  # SQLAlchemy's path (not the driver's)
                await User.objects.filter(name__in=["a", "b"]).exists(db)
    finally:
        await database.close()
    for error, table in ((read, "users"), (write, "companies"), (raw, "users")):
        shown = "".join(traceback.format_exception(error.value))
        assert (
            f"Flash DB: the table {table!r} does not exist in this database. Create the tables: "
            "run 'flash-db migrate' if the app has migrations, or 'await create_all()'"
        ) in shown
        assert shown.count("flash-db migrate") == 1


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("mysql://root@localhost/app", "'mysql' is not a database Flash DB supports"),
        ("postgresql+psycopg2://u@h/app", "'postgresql+psycopg2' is not a driver Flash DB runs on"),
        ("sqlite+pysqlite:///x.db", "'sqlite+pysqlite' is not a driver Flash DB runs on"),
    ],
)
def test_an_unsupported_database_or_driver_names_the_supported_ones(url: str, problem: str) -> None:
    with pytest.raises(FlashDBError) as error:
        flash_db.init_db(url)
    message = str(error.value)
    assert problem in message
    assert "SQLite with aiosqlite" in message
    assert "PostgreSQL with asyncpg" in message
    assert "pip install 'flash-db[postgres]'" in message


async def test_order_by_reports_its_own_name(db: AsyncSession) -> None:
    with pytest.raises(FieldError) as error:
        await User.objects.order_by("-nmae").fetch(db)
    message = str(error.value)
    assert message.startswith(
        "Cannot resolve keyword 'nmae' into field in order_by('-nmae') on User."
    )
    assert "F()" not in message
    assert "Choices are: age, company, company_id, created_at, email, id, name, pk" in message


async def test_select_related_on_a_to_many_relation_says_prefetch_related(
    db: AsyncSession,
) -> None:
    with pytest.raises(FieldError) as error:
        await Company.objects.select_related("users").fetch(db)
    assert str(error.value) == (
        "select_related() follows to-one relations only, and Company.users is a to-many "
        "relation: load it with prefetch_related('users')."
    )
    with pytest.raises(FieldError) as with_choices:
        await User.objects.select_related("posts").fetch(db)
    assert str(with_choices.value).endswith(
        "load it with prefetch_related('posts'). Its to-one relations: company."
    )


async def test_get_with_a_bare_value_hints_pk(db: AsyncSession) -> None:
    with pytest.raises(TypeError) as error:
        await User.objects.get(db, 1)  # the mistake under test (a bare value)
    assert str(error.value) == (
        "filter() and get() take SQLAlchemy expressions, Q objects and keyword lookups, "
        "got 1. To match the primary key, write pk=1."
    )
