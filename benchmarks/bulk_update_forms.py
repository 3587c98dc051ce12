"""Which UPDATE form should bulk_update use (CASE, UPDATE ... FROM VALUES, executemany)?

Run: ``.venv/bin/python -m benchmarks.bulk_update_forms [rows] [batch_size] [repeat]``
(defaults 2000 500 7). PostgreSQL is used when reachable at ``$FLASH_BENCH_PG_ADMIN``
(default ``postgresql+asyncpg://postgres@127.0.0.1:5432/postgres``), in a scratch
database created and dropped here. Prints the median seconds per form.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import String, Table, case, cast, column, literal, update, values
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.schema import Column

import flash_db
from flash_db import Model, TimestampMixin, bulk, execution

PG_ADMIN = os.environ.get(
    "FLASH_BENCH_PG_ADMIN", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)


# The losing forms, kept here so the comparison can be re-run.


async def _update_values(
    db: AsyncSession,
    table: Table,
    columns: Mapping[str, Column[Any]],
    pk: str,
    names: Sequence[str],
    rows: Sequence[tuple[Any, ...]],
) -> int:
    """``UPDATE t SET f = v.f FROM (VALUES (...), ...) AS v WHERE t.pk = v.pk``."""
    pk_column = columns[pk]
    source = values(
        column("_flash_pk", pk_column.type),
        *(column(f"_flash_{name}", columns[name].type) for name in names),
        name="_flash_rows",
    ).data(list(rows))  # rows are (primary key, *values of names)
    stmt = bulk.update_from_rows(table, pk_column, columns, names, source)
    return await execution.write_statement(db, stmt)  # inside bulk_update's transaction


async def _update_case(
    db: AsyncSession,
    table: Table,
    columns: Mapping[str, Column[Any]],
    pk: str,
    names: Sequence[str],
    rows: Sequence[tuple[Any, ...]],
) -> int:
    """``UPDATE t SET f = CASE pk WHEN 1 THEN ... END, ... WHERE pk IN (...)``."""
    pk_column = columns[pk]
    assignments = {}
    for index, name in enumerate(names, start=1):
        column = columns[name]
        whens = {row[0]: cast(literal(row[index], column.type), column.type) for row in rows}
        assignments[column.key] = case(whens, value=pk_column)
    stmt = update(table).where(pk_column.in_([row[0] for row in rows])).values(assignments)
    return await execution.write_statement(db, stmt)  # inside bulk_update's transaction


bulk._UPDATE_FORMS["case"] = _update_case
bulk._UPDATE_FORMS["values"] = _update_values


class BenchUpdateItem(Model, TimestampMixin):
    __tablename__ = "bench_update_item"
    name: Mapped[str] = mapped_column(String(100))
    level: Mapped[int]
    score: Mapped[float]


def _table() -> Table:
    return Model.metadata.tables[BenchUpdateItem.__tablename__]


async def _measure(url: str, rows: int, batch_size: int, repeat: int) -> dict[str, float]:
    database = flash_db.Database(url)
    async with database.engine.connect() as conn:
        await conn.run_sync(lambda sync: _table().create(sync, checkfirst=True))
    timings: dict[str, list[float]] = {"case": [], "values": [], "unnest": [], "executemany": []}
    try:
        async with database.session() as db:
            items = await BenchUpdateItem.objects.bulk_create(
                db,
                [
                    BenchUpdateItem(name=f"item-{i}", level=i % 10, score=i * 0.5)
                    for i in range(rows)
                ],
            )
            dialect = db.get_bind().dialect.name
            for round_ in range(repeat):
                for form in ("case", "values", "unnest", "executemany"):
                    if form in ("values", "unnest") and dialect == "sqlite":
                        continue  # SQLite has no "(VALUES ...) AS v (a, b)" and no arrays
                    for item in items:
                        item.level = (item.level + 1) % 10
                        item.name = f"item-{item.pk}-{round_}-{form}"
                    bulk._UPDATE_FORM[dialect] = form
                    start = time.perf_counter()
                    await BenchUpdateItem.objects.bulk_update(
                        db, items, ["name", "level"], batch_size=batch_size
                    )
                    timings[form].append(time.perf_counter() - start)
    finally:
        async with database.engine.connect() as conn:
            await conn.run_sync(lambda sync: _table().drop(sync, checkfirst=True))
        await database.close()
    return {form: statistics.median(values) for form, values in timings.items() if values}


async def _with_postgres(run: Callable[[str], Awaitable[Any]]) -> Any:
    name = f"flash_bench_{uuid.uuid4().hex[:8]}"
    admin = create_async_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        return await run(PG_ADMIN.rsplit("/", 1)[0] + f"/{name}")
    finally:
        async with admin.connect() as conn:
            await conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.dispose()


async def main() -> None:
    """Print a table: database, form, median seconds for ``rows`` objects."""
    args = [int(arg) for arg in sys.argv[1:]]
    rows, batch_size, repeat = (args + [2000, 500, 7][len(args) :])[:3]
    results: list[tuple[str, dict[str, float]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{tmp}/bench.sqlite3"
        results.append(("sqlite", await _measure(url, rows, batch_size, repeat)))
    try:
        pg = await _with_postgres(lambda url: _measure(url, rows, batch_size, repeat))
        results.append(("postgresql", pg))
    except OSError as error:
        print(f"PostgreSQL skipped: {error}")
    print(f"bulk_update of {rows} objects, 2 fields + updated_at, batch_size={batch_size}")
    header = f"{'database':<12}{'CASE (s)':>10}{'VALUES (s)':>12}{'unnest (s)':>12}"
    print(f"{header}{'executemany (s)':>17}{'fastest':>13}")
    for name, timing in results:
        fastest = min(timing, key=lambda form: timing[form])
        print(
            f"{name:<12}{timing['case']:>10.4f}{timing.get('values', float('nan')):>12.4f}"
            f"{timing.get('unnest', float('nan')):>12.4f}"
            f"{timing['executemany']:>17.4f}{fastest:>13}"
        )


if __name__ == "__main__":
    asyncio.run(main())
