"""Migrations on Alembic: ``flash-db makemigrations`` / ``migrate`` and their Python API.

Needs the ``migrations`` extra (``pip install flash-db[migrations]``); the rest of
Flash DB imports without Alembic.
"""

from flash_db.migrations.commands import (
    MigrationError,
    MigrationState,
    NoChanges,
    amigrate,
    check,
    downgrade,
    init,
    makemigrations,
    migrate,
    showmigrations,
    sqlmigrate,
)
from flash_db.migrations.settings import Settings, load_settings

__all__ = [
    "MigrationError",
    "MigrationState",
    "NoChanges",
    "Settings",
    "amigrate",
    "check",
    "downgrade",
    "init",
    "load_settings",
    "makemigrations",
    "migrate",
    "showmigrations",
    "sqlmigrate",
]
