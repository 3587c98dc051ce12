"""Alembic's environment for this project, written by ``flash-db init``; edit it freely.

The settings (models, database URL) come from the ``flash-db`` command, or from
``[tool.flash_db]`` in pyproject.toml and ``DATABASE_URL``. Flash DB's Alembic
options are in ``flash_db.migrations.environment.options()``.
"""

import asyncio

from alembic import context
from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from flash_db import Model
from flash_db.migrations import environment

settings = environment.settings(context.config)  # imports the models modules
target_metadata = Model.metadata
url = settings.database_url()


def run_migrations_offline() -> None:
    """Write the SQL of the migrations instead of running it (``flash-db sqlmigrate``)."""
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        **environment.options(),
    )
    with context.begin_transaction():
        context.run_migrations()


def do_run_migrations(connection: Connection) -> None:
    """Run the migrations on ``connection`` (in one transaction where DDL is transactional)."""
    context.configure(
        connection=connection, target_metadata=target_metadata, **environment.options()
    )
    with context.begin_transaction():
        environment.lock(connection)  # PostgreSQL: one migrating process at a time
        context.run_migrations()


async def run_migrations_online() -> None:
    """Connect with the async driver Flash DB uses (no pool: one connection) and migrate."""
    engine = create_async_engine(url, poolclass=pool.NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(do_run_migrations)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    asyncio.run(run_migrations_online())
