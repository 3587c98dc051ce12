"""Behind PgBouncer in transaction-pooling mode (a real PgBouncer, tests/servers.py).

Consecutive transactions of one client connection may run on different server
connections there. asyncpg's named, cached prepared statements then break
("prepared statement ... does not exist" / "already exists"); with
``pooler="pgbouncer"`` Flash DB keeps no prepared statement beyond its
transaction. The behaviour suites listed in ``tests/conftest.py``
(``PGBOUNCER_SUITES``) also run through PgBouncer (the ``pgbouncer`` backend).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import delete, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

import flash_db
from flash_db import atomic
from tests import servers
from tests.models import User

POOL_SIZE = 4  # PgBouncer's server connections per database (tests/servers.py)


@pytest.fixture
async def bounced(
    pgbouncer: servers.PgBouncer, postgresql_url: str
) -> AsyncIterator[servers.PgBouncer]:
    """PgBouncer, with fresh server connections, and the users table emptied after the test.

    Server connections outlive clients: the statements a test prepared there
    (the tests without the pooler option) would stay for the next test.
    """
    name = postgresql_url.rsplit("/", 1)[1]
    pgbouncer.reset(name)
    yield pgbouncer
    pgbouncer.reset(name)
    database = flash_db.Database(postgresql_url)
    async with database.engine.connect() as conn:
        await conn.execute(delete(User))
    await database.close()


def _url(bouncer: servers.PgBouncer, postgresql_url: str) -> str:
    return bouncer.url(postgresql_url.rsplit("/", 1)[1])


async def _interleave(database: flash_db.Database) -> None:
    """Run one statement on a client connection while another holds that server connection.

    PgBouncer gives a client the server connection used last (LIFO): after A's
    statement, B's transaction takes A's server, and A's next statement runs on
    another one, where A's statements were never prepared.
    """
    async with database.session() as a, database.session() as b:
        for round_ in range(6):
            await User.objects.filter(name=f"n{round_}").count(a)
            async with atomic(b):
                await User.objects.filter(name="b").count(b)
                await User.objects.filter(name=f"n{round_}").count(a)
                await User.objects.create(a, name=f"n{round_}", email=f"{round_}@x")
            assert await User.objects.filter(name=f"n{round_}").count(a) == 1


@pytest.mark.parametrize("driver_path", [True, False], ids=["driver", "sqlalchemy"])
async def test_prepared_statements_break_without_the_pooler_option(
    bounced: servers.PgBouncer, postgresql_url: str, driver_path: bool
) -> None:
    database = flash_db.Database(_url(bounced, postgresql_url), driver_path=driver_path)
    try:
        with pytest.raises(DBAPIError, match="prepared statement"):
            await _interleave(database)
    finally:
        await database.close()


@pytest.mark.parametrize("driver_path", [True, False], ids=["driver", "sqlalchemy"])
async def test_with_the_pooler_option_statements_work_on_any_server_connection(
    bounced: servers.PgBouncer, postgresql_url: str, driver_path: bool
) -> None:
    database = flash_db.Database(
        _url(bounced, postgresql_url), driver_path=driver_path, pooler="pgbouncer"
    )
    try:
        await _interleave(database)
    finally:
        await database.close()


async def _server_state(database: flash_db.Database) -> list[tuple[int, str, str, int]]:
    """Hold every server connection of the pool at once; return what each one carries.

    Each session sits in a transaction (PgBouncer keeps a server connection for
    it), so ``POOL_SIZE`` sessions see ``POOL_SIZE`` different server connections.
    """
    states = []
    async with contextlib_sessions(database, POOL_SIZE) as sessions:
        for db in sessions:
            await atomic(db).__aenter__()
        for db in sessions:
            row = (
                await db.execute(
                    text(
                        "SELECT pg_backend_pid(), current_setting('statement_timeout'), "
                        "current_setting('default_transaction_isolation'), "
                        "(SELECT count(*) FROM pg_prepared_statements)"
                    )
                )
            ).one()
            states.append((int(row[0]), str(row[1]), str(row[2]), int(row[3])))
        for db in sessions:
            await db.rollback()
    return states


class contextlib_sessions:
    """``async with contextlib_sessions(database, n) as sessions``: n open sessions."""

    def __init__(self, database: flash_db.Database, count: int) -> None:
        self.blocks = [database.session() for _ in range(count)]

    async def __aenter__(self) -> list[AsyncSession]:
        return [await block.__aenter__() for block in self.blocks]

    async def __aexit__(self, *exc_info: object) -> None:
        for block in self.blocks:
            await block.__aexit__(None, None, None)


async def test_nothing_of_one_request_leaks_into_another(
    bounced: servers.PgBouncer, postgresql_url: str
) -> None:
    database = flash_db.Database(_url(bounced, postgresql_url), pooler="pgbouncer")
    try:

        @atomic(isolation_level="SERIALIZABLE", retries=10)
        async def work(db: AsyncSession, n: int) -> None:
            await db.execute(text("SET LOCAL statement_timeout = '7s'"))
            user = await User.objects.select_for_update().get(db, name=f"u{n}")
            user.age = n
            await user.save(db)

        async def request(n: int) -> None:
            async with database.session() as db:
                await User.objects.create(db, name=f"u{n}", email=f"{n}@x")
                await work(db, n)
                assert await User.objects.filter(age=n).count(db) == 1

        async def cancelled() -> None:
            async with database.session() as db, atomic(db):
                await User.objects.create(db, name="cancelled", email="c@x")
                await asyncio.sleep(10)

        task = asyncio.ensure_future(cancelled())
        await asyncio.gather(*(request(n) for n in range(12)))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        states = await _server_state(database)
        assert len({pid for pid, *_ in states}) == POOL_SIZE  # every server connection seen
        for _, timeout, isolation, prepared in states:
            assert timeout == "0"  # the SET LOCAL ended with its transaction
            assert isolation == "read committed"  # SERIALIZABLE was its block's only
            assert prepared == 0  # no prepared statement outlives its transaction
        async with database.session() as db:
            names = await User.objects.values_list("name", flat=True).fetch(db)
            assert "cancelled" not in names  # the cancelled block was rolled back
            assert len(names) == 12
        pools = bounced.admin("SHOW POOLS")
        assert all(row[5] == "0" for row in pools[0:]), pools  # no server held by a client
    finally:
        await database.close()
