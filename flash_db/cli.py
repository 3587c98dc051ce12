"""The ``flash-db`` command (also ``python -m flash_db``): Django-style migration commands.

Every command accepts ``--models``, ``--url`` and ``--migrations``; without them
the settings come from ``DATABASE_URL`` and ``[tool.flash_db]`` in pyproject.toml.
Exit status, as Django's: 0 on success (``makemigrations`` with no changes
included, so ``makemigrations && migrate`` works), 1 when the command refused or
failed (``makemigrations --check`` with changes to migrate, a database that
cannot be reached), 2 for a usage error. Errors are one paragraph on stderr,
without a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from io import StringIO
from pathlib import Path

from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError

from flash_db.exceptions import FlashDBError

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--models",
        action="append",
        metavar="MODULE",
        help="module defining your models (repeatable); default: [tool.flash_db] models",
    )
    common.add_argument(
        "--url", help="database URL; default: $DATABASE_URL, then [tool.flash_db] url"
    )
    common.add_argument(
        "--migrations",
        metavar="DIR",
        help="migrations folder; default: [tool.flash_db] migrations, else ./migrations",
    )
    parser = argparse.ArgumentParser(
        prog="flash-db", description="Flash DB migrations (Django's commands on Alembic)."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("init", parents=[common], help="create the migrations folder")
    make = commands.add_parser(
        "makemigrations", parents=[common], help="write a migration for the model changes"
    )
    make.add_argument("-m", "--message", help="the migration's name (default: from its changes)")
    make.add_argument(
        "--empty", action="store_true", help="write an empty migration to fill in by hand"
    )
    make.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 if the models have changes without a migration",
    )
    up = commands.add_parser("migrate", parents=[common], help="apply migrations (up to REVISION)")
    up.add_argument("revision", nargs="?", default="head", help="default: head (all)")
    up.add_argument(
        "--fake",
        action="store_true",
        help="mark as applied without running (for tables that already exist)",
    )
    down = commands.add_parser(
        "downgrade", parents=[common], help="revert migrations after REVISION"
    )
    down.add_argument("revision", help="e.g. 0001, 0001_initial, or zero for all")
    commands.add_parser(
        "showmigrations", parents=[common], help="list migrations, [X] applied, [ ] pending"
    )
    sql = commands.add_parser(
        "sqlmigrate", parents=[common], help="print a migration's SQL (offline)"
    )
    sql.add_argument("revision")
    sql.add_argument("--backwards", action="store_true", help="the SQL to revert it")
    return parser


def _relative(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _run(args: argparse.Namespace) -> int:
    try:
        from flash_db import migrations
    except ImportError as error:  # the migrations extra is not installed
        raise FlashDBError(
            f"flash-db {args.command} needs Alembic ({error}): pip install 'flash-db[migrations]'."
        ) from error

    settings = migrations.load_settings(
        models=args.models, url=args.url, migrations=args.migrations
    )
    if args.command == "init":
        folder = migrations.init(settings=settings)
        print(f"Created {_relative(folder)}; now run: flash-db makemigrations")
        if not settings.models:
            print('Tell Flash DB where your models are: [tool.flash_db] models = "app.models"')
    elif args.command == "makemigrations" and args.check:
        changes = migrations.check(settings=settings)
        if not changes:
            print("No changes detected.")
            return 0
        print(f"{len(changes)} change(s) without a migration: run flash-db makemigrations.")
        for line in changes:
            print(f"  - {line}")
        return 1
    elif args.command == "makemigrations":
        summary = StringIO()
        try:
            path = migrations.makemigrations(
                args.message, empty=args.empty, settings=settings, stdout=summary
            )
        except migrations.NoChanges as error:
            print(error)
            return 0
        print(f"Created {_relative(path)}")
        print(summary.getvalue(), end="")
    elif args.command in ("migrate", "downgrade"):
        progress = StringIO()
        if args.command == "migrate":
            migrations.migrate(args.revision, fake=args.fake, settings=settings, stdout=progress)
        else:
            migrations.downgrade(args.revision, settings=settings, stdout=progress)
        print(progress.getvalue().rstrip("\n") or "No migrations to apply.")
    elif args.command == "showmigrations":
        states = migrations.showmigrations(settings=settings)
        for state in states:
            print(f"[{'X' if state.applied else ' '}] {state.name}")
        if not states:
            print("(no migrations)")
    else:  # sqlmigrate
        print(migrations.sqlmigrate(args.revision, backwards=args.backwards, settings=settings))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``flash-db`` command with ``argv`` (default: ``sys.argv[1:]``); return its status."""
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except FlashDBError as error:
        print(f"flash-db {args.command}: {error}", file=sys.stderr)
        return 1
    except (SQLAlchemyError, OSError) as error:
        print(f"flash-db {args.command}: {_database_problem(error, args)}", file=sys.stderr)
        return 1


def _one_line(text: str) -> str:
    return " ".join(text.split()).rstrip(".")


def _database_problem(error: BaseException, args: argparse.Namespace) -> str:
    """Say in one paragraph why the database could not be used, and what to check."""
    source = "--url" if args.url else "DATABASE_URL, or [tool.flash_db] url in pyproject.toml"
    if isinstance(error, ArgumentError):
        return (
            f"the database URL is not valid ({_one_line(str(error))}). Write it as "
            "dialect://user:password@host/dbname, e.g. postgresql://app@localhost/app or "
            f"sqlite:///db.sqlite3, and set it with {source}."
        )
    cause = error.orig if isinstance(error, DBAPIError) and error.orig is not None else error
    try:
        from flash_db.migrations import load_settings

        url = load_settings(url=args.url).database_url().render_as_string(hide_password=True)
        where = f" at {url}"
    except Exception:  # the URL itself is the problem: say nothing more about it
        where = ""
    return (
        f"cannot use the database{where}: {_one_line(str(cause))} "
        f"({type(cause).__name__}). Check that the database server is running and "
        f"reachable, and that the URL ({source}) names it."
    )
