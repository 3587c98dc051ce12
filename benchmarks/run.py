"""Run the benchmark suite: ``python -m benchmarks.run [--backend all] [--rounds 5] [--scale 1]``.

Each round runs every workload on every system, the systems interleaved (and
their order rotated each round) so that a slow minute on the machine hits them
all alike. Only the work a workload names is timed; the table is reset and
seeded through a separate SQLAlchemy Core engine between runs, and every
result is checked against the database (row counts and contents) after every
run, so a fast wrong answer is reported as FAILED, never as a number. Cells are
the median over the rounds, in operations (or rows) per second, with the ratio
to hand-written SQLAlchemy Core.

Every system is used as a web request uses it: each single-row or per-query
operation (create_autocommit, filter_limit, get_pk, count, update_one,
update_qs, delete_one, delete_qs) opens its own session or connection inside
the timed block, so the pool checkout and the session's set-up and close are
part of what is measured; fetch_all and values open one per pass;
create_in_tx, bulk_create and bulk_update are one transaction or one call in
one session. The objects update_one, bulk_update and delete_one change are
loaded beforehand, untimed (each system's module says how); update_qs and
delete_qs write the same rows as statements (the QuerySet form,
``filter(pk=pk).update(...)``/``.delete()``), nothing loaded. bulk_create
gives every system the same input, the rows as dicts (Tortoise and the SA ORM
build their objects from them, timed); bulk_create_objects times building
model objects first where a system can take either (Flash DB), and is
bulk_create for the others. After the tables, the report gives Flash DB's
ratio to every peer and the targets of issue 13 (``benchmarks.targets``).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import traceback
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from benchmarks import targets
from benchmarks.common import TABLE, Clock, Outcome, RowTuple, Sizes, System, as_tuple, make_row
from benchmarks.sa_core import items, metadata

RESULTS = Path(__file__).parent / "results"
DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/flash_bench"
SYSTEM_NAMES = ("Flash DB", "SA Core", "SA ORM", "Tortoise")
BASELINE = "SA Core"
#: The issue whose targets the report checks (benchmarks.targets).
TARGETS_ISSUE = 13

#: workload -> (unit shown in the table, what the unit counts)
WORKLOADS: dict[str, tuple[str, str]] = {
    "create_autocommit": ("inserts/s", "ops"),
    "create_in_tx": ("inserts/s", "ops"),
    "bulk_create": ("rows/s", "rows"),
    "bulk_create_objects": ("rows/s", "rows"),
    "fetch_all": ("rows/s", "rows_x"),
    "filter_limit": ("queries/s", "ops"),
    "get_pk": ("gets/s", "ops"),
    "values": ("rows/s", "rows_x"),
    "update_one": ("updates/s", "ops"),
    "update_qs": ("updates/s", "ops"),
    "bulk_update": ("rows/s", "bulk"),
    "count": ("queries/s", "ops"),
    "delete_one": ("deletes/s", "ops"),
    "delete_qs": ("deletes/s", "ops"),
}


class VerificationError(AssertionError):
    """A system returned or stored something other than what the workload asked for."""


def make_systems(names: Sequence[str]) -> list[System]:
    """Instantiate the chosen systems (imported lazily: Tortoise is optional)."""
    systems: list[System] = []
    for name in names:
        if name == "Flash DB":
            from benchmarks.flash import Flash

            systems.append(Flash())
        elif name == "SA Core":
            from benchmarks.sa_core import SACore

            systems.append(SACore())
        elif name == "SA Core autocommit":
            from benchmarks.sa_core import SACoreAutocommit

            systems.append(SACoreAutocommit())
        elif name == "SA ORM":
            from benchmarks.sa_orm import SAORM

            systems.append(SAORM())
        elif name == "Tortoise":
            from benchmarks.tortoise_orm import TortoiseORM

            systems.append(TortoiseORM())
        else:
            raise ValueError(f"Unknown system {name!r}; choices are {', '.join(SYSTEM_NAMES)}.")
    return systems


# -- the table: reset, seed, read back -----------------------------------------------


class Fixture:
    """Prepares and inspects the shared table through its own Core engine."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.backend = make_url(url).get_backend_name()
        self.engine: AsyncEngine = create_async_engine(url, isolation_level="AUTOCOMMIT")

    async def create(self) -> None:
        """Drop and create the table (and set WAL on SQLite, which the file keeps)."""
        async with self.engine.connect() as conn:
            if self.backend == "sqlite":
                await conn.exec_driver_sql("PRAGMA journal_mode=WAL")
            await conn.run_sync(metadata.drop_all)
            await conn.run_sync(metadata.create_all)

    async def reset(self) -> None:
        """Empty the table and restart its ids at 1."""
        async with self.engine.connect() as conn:
            if self.backend == "postgresql":
                await conn.exec_driver_sql(f"TRUNCATE {TABLE} RESTART IDENTITY")
            else:
                await conn.exec_driver_sql(f"DELETE FROM {TABLE}")
                await conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")

    async def seed(self, n: int) -> None:
        """Reset, then insert rows 1..n (ids 1..n) and move the id sequence past them."""
        await self.reset()
        async with self.engine.connect() as conn:
            # One transaction: in autocommit mode SQLite would sync every row.
            await conn.exec_driver_sql("BEGIN")
            await conn.execute(items.insert(), [{"id": i, **make_row(i)} for i in range(1, n + 1)])
            await conn.exec_driver_sql("COMMIT")
            if self.backend == "postgresql":
                await conn.execute(
                    text(f"SELECT setval(pg_get_serial_sequence('{TABLE}', 'id'), :n)"), {"n": n}
                )
            else:
                await conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            if self.backend == "postgresql":
                await conn.exec_driver_sql(f"ANALYZE {TABLE}")

    async def rows(self) -> list[RowTuple]:
        """Return every row, ordered by id."""
        async with self.engine.connect() as conn:
            result = await conn.execute(items.select().order_by(items.c.id))
            return [(r.id, r.name, r.level, r.score) for r in result]

    async def server_version(self) -> str:
        """Return the database server's version."""
        async with self.engine.connect() as conn:
            if self.backend == "postgresql":
                value = (await conn.exec_driver_sql("SHOW server_version")).scalar()
                return f"PostgreSQL {value}"
            value = (await conn.exec_driver_sql("SELECT sqlite_version()")).scalar()
            return f"SQLite {value}"

    async def close(self) -> None:
        """Dispose of the engine."""
        await self.engine.dispose()


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise VerificationError(message)


def _check_matched(workload: str, counts: Sequence[int | None], ops: int) -> None:
    """Check that each of ``ops`` single-row statements reported one row (where it reports)."""
    _check(len(counts) == ops, f"{workload}: {len(counts)} results for {ops} statements")
    wrong = [c for c in counts if c is not None and c != 1]
    _check(not wrong, f"{workload}: statements reported {wrong[:5]} rows, expected 1 each")


def seeded(n: int) -> list[RowTuple]:
    """Return the rows :meth:`Fixture.seed` inserts."""
    return [as_tuple(i, make_row(i)) for i in range(1, n + 1)]


# -- one workload on one system: prepare, run, verify -----------------------------------


@dataclass
class Plan:
    """The inputs of one round (the same for every system)."""

    sizes: Sizes
    rng: random.Random
    levels: list[int] = field(default_factory=list)
    sample: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.levels = [i % 10 for i in range(self.sizes.ops)]
        self.sample = self.rng.sample(range(1, self.sizes.rows + 1), self.sizes.ops)


async def run_one(
    workload: str, system: System, fixture: Fixture, plan: Plan
) -> tuple[float, int] | None:
    """Run ``workload`` on ``system``; return (seconds, units) or None when not supported."""
    sizes = plan.sizes
    n = sizes.rows
    expected_all = seeded(n)

    async def timed(call: Callable[[], Awaitable[Outcome | None]]) -> Outcome | None:
        gc.collect()
        return await call()

    if workload in ("create_autocommit", "create_in_tx", "bulk_create", "bulk_create_objects"):
        count = n if workload.startswith("bulk_create") else sizes.ops
        rows = [make_row(i) for i in range(1, count + 1)]
        await fixture.reset()
        # Systems without a separate objects form (SA Core inserts dicts, Tortoise
        # and the SA ORM always build objects) run their bulk_create for it.
        method = getattr(system, workload, None) or system.bulk_create
        outcome = await timed(lambda: method(rows))
        if outcome is None:
            return None
        stored = await fixture.rows()
        _check(len(stored) == count, f"{workload}: {len(stored)} rows stored, expected {count}")
        got = sorted((r[1], r[2], r[3]) for r in stored)
        asked = sorted((r["name"], r["level"], r["score"]) for r in rows)
        _check(got == asked, f"{workload}: stored contents differ")
        if outcome.result is not None:  # the pks the system returned
            pks = list(outcome.result)
            _check(
                sorted(zip(pks, (r["name"] for r in rows), strict=True))
                == [(r[0], r[1]) for r in stored],
                f"{workload}: returned pks do not match the stored rows",
            )
        return outcome.seconds, count

    if workload in ("fetch_all", "values"):
        outcome = await timed(lambda: getattr(system, workload)(sizes.repeat))
        assert outcome is not None
        passes = outcome.result
        _check(len(passes) == sizes.repeat, f"{workload}: {len(passes)} passes")
        for result in passes:
            if workload == "values":
                _check(
                    all(set(d) == {"id", "name", "level", "score"} for d in result),
                    "values: keys differ",
                )
                result = [as_tuple(d["id"], d) for d in result]
            _check(sorted(result) == expected_all, f"{workload}: rows differ")
        return outcome.seconds, n * sizes.repeat

    if workload == "filter_limit":
        outcome = await timed(lambda: system.filter_limit(plan.levels))
        assert outcome is not None
        by_level = {k: [r for r in expected_all if r[2] == k][:20] for k in range(10)}
        _check(
            [list(r) for r in outcome.result] == [by_level[k] for k in plan.levels],
            "filter_limit: rows differ",
        )
        return outcome.seconds, sizes.ops

    if workload == "get_pk":
        outcome = await timed(lambda: system.get_pk(plan.sample))
        assert outcome is not None
        _check(
            list(outcome.result) == [expected_all[pk - 1] for pk in plan.sample],
            "get_pk: rows differ",
        )
        return outcome.seconds, sizes.ops

    if workload == "count":
        outcome = await timed(lambda: system.count(plan.levels))
        assert outcome is not None
        per_level = {k: sum(1 for r in expected_all if r[2] == k) for k in range(10)}
        _check(list(outcome.result) == [per_level[k] for k in plan.levels], "count: counts differ")
        return outcome.seconds, sizes.ops

    if workload in ("update_one", "update_qs", "bulk_update"):
        if workload != "bulk_update":
            pks, units = plan.sample, sizes.ops
        else:
            pks, units = list(range(1, sizes.bulk_update + 1)), sizes.bulk_update
        levels = [100 + pk % 7 for pk in pks]
        await fixture.seed(n)
        outcome = await timed(lambda: getattr(system, workload)(pks, levels))
        if outcome is None:
            return None
        if workload == "bulk_update" and outcome.result is not None:
            _check(outcome.result == units, f"bulk_update: reported {outcome.result} rows")
        if workload == "update_qs":
            _check_matched(workload, outcome.result, units)
        new_level = dict(zip(pks, levels, strict=True))
        want = [(i, nm, new_level.get(i, lv), sc) for (i, nm, lv, sc) in expected_all]
        _check(await fixture.rows() == want, f"{workload}: stored rows differ")
        return outcome.seconds, units

    if workload in ("delete_one", "delete_qs"):
        await fixture.seed(n)
        outcome = await timed(lambda: getattr(system, workload)(plan.sample))
        assert outcome is not None
        if workload == "delete_qs":
            _check_matched(workload, outcome.result, sizes.ops)
        gone = set(plan.sample)
        want = [r for r in expected_all if r[0] not in gone]
        _check(await fixture.rows() == want, f"{workload}: stored rows differ")
        return outcome.seconds, sizes.ops

    raise ValueError(f"Unknown workload {workload!r}; choices are {', '.join(WORKLOADS)}.")


# -- a whole backend ------------------------------------------------------------------


@dataclass
class Cell:
    """Every round's (seconds, units) of one workload on one system, or its failure."""

    runs: list[tuple[float, int]] = field(default_factory=list)
    status: str = "ok"  # ok | n/a | FAILED
    error: str = ""
    retried: list[str] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)  # CPU seconds of each run

    def cpu_per_unit(self) -> float | None:
        """Return the median client CPU microseconds per unit, or None."""
        if self.status != "ok" or not self.cpu:
            return None
        units = self.runs[0][1]
        return statistics.median(self.cpu) / units * 1e6

    def median(self) -> float | None:
        """Return the median ops/s, or None."""
        if self.status != "ok" or not self.runs:
            return None
        return statistics.median(units / seconds for seconds, units in self.runs)


async def run_backend(
    url: str, names: Sequence[str], workloads: Sequence[str], rounds: int, scale: float
) -> tuple[dict[str, dict[str, Cell]], str]:
    """Run every round on one backend; return the cells and the server version."""
    fixture = Fixture(url)
    await fixture.create()
    server = await fixture.server_version()
    systems = make_systems(names)
    for system in systems:
        await system.open(url)
    cells = {w: {s.name: Cell() for s in systems} for w in workloads}
    sizes = Sizes.at(scale)
    try:
        for round_no in range(rounds):
            plan = Plan(sizes, random.Random(round_no))
            order = systems[round_no % len(systems) :] + systems[: round_no % len(systems)]
            seeded_for_reads = False
            for workload in workloads:
                if workload in ("fetch_all", "filter_limit", "get_pk", "values", "count"):
                    if not seeded_for_reads:  # the read workloads share one seeded table
                        await fixture.seed(sizes.rows)
                        seeded_for_reads = True
                else:
                    seeded_for_reads = False
                for system in order:
                    cell = cells[workload][system.name]
                    if cell.status != "ok":
                        continue
                    try:
                        try:
                            measured = await run_one(workload, system, fixture, plan)
                        except (DBAPIError, OSError) as error:
                            # A lost connection (a restarted server, a killed backend) is
                            # not the system's fault: reconnect and run it again, once,
                            # and say so in the report. Wrong results are never retried.
                            cell.retried.append(f"{type(error).__name__}: {error}"[:300])
                            traceback.print_exc()
                            await asyncio.sleep(2)
                            await system.close()
                            await system.open(url)
                            await fixture.close()
                            fixture.engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
                            measured = await run_one(workload, system, fixture, plan)
                    except Exception as error:
                        cell.status = "FAILED"
                        cell.error = f"{type(error).__name__}: {error}"[:500]
                        traceback.print_exc()
                        continue
                    if measured is None:
                        cell.status = "n/a"
                    else:
                        cell.runs.append(measured)
                        cell.cpu.append(Clock.last_cpu)
            print(f"  {fixture.backend}: round {round_no + 1}/{rounds} done", file=sys.stderr)
    finally:
        for system in systems:
            await system.close()
        await fixture.close()
    return cells, server


# -- output ---------------------------------------------------------------------------


def _dump(cells: dict[str, dict[str, Cell]]) -> dict[str, Any]:
    return {
        w: {
            n: {
                "status": c.status,
                "runs": c.runs,
                "median": c.median(),
                "error": c.error,
                "retried": c.retried,
                "cpu": c.cpu,
            }
            for n, c in row.items()
        }
        for w, row in cells.items()
    }


def _load(raw: dict[str, Any]) -> dict[str, dict[str, Cell]]:
    return {
        w: {
            n: Cell([(s, u) for s, u in c["runs"]], c["status"], c["error"], c["retried"], c["cpu"])
            for n, c in row.items()
        }
        for w, row in raw.items()
    }


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"


def table(backend: str, cells: dict[str, dict[str, Cell]], names: Sequence[str]) -> str:
    """Return the markdown table of one backend."""
    head = ["workload", "unit", *names]
    lines = ["| " + " | ".join(head) + " |", "|---|---|" + "---:|" * len(names)]
    for workload, row in cells.items():
        base = row.get(BASELINE)
        base_ops = base.median() if base else None
        out = [workload, WORKLOADS[workload][0]]
        for name in names:
            cell = row[name]
            ops = cell.median()
            if ops is None:
                out.append(cell.status)
            elif name == BASELINE or base_ops is None:
                out.append(_fmt(ops))
            else:
                out.append(f"{_fmt(ops)} ({ops / base_ops:.2f})")
        lines.append("| " + " | ".join(out) + " |")
    return "\n".join(lines)


def cpu_table(cells: dict[str, dict[str, Cell]], names: Sequence[str]) -> str:
    """Return the markdown table of client CPU microseconds per unit (lower is better)."""
    lines = ["| workload | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for workload, row in cells.items():
        out = [workload]
        for name in names:
            value = row[name].cpu_per_unit()
            out.append(row[name].status if value is None else f"{value:,.1f}")
        lines.append("| " + " | ".join(out) + " |")
    return "\n".join(lines)


def versions() -> dict[str, str]:
    """Return the versions of Python and every library measured."""
    found = {"python": platform.python_version()}
    for package in ("sqlalchemy", "asyncpg", "aiosqlite", "tortoise-orm", "flash-db"):
        try:
            found[package] = version(package)
        except Exception:
            found[package] = "not installed"
    return found


def plot(results: dict[str, dict[str, dict[str, Cell]]], names: Sequence[str], path: Path) -> None:
    """Write a PNG of every system's ratio to SA Core, one panel per backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    others = [n for n in names if n != BASELINE]
    fig, axes = plt.subplots(len(results), 1, figsize=(12, 4.2 * len(results)), squeeze=False)
    for ax, (backend, cells) in zip(axes[:, 0], results.items(), strict=True):
        workloads = list(cells)
        width = 0.8 / max(1, len(others))
        for i, name in enumerate(others):
            ratios = []
            for workload in workloads:
                base_cell = cells[workload].get(BASELINE)
                base = base_cell.median() if base_cell else None
                ops = cells[workload][name].median()
                ratios.append(ops / base if ops and base else 0.0)
            xs = [x + (i - (len(others) - 1) / 2) * width for x in range(len(workloads))]
            ax.bar(xs, ratios, width, label=name)
        ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
        ax.set_yscale("log")
        ax.set_xticks(range(len(workloads)), workloads, rotation=30, ha="right")
        ax.set_ylabel("ratio to SA Core (log)")
        ax.set_title(backend)
        ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def sqlite_url(path: str | None) -> str:
    """Return the SQLite URL of the benchmark file (a fresh temporary file by default)."""
    if path is None:
        path = str(Path(tempfile.mkdtemp(prefix="flash_bench_")) / "bench.sqlite3")
    return f"sqlite+aiosqlite:///{path}"


async def ensure_pg_database(url: str) -> None:
    """Create the benchmark database through the ``postgres`` admin database if missing."""
    import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type hints

    parsed = make_url(url)
    admin = await asyncpg.connect(
        user=parsed.username or "postgres",
        password=parsed.password,
        host=parsed.host or "127.0.0.1",
        port=parsed.port or 5432,
        database="postgres",
    )
    try:
        exists = await admin.fetchval(
            "SELECT 1 FROM pg_database WHERE datname = $1", parsed.database
        )
        if not exists:
            await admin.execute(f'CREATE DATABASE "{parsed.database}"')
    finally:
        await admin.close()


async def main(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments, run the chosen backends, print and write the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "all"), default="all")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--scale", type=float, default=1.0, help="0.1 for a quick run")
    parser.add_argument("--systems", default=",".join(SYSTEM_NAMES))
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--pg-url", default=DEFAULT_PG)
    parser.add_argument("--sqlite-path", default=None)
    parser.add_argument("--tag", default="latest", help="results/<tag>.md, .json and .png")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--no-plot", action="store_true")
    parser.add_argument("--raw-out", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    names = [n.strip() for n in args.systems.split(",") if n.strip()]
    workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    for w in workloads:
        if w not in WORKLOADS:
            parser.error(f"unknown workload {w!r}; choices are {', '.join(WORKLOADS)}")
    backends = ["sqlite", "postgresql"] if args.backend == "all" else [args.backend]
    started = datetime.now(UTC)
    load_start = os.getloadavg()[0]
    results: dict[str, dict[str, dict[str, Cell]]] = {}
    servers: dict[str, str] = {}
    if args.raw_out is not None:  # a child run of --backend all: one backend, raw cells only
        (backend,) = backends
        url = args.pg_url if backend == "postgresql" else sqlite_url(args.sqlite_path)
        if backend == "postgresql":
            await ensure_pg_database(url)
        cells, server = await run_backend(url, names, workloads, args.rounds, args.scale)
        args.raw_out.write_text(json.dumps({"server": server, "cells": _dump(cells)}))
        return 0
    for backend in backends:
        # One process per backend: Tortoise keeps its dialect in global state, and a
        # fresh interpreter gives every backend the same starting point.
        with tempfile.TemporaryDirectory() as tmp:
            raw_path = Path(tmp) / "raw.json"
            child = [*(argv if argv is not None else sys.argv[1:]), "--backend", backend]
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "benchmarks.run", *child, "--raw-out", str(raw_path)
            )
            if await process.wait() != 0 or not raw_path.exists():
                print(f"The {backend} run failed.", file=sys.stderr)
                return 2
            raw_backend = json.loads(raw_path.read_text())
        results[backend] = _load(raw_backend["cells"])
        servers[backend] = raw_backend["server"]

    seconds = (datetime.now(UTC) - started).total_seconds()
    info = versions()
    header = [
        f"# Benchmark results ({args.tag})",
        "",
        f"{started:%Y-%m-%d %H:%M} UTC; {args.rounds} rounds, scale {args.scale}, "
        f"median ops/s (ratio to {BASELINE}); run took {seconds:.0f} s.",
        "Versions: "
        + ", ".join(f"{k} {v}" for k, v in info.items())
        + "; "
        + ", ".join(servers.values())
        + f"; {platform.machine()}, {platform.system()}, {os.cpu_count()} CPUs; "
        f"load average {load_start:.1f} at the start, {os.getloadavg()[0]:.1f} at the end.",
    ]
    body = []
    failures: list[str] = []
    retries: list[str] = []
    for backend, cells in results.items():
        body += ["", f"## {servers[backend]}", "", table(backend, cells, names)]
        body += [
            "",
            "Client CPU time (µs per unit of the table above: per operation, or per row "
            "for bulk_create, fetch_all, values and bulk_update; this process only, so "
            "aiosqlite's thread counts and the PostgreSQL server does not; lower is better):",
            "",
            cpu_table(cells, names),
        ]
        for workload, row in cells.items():
            for name, cell in row.items():
                if cell.status == "FAILED":
                    failures.append(f"- {backend} {workload} {name}: {cell.error}")
                retries += [f"- {backend} {workload} {name}: {e}" for e in cell.retried]
    raw = {
        "date": started.isoformat(),
        "rounds": args.rounds,
        "scale": args.scale,
        "versions": info,
        "servers": servers,
        "results": {backend: _dump(cells) for backend, cells in results.items()},
    }
    if "Flash DB" in names:
        body += ["", "## Ratios and targets", "", targets.report(raw, issue=TARGETS_ISSUE).rstrip()]
    if failures:
        body += ["", "## Failures", "", *failures]
    if retries:
        body += ["", "## Runs retried after a lost connection", "", *retries]
    text_out = "\n".join(header + body) + "\n"
    print(text_out)

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.tag}.md").write_text(text_out)
    (args.out / f"{args.tag}.json").write_text(json.dumps(raw, indent=1) + "\n")
    if not args.no_plot:
        plot(results, names, args.out / f"{args.tag}.png")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
