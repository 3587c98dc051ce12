"""Peak Python memory of ``iterator()`` (a server-side cursor) against ``fetch()``.

Run: ``.venv/bin/python -m benchmarks.stream_memory [rows] [chunk_size]`` (defaults
200000 1000). It seeds ``rows`` rows in a scratch database -- PostgreSQL when
reachable at ``$FLASH_BENCH_PG_ADMIN`` (default
``postgresql+asyncpg://postgres@127.0.0.1:5432/postgres``), and a temporary SQLite
file -- then measures, with ``tracemalloc``, the peak memory allocated while

- ``fetch()`` loads every row,
- ``iterator()`` streams every row (each object dropped after use),
- ``iterator()`` streams only 1,000 rows (the constant to compare against),

and prints a table. Streaming is constant-memory when the second and third
figures are about the same.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Awaitable, Callable

from sqlalchemy import String, insert
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.orm import Mapped, mapped_column

import flash_db
from flash_db import Model

PG_ADMIN = os.environ.get(
    "FLASH_BENCH_PG_ADMIN", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)


TABLE = "bench_stream_rows"


class StreamRow(Model):
    """The measured row: a few columns of typical width."""

    __tablename__ = TABLE
    name: Mapped[str] = mapped_column(String(50))
    level: Mapped[int]
    note: Mapped[str] = mapped_column(String(100))


async def _seed(url: str, rows: int) -> None:
    # A plain engine: one transaction for the seed (Flash DB's engine autocommits
    # every row, which costs an fsync per row on SQLite).
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(Model.metadata.create_all, tables=[Model.metadata.tables[TABLE]])
            for start in range(0, rows, 20_000):
                batch = [
                    {"name": f"row-{i}", "level": i % 10, "note": f"note {i} " * 4}
                    for i in range(start, min(start + 20_000, rows))
                ]
                await conn.execute(insert(StreamRow), batch)
    finally:
        await engine.dispose()


async def _peak(job: Callable[[], Awaitable[int]]) -> tuple[float, float, int]:
    """Return (peak MiB, seconds, rows) for ``job``."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    started = time.perf_counter()
    count = await job()
    seconds = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20, seconds, count


async def _measure(label: str, url: str, rows: int, chunk_size: int) -> list[str]:
    await _seed(url, rows)
    database = flash_db.Database(url)
    try:
        async with database.session() as db:

            async def fetch_all() -> int:
                return len(await StreamRow.objects.order_by("id").fetch(db))

            async def stream_all() -> int:
                count = 0
                async for _ in StreamRow.objects.order_by("id").iterator(db, chunk_size):
                    count += 1
                return count

            async def stream_few() -> int:
                count = 0
                async for _ in StreamRow.objects.order_by("id")[:1000].iterator(db, chunk_size):
                    count += 1
                return count

            lines = []
            for name, job in (
                ("fetch()", fetch_all),
                (f"iterator(chunk_size={chunk_size})", stream_all),
                (f"iterator(chunk_size={chunk_size}), 1,000 rows", stream_few),
            ):
                peak, seconds, count = await _peak(job)
                lines.append(
                    f"| {label:<10} | {name:<40} | {count:>8,} | {peak:>9.1f} | {seconds:>6.2f} |"
                )
            return lines
    finally:
        await database.close()


async def _pg_database() -> str | None:
    name = f"flash_stream_{uuid.uuid4().hex[:8]}"
    engine = create_async_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except OSError:
        return None
    finally:
        await engine.dispose()
    return name


async def _pg_drop(name: str) -> None:
    engine = create_async_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await engine.dispose()


async def main(rows: int, chunk_size: int) -> None:
    """Measure on PostgreSQL (when reachable) and SQLite and print the table."""
    lines = [
        f"| {'backend':<10} | {'call':<40} | {'rows':>8} | {'peak MiB':>9} | {'s':>6} |",
        f"|{'-' * 12}|{'-' * 42}|{'-' * 10}|{'-' * 11}|{'-' * 8}|",
    ]
    pg_name = await _pg_database()
    if pg_name is not None:
        try:
            url = PG_ADMIN.rsplit("/", 1)[0] + f"/{pg_name}"
            lines += await _measure("postgresql", url, rows, chunk_size)
        finally:
            await _pg_drop(pg_name)
    with tempfile.TemporaryDirectory() as tmp:
        lines += await _measure("sqlite", f"sqlite+aiosqlite:///{tmp}/stream.db", rows, chunk_size)
    print("\n".join(lines))


if __name__ == "__main__":
    arguments = [int(arg) for arg in sys.argv[1:3]]
    asyncio.run(main(*(arguments + [200_000, 1000][len(arguments) :])))
