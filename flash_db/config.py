"""Where a project's database is: one answer for the app, the ``flash-db`` command and migrations.

``flash_lifespan()``, the ``flash-db`` commands and ``amigrate()`` given no URL
all call :func:`database_url`, which reads, in order:

1. the ``DATABASE_URL`` environment variable;
2. ``url`` in the ``[tool.flash_db]`` table of the working directory's
   ``pyproject.toml`` (or of the nearest one above it that has the table);
3. ``sqlite+aiosqlite:///db.sqlite3``.

A relative SQLite path is taken from the working directory and returned
absolute, so a later ``chdir`` cannot point one process at another file.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from flash_db.exceptions import FlashDBError

__all__ = ["DEFAULT_URL", "ENVIRONMENT_VARIABLE", "database_url", "find_pyproject"]

DEFAULT_URL = "sqlite+aiosqlite:///db.sqlite3"
"""The database when nothing is configured: a SQLite file in the working directory."""

ENVIRONMENT_VARIABLE = "DATABASE_URL"


def find_pyproject(
    start: str | os.PathLike[str] | None = None,
) -> tuple[Path | None, dict[str, Any]]:
    """Return the nearest ``pyproject.toml`` with a ``[tool.flash_db]`` table, and the table.

    The search starts in ``start`` (the working directory by default) and goes up;
    ``(None, {})`` when no file has the table.
    """
    folder = Path(start if start is not None else os.getcwd()).resolve()
    for candidate_folder in (folder, *folder.parents):
        candidate = candidate_folder / "pyproject.toml"
        if not candidate.is_file():
            continue
        try:
            with candidate.open("rb") as file:
                table = tomllib.load(file).get("tool", {}).get("flash_db")
        except tomllib.TOMLDecodeError as error:
            raise FlashDBError(f"{candidate} is not valid TOML: {error}.") from error
        if isinstance(table, dict):
            return candidate, table
    return None, {}


def _absolute_sqlite(url: URL) -> URL:
    """Return ``url`` with a relative SQLite file path made absolute from the working directory."""
    database = url.database
    if (
        url.get_backend_name() != "sqlite"
        or not database
        or database == ":memory:"
        or database.startswith("file:")  # a URI filename (?uri=true): SQLite reads it as is
        or Path(database).is_absolute()
    ):
        return url
    return url.set(database=str(Path.cwd() / database))


def database_url(
    url: str | URL | None = None, *, start: str | os.PathLike[str] | None = None
) -> URL:
    """Return ``url``, else ``$DATABASE_URL``, else ``[tool.flash_db] url``, else ``db.sqlite3``.

    An explicit ``url`` is returned as given (parsed); a configured one has its
    relative SQLite path made absolute from the working directory. ``start`` is
    where the search for ``pyproject.toml`` begins (the working directory).
    Raises ``FlashDBError`` naming the source of a URL that does not parse.
    """
    if url is not None:
        return _parse(url, "the url argument")
    source, text = ENVIRONMENT_VARIABLE, os.environ.get(ENVIRONMENT_VARIABLE)
    if not text:
        pyproject, table = find_pyproject(start)
        configured = table.get("url")
        if configured is not None and not isinstance(configured, str):
            raise FlashDBError(
                f"[tool.flash_db] url in {pyproject} must be a string, got {configured!r}."
            )
        source, text = f"[tool.flash_db] url in {pyproject}", configured
    if not text:
        source, text = "the default", DEFAULT_URL
    return _absolute_sqlite(_parse(text, source))


def _parse(url: str | URL, source: str) -> URL:
    if isinstance(url, URL):
        return url
    try:
        return make_url(url)
    except (ArgumentError, ValueError) as error:  # ValueError: a port that is not a number
        raise FlashDBError(
            f"The database URL from {source} is not a URL. "
            "Write it as dialect+driver://user:password@host/dbname, "
            "e.g. postgresql+asyncpg://app@localhost/app or sqlite+aiosqlite:///db.sqlite3."
        ) from error
