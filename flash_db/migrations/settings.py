"""Where a project's models, database and migration folder are: the ``[tool.flash_db]`` settings.

A command-line option wins over the ``DATABASE_URL`` environment variable (for
the URL only), which wins over ``[tool.flash_db]`` in the nearest
``pyproject.toml`` (searched from the working directory upwards)::

    [tool.flash_db]
    models = "app.models"            # or a list of modules
    url = "sqlite+aiosqlite:///db.sqlite3"
    migrations = "migrations"        # relative to the pyproject.toml
"""

from __future__ import annotations

import importlib
import os
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL

from flash_db.database import normalize_url
from flash_db.exceptions import FlashDBError

__all__ = ["Settings", "load_settings"]

_KEYS = ("migrations", "models", "url")


@dataclass(frozen=True)
class Settings:
    """A project's migration settings, with every path made absolute."""

    root: Path
    migrations: Path
    models: tuple[str, ...] = ()
    url: str | None = None

    def database_url(self) -> URL:
        """Return the database URL with its async driver, or raise ``FlashDBError``."""
        if not self.url:
            raise FlashDBError(
                "No database URL: pass --url, set the DATABASE_URL environment variable, "
                'or add url = "..." to [tool.flash_db] in pyproject.toml.'
            )
        return normalize_url(self.url)

    def import_models(self) -> None:
        """Import the models modules so that their tables join ``Model.metadata``."""
        if not self.models:
            raise FlashDBError(
                "Flash DB does not know where your models are: pass --models package.module, "
                'or add models = "package.module" to [tool.flash_db] in pyproject.toml.'
            )
        root = str(self.root)
        if root not in sys.path:
            sys.path.insert(0, root)
        for name in self.models:
            try:
                importlib.import_module(name)
            except ModuleNotFoundError as error:
                if error.name is None or not f"{name}.".startswith(f"{error.name}."):
                    raise
                raise FlashDBError(
                    f"Cannot import the models module {name!r} (from {root}): {error}. "
                    "Check the models setting and run the command from your project."
                ) from error


def _find_pyproject(start: Path) -> tuple[Path | None, dict[str, Any]]:
    """Return the nearest ``pyproject.toml`` with a ``[tool.flash_db]`` table, and the table."""
    for folder in (start, *start.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            with candidate.open("rb") as file:
                table = tomllib.load(file).get("tool", {}).get("flash_db")
            if isinstance(table, dict):
                return candidate, table
    return None, {}


def load_settings(
    *,
    models: str | list[str] | tuple[str, ...] | None = None,
    url: str | None = None,
    migrations: str | os.PathLike[str] | None = None,
    project: str | os.PathLike[str] | None = None,
) -> Settings:
    """Return the settings: the arguments, then ``$DATABASE_URL``, then ``[tool.flash_db]``.

    ``project`` is where the search for ``pyproject.toml`` starts (the working
    directory by default); relative paths are taken from the file's folder.
    """
    start = Path(project if project is not None else os.getcwd()).resolve()
    pyproject, table = _find_pyproject(start)
    unknown = sorted(set(table) - set(_KEYS))
    if unknown:
        raise FlashDBError(
            f"Unknown setting {unknown[0]!r} in [tool.flash_db] of {pyproject}. "
            f"Choices are: {', '.join(_KEYS)}."
        )
    root = pyproject.parent if pyproject is not None else start
    configured_models = models if models is not None else table.get("models", ())
    if isinstance(configured_models, str):
        configured_models = (configured_models,)
    # A folder given as an argument is taken from the working directory, like any
    # command-line path; the setting is taken from the pyproject.toml's folder.
    if migrations is not None:
        folder = Path(migrations).resolve()
    else:
        folder = root / str(table.get("migrations", "migrations"))
    return Settings(
        root=root,
        migrations=folder,
        models=tuple(configured_models),
        url=url or os.environ.get("DATABASE_URL") or table.get("url"),
    )
