"""flash_lifespan(): the database URL defaults, create_tables, a wrapped user lifespan, shutdown."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import inspect as sa_inspect

import flash_db
from flash_db import FlashDBError
from flash_db_fastapi import Session, flash_lifespan
from flash_db_fastapi.lifespan import STATE_KEY, FlashState
from tests.fastapi.conftest import Serve
from tests.models import User


async def _tables(database: flash_db.Database) -> list[str]:
    async with database.engine.connect() as conn:
        names: list[str] = await conn.run_sync(lambda sync: sa_inspect(sync).get_table_names())
    return names


async def test_url_defaults_to_a_local_sqlite_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    app = FastAPI(lifespan=flash_lifespan(create_tables=True))
    async with app.router.lifespan_context(app):
        database = flash_db.get_database()
        assert database.url.drivername == "sqlite+aiosqlite"
        assert database.url.database == str(tmp_path / "db.sqlite3")  # from the working directory
        assert "users" in await _tables(database)
    assert (tmp_path / "db.sqlite3").exists()


async def test_url_defaults_to_database_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'env.sqlite3'}")
    app = FastAPI(lifespan=flash_lifespan())
    async with app.router.lifespan_context(app):
        database = flash_db.get_database()
        assert database.url.database == str(tmp_path / "env.sqlite3")
        assert database.url.drivername == "sqlite+aiosqlite"  # normalised to the async driver
        assert await _tables(database) == []  # create_tables is off by default


async def test_explicit_url_wins_over_database_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'env.sqlite3'}")
    url = f"sqlite+aiosqlite:///{tmp_path / 'explicit.sqlite3'}"
    app = FastAPI(lifespan=flash_lifespan(url, echo=False, pool_size=3))
    async with app.router.lifespan_context(app):
        assert flash_db.get_database().url.database == str(tmp_path / "explicit.sqlite3")


async def test_shutdown_closes_the_database(tmp_path: Path) -> None:
    app = FastAPI(lifespan=flash_lifespan(f"sqlite:///{tmp_path / 'a.sqlite3'}"))
    async with app.router.lifespan_context(app) as state:
        assert state is not None
        flash_state = state[STATE_KEY]
        assert isinstance(flash_state, FlashState)
        assert getattr(app.state, STATE_KEY) is flash_state
    with pytest.raises(FlashDBError, match="init_db"):
        flash_db.get_database()
    with pytest.raises(FlashDBError, match="closed"):
        await flash_state.database.create_all()
    assert not hasattr(app.state, STATE_KEY)


async def test_wraps_a_user_lifespan_and_keeps_its_state(tmp_path: Path, serve: Serve) -> None:
    events: list[str] = []

    @asynccontextmanager
    async def user_lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        # The database is ready here: the user's startup code may use it.
        async with flash_db.session() as db:
            await User.objects.create(db, name="Seed", email=f"seed{len(events)}@example.com")
        events.append("startup")
        yield {"greeting": "hello"}
        events.append("shutdown")

    app = FastAPI(
        lifespan=flash_lifespan(
            f"sqlite:///{tmp_path / 'b.sqlite3'}", create_tables=True, lifespan=user_lifespan
        )
    )

    @app.get("/")
    async def index(db: Session) -> dict[str, Any]:
        return {"users": await User.objects.count(db)}

    async with app.router.lifespan_context(app) as state:
        assert state is not None
        assert state["greeting"] == "hello"
        assert isinstance(state[STATE_KEY], FlashState)
    assert events == ["startup", "shutdown"]
    async with serve(app) as client:
        assert (await client.get("/")).json() == {"users": 2}
    assert events == ["startup", "shutdown", "startup", "shutdown"]


async def test_a_user_lifespan_yielding_nothing(tmp_path: Path) -> None:
    @asynccontextmanager
    async def user_lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield

    app = FastAPI(
        lifespan=flash_lifespan(f"sqlite:///{tmp_path / 'c.sqlite3'}", lifespan=user_lifespan)
    )
    async with app.router.lifespan_context(app) as state:
        assert state is not None
        assert set(state) == {STATE_KEY}


async def test_closes_only_its_own_database_when_init_db_ran_again(tmp_path: Path) -> None:
    app = FastAPI(lifespan=flash_lifespan(f"sqlite:///{tmp_path / 'd.sqlite3'}"))
    async with app.router.lifespan_context(app):
        other = flash_db.init_db(f"sqlite:///{tmp_path / 'e.sqlite3'}")
    assert flash_db.get_database() is other  # left open: the lifespan did not open it
    await flash_db.close_db()
