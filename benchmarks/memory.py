"""Memory of ``QuerySet.iterator()``: peak Python allocations over 200,000 rows vs 1,000.

``python -m benchmarks.memory [--backend all]`` (the target: within 2x). Peaks are
measured with tracemalloc around the iteration only, in one process per size
order, after a warm-up pass, so imports and SQLAlchemy's caches are not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import tracemalloc

from benchmarks.flash import BenchItem
from benchmarks.run import DEFAULT_PG, Fixture, ensure_pg_database, sqlite_url
from flash_db import Database

SMALL, LARGE = 1_000, 200_000


async def peak(database: Database, rows: int, chunk_size: int) -> tuple[int, int]:
    """Return (rows seen, peak traced bytes) for iterating the first ``rows`` rows."""
    qs = BenchItem.objects.filter(id__lte=rows).order_by("id")
    async with database.session() as db:
        gc.collect()
        tracemalloc.start()
        seen = 0
        async for obj in qs.iterator(db, chunk_size=chunk_size):
            seen += 1
            if obj.id != seen:
                raise AssertionError(f"row {seen} has id {obj.id}")
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return seen, top


async def run(backend: str, chunk_size: int) -> str:
    """Measure one backend; return its report line."""
    # Its own database, so that it can run next to the suite.
    url = DEFAULT_PG + "_memory" if backend == "postgresql" else sqlite_url(None)
    if backend == "postgresql":
        await ensure_pg_database(url)
    fixture = Fixture(url)
    await fixture.create()
    await fixture.seed(LARGE)
    server = await fixture.server_version()
    await fixture.close()
    database = Database(url)
    try:
        await peak(database, SMALL, chunk_size)  # warm-up: compiled statements, caches
        small_rows, small = await peak(database, SMALL, chunk_size)
        large_rows, large = await peak(database, LARGE, chunk_size)
    finally:
        await database.close()
    assert (small_rows, large_rows) == (SMALL, LARGE)
    return (
        f"| {server} | {small / 1024:,.0f} KiB | {large / 1024:,.0f} KiB | "
        f"{large / small:.2f} | {'yes' if large <= 2 * small else 'NO'} |"
    )


async def main() -> None:
    """Print the table for the chosen backends."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "all"), default="all")
    parser.add_argument("--chunk-size", type=int, default=1000)
    args = parser.parse_args()
    backends = ["sqlite", "postgresql"] if args.backend == "all" else [args.backend]
    lines = [
        f"iterator(chunk_size={args.chunk_size}): peak traced memory while iterating",
        "",
        f"| database | {SMALL:,} rows | {LARGE:,} rows | ratio | within 2x |",
        "|---|---:|---:|---:|---|",
    ]
    for backend in backends:
        lines.append(await run(backend, args.chunk_size))
    print("\n".join(lines))


if __name__ == "__main__":
    asyncio.run(main())
