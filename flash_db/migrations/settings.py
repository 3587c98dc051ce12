"""Where a project's models, database and migration folder are: the ``[tool.flash_db]`` settings.

A command-line option wins over the ``DATABASE_URL`` environment variable (for
the URL only), which wins over ``[tool.flash_db]`` in the nearest
``pyproject.toml`` (searched from the working directory upwards); the URL
then defaults to ``sqlite+aiosqlite:///db.sqlite3``, as for ``flash_lifespan()``
(one rule for all: :func:`flash_db.database_url`)::

    [tool.flash_db]
    models = "app.models"            # or a list of modules
    url = "sqlite+aiosqlite:///db.sqlite3"   # a relative path: from the working directory
    migrations = "migrations"        # relative to the pyproject.toml
"""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import URL

from flash_db.config import database_url, find_pyproject
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
        """Return the database URL with its async driver (``url``, else the configured one)."""
        return normalize_url(self.url if self.url else database_url())

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


def load_settings(
    *,
    models: str | list[str] | tuple[str, ...] | None = None,
    url: str | None = None,
    migrations: str | os.PathLike[str] | None = None,
    project: str | os.PathLike[str] | None = None,
) -> Settings:
    """Return the settings: the arguments, then ``$DATABASE_URL``, then ``[tool.flash_db]``.

    The URL is :func:`flash_db.database_url`'s: without ``url``, ``$DATABASE_URL``,
    then ``[tool.flash_db] url``, then ``sqlite+aiosqlite:///db.sqlite3``.

    ``project`` is where the search for ``pyproject.toml`` starts (the working
    directory by default); relative paths are taken from the file's folder.
    """
    start = Path(project if project is not None else os.getcwd()).resolve()
    pyproject, table = find_pyproject(start)
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
        url=database_url(url or None, start=start).render_as_string(hide_password=False),
    )
