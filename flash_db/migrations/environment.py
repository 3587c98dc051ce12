"""What a project's ``env.py`` uses: the settings, Alembic's options and the autogenerate hooks.

Flash DB's choices for Alembic, in one place so that every generated ``env.py``
gets fixes with the package:

- ``render_as_batch=True`` on every backend: SQLite needs batch mode for
  column changes (it recreates the table), and the same migration then runs
  unchanged on PostgreSQL, where batch operations are plain ``ALTER TABLE``.
- ``compare_type=True`` and ``compare_server_default=True``: a changed
  ``String`` length or server default is a change.
- Types from outside SQLAlchemy (``flash_db.models.AwareDateTime``, your own
  ``TypeDecorator``) are rendered with the import they need.
- Dropping a table drops its PostgreSQL enum types too, so that a downgrade
  followed by an upgrade does not fail on ``type ... already exists``.
- Revisions are numbered like Django's (``0002_posts_views.py``), named after
  their operations when no message is given, and an empty autogenerate writes
  no file.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic.autogenerate import renderers
from alembic.autogenerate.api import AutogenContext
from alembic.config import Config
from alembic.operations import ops
from alembic.runtime.migration import MigrationContext, MigrationInfo
from alembic.script import Script
from sqlalchemy import Enum, MetaData, Table, text
from sqlalchemy.engine import Connection
from sqlalchemy.types import TypeEngine

from flash_db.migrations.settings import Settings, load_settings

__all__ = [
    "SETTINGS_KEY",
    "STDOUT_KEY",
    "SUMMARY_KEY",
    "DropEnumTypeOp",
    "compare_server_default",
    "describe_operations",
    "lock",
    "options",
    "process_revision_directives",
    "render_item",
    "report_step",
    "settings",
    "summarize_operations",
]

SETTINGS_KEY = "flash_db.settings"
STDOUT_KEY = "flash_db.stdout"
SUMMARY_KEY = "flash_db.summary"
_MAX_NAME = 52  # Django's limit for generated migration names
_LOCK_KEY = 0x466C617368_4442  # "FlashDB": the advisory lock that serialises migrations


def settings(config: Config) -> Settings:
    """Return the settings a ``flash-db`` command passed, else ``[tool.flash_db]``; import models.

    Running plain ``alembic`` against the folder (with your own ``alembic.ini``)
    therefore works too: the settings then come from ``pyproject.toml`` and
    ``DATABASE_URL``.
    """
    found = config.attributes.get(SETTINGS_KEY)
    result = found if isinstance(found, Settings) else load_settings()
    result.import_models()
    return result


def lock(connection: Connection) -> None:
    """Let one process at a time migrate a PostgreSQL database (app instances starting at once).

    A transaction-level advisory lock: a second ``migrate`` waits for the first
    to commit, then finds the migrations applied. Call it inside the migration
    transaction, before ``context.run_migrations()``.
    """
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})


def options() -> dict[str, Any]:
    """Return Flash DB's keyword arguments for ``context.configure()`` (see the module doc)."""
    return {
        "render_as_batch": True,
        "compare_type": True,
        "compare_server_default": compare_server_default,
        "render_item": render_item,
        "process_revision_directives": process_revision_directives,
        "on_version_apply": report_step,
    }


def _sqlite_default(text: str) -> str:
    text = re.sub(r"^\((.*)\)$", r"\1", text.strip())
    return re.sub(r"^\"?'(.*)'\"?$", r"\1", text)


def compare_server_default(
    context: MigrationContext,
    inspected_column: Any,
    metadata_column: Any,
    inspected_default: str | None,
    metadata_default: Any,
    rendered_metadata_default: str | None,
) -> bool | None:
    """Compare server defaults; on SQLite also when a default is the empty string.

    Alembic's SQLite comparison unquotes ``'x'`` and ``('x')`` but not ``''``, so
    ``server_default=""`` was reported changed on every run. ``None`` lets Alembic
    compare everything else.
    """
    if context.dialect.name != "sqlite" or inspected_default is None:
        return None
    if rendered_metadata_default is None:
        return None
    return _sqlite_default(inspected_default) != _sqlite_default(rendered_metadata_default)


# -- type rendering ---------------------------------------------------------------------


def render_item(kind: str, obj: Any, autogen_context: AutogenContext) -> str | bool:
    """Render types from outside SQLAlchemy by class name, adding their import.

    Alembic writes them as ``flash_db.models.AwareDateTime()`` without importing
    ``flash_db.models``, so the migration fails with ``NameError``; here the file
    gets ``from flash_db.models import AwareDateTime`` instead. Returning
    ``False`` leaves every other item to Alembic.
    """
    if kind != "type" or not isinstance(obj, TypeEngine):
        return False
    cls = type(obj)
    if cls.__module__.split(".")[0] == "sqlalchemy" or "<" in cls.__qualname__:
        return False  # SQLAlchemy's own (Alembic renders them), or defined in a function
    outer = cls.__qualname__.split(".")[0]
    autogen_context.imports.add(f"from {cls.__module__} import {outer}")
    # The repr starts with the class name; nested classes need their full path.
    return cls.__qualname__ + repr(obj)[len(cls.__name__) :]


class DropEnumTypeOp(ops.MigrateOperation):
    """Drop a named enum type after its table (a no-op where enums are not database types)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def reverse(self) -> ops.MigrateOperation:
        """Raise: the type is re-created with the table that uses it, never on its own."""
        raise NotImplementedError("DropEnumTypeOp is generated after drop_table only")


@renderers.dispatch_for(DropEnumTypeOp)
def _render_drop_enum_type(autogen_context: AutogenContext, op: DropEnumTypeOp) -> str:
    # Plain SQLAlchemy, so that the migration does not need Flash DB to run.
    return f"sa.Enum(name={op.name!r}).drop(op.get_bind(), checkfirst=True)"


def _enum_names(table: Table) -> set[str]:
    return {
        column.type.name
        for column in table.columns
        if isinstance(column.type, Enum) and column.type.name and column.type.native_enum
    }


def _with_enum_drops(
    container: ops.OpContainer, metadata: MetaData | None
) -> list[ops.MigrateOperation]:
    """Return ``container``'s operations with the enum drops each dropped table needs."""
    dropped = {op.table_name for op in container.ops if isinstance(op, ops.DropTableOp)}
    kept: set[str] = set()
    if metadata is not None:
        for table in metadata.tables.values():
            if table.name not in dropped:
                kept |= _enum_names(table)
    result: list[ops.MigrateOperation] = []
    for op in container.ops:
        result.append(op)
        if isinstance(op, ops.DropTableOp):
            for name in sorted(_enum_names(op.to_table()) - kept):
                result.append(DropEnumTypeOp(name))
                kept.add(name)  # another dropped table may use the same type
    return result


# -- revision naming --------------------------------------------------------------------


def _fragments(operations: Iterable[ops.MigrateOperation]) -> Iterator[str]:
    for op in operations:
        if isinstance(op, ops.ModifyTableOps):
            yield from _fragments(op.ops)
        elif isinstance(op, ops.CreateTableOp):
            yield op.table_name
        elif isinstance(op, ops.DropTableOp):
            yield f"delete_{op.table_name}"
        elif isinstance(op, ops.AddColumnOp):
            yield f"{op.table_name}_{op.column.name}"
        elif isinstance(op, ops.DropColumnOp):
            yield f"remove_{op.table_name}_{op.column_name}"
        elif isinstance(op, ops.AlterColumnOp):
            yield f"alter_{op.table_name}_{op.column_name}"
        elif isinstance(op, ops.CreateIndexOp) and op.index_name:
            yield str(op.index_name)
        elif isinstance(op, ops.DropIndexOp) and op.index_name:
            yield f"remove_{op.index_name}"


def summarize_operations(operations: Iterable[ops.MigrateOperation]) -> Iterator[str]:
    """Yield one line per operation as ``makemigrations`` lists them: ``Add column posts.views``."""
    for op in operations:
        if isinstance(op, ops.ModifyTableOps):
            yield from summarize_operations(op.ops)
        elif isinstance(op, ops.CreateTableOp):
            yield f"Create table {op.table_name}"
        elif isinstance(op, ops.DropTableOp):
            yield f"Drop table {op.table_name}"
        elif isinstance(op, ops.AddColumnOp):
            yield f"Add column {op.table_name}.{op.column.name}"
        elif isinstance(op, ops.DropColumnOp):
            yield f"Remove column {op.table_name}.{op.column_name}"
        elif isinstance(op, ops.AlterColumnOp):
            yield f"Alter column {op.table_name}.{op.column_name}"
        elif isinstance(op, ops.CreateIndexOp):
            yield f"Create index {op.index_name} on {op.table_name}"
        elif isinstance(op, ops.DropIndexOp):
            yield f"Drop index {op.index_name}"
        elif isinstance(op, ops.AddConstraintOp | ops.DropConstraintOp):
            verb = "Add" if isinstance(op, ops.AddConstraintOp) else "Drop"
            name = getattr(op, "constraint_name", None) or "constraint"
            table = getattr(op, "table_name", None) or getattr(op, "source_table", None) or "?"
            yield f"{verb} {name} on {table}"
        else:
            yield type(op).__name__


def describe_operations(operations: Iterable[ops.MigrateOperation]) -> str:
    """Return a Django-style migration name for ``operations`` (``posts_views_tags``)."""
    name = "_".join(dict.fromkeys(_fragments(operations)))
    name = re.sub(r"\W+", "_", name).strip("_").lower()
    if not name or len(name) > _MAX_NAME:
        return f"auto_{datetime.now(UTC):%Y%m%d_%H%M}"
    return name


def process_revision_directives(
    context: MigrationContext, revision: Any, directives: list[ops.MigrationScript]
) -> None:
    """Write nothing when autogenerate found no change; name the migration; drop enum types."""
    if not directives:
        return
    script = directives[0]
    if all(upgrade.is_empty() for upgrade in script.upgrade_ops_list):
        directives[:] = []
        return
    if not script.message:
        script.message = describe_operations(
            op for upgrade in script.upgrade_ops_list for op in upgrade.ops
        )
    if context.config is not None:
        context.config.attributes[SUMMARY_KEY] = list(
            summarize_operations(op for upgrade in script.upgrade_ops_list for op in upgrade.ops)
        )
    metadata = context.opts.get("target_metadata")
    target = metadata if isinstance(metadata, MetaData) else None
    for upgrade in script.upgrade_ops_list:
        upgrade.ops = _with_enum_drops(upgrade, target)
    for downgrade in script.downgrade_ops_list:
        downgrade.ops = _with_enum_drops(downgrade, target)


# -- progress ---------------------------------------------------------------------------


def report_step(*, ctx: MigrationContext, step: MigrationInfo, heads: Any, run_args: Any) -> None:
    """Print ``Applying 0001_initial... OK`` (or Unapplying, Faking) like Django's migrate."""
    config = ctx.config
    stream = config.attributes.get(STDOUT_KEY) if config is not None else None
    if stream is None:
        return
    revision = step.up_revision
    name = Path(revision.path).stem if isinstance(revision, Script) else step.up_revision_id
    if step.is_stamp:
        verb = "Faking" if step.is_upgrade else "Unfaking"
    else:
        verb = "Applying" if step.is_upgrade else "Unapplying"
    stream.write(f"  {verb} {name}... OK\n")
