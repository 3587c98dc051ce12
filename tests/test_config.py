"""One configuration source: flash_lifespan(), flash-db and amigrate() find the same database."""

from __future__ import annotations

import asyncio
import os
import sys
import textwrap
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

import flash_db
from flash_db import FlashDBError, database_url
from flash_db.config import DEFAULT_URL
from tests.test_migrations import MODELS_V1, Project, _flash_db, migration_url  # noqa: F401


def _pyproject(folder: Path, body: str) -> None:
    (folder / "pyproject.toml").write_text(body)


def test_the_url_comes_from_the_argument_then_environment_then_pyproject_then_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    assert str(database_url()) == f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite3'}"
    assert DEFAULT_URL == "sqlite+aiosqlite:///db.sqlite3"

    _pyproject(tmp_path, '[tool.flash_db]\nurl = "sqlite+aiosqlite:///data/app.sqlite3"\n')
    assert str(database_url()) == f"sqlite+aiosqlite:///{tmp_path / 'data' / 'app.sqlite3'}"

    monkeypatch.setenv("DATABASE_URL", "postgresql://app:secret@db/app")
    assert database_url().render_as_string(hide_password=False) == (
        "postgresql://app:secret@db/app"
    )
    # An explicit URL is the caller's: returned as given, relative path and all.
    assert str(database_url("sqlite:///here.db")) == "sqlite:///here.db"


def test_the_pyproject_of_a_parent_folder_counts_and_paths_stay_with_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _pyproject(tmp_path, '[tool.flash_db]\nurl = "sqlite+aiosqlite:///app.sqlite3"\n')
    nested = tmp_path / "src"
    nested.mkdir()
    monkeypatch.chdir(nested)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    assert make_url(database_url()).database == str(nested / "app.sqlite3")


@pytest.mark.parametrize(
    "url",
    [
        "sqlite+aiosqlite://",
        "sqlite+aiosqlite:///:memory:",
        "sqlite:///file:x?mode=memory&uri=true",
    ],
)
def test_in_memory_and_uri_sqlite_urls_are_left_alone(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", url)
    assert database_url().database == make_url(url).database


def test_bad_configuration_is_reported_with_its_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", "not a url")
    with pytest.raises(FlashDBError, match=r"from DATABASE_URL is not a URL"):
        database_url()
    monkeypatch.delenv("DATABASE_URL")
    _pyproject(tmp_path, "[tool.flash_db]\nurl = 5\n")
    with pytest.raises(FlashDBError, match=r"\[tool.flash_db\] url in .* must be a string"):
        database_url()
    _pyproject(tmp_path, "[tool.flash_db\n")
    with pytest.raises(FlashDBError, match=r"pyproject.toml is not valid TOML"):
        database_url()


APP = """
import asyncio
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from app.models import Author
from flash_db.migrations import amigrate
from flash_db_fastapi import Session, add_exception_handlers, flash_lifespan


@asynccontextmanager
async def migrate(app):
    await amigrate()  # the docs' "migrate at startup" recipe: no URL anywhere
    yield


app = FastAPI(lifespan=flash_lifespan(lifespan=migrate))
add_exception_handlers(app)


@app.post("/authors", status_code=201)
async def create(db: Session) -> int:
    return (await Author.objects.create(db, name="Ada", email="ada@example.com")).pk


async def main():
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            response = await client.post("/authors")
            print(response.status_code, response.text)


asyncio.run(main())
"""


async def test_migrate_at_startup_serves_the_database_it_migrated(
    tmp_path: Path,
    migration_url: str,  # noqa: F811
) -> None:
    root = tmp_path / "project"
    (root / "app").mkdir(parents=True)
    (root / "app" / "__init__.py").write_text("")
    project = Project(root, migration_url)
    project.write_models(MODELS_V1)
    (root / "serve.py").write_text(textwrap.dedent(APP))
    # SQLite: a relative path in pyproject.toml; PostgreSQL: DATABASE_URL.
    sqlite = migration_url.startswith("sqlite")
    config_url = "sqlite+aiosqlite:///project.sqlite3" if sqlite else None
    env_url = None if sqlite else migration_url
    _pyproject(
        root,
        '[tool.flash_db]\nmodels = "app.models"\n'
        + (f'url = "{config_url}"\n' if config_url else ""),
    )
    for command in ("init", "makemigrations"):
        result = await _flash_db(root, command, database_url=env_url)
        assert result.status == 0, result.err
    assert sorted(p.name for p in (root / "migrations" / "versions").glob("*.py")) == [
        "0001_initial.py"
    ]

    env = {**os.environ, "PYTHONPATH": str(Path.cwd())}
    env.pop("DATABASE_URL", None)
    if env_url:
        env["DATABASE_URL"] = env_url
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "serve.py",
        cwd=root,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    assert out.decode().strip() == "201 1"
    if sqlite:
        assert [p.name for p in root.glob("*.sqlite3")] == ["project.sqlite3"]
    shown = await _flash_db(root, "showmigrations", database_url=env_url)
    assert shown.out.strip() == "[X] 0001_initial"


async def test_init_db_without_a_url_uses_the_same_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    _pyproject(tmp_path, '[tool.flash_db]\nurl = "sqlite:///configured.sqlite3"\n')
    database = flash_db.init_db()
    try:
        assert database.url.drivername == "sqlite+aiosqlite"
        assert database.url.database == str(tmp_path / "configured.sqlite3")
    finally:
        await flash_db.close_db()
