"""HTTP benchmark: Flash DB's CRUDRouter against the same endpoints on FastAPI + Tortoise ORM.

``python -m benchmarks.http [--backend all] [--rounds 3] [--duration 4] [--concurrency 64]``

Two uvicorn servers run side by side, started with the same flags (one worker,
127.0.0.1, no access log), each with its own pool: ``benchmarks.http_app``
(the CRUDRouter at ``/items``; list and get also written by hand with FastAPI
and the SQLAlchemy ORM at ``/raw/items``) and ``benchmarks.http_tortoise``
(the five routes on FastAPI + Tortoise, at ``/items``). On PostgreSQL every
pool holds at most ``--pool-size`` connections (10; 0 for each library's
default: SQLAlchemy 5 + 10 overflow, Tortoise 5); on SQLite each keeps its own
(Tortoise has one connection). Flash DB pings each connection it checks out on
PostgreSQL (its default; ``--pre-ping``); Tortoise never does.

Endpoints: ``list`` (GET a page of 50 and the total), ``get`` (GET one row),
``create`` (POST a new row, 201), ``update`` (PATCH one field of an existing
row, a new value each time, cycling over the seeded rows) and ``delete``
(DELETE a row, 204, each from a supply of extra rows seeded for the run).
Before every run the table is reset and seeded (untimed), so every run starts
from the same rows; after it the stored rows are checked against the requests
that succeeded. Before the rounds every endpoint's answers are checked against
the seeded rows (and a missing row's 404) on every system, then each system
gets a short warm-up. In a round every endpoint is loaded on every server, the
endpoints and the servers in an order rotated each round, each run
``--duration`` seconds from ``--concurrency`` keep-alive connections with a
lean asyncio client (``benchmarks.http_client``; ``--tool httpx`` for httpx,
``--tool wrk`` for wrk on the GET endpoints). A request answered with another
status than the route's (200, 201, 204) or not answered counts as failed.

Reports the median requests/s and p99 latency over the rounds with the ratio
Flash DB / Tortoise (and Flash DB / hand-written on list and get), then the
server's CPU time per request (the uvicorn process, including aiosqlite's
threads; not the PostgreSQL server), which a busy machine changes less.
Results go to ``results/http-<tag>.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx

from benchmarks.common import RowTuple, make_row
from benchmarks.http_client import LoadResult, Request, load
from benchmarks.run import (
    DEFAULT_PG,
    RESULTS,
    Fixture,
    ensure_pg_database,
    seeded,
    sqlite_url,
    versions,
)

HOST = "127.0.0.1"
ROWS = 1000
GET_ID = 500
MISSING_ID = 999_999
ENDPOINTS = ("list", "get", "create", "update", "delete")
READS = ("list", "get")
FLASH, TORTOISE, RAW = "Flash DB", "Tortoise", "hand-written"


@dataclass(frozen=True)
class Server:
    """One uvicorn process: its app and port."""

    app: str
    port: int

    @property
    def base(self) -> str:
        """Return the server's base URL."""
        return f"http://{HOST}:{self.port}"


@dataclass(frozen=True)
class System:
    """One implementation of the endpoints: the server serving it and its URL prefix."""

    name: str
    server: Server
    prefix: str
    endpoints: tuple[str, ...]


@dataclass
class Runs:
    """Every round's measurements of one endpoint on one system."""

    rps: list[float] = field(default_factory=list)
    p99: list[float] = field(default_factory=list)
    server_cpu_us: list[float] = field(default_factory=list)  # per request
    client_cpu_us: list[float] = field(default_factory=list)  # per request
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    exhausted: int = 0  # runs that used up the delete supply before the deadline
    wrong: list[str] = field(default_factory=list)  # stored rows not what the requests left


# -- the requests of each endpoint and the rows they must leave ------------------------


def row(i: int) -> dict[str, Any]:
    """Return the JSON body of seeded row ``i``."""
    return {"id": i, **make_row(i)}


def new_row(k: int) -> dict[str, Any]:
    """Return the body of the ``k``-th created row."""
    return {"name": f"new-{k}", "level": k % 10, "score": k * 0.25}


def requests(endpoint: str, prefix: str, supply: int) -> Iterator[Request]:
    """Return the endpoint's stream of requests (endless, but for delete's supply)."""
    if endpoint == "list":
        return itertools.repeat(Request("GET", prefix))
    if endpoint == "get":
        return itertools.repeat(Request("GET", f"{prefix}/{GET_ID}"))
    if endpoint == "create":
        return (
            Request("POST", prefix, json.dumps(new_row(k)).encode(), 201)
            for k in itertools.count(1)
        )
    if endpoint == "update":
        return (
            Request("PATCH", f"{prefix}/{1 + k % ROWS}", json.dumps({"level": 1000 + k}).encode())
            for k in itertools.count()
        )
    if endpoint == "delete":
        return (
            Request("DELETE", f"{prefix}/{pk}", None, 204)
            for pk in range(ROWS + 1, ROWS + supply + 1)
        )
    raise ValueError(f"Unknown endpoint {endpoint!r}; choices are {', '.join(ENDPOINTS)}.")


def seeded_rows(endpoint: str, supply: int) -> int:
    """Return how many rows the table holds before a run of ``endpoint``."""
    return ROWS + supply if endpoint == "delete" else ROWS


def _pk(request: Request) -> int:
    return int(request.path.rsplit("/", 1)[1])


def check_stored(
    endpoint: str, stored: list[RowTuple], supply: int, succeeded: list[Request]
) -> None:
    """Raise AssertionError unless ``stored`` is what the succeeded requests leave."""
    before = seeded(seeded_rows(endpoint, supply))
    if endpoint in READS:
        assert stored == before, f"{endpoint}: the rows changed"
    elif endpoint == "create":
        assert stored[:ROWS] == before, "create: the seeded rows changed"
        made = sorted((r[1], r[2], r[3]) for r in stored[ROWS:])
        asked = sorted(tuple(json.loads(r.body or b"").values()) for r in succeeded)
        assert made == asked, f"create: {len(made)} new rows stored, {len(asked)} created"
    elif endpoint == "update":
        levels: dict[int, set[int]] = {}
        for request in succeeded:
            levels.setdefault(_pk(request), set()).add(json.loads(request.body or b"")["level"])
        assert [r[0] for r in stored] == [r[0] for r in before], "update: rows came or went"
        for got, was in zip(stored, before, strict=True):
            if got[0] in levels:
                assert got[2] in levels[got[0]], f"update: row {got[0]} has level {got[2]}"
                assert (got[1], got[3]) == (was[1], was[3]), f"update: row {got[0]} changed"
            else:
                assert got == was, f"update: row {got[0]} changed, no request updated it"
    elif endpoint == "delete":
        gone = {_pk(r) for r in succeeded}
        assert len(gone) == len(succeeded), "delete: a row was deleted twice"
        assert stored == [r for r in before if r[0] not in gone], "delete: stored rows differ"


# -- checking the answers before the load --------------------------------------------


async def check_answers(systems: list[System], fixture: Fixture) -> None:
    """Check every endpoint's answer on every system; Flash DB and Tortoise must agree.

    The writes change the table: it is reseeded before each system and after the last.
    """
    answers: dict[str, list[Any]] = {}
    for system in systems:
        await fixture.seed(ROWS)
        got: list[Any] = []
        async with httpx.AsyncClient(base_url=system.server.base) as client:

            async def call(
                method: str, path: str, status: int, body: Any = None, *, name: str = system.name
            ) -> Any:
                response = await client.request(method, path, json=body)
                if response.status_code != status:
                    raise AssertionError(
                        f"{name} {method} {path}: {response.status_code}, expected {status}: "
                        f"{response.text[:200]}"
                    )
                return response.json() if response.content else None

            p = system.prefix
            page = await call("GET", p, 200)
            first = {"items": [row(i) for i in range(1, 51)], "total": ROWS, "limit": 50}
            assert page == {**first, "offset": 0}, str(page)[:300]
            one = await call("GET", f"{p}/{GET_ID}", 200)
            assert one == row(GET_ID), one
            await call("GET", f"{p}/{MISSING_ID}", 404)
            got += [page, one]
            if "create" in system.endpoints:
                created = await call("POST", p, 201, new_row(1))
                assert created == {"id": created["id"], **new_row(1)}, created
                assert created["id"] > ROWS, created
                assert await call("GET", f"{p}/{created['id']}", 200) == created
                got.append({k: v for k, v in created.items() if k != "id"})
            if "update" in system.endpoints:
                updated = await call("PATCH", f"{p}/1", 200, {"level": 77})
                assert updated == {**row(1), "level": 77}, updated
                assert await call("GET", f"{p}/1", 200) == updated
                await call("PATCH", f"{p}/{MISSING_ID}", 404, {"level": 1})
                got.append(updated)
            if "delete" in system.endpoints:
                assert await call("DELETE", f"{p}/2", 204) is None
                await call("GET", f"{p}/2", 404)
                await call("DELETE", f"{p}/2", 404)
        answers[system.name] = got
    await fixture.seed(ROWS)
    if FLASH in answers and TORTOISE in answers:
        assert answers[FLASH] == answers[TORTOISE], "Flash DB and Tortoise answer differently"


# -- the load tools ---------------------------------------------------------------------


def run_wrk(url: str, duration: float, concurrency: int) -> tuple[float, float, int, int]:
    """Load ``url`` with GETs from wrk (one thread); return (requests/s, p99 ms, failed, done)."""
    out = subprocess.run(
        ["wrk", "-t1", f"-c{concurrency}", f"-d{duration:g}s", "--latency", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99_match = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", out)
    assert p99_match is not None, out
    p99 = float(p99_match.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99_match.group(2)]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*?timeout (\d+)", out)
    failed = (int(non2xx.group(1)) if non2xx else 0) + (int(errors.group(1)) if errors else 0)
    done = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    return rps, p99, failed, done


async def run_httpx(
    base: str, stream: Iterator[Request], duration: float, concurrency: int
) -> LoadResult:
    """Send ``stream`` from ``concurrency`` httpx workers for ``duration`` seconds."""
    result = LoadResult(0.0)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits) as client:
        deadline = time.perf_counter() + duration

        async def worker() -> None:
            while time.perf_counter() < deadline:
                request = next(stream, None)
                if request is None:
                    result.exhausted = True
                    return
                start = time.perf_counter()
                try:
                    response = await client.request(
                        request.method,
                        request.path,
                        content=request.body,
                        headers={"Content-Type": "application/json"} if request.body else None,
                    )
                except httpx.HTTPError as error:
                    result.failed += 1
                    result.errors.append(f"{request.method} {request.path}: {error!r}")
                    continue
                result.latencies.append(time.perf_counter() - start)
                if response.status_code == request.expect:
                    result.succeeded.append(request)
                else:
                    result.failed += 1
                    result.errors.append(f"{request.method} {request.path}: {response.status_code}")

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        result.seconds = time.perf_counter() - started
    return result


def process_cpu(pid: int) -> float:
    """Return the CPU seconds (user + system) process ``pid`` has used, 0.0 without /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- one backend --------------------------------------------------------------------------


async def wait_ready(server: Server, process: asyncio.subprocess.Process) -> None:
    """Wait for the server to answer (or fail if it exits)."""
    async with httpx.AsyncClient(base_url=server.base) as client:
        for _ in range(300):
            if process.returncode is not None:
                raise RuntimeError(f"uvicorn {server.app} exited before it was ready")
            try:
                await client.get("/items/1")
                return
            except httpx.TransportError:
                await asyncio.sleep(0.05)
    raise RuntimeError(f"uvicorn {server.app} did not start within 15 s")


async def start(server: Server, env: dict[str, str]) -> asyncio.subprocess.Process:
    """Start one uvicorn process (one worker) for ``server``."""
    command = [sys.executable, "-m", "uvicorn", server.app, "--host", HOST]
    command += ["--port", str(server.port), "--log-level", "warning", "--no-access-log"]
    return await asyncio.create_subprocess_exec(*command, env=env)


@dataclass
class Measured:
    """One run: what the client measured, and the CPU time per request on each side."""

    rps: float
    p99_ms: float
    load: LoadResult  # failures, succeeded requests (empty from wrk)
    server_cpu_us: float = 0.0
    client_cpu_us: float = 0.0


async def measure(system: System, endpoint: str, pid: int, args: argparse.Namespace) -> Measured:
    """Load one endpoint of one system once."""
    stream = requests(endpoint, system.prefix, args.delete_supply)
    cpu_server, cpu_client = process_cpu(pid), time.process_time()
    if args.tool == "wrk" and endpoint in READS:
        url = system.server.base + next(stream).path
        rps, p99, failed, done = await asyncio.to_thread(
            run_wrk, url, args.duration, args.concurrency
        )
        measured = Measured(rps, p99, LoadResult(args.duration, failed=failed))
    else:
        if args.tool == "httpx":
            result = await run_httpx(system.server.base, stream, args.duration, args.concurrency)
        else:
            result = await load(HOST, system.server.port, stream, args.duration, args.concurrency)
        measured = Measured(result.rps, result.p99_ms, result)
        done = len(result.latencies)
    done = max(1, done)
    measured.server_cpu_us = (process_cpu(pid) - cpu_server) / done * 1e6
    measured.client_cpu_us = (time.process_time() - cpu_client) / done * 1e6
    return measured


async def bench_backend(
    backend: str, args: argparse.Namespace
) -> tuple[dict[str, dict[str, Runs]], str]:
    """Serve and load every endpoint on one backend; return the runs and the server version."""
    url = args.pg_url if backend == "postgresql" else sqlite_url(None)
    if backend == "postgresql":
        await ensure_pg_database(url)
    fixture = Fixture(url)
    await fixture.create()
    await fixture.seed(ROWS)
    server_version = await fixture.server_version()
    flash_server = Server("benchmarks.http_app:app", args.port)
    tortoise_server = Server("benchmarks.http_tortoise:app", args.port + 1)
    systems = [
        System(FLASH, flash_server, "/items", ENDPOINTS),
        System(TORTOISE, tortoise_server, "/items", ENDPOINTS),
        System(RAW, flash_server, "/raw/items", READS),
    ]
    env = {**os.environ, "BENCH_DATABASE_URL": url}
    if args.pre_ping != "default":
        env["BENCH_PRE_PING"] = "1" if args.pre_ping == "both" else "0"
    if args.pool_size:
        env["BENCH_POOL_SIZE"] = str(args.pool_size)
    runs = {e: {s.name: Runs() for s in systems if e in s.endpoints} for e in ENDPOINTS}
    processes: dict[Server, asyncio.subprocess.Process] = {}
    try:
        for server in (flash_server, tortoise_server):
            processes[server] = await start(server, env)
        for server, process in processes.items():
            await wait_ready(server, process)
        await check_answers(systems, fixture)
        for system in systems:  # pools filled and caches warm before anything is timed
            stream = requests("get", system.prefix, 0)
            warm = await load(HOST, system.server.port, stream, args.warmup, args.concurrency)
            assert warm.failed == 0, warm.errors
        for round_no in range(args.rounds):
            turn = round_no % len(ENDPOINTS)
            endpoints = ENDPOINTS[turn:] + ENDPOINTS[:turn]
            for endpoint in endpoints:
                here = [s for s in systems if endpoint in s.endpoints]
                here = here[round_no % len(here) :] + here[: round_no % len(here)]
                for system in here:
                    await fixture.seed(seeded_rows(endpoint, args.delete_supply))
                    pid = processes[system.server].pid
                    measured = await measure(system, endpoint, pid, args)
                    result = measured.load
                    cell = runs[endpoint][system.name]
                    stored = await fixture.rows()
                    try:
                        check_stored(endpoint, stored, args.delete_supply, result.succeeded)
                    except AssertionError as error:
                        cell.wrong.append(f"round {round_no + 1}: {error}")
                    cell.rps.append(measured.rps)
                    cell.p99.append(measured.p99_ms)
                    cell.server_cpu_us.append(measured.server_cpu_us)
                    cell.client_cpu_us.append(measured.client_cpu_us)
                    cell.failed += result.failed
                    cell.errors += result.errors[: 5 - len(cell.errors)]
                    cell.exhausted += result.exhausted
            print(f"  http {backend}: round {round_no + 1}/{args.rounds} done", file=sys.stderr)
        await check_answers(systems, fixture)
    finally:
        for process in processes.values():
            process.terminate()
        for process in processes.values():
            await asyncio.wait_for(process.wait(), timeout=10)
        await fixture.close()
    return runs, server_version


# -- output ---------------------------------------------------------------------------


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}" if a and b else "—"


def table(runs: dict[str, dict[str, Runs]]) -> str:
    """Return the markdown table of one backend: requests/s, p99 and the ratios."""
    lines = [
        f"| endpoint | {FLASH} req/s | p99 ms | {TORTOISE} req/s | p99 ms | "
        f"{FLASH} / {TORTOISE} | {RAW} req/s | p99 ms | {FLASH} / {RAW} | failed |",
        "|---|" + "---:|" * 9,
    ]
    for endpoint, row in runs.items():
        out = [endpoint]
        rps = {name: _median(cell.rps) for name, cell in row.items()}
        for name in (FLASH, TORTOISE, RAW):
            cell = row.get(name)
            if cell is None or rps[name] is None:
                out += ["—", "—"]
            else:
                out += [f"{rps[name]:,.0f}", f"{_median(cell.p99):.1f}"]
            if name != FLASH:
                out.append(_ratio(rps.get(FLASH), rps.get(name)))
        failed = sum(cell.failed for cell in row.values())
        wrong = sum(len(cell.wrong) for cell in row.values())
        out.append(f"{failed} ({wrong} runs WRONG)" if wrong else str(failed))
        lines.append("| " + " | ".join(out) + " |")
    return "\n".join(lines)


def cpu_table(runs: dict[str, dict[str, Runs]]) -> str:
    """Return the markdown table of the server's CPU µs per request (lower is better)."""
    lines = [
        f"| endpoint | {FLASH} | {TORTOISE} | {RAW} | {FLASH} / {TORTOISE} |",
        "|---|" + "---:|" * 4,
    ]
    for endpoint, row in runs.items():
        cpu = {name: _median(cell.server_cpu_us) for name, cell in row.items()}
        out = [endpoint]
        for name in (FLASH, TORTOISE, RAW):
            value = cpu.get(name)
            out.append("—" if value is None else f"{value:,.0f}")
        out.append(_ratio(cpu.get(FLASH), cpu.get(TORTOISE)))
        lines.append("| " + " | ".join(out) + " |")
    return "\n".join(lines)


def notes(backend: str, runs: dict[str, dict[str, Runs]]) -> list[str]:
    """Return the failures and the runs that used up the delete supply, as list items."""
    out = []
    for endpoint, row in runs.items():
        for name, cell in row.items():
            if cell.failed:
                out.append(f"- {backend} {endpoint} {name}: {cell.failed} failed: {cell.errors}")
            for wrong in cell.wrong:
                out.append(f"- {backend} {endpoint} {name}: WRONG stored rows, {wrong}")
            if cell.exhausted:
                out.append(
                    f"- {backend} {endpoint} {name}: {cell.exhausted} run(s) used up the "
                    "delete supply before the deadline (raise --delete-supply)"
                )
    return out


async def main() -> int:
    """Run the HTTP benchmark on the chosen backends; print and write the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "all"), default="all")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per run")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds per system, untimed")
    parser.add_argument("--port", type=int, default=8765, help="Flash DB's; Tortoise's is +1")
    parser.add_argument("--tool", choices=("lean", "httpx", "wrk"), default="lean")
    parser.add_argument("--pg-url", default=DEFAULT_PG + "_http")
    parser.add_argument(
        "--pool-size",
        type=int,
        default=10,
        help="most connections of each pool on PostgreSQL (0: each library's default)",
    )
    parser.add_argument(
        "--pre-ping",
        choices=("default", "both", "none"),
        default="default",
        help="pool_pre_ping: Flash DB's default (on for PostgreSQL), on for both SQLAlchemy "
        "engines, off for both (Tortoise never pings)",
    )
    parser.add_argument(
        "--delete-supply",
        type=int,
        default=None,
        help="extra rows seeded for each delete run (default: 4,000 per second of --duration)",
    )
    parser.add_argument("--tag", default="latest", help="results/http-<tag>.md and .json")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.delete_supply is None:
        args.delete_supply = int(4000 * args.duration)
    if args.tool == "wrk" and not shutil.which("wrk"):
        parser.error("wrk is not installed")
    backends = ["sqlite", "postgresql"] if args.backend == "all" else [args.backend]
    started = datetime.now(UTC)
    load_start = os.getloadavg()[0]
    sections: list[str] = []
    failures: list[str] = []
    raw: dict[str, Any] = {}
    client_cpu: list[float] = []
    for backend in backends:
        runs, server_version = await bench_backend(backend, args)
        sections += ["", f"## {server_version}", "", table(runs), ""]
        sections += ["Server CPU µs per request (the uvicorn process; lower is better):", ""]
        sections += [cpu_table(runs)]
        failures += notes(backend, runs)
        raw[backend] = {e: {n: vars(c) for n, c in row.items()} for e, row in runs.items()}
        client_cpu += [v for row in runs.values() for c in row.values() for v in c.client_cpu_us]
    info = versions()
    for package in ("fastapi", "pydantic", "uvicorn"):
        info[package] = version(package)
    seconds = (datetime.now(UTC) - started).total_seconds()
    tool = {
        "lean": "benchmarks.http_client",
        "httpx": "httpx",
        "wrk": "wrk (GETs), benchmarks.http_client (writes)",
    }[args.tool]
    pool = f"at most {args.pool_size} connections" if args.pool_size else "each library's default"
    text = "\n".join(
        [
            f"# HTTP benchmark ({args.tag})",
            "",
            f"{started:%Y-%m-%d %H:%M} UTC; {tool}, {args.concurrency} connections, "
            f"{args.duration:g} s per run, {args.rounds} rounds, medians; one uvicorn worker "
            f"per app; PostgreSQL pools: {pool}; pool_pre_ping: {args.pre_ping}; delete "
            f"supply {args.delete_supply:,} rows; run took {seconds:.0f} s.",
            "Versions: " + ", ".join(f"{k} {v}" for k, v in info.items()) + "; "
            f"{os.cpu_count()} CPUs; load average {load_start:.1f} at the start, "
            f"{os.getloadavg()[0]:.1f} at the end; client CPU "
            f"{_median(client_cpu) or 0:,.0f} µs per request (median).",
            "Statements per request: the CRUDRouter sends list 2 (count, page), get 1, "
            "create 1, update 2 (SELECT, UPDATE), delete 1 (DELETE; no liveness round trip "
            "on checkout); the Tortoise app, as Tortoise's FastAPI example, "
            "list 2, get 1, create 1, update 2 (UPDATE, SELECT), delete 1 (DELETE).",
            *sections,
            *(["", "## Failures and notes", "", *failures] if failures else []),
        ]
    )
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"http-{args.tag}.md").write_text(text + "\n")
    meta = {
        "date": started.isoformat(),
        "tool": args.tool,
        "concurrency": args.concurrency,
        "duration": args.duration,
        "rounds": args.rounds,
        "pool_size": args.pool_size,
        "pre_ping": args.pre_ping,
        "delete_supply": args.delete_supply,
        "versions": info,
    }
    (args.out / f"http-{args.tag}.json").write_text(
        json.dumps({"meta": meta, "results": raw}, indent=1) + "\n"
    )
    failed = any(
        c["failed"] or c["wrong"] for b in raw.values() for row in b.values() for c in row.values()
    )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
