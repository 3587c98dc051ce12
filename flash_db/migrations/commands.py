"""The migration commands behind ``flash-db``, callable from Python too.

Each command takes the same keyword settings as :func:`load_settings`
(``models``, ``url``, ``migrations``, ``project``), so an application can
migrate at startup::

    from flash_db.migrations import amigrate

    await amigrate(models="app.models", migrations="app/migrations")
"""

from __future__ import annotations

import asyncio
import re
import shutil
import sys
import tempfile
from argparse import Namespace
from dataclasses import dataclass, replace
from io import StringIO
from pathlib import Path
from typing import Any, TextIO

from alembic import command
from alembic.autogenerate import produce_migrations
from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext
from alembic.script import Script, ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import event
from sqlalchemy.engine import Engine

from flash_db.exceptions import FlashDBError
from flash_db.migrations.environment import (
    SETTINGS_KEY,
    STDOUT_KEY,
    SUMMARY_KEY,
    describe_operations,
    summarize_operations,
)
from flash_db.migrations.settings import Settings, load_settings

__all__ = [
    "MigrationError",
    "MigrationState",
    "NoChanges",
    "amigrate",
    "check",
    "downgrade",
    "init",
    "makemigrations",
    "migrate",
    "showmigrations",
    "sqlmigrate",
]

_TEMPLATES = Path(__file__).parent / "templates"
_TEMPLATE_FILES = ("env.py", "script.py.mako", "README")


class MigrationError(FlashDBError):
    """A migration command could not do what was asked; the message says why."""


class NoChanges(MigrationError):
    """``makemigrations`` found no difference between the models and the database."""


@dataclass(frozen=True)
class MigrationState:
    """One migration as ``showmigrations`` lists it."""

    revision: str
    name: str
    applied: bool


def _settings(settings: Settings | None, overrides: dict[str, Any]) -> Settings:
    return settings if settings is not None else load_settings(**overrides)


def _config(settings: Settings, stdout: TextIO | None = None) -> Config:
    """Return an Alembic ``Config`` for ``settings`` (no ``alembic.ini`` involved)."""
    # quiet: Alembic's own "Generating ..." chatter; Flash DB prints its own lines.
    config = Config(stdout=stdout or sys.stdout, cmd_opts=Namespace(quiet=True))
    config.set_main_option("script_location", str(settings.migrations))
    # Django-like file names: versions/0002_posts_views.py ('%%' is a literal '%').
    config.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    config.set_main_option("truncate_slug_length", "52")
    config.attributes[SETTINGS_KEY] = settings
    config.attributes[STDOUT_KEY] = stdout
    return config


def _script_directory(settings: Settings) -> ScriptDirectory:
    settings.database_url()  # every command but init needs one: fail before importing models
    if not (settings.migrations / "env.py").is_file():
        raise MigrationError(
            f"No migrations folder at {settings.migrations}: run 'flash-db init' first "
            "(or point --migrations / [tool.flash_db] migrations to it)."
        )
    _refuse_duplicate_numbers(settings.migrations / "versions")
    return ScriptDirectory.from_config(_config(settings))


def _refuse_duplicate_numbers(versions: Path) -> None:
    """Raise when two migration files share a number (two branches each added ``0003``).

    Alembic would only warn that revision ``0003`` is present more than once and
    then skip one of the two files.
    """
    seen: dict[str, str] = {}
    for path in sorted(versions.glob("*.py")):
        number = re.match(r"\d+(?=_|$)", path.stem)
        if number is None:
            continue
        if number[0] in seen:
            raise MigrationError(
                f"Conflicting migrations: {seen[number[0]]} and {path.name} are both number "
                f"{number[0]}. Renumber the newer one: rename the file, set its revision to "
                "the next free number and its down_revision to the one before."
            )
        seen[number[0]] = path.name


def _name(script: Script) -> str:
    return Path(script.path).stem


def _resolve(script_directory: ScriptDirectory, revision: str) -> str:
    """Return Alembic's revision for ``revision``: a file name (``0001_initial``), or as is.

    Django's ``zero`` (before the first migration) is Alembic's ``base``.
    """
    if revision == "zero":
        return "base"
    for script in script_directory.walk_revisions():
        if revision == _name(script):
            return script.revision
    return revision


def _run(action: str, fn: Any) -> Any:
    try:
        return fn()
    except CommandError as error:
        message = str(error)
        if "not up to date" in message:
            message += " Run 'flash-db migrate' first: autogenerate compares against the database."
        elif "not a valid upgrade target" in message:
            message += " To go back to an earlier migration, use 'flash-db downgrade REVISION'."
        raise MigrationError(f"{action} failed: {message}") from error


def init(*, settings: Settings | None = None, **overrides: Any) -> Path:
    """Create the migrations folder (``env.py``, ``script.py.mako``, ``versions/``); return it."""
    settings = _settings(settings, overrides)
    folder = settings.migrations
    if folder.exists() and any(folder.iterdir()):
        raise MigrationError(f"{folder} already exists and is not empty; nothing was written.")
    (folder / "versions").mkdir(parents=True, exist_ok=True)
    for name in _TEMPLATE_FILES:
        shutil.copyfile(_TEMPLATES / name, folder / name)
    return folder


def _next_revision(script_directory: ScriptDirectory) -> str:
    """Return the next Django-style number (``0003``) after the highest numbered revision."""
    numbers = [
        int(script.revision)
        for script in script_directory.walk_revisions()
        if re.fullmatch(r"\d+", script.revision)
    ]
    return f"{max(numbers, default=0) + 1:04d}"


def makemigrations(
    message: str | None = None,
    *,
    empty: bool = False,
    settings: Settings | None = None,
    stdout: TextIO | None = None,
    **overrides: Any,
) -> Path:
    """Autogenerate the next migration from the models; return its file.

    Raises :class:`NoChanges`, writing nothing, when the models match the database.
    Without ``message`` the first migration is ``initial`` and later ones are named
    after their operations (``0002_posts_views``); one line per operation goes to
    ``stdout`` when given. ``empty=True`` writes a migration
    with empty ``upgrade()``/``downgrade()`` to fill in by hand (a rename, a data
    migration), without comparing anything.
    """
    settings = _settings(settings, overrides)
    script_directory = _script_directory(settings)
    has_revisions = any(True for _ in script_directory.walk_revisions())
    if message is None and not has_revisions:
        message = "initial"
    elif message is None and empty:
        message = describe_operations([])
    config = _config(settings, stdout)
    written = _run(
        "makemigrations",
        lambda: command.revision(
            config,
            message=message,
            autogenerate=not empty,
            rev_id=_next_revision(script_directory),
        ),
    )
    scripts = written if isinstance(written, list) else [written]
    scripts = [script for script in scripts if script is not None]
    if not scripts:
        raise NoChanges("No changes detected: the models match the database; nothing was written.")
    if stdout is not None:
        for line in config.attributes.get(SUMMARY_KEY, ()):
            stdout.write(f"  - {line}\n")
    return Path(scripts[0].path)


def check(*, settings: Settings | None = None, **overrides: Any) -> list[str]:
    """Return what a new migration would contain, one line per operation (empty: nothing).

    ``flash-db makemigrations --check`` for CI: migrate first, then this lists
    the model changes no migration holds yet, writing nothing.
    """
    settings = _settings(settings, overrides)
    script_directory = _script_directory(settings)
    config = _config(settings)
    changes: list[str] = []

    def compare(current: Any, context: MigrationContext) -> list[Any]:
        script = produce_migrations(context, context.opts["target_metadata"])
        operations = (op for upgrade in script.upgrade_ops_list for op in upgrade.ops)
        changes.extend(summarize_operations(operations))
        return []

    def run() -> None:
        with EnvironmentContext(config, script_directory, fn=compare, dont_mutate=True):
            script_directory.run_env()

    _run("makemigrations --check", run)
    return changes


def migrate(
    revision: str = "head",
    *,
    fake: bool = False,
    settings: Settings | None = None,
    stdout: TextIO | None = None,
    **overrides: Any,
) -> None:
    """Apply the migrations up to ``revision`` (every pending one by default).

    ``fake=True`` records them as applied without running them (Django's
    ``--fake``, Alembic's ``stamp``): for a database whose tables already exist.
    Use :func:`amigrate` from async code: this function runs its own event loop.
    """
    settings = _settings(settings, overrides)
    script_directory = _script_directory(settings)
    target = _resolve(script_directory, revision)
    config = _config(settings, stdout)
    if fake:
        _run("migrate --fake", lambda: command.stamp(config, target))
    else:
        _run("migrate", lambda: command.upgrade(config, target))


async def amigrate(
    revision: str = "head",
    *,
    settings: Settings | None = None,
    stdout: TextIO | None = None,
    **overrides: Any,
) -> None:
    """Apply the migrations up to ``revision`` from async code (e.g. a FastAPI lifespan).

    The migration runs in a worker thread with its own event loop and connection,
    so the caller's loop keeps serving and no pooled connection is borrowed.
    """
    await asyncio.to_thread(migrate, revision, settings=settings, stdout=stdout, **overrides)


def downgrade(
    revision: str,
    *,
    settings: Settings | None = None,
    stdout: TextIO | None = None,
    **overrides: Any,
) -> None:
    """Revert the applied migrations after ``revision`` (``zero`` reverts them all)."""
    settings = _settings(settings, overrides)
    script_directory = _script_directory(settings)
    target = _resolve(script_directory, revision)
    config = _config(settings, stdout)
    _run("downgrade", lambda: command.downgrade(config, target))


def showmigrations(*, settings: Settings | None = None, **overrides: Any) -> list[MigrationState]:
    """Return every migration, oldest first, and whether the database has applied it."""
    settings = _settings(settings, overrides)
    script_directory = _script_directory(settings)
    config = _config(settings)
    heads: list[str] = []

    def record_heads(current: Any, context: Any) -> list[Any]:
        heads.extend(current)
        return []  # no migration to run: only read the version table

    def read_heads() -> None:
        with EnvironmentContext(config, script_directory, fn=record_heads, dont_mutate=True):
            script_directory.run_env()

    _run("showmigrations", read_heads)
    applied = (
        {script.revision for script in script_directory.iterate_revisions(tuple(heads), "base")}
        if heads
        else set()
    )
    ordered = reversed(list(script_directory.walk_revisions()))
    return [
        MigrationState(script.revision, _name(script), script.revision in applied)
        for script in ordered
    ]


def sqlmigrate(
    revision: str,
    *,
    backwards: bool = False,
    settings: Settings | None = None,
    **overrides: Any,
) -> str:
    """Return the SQL of one migration (or of its reversal) without touching the database.

    PostgreSQL: Alembic's offline mode. SQLite: batch operations must reflect the
    table they rebuild, which offline mode cannot, so the migrations run on a
    scratch SQLite file (up to the step before, then the step, recorded) instead.
    """
    settings = _settings(settings, overrides)
    script_directory = _script_directory(settings)
    resolved = _resolve(script_directory, revision)
    script = _run("sqlmigrate", lambda: script_directory.get_revision(resolved))
    if script is None:
        raise MigrationError(f"sqlmigrate: no migration {revision!r}.")
    down = script.down_revision
    if isinstance(down, tuple | list):
        raise MigrationError(f"sqlmigrate: {revision!r} merges several revisions; give a range.")
    previous = down or "base"
    if settings.database_url().get_backend_name() == "sqlite":
        return _sqlite_dry_run(settings, script.revision, previous, backwards)
    buffer = StringIO()
    config = _config(settings)
    config.output_buffer = buffer
    if backwards:
        _run(
            "sqlmigrate",
            lambda: command.downgrade(config, f"{script.revision}:{previous}", sql=True),
        )
    else:
        span = f"{previous}:{script.revision}" if down else script.revision
        _run("sqlmigrate", lambda: command.upgrade(config, span, sql=True))
    return buffer.getvalue()


def _sqlite_dry_run(settings: Settings, revision: str, previous: str, backwards: bool) -> str:
    """Return the statements one step sends, replayed on a scratch SQLite database."""
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        statement = statement.strip()
        if statement.split(None, 1)[0].upper() in ("PRAGMA", "SELECT"):
            return  # the reads Alembic sends to reflect a table and find the version
        if parameters:
            statement += f"\n-- parameters: {parameters!r}"
        statements.append(statement + ";")

    with tempfile.TemporaryDirectory() as folder:
        scratch = replace(settings, url=f"sqlite+aiosqlite:///{Path(folder) / 'dry-run.sqlite3'}")
        config = _config(scratch)
        start, end = (revision, previous) if backwards else (previous, revision)
        _run("sqlmigrate", lambda: command.upgrade(config, start))
        # Engine-wide: the engine is created inside env.py; removed right after.
        event.listen(Engine, "before_cursor_execute", record)
        try:
            step = command.downgrade if backwards else command.upgrade
            _run("sqlmigrate", lambda: step(config, end))
        finally:
            event.remove(Engine, "before_cursor_execute", record)
    return "\n\n".join(statements) + "\n"
