"""``python -m tests.oracle --seed 7 -n 3000``: the differential run on SQLite and PostgreSQL.

Creates a SQLite file and a PostgreSQL database of its own (dropped at the end),
runs the queries on each and prints the table of agreement per class with one
reproduction each. Exits 1 when a class is neither deliberate nor known open,
or (``--strict``) when a known open class no longer occurs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import uuid
from pathlib import Path

from sqlalchemy.ext.asyncio import create_async_engine

import flash_db
from tests.oracle import data
from tests.oracle.run import Report, check, format_report

PG_ADMIN_URL = os.environ.get(
    "FLASH_TEST_PG_ADMIN_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)


async def _on(url: str, n: int, seed: int, verbose: bool) -> Report:
    database = flash_db.Database(url)  # its engine registers Flash DB's SQLite functions
    try:
        async with database.engine.begin() as conn:
            for table in data.TABLES:
                await conn.run_sync(table.create, checkfirst=True)
        log = (lambda line: print(line, file=sys.stderr)) if verbose else None
        return await check(url, database.engine, n, seed, log=log)
    finally:
        await database.close()


async def _admin(sql: str) -> None:
    engine = create_async_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.exec_driver_sql(sql)
    finally:
        await engine.dispose()


async def main(argv: list[str]) -> int:
    """Run the oracle; return the exit status."""
    parser = argparse.ArgumentParser(prog="python -m tests.oracle", description=__doc__)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("-n", type=int, default=2000, help="queries per database")
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--strict", action="store_true", help="fail on a known class now fixed")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    reports: list[Report] = []
    if args.backend in ("sqlite", "both"):
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite+aiosqlite:///{Path(tmp) / 'oracle.sqlite3'}"
            reports.append(await _on(url, args.n, args.seed, args.verbose))
            print(format_report(reports[-1:]), flush=True)
    if args.backend in ("postgresql", "both"):
        name = f"flash_oracle_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        await _admin(f'CREATE DATABASE "{name}"')
        try:
            url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
            reports.append(await _on(url, args.n, args.seed, args.verbose))
            print(format_report(reports[-1:]), flush=True)
        finally:
            await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    status = 0
    for report in reports:
        new = report.new_classes()
        if new:
            print(f"\n{report.backend}: {len(new)} class(es) neither deliberate nor known open")
            status = 1
    if args.strict:
        fixed = sorted({k for r in reports for k in r.fixed_known()})
        if fixed:
            print(
                "\nknown open classes that no longer occur and whose reproduction now "
                f"agrees with Django (delete them from KNOWN_OPEN): {fixed}"
            )
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
