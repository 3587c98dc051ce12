"""flash-db init / makemigrations / migrate / downgrade on a temporary project, on both backends.

The project's models subclass ``flash_db.Model``, so importing them would add
their tables to the ``Model.metadata`` this test process shares with every
other test (and a second version of the same models could not be imported at
all). The commands therefore run as ``python -m flash_db`` subprocesses, as a
user runs them; only commands that import no models run in-process through
``main()``. Each test migrates a database of its own (a SQLite file, or a
PostgreSQL database created for it), not the suite's shared one.
"""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import sys
import textwrap
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from flash_db import FlashDBError
from flash_db.cli import main
from flash_db.migrations import init, load_settings
from flash_db.migrations.environment import describe_operations
from tests.conftest import PG_ADMIN_URL

ROOT = Path(__file__).resolve().parent.parent
DOCS_PAGE = ROOT / "docs" / "migrations.md"

MODELS_V1 = """
from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from flash_db import Model


class Author(Model):
    __tablename__ = "authors"
    name: Mapped[str] = mapped_column(String(50))
    email: Mapped[str] = mapped_column(String(100), unique=True)


class Post(Model):
    __tablename__ = "posts"
    title: Mapped[str] = mapped_column(String(100), index=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("authors.id"))
"""

# Version 2: a longer String, a column with a server default and an index, a new table.
MODELS_V2 = (
    MODELS_V1.replace(
        "name: Mapped[str] = mapped_column(String(50))",
        "name: Mapped[str] = mapped_column(String(120))\n"
        '    karma: Mapped[int] = mapped_column(server_default="0", index=True)',
    )
    + """

class Tag(Model):
    __tablename__ = "tags"
    label: Mapped[str] = mapped_column(String(30), unique=True)
    post_id: Mapped[int | None] = mapped_column(ForeignKey("posts.id"))
"""
)

MODELS_TYPES = """
import enum
import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, Numeric
from sqlalchemy.orm import Mapped, mapped_column

from flash_db import Model, TimestampMixin


class Status(enum.Enum):
    DRAFT = "draft"
    PUBLISHED = "published"


class Invoice(Model, TimestampMixin):
    __tablename__ = "invoices"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    status: Mapped[Status] = mapped_column(default=Status.DRAFT)
    lines: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    total: Mapped[Decimal] = mapped_column(Numeric(10, 2))
"""


@dataclass
class Result:
    """What one ``flash-db`` run printed, and its exit status."""

    status: int
    out: str
    err: str


@dataclass
class Project:
    """A temporary user project: pyproject.toml with [tool.flash_db] and an ``app`` package."""

    root: Path
    url: str

    def write_models(self, source: str) -> None:
        """Replace ``app/models.py``."""
        (self.root / "app" / "models.py").write_text(textwrap.dedent(source))

    @property
    def versions(self) -> list[str]:
        """The migration file names, sorted."""
        return sorted(path.name for path in (self.root / "migrations" / "versions").glob("*.py"))

    async def run(self, *args: str, database_url: str | None = None) -> Result:
        """Run ``python -m flash_db ARGS`` in the project, as a user would."""
        return await _flash_db(self.root, *args, database_url=database_url)

    async def ok(self, *args: str, database_url: str | None = None) -> str:
        """Run a command that must succeed; return its output."""
        result = await self.run(*args, database_url=database_url)
        assert result.status == 0, f"flash-db {' '.join(args)} failed:\n{result.out}{result.err}"
        return result.out

    async def schema(self) -> dict[str, Any]:
        """Reflect the tables, columns, unique constraints, foreign keys and indexes."""
        engine = create_async_engine(self.url)
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(_reflect)
        finally:
            await engine.dispose()

    async def query(self, sql: str, **params: Any) -> list[tuple[Any, ...]]:
        """Run ``sql`` with bound ``params`` (committed); return the rows, if any."""
        engine = create_async_engine(self.url)
        try:
            async with engine.begin() as conn:
                result = await conn.execute(text(sql), params)
                return [tuple(row) for row in result] if result.returns_rows else []
        finally:
            await engine.dispose()


async def _flash_db(cwd: Path, *args: str, database_url: str | None = None) -> Result:
    """Run ``python -m flash_db ARGS`` in ``cwd``; ``DATABASE_URL`` only when given."""
    env = {**os.environ, "PYTHONPATH": ""}
    env.pop("DATABASE_URL", None)
    if database_url is not None:
        env["DATABASE_URL"] = database_url
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "flash_db",
        *args,
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return Result(process.returncode, out.decode(), err.decode())


def _reflect(conn: Connection) -> dict[str, Any]:
    inspector = inspect(conn)
    schema: dict[str, Any] = {}
    for table in inspector.get_table_names():
        schema[table] = {
            "columns": {
                column["name"]: getattr(column["type"], "length", None)
                for column in inspector.get_columns(table)
            },
            "unique": sorted(
                tuple(constraint["column_names"])
                for constraint in inspector.get_unique_constraints(table)
            ),
            "foreign_keys": sorted(
                (
                    tuple(fk["constrained_columns"]),
                    fk["referred_table"],
                    tuple(fk["referred_columns"]),
                )
                for fk in inspector.get_foreign_keys(table)
            ),
            "indexes": sorted(
                (index["name"], tuple(index["column_names"]))
                for index in inspector.get_indexes(table)
                if not index.get("unique")  # PostgreSQL lists unique constraints here too
            ),
        }
    return schema


async def _pg_admin(sql: str) -> None:
    engine = create_async_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.exec_driver_sql(sql)
    finally:
        await engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def migration_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database for one test: a SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'project.sqlite3'}"
        return
    # A synchronous fixture: the session fixture below runs its own event loop.
    request.getfixturevalue("postgresql_url")  # skips (fails under CI) when unreachable
    name = f"flash_migrations_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def project(tmp_path: Path, migration_url: str) -> Project:
    """A project whose [tool.flash_db] names its models module and the test database."""
    root = tmp_path / "project"
    (root / "app").mkdir(parents=True)
    (root / "app" / "__init__.py").write_text("")
    (root / "pyproject.toml").write_text(
        f'[tool.flash_db]\nmodels = "app.models"\nurl = "{migration_url}"\n'
    )
    return Project(root, migration_url)


async def test_migration_workflow_from_init_to_downgrade(project: Project) -> None:
    project.write_models(MODELS_V1)
    init(project=project.root)  # in-process: init imports no models
    assert (project.root / "migrations" / "env.py").is_file()

    assert "0001_initial.py" in await project.ok("makemigrations")
    assert project.versions == ["0001_initial.py"]
    assert "Applying 0001_initial... OK" in await project.ok("migrate")

    schema = await project.schema()
    assert set(schema) == {"alembic_version", "authors", "posts"}
    assert schema["authors"]["unique"] == [("email",)]
    assert schema["posts"]["foreign_keys"] == [(("author_id",), "authors", ("id",))]
    assert schema["posts"]["indexes"] == [("ix_posts_title", ("title",))]
    assert schema["authors"]["columns"]["name"] == 50
    await project.query(
        "INSERT INTO authors (id, name, email) VALUES (1, :n, :e)", n="Ada", e="a@x"
    )
    await project.query("INSERT INTO posts (id, title, author_id) VALUES (1, :t, 1)", t="Hello")

    project.write_models(MODELS_V2)
    pending = await project.run("makemigrations", "--check")  # CI's check: writes nothing
    assert pending.status == 1
    assert pending.out.startswith("4 change(s) without a migration")
    assert "  - Add column authors.karma\n" in pending.out
    assert project.versions == ["0001_initial.py"]
    output = await project.ok("makemigrations")
    [second] = [name for name in project.versions if name.startswith("0002_")]
    assert second in output
    assert "Applying 0002_" in await project.ok("migrate")

    schema = await project.schema()
    assert set(schema) == {"alembic_version", "authors", "posts", "tags"}
    assert schema["authors"]["columns"]["name"] == 120
    assert ("ix_authors_karma", ("karma",)) in schema["authors"]["indexes"]
    assert schema["authors"]["unique"] == [("email",)]  # kept through SQLite's table rebuild
    assert schema["tags"]["unique"] == [("label",)]
    assert schema["tags"]["foreign_keys"] == [(("post_id",), "posts", ("id",))]
    # The existing row survived and got the server default.
    assert await project.query("SELECT name, email, karma FROM authors") == [("Ada", "a@x", 0)]
    await project.query("INSERT INTO tags (id, label, post_id) VALUES (1, 'news', 1)")

    # No change: nothing written, and status 0 as Django's (makemigrations && migrate works).
    result = await project.run("makemigrations")
    assert result.status == 0
    assert "No changes detected" in result.out
    assert project.versions == ["0001_initial.py", second]
    checked = await project.run("makemigrations", "--check")
    assert (checked.status, checked.out) == (0, "No changes detected.\n")

    sql = await project.ok("sqlmigrate", "0002")
    assert "CREATE TABLE tags" in sql
    assert "karma" in sql
    assert "PRAGMA" not in sql  # SQLite's reflection reads are left out
    assert "DROP TABLE tags" in await project.ok("sqlmigrate", second[:-3], "--backwards")

    assert "Unapplying 0002_" in await project.ok("downgrade", "0001_initial")
    schema = await project.schema()
    assert set(schema) == {"alembic_version", "authors", "posts"}
    assert "karma" not in schema["authors"]["columns"]
    assert schema["authors"]["columns"]["name"] == 50
    assert schema["authors"]["indexes"] == []
    assert schema["authors"]["unique"] == [("email",)]
    assert schema["posts"]["foreign_keys"] == [(("author_id",), "authors", ("id",))]
    assert await project.query("SELECT name, email FROM authors") == [("Ada", "a@x")]
    assert await project.query("SELECT title, author_id FROM posts") == [("Hello", 1)]
    assert await project.ok("showmigrations") == f"[X] 0001_initial\n[ ] {second[:-3]}\n"

    # --fake records a migration as applied and touches no table.
    assert f"Faking {second[:-3]}... OK" in await project.ok("migrate", "--fake")
    assert await project.query("SELECT version_num FROM alembic_version") == [("0002",)]
    assert "tags" not in await project.schema()


async def test_custom_types_render_with_their_imports_and_run(project: Project) -> None:
    project.write_models(MODELS_TYPES)
    init(project=project.root)
    await project.ok("makemigrations", "-m", "invoices")
    [name] = project.versions
    assert name == "0001_invoices.py"
    source = (project.root / "migrations" / "versions" / name).read_text()
    assert "from flash_db.models import AwareDateTime" in source
    assert "AwareDateTime(timezone=True)" in source
    assert "sa.Enum('DRAFT', 'PUBLISHED', name='status')" in source
    assert "sa.JSON()" in source
    assert "sa.Numeric(precision=10, scale=2)" in source
    assert "sa.Uuid()" in source

    await project.ok("migrate")
    # The models round-trip through Flash DB on the migrated schema.
    script = """
import asyncio, decimal
import flash_db
from app.models import Invoice, Status

async def main() -> None:
    flash_db.init_db()
    async with flash_db.session() as db:
        made = await Invoice.objects.create(db, total=decimal.Decimal("9.99"), lines={"a": 1})
        got = await Invoice.objects.get(db, pk=made.pk)
        print(got.status is Status.DRAFT, got.total, got.lines, got.created_at.tzinfo)
    await flash_db.close_db()

asyncio.run(main())
"""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        script,
        cwd=project.root,
        env={**os.environ, "DATABASE_URL": project.url},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert out.decode() == "True 9.99 {'a': 1} UTC\n", err.decode()

    # Autogenerate sees no difference for these types (no false positives) ...
    assert "No changes detected" in await project.ok("makemigrations")
    # ... and on PostgreSQL the enum type goes with its table, so down and up again work.
    await project.ok("downgrade", "zero")
    assert set(await project.schema()) == {"alembic_version"}
    await project.ok("migrate")
    assert "invoices" in await project.schema()


def test_settings_come_from_options_then_environment_then_pyproject(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.flash_db]\nmodels = ["a.models", "b.models"]\nurl = "sqlite:///setting.db"\n'
        'migrations = "db/migrations"\n'
    )
    nested = tmp_path / "src" / "pkg"
    nested.mkdir(parents=True)
    monkeypatch.chdir(nested)  # the pyproject.toml is found upwards
    monkeypatch.delenv("DATABASE_URL", raising=False)

    settings = load_settings()
    assert settings.root == tmp_path
    assert settings.models == ("a.models", "b.models")
    assert settings.migrations == tmp_path / "db" / "migrations"
    # A relative SQLite path is taken from the working directory (as flash_lifespan() does).
    assert str(settings.database_url()) == f"sqlite+aiosqlite:///{nested / 'setting.db'}"

    monkeypatch.setenv("DATABASE_URL", "postgresql://env/db")
    assert str(load_settings().database_url()) == "postgresql+asyncpg://env/db"
    overridden = load_settings(url="sqlite:///option.db", models="c.models", migrations="here")
    assert overridden.url == "sqlite:///option.db"
    assert overridden.models == ("c.models",)
    assert overridden.migrations == nested / "here"


def test_unknown_setting_names_the_choices(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.flash_db]\nmodel = "app.models"\n')
    with pytest.raises(
        FlashDBError, match=r"Unknown setting 'model'.*Choices are: migrations, models, url"
    ):
        load_settings(project=tmp_path)


def test_cli_errors_say_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setattr(sys, "path", list(sys.path))  # the project root is prepended

    assert main(["migrate", "--url", "sqlite:///x.db"]) == 1
    assert "run 'flash-db init' first" in capsys.readouterr().err

    assert main(["init"]) == 0
    assert "[tool.flash_db] models" in capsys.readouterr().out
    assert main(["init"]) == 1
    assert "already exists and is not empty" in capsys.readouterr().err

    assert main(["makemigrations", "--url", "sqlite:///x.db"]) == 1
    assert "--models package.module" in capsys.readouterr().err

    assert main(["showmigrations", "--url", "sqlite:///x.db", "--models", "nowhere.models"]) == 1
    assert "Cannot import the models module 'nowhere.models'" in capsys.readouterr().err

    (tmp_path / "migrations" / "versions" / "0003_a.py").write_text("")
    (tmp_path / "migrations" / "versions" / "0003_b.py").write_text("")
    assert main(["showmigrations", "--url", "sqlite:///x.db"]) == 1
    assert "Conflicting migrations: 0003_a.py and 0003_b.py" in capsys.readouterr().err

    with pytest.raises(SystemExit) as exit_info:
        main(["frobnicate"])
    assert exit_info.value.code == 2


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "postgresql://postgres@127.0.0.1:1/nowhere",
            "flash-db showmigrations: cannot use the database at "
            "postgresql+asyncpg://postgres@127.0.0.1:1/nowhere: ",
        ),
        (
            "postgresql://user@host:port/db",
            "flash-db showmigrations: The database URL from the url argument is not a URL.",
        ),
        ("mysql://root@localhost/app", "'mysql' is not a database Flash DB supports"),
    ],
)
async def test_a_database_that_cannot_be_used_is_one_paragraph_without_a_traceback(
    tmp_path: Path, url: str, expected: str
) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "__init__.py").write_text("")
    (tmp_path / "app" / "models.py").write_text(textwrap.dedent(MODELS_V1))
    (tmp_path / "pyproject.toml").write_text('[tool.flash_db]\nmodels = "app.models"\n')
    assert (await _flash_db(tmp_path, "init")).status == 0
    result = await _flash_db(tmp_path, "showmigrations", "--url", url)
    assert result.status == 1
    assert result.out == ""
    assert expected in result.err
    assert "Traceback" not in result.err
    assert len(result.err.strip().splitlines()) == 1, result.err


def test_migration_names_follow_their_operations() -> None:
    from alembic.operations import ops
    from sqlalchemy import Column, Integer

    operations: list[ops.MigrateOperation] = [
        ops.CreateTableOp("tags", []),
        ops.ModifyTableOps("authors", [ops.AddColumnOp("authors", Column("karma", Integer))]),
        ops.DropColumnOp("posts", "body"),
    ]
    assert describe_operations(operations) == "tags_authors_karma_remove_posts_body"
    assert describe_operations([]).startswith("auto_")


_FENCE = re.compile(
    r'^```(?P<lang>\w+)(?: title="(?P<title>[^"]+)")?\n(?P<body>.*?)^```$', re.M | re.S
)


def _expected_matches(expected: list[str], actual: list[str]) -> bool:
    """Exact lines, or with ``...`` lines in ``expected``: its other lines in order."""
    if "..." not in expected:
        return expected == actual
    lines = iter(actual)
    return all(any(line == wanted for line in lines) for wanted in expected if wanted != "...")


# SQLite only: the workflow test above covers both backends; this one checks the page.
@pytest.mark.parametrize("migration_url", ["sqlite"], indirect=True)
async def test_docs_page_workflow_runs_as_written(project: Project) -> None:
    """Replay docs/migrations.md: write its files, run its commands, compare the output."""
    commands = 0
    for fence in _FENCE.finditer(DOCS_PAGE.read_text()):
        lang, title, body = fence["lang"], fence["title"], fence["body"]
        if lang in ("toml", "python") and title:
            path = project.root / title
            if body.startswith("def upgrade"):  # a hand-written body for a generated file
                head = path.read_text().split("def upgrade", 1)[0]
                path.write_text(head + body)
            else:
                path.write_text(body)
        elif lang == "console":
            for block in body.split("$ ")[1:]:
                line, *expected = block.rstrip("\n").split("\n")
                program, *args = shlex.split(line)
                assert program == "flash-db"
                result = await project.run(*args, database_url=project.url)
                actual = (result.out + result.err).rstrip("\n").split("\n")
                assert _expected_matches(expected, actual), (
                    f"docs/migrations.md: $ {line}\nexpected:\n{expected}\ngot:\n{actual}"
                )
                commands += 1
    assert commands >= 12
    # The rename kept the data: the column holds what was written before.
    await project.query("INSERT INTO authors (id, full_name, email) VALUES (1, 'Ada', 'a@x')")
    await project.ok("downgrade", "0002", database_url=project.url)
    assert await project.query("SELECT name, bio FROM authors") == [("Ada", "")]


async def _amigrate_example_app(url: str) -> str:
    """Run ``await amigrate(url=url)`` in the repository, in a subprocess; return its progress."""
    script = (
        "import asyncio, io, sys\n"
        "from flash_db.migrations import amigrate\n"
        "async def main() -> None:\n"
        "    progress = io.StringIO()\n"
        "    await amigrate(url=sys.argv[1], stdout=progress)\n"
        "    print(progress.getvalue(), end='')\n"
        "asyncio.run(main())\n"
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        script,
        url,
        cwd=ROOT,  # [tool.flash_db] in the repository's pyproject.toml names the example app
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    return out.decode()


@pytest.mark.postgres_only
@pytest.mark.parametrize("migration_url", ["postgresql"], indirect=True)
async def test_concurrent_migrate_applies_each_migration_once(migration_url: str) -> None:
    """Instances starting together: one migrates, the other waits and finds nothing to do."""
    outputs = await asyncio.gather(*(_amigrate_example_app(migration_url) for _ in range(3)))
    assert sorted(outputs) == ["", "", "  Applying 0001_initial... OK\n"]


async def test_example_app_migrations_match_its_models(migration_url: str) -> None:
    """The shipped example_app/migrations build exactly the schema of its models.

    They are applied with ``amigrate()`` inside a running event loop, as the
    app's lifespan does (in a subprocess: the app's models stay out of this one).
    """
    assert await _amigrate_example_app(migration_url) == "  Applying 0001_initial... OK\n"
    checked = await _flash_db(ROOT, "makemigrations", "--check", "--url", migration_url)
    assert (checked.status, checked.out) == (0, "No changes detected.\n"), checked.out + checked.err


async def test_core_imports_without_alembic(tmp_path: Path) -> None:
    # A subprocess: re-importing flash_db here would give the suite a second Model.
    script = (
        "import sys\n"
        "sys.modules['alembic'] = None  # as if the migrations extra were not installed\n"
        "import flash_db, flash_db_fastapi\n"
        "from flash_db.cli import main\n"
        "sys.exit(main(['migrate']))\n"
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        script,
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await process.communicate()
    assert process.returncode == 1, err.decode()
    assert "needs Alembic" in err.decode()
    assert "pip install 'flash-db[migrations]'" in err.decode()


# -- constraints: named alike on both databases, so that changes are seen and portable --

MODELS_BARE = (
    MODELS_V1.replace(
        "email: Mapped[str] = mapped_column(String(100), unique=True)",
        "email: Mapped[str] = mapped_column(String(100))",
    )
    .replace(
        "title: Mapped[str] = mapped_column(String(100), index=True)",
        "title: Mapped[str] = mapped_column(String(100))",
    )
    .replace(
        'author_id: Mapped[int] = mapped_column(ForeignKey("authors.id"))',
        "author_id: Mapped[int]",
    )
)


def _other_database(url: str, tmp_path: Path) -> Iterator[str]:
    """An empty database of the other backend than ``url``'s."""
    if not url.startswith("sqlite"):
        yield f"sqlite+aiosqlite:///{tmp_path / 'other.sqlite3'}"
        return
    name = f"flash_other_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def other_url(migration_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """A second empty database, of the other backend (PostgreSQL must be reachable)."""
    request.getfixturevalue("postgresql_url")
    yield from _other_database(migration_url, tmp_path)


async def test_dropping_and_adding_constraints_is_detected_and_applies_on_both_databases(
    project: Project, other_url: str
) -> None:
    project.write_models(MODELS_V1)
    await project.ok("init")
    await project.ok("makemigrations")
    await project.ok("migrate")
    created = await project.schema()
    assert created["authors"]["unique"] == [("email",)]
    assert created["posts"]["indexes"] == [("ix_posts_title", ("title",))]

    # Remove unique=True, index=True and the foreign key: each is a change.
    project.write_models(MODELS_BARE)
    pending = await project.run("makemigrations", "--check")
    assert pending.status == 1, pending.out + pending.err
    assert "  - Drop uq_authors_email on authors\n" in pending.out
    assert "  - Drop index ix_posts_title\n" in pending.out
    assert "  - Drop fk_posts_author_id_authors on posts\n" in pending.out
    await project.ok("makemigrations", "-m", "loosen")
    await project.ok("migrate")
    loose = await project.schema()
    assert loose["authors"]["unique"] == []
    assert loose["posts"]["indexes"] == []
    assert loose["posts"]["foreign_keys"] == []
    assert "No changes detected" in await project.ok("makemigrations")

    # And back: adding them is a change too.
    project.write_models(MODELS_V1)
    pending = await project.run("makemigrations", "--check")
    assert pending.status == 1
    assert "  - Add uq_authors_email on authors\n" in pending.out
    assert "  - Create index ix_posts_title on posts\n" in pending.out
    assert "  - Add fk_posts_author_id_authors on posts\n" in pending.out
    await project.ok("makemigrations", "-m", "tighten")
    await project.ok("migrate")
    assert await project.schema() == created
    assert "No changes detected" in await project.ok("makemigrations")

    # The same migration files, made on one database, apply on the other: down and up.
    other = Project(project.root, other_url)
    applied = await project.ok("migrate", database_url=other_url)
    assert applied.count("Applying") == 3
    assert await other.schema() == created
    await project.ok("downgrade", "0002", database_url=other_url)
    assert (await other.schema())["authors"]["unique"] == []
    await project.ok("downgrade", "zero", database_url=other_url)
    assert "No changes detected" in await project.ok("makemigrations")
