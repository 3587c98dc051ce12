"""Profile one Flash DB workload with pyinstrument: ``python -m benchmarks.profile get_pk``.

The table is prepared as the suite prepares it; the profile covers only the
system call (including the untimed loading of the update/delete workloads).
"""

from __future__ import annotations

import argparse
import asyncio
import random
from collections.abc import Awaitable, Callable
from pathlib import Path

from pyinstrument import Profiler

from benchmarks.common import Outcome, Sizes, make_row
from benchmarks.run import DEFAULT_PG, Fixture, ensure_pg_database, make_systems, sqlite_url


async def main() -> None:
    """Run the chosen workload under the profiler and print (or save) the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("workload")
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="postgresql")
    parser.add_argument("--system", default="Flash DB")
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--html", type=Path, default=None)
    args = parser.parse_args()

    url = DEFAULT_PG + "_profile" if args.backend == "postgresql" else sqlite_url(None)
    if args.backend == "postgresql":
        await ensure_pg_database(url)
    fixture = Fixture(url)
    await fixture.create()
    sizes = Sizes.at(args.scale)
    (system,) = make_systems([args.system])
    await system.open(url)
    sample = random.Random(0).sample(range(1, sizes.rows + 1), sizes.ops)
    levels = [i % 10 for i in range(sizes.ops)]
    rows = [make_row(i) for i in range(1, sizes.ops + 1)]
    calls: dict[str, Callable[[], Awaitable[Outcome | None]]] = {
        "create_autocommit": lambda: system.create_autocommit(rows),
        "create_in_tx": lambda: system.create_in_tx(rows),
        "bulk_create": lambda: system.bulk_create([make_row(i) for i in range(1, sizes.rows + 1)]),
        "fetch_all": lambda: system.fetch_all(sizes.repeat),
        "filter_limit": lambda: system.filter_limit(levels),
        "get_pk": lambda: system.get_pk(sample),
        "values": lambda: system.values(sizes.repeat),
        "update_one": lambda: system.update_one(sample, [100 + pk % 7 for pk in sample]),
        "update_qs": lambda: system.update_qs(sample, [100 + pk % 7 for pk in sample]),
        "bulk_update": lambda: system.bulk_update(
            list(range(1, sizes.bulk_update + 1)), [7] * sizes.bulk_update
        ),
        "count": lambda: system.count(levels),
        "delete_one": lambda: system.delete_one(sample),
        "delete_qs": lambda: system.delete_qs(sample),
    }
    if args.workload.startswith("create") or args.workload == "bulk_create":
        await fixture.reset()
    else:
        await fixture.seed(sizes.rows)
    profiler = Profiler(async_mode="enabled", interval=0.0005)
    try:
        profiler.start()
        try:
            outcome = await calls[args.workload]()
        finally:
            profiler.stop()
    finally:
        await system.close()
        await fixture.close()
    if outcome is not None:
        print(f"{args.workload}: {outcome.seconds:.3f} s timed")
    if args.html is not None:
        args.html.write_text(profiler.output_html())
    else:
        print(profiler.output_text(unicode=True, color=False, show_all=False))


if __name__ == "__main__":
    asyncio.run(main())
