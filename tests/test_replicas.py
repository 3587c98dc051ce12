"""Read replicas: session(readonly=True), ReadSession, CRUDRouter(read_from="replica").

Two kinds of "replica" here. The routing tests (both backends) use a second
database with the same tables and different rows as the replica, so which
database answered shows in the rows. The tests marked ``replica`` use a real
PostgreSQL streaming replica (tests/servers.py): the connection used is checked
with ``pg_is_in_recovery()``, and where a test writes then reads, it waits until
the replica has replayed the primary's WAL.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Literal

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import delete, insert, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

import flash_db
from flash_db import TransactionError, atomic
from flash_db.database import READONLY_KEY
from flash_db.testing import assert_num_queries
from flash_db_fastapi import CRUDRouter, ReadSession, Session, add_exception_handlers
from flash_db_fastapi.lifespan import STATE_KEY, FlashState
from tests import servers
from tests.conftest import _pg_create, _pg_drop
from tests.models import User


@pytest.fixture
async def other_url(backend_url: str, tmp_path: Path) -> AsyncIterator[str]:
    """A second, empty database with every table, on the backend under test."""
    if backend_url.startswith("sqlite"):
        url = f"sqlite+aiosqlite:///{tmp_path / 'replica.sqlite3'}"
        name = None
    else:
        parsed = make_url(backend_url)
        name = f"{parsed.database}_r"
        await _pg_create(name)
        url = parsed.set(database=name).render_as_string(hide_password=False)
    setup = flash_db.Database(url)
    await setup.create_all()
    await setup.close()
    yield url
    if name is not None:
        await _pg_drop(name)


@pytest.fixture
async def routed(database: flash_db.Database, other_url: str) -> AsyncIterator[flash_db.Database]:
    """A Database on the backend whose replica is the second database (holding 'replica')."""
    async with database.session() as db:
        await User.objects.create(db, name="primary", email="p@x")
    routed = flash_db.Database(database.url, replicas=[other_url])
    async with routed.replicas[0].connect() as conn:
        await conn.execute(insert(User).values(name="replica", email="r@x"))
    try:
        yield routed
    finally:
        await routed.close()


async def _names(db: AsyncSession) -> list[str]:
    return list(await User.objects.values_list("name", flat=True).fetch(db))


async def test_read_sessions_go_to_the_replica_and_others_to_the_primary(
    routed: flash_db.Database,
) -> None:
    async with routed.session(readonly=True) as db:
        assert await _names(db) == ["replica"]
        assert db.info[READONLY_KEY] == "replica"
    async with routed.session() as db:
        assert await _names(db) == ["primary"]


def _writes(db: AsyncSession, user: User) -> list[Callable[[], Awaitable[object]]]:
    """Every kind of write method, ready to run on ``db``."""
    return [
        lambda: User.objects.create(db, name="x", email="x@x"),
        lambda: User.objects.get_or_create(db, name="x", email="x@x"),
        lambda: User.objects.update_or_create(db, name="x", email="x@x"),
        lambda: User.objects.filter(name="x").update(db, age=3),
        lambda: User.objects.filter(name="x").delete(db),
        lambda: User.objects.bulk_create(db, [User(name="y", email="y@x")]),
        lambda: user.save(db),
        lambda: user.delete(db),
    ]


async def test_a_write_on_a_read_session_fails_before_any_sql(
    routed: flash_db.Database, database: flash_db.Database
) -> None:
    for target in (routed, database):  # on a replica, and on the primary (no replicas)
        async with target.session(readonly=True) as db:
            user = (await User.objects.fetch(db))[0]
            for attempt in _writes(db, user):
                async with assert_num_queries(db, 0):
                    with pytest.raises(TransactionError, match="read session"):
                        await attempt()
            async with atomic(db):  # reads in a block are fine
                assert len(await _names(db)) == 1


async def test_replicas_take_turns(database: flash_db.Database, other_url: str) -> None:
    routed = flash_db.Database(database.url, replicas=[other_url, database.url])
    async with routed.replicas[0].connect() as conn:
        await conn.execute(insert(User).values(name="replica", email="r@x"))
    try:
        seen = []
        for _ in range(4):
            async with routed.session(readonly=True) as db:
                seen.append(await _names(db))
        assert seen in ([["replica"], [], ["replica"], []], [[], ["replica"], [], ["replica"]])
    finally:
        await routed.close()


def _silent_port() -> tuple[socket.socket, int]:
    """A port that accepts TCP connections and never says a word (a hung server)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    return sock, int(sock.getsockname()[1])


@pytest.mark.postgres_only
async def test_a_replica_that_does_not_answer_in_time_is_skipped(
    database: flash_db.Database,
) -> None:
    if database.backend != "postgresql":
        pytest.skip("a PostgreSQL replica URL")
    sock, port = _silent_port()
    hung = f"postgresql+asyncpg://postgres@127.0.0.1:{port}/x"
    routed = flash_db.Database(database.url, replicas=[hung], replica_timeout=0.3)
    try:
        async with database.session() as db:
            await User.objects.create(db, name="primary", email="p@x")
        started = time.monotonic()
        async with routed.session(readonly=True) as db:
            assert await _names(db) == ["primary"]
            assert db.info[READONLY_KEY] == "primary"
        assert time.monotonic() - started < 2
        started = time.monotonic()
        async with routed.session(readonly=True) as db:  # skipped now: no wait
            assert await _names(db) == ["primary"]
        assert time.monotonic() - started < 0.25
    finally:
        sock.close()
        await routed.close()


def test_bad_replica_arguments() -> None:
    with pytest.raises(TypeError, match="list of URLs"):
        flash_db.Database("sqlite+aiosqlite://", replicas="sqlite+aiosqlite://")
    with pytest.raises(ValueError, match="is not a sqlite database"):
        flash_db.Database("sqlite+aiosqlite://", replicas=["postgresql://x@h/db"])
    with pytest.raises(ValueError, match="pooler='pgpool'"):
        flash_db.Database("postgresql://x@h/db", pooler="pgpool")
    with pytest.raises(ValueError, match="is for PostgreSQL"):
        flash_db.Database("sqlite+aiosqlite://", pooler="pgbouncer")


# -- FastAPI -----------------------------------------------------------------------------


def _app(routed: flash_db.Database, read_from: Literal["primary", "replica"]) -> FastAPI:
    app = FastAPI()
    setattr(app.state, STATE_KEY, FlashState(routed))  # the app's database, as in flash_lifespan
    add_exception_handlers(app)
    app.include_router(CRUDRouter(User, prefix="/users", read_from=read_from))

    @app.get("/names")
    async def names(db: ReadSession) -> list[str]:
        return await _names(db)

    @app.post("/names")
    async def write(db: ReadSession) -> None:
        await User.objects.create(db, name="nope", email="n@x")

    @app.get("/primary-names")
    async def primary_names(db: Session) -> list[str]:
        return await _names(db)

    return app


@pytest.mark.parametrize("read_from", ["replica", "primary"])
async def test_crud_router_reads_from_where_it_is_told(
    routed: flash_db.Database, read_from: Literal["primary", "replica"]
) -> None:
    app = _app(routed, read_from)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        listed = (await client.get("/users")).json()
        assert [item["name"] for item in listed["items"]] == [read_from]
        pk = listed["items"][0]["id"]
        assert (await client.get(f"/users/{pk}")).json()["name"] == read_from
        assert (await client.get("/names")).json() == ["replica"]
        assert (await client.get("/primary-names")).json() == ["primary"]
        created = await client.post("/users", json={"name": "new", "email": "new@x"})
        assert created.status_code == 201  # writes always go to the primary
        with pytest.raises(TransactionError, match="read session"):
            await client.post("/names")  # a programming error: the app's 500
    async with routed.session() as db:
        assert sorted(await _names(db)) == ["new", "primary"]


def test_crud_router_read_from_is_checked() -> None:
    with pytest.raises(ValueError, match="read_from='replicas'"):
        CRUDRouter(User, prefix="/u", read_from="replicas")  # type: ignore[arg-type]


# -- a real streaming replica ------------------------------------------------------------


@pytest.fixture
async def streaming(
    postgresql_url: str, replica: servers.Replica
) -> AsyncIterator[flash_db.Database]:
    """A Database on the test database with the real streaming replica as its replica."""
    name = postgresql_url.rsplit("/", 1)[1]
    database = flash_db.init_db(postgresql_url, replicas=[replica.url(name)])
    database.replica_retry_after = 0.5
    try:
        yield database
    finally:
        async with database.engine.connect() as conn:
            await conn.execute(delete(User))
        await flash_db.close_db()


async def _in_recovery(db: AsyncSession) -> bool:
    return bool((await db.execute(text("SELECT pg_is_in_recovery()"))).scalar_one())


async def test_reads_go_to_the_streaming_replica(
    streaming: flash_db.Database, replica: servers.Replica
) -> None:
    async with flash_db.session() as db:
        assert not await _in_recovery(db)
        await User.objects.create(db, name="a", email="a@x")
    await asyncio.to_thread(replica.catch_up)  # the replication lag, waited for
    async with flash_db.session(readonly=True) as db:
        assert await _in_recovery(db)  # the connection Flash DB read from is the standby
        assert await _names(db) == ["a"]
        with pytest.raises(TransactionError):
            await User.objects.create(db, name="b", email="b@x")


async def test_a_stopped_replica_is_skipped_and_the_primary_serves_reads(
    streaming: flash_db.Database, replica: servers.Replica
) -> None:
    async with flash_db.session() as db:
        await User.objects.create(db, name="a", email="a@x")
    await asyncio.to_thread(replica.catch_up)
    served: list[str] = []
    failures: list[BaseException] = []
    stop_after = 20

    async def reader() -> None:
        for _ in range(30):
            try:
                async with flash_db.session(readonly=True) as db:
                    assert await _names(db) == ["a"]
                    served.append(db.info[READONLY_KEY])
            except Exception as error:  # pragma: no cover - what the test must not see
                failures.append(error)
            if len(served) == stop_after and replica.running:
                await asyncio.to_thread(replica.stop)

    try:
        await asyncio.gather(*(reader() for _ in range(4)))
    finally:
        if not replica.running:
            await asyncio.to_thread(replica.start)
    assert failures == []
    assert served[:stop_after] == ["replica"] * stop_after
    assert served[-10:] == ["primary"] * 10
    # Back up: after replica_retry_after the replica serves reads again.
    await asyncio.sleep(0.6)
    async with flash_db.session(readonly=True) as db:
        assert await _in_recovery(db)
