"""HTTP benchmark: CRUDRouter list/get against hand-written FastAPI + SQLAlchemy endpoints.

``python -m benchmarks.http [--backend postgresql] [--rounds 3] [--duration 5]``

One uvicorn server (one worker, 127.0.0.1) serves ``benchmarks.http_app``; the
four endpoints are loaded one after the other with the same tool (``wrk`` when
it is installed, else an httpx async client with bounded concurrency), their
order rotated each round. Before the load every endpoint's response is checked
against the seeded rows, and the Flash DB and hand-written bodies must be equal.
Reports the median requests/s and p99 latency over the rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from benchmarks.common import make_row
from benchmarks.run import (
    DEFAULT_PG,
    RESULTS,
    Fixture,
    ensure_pg_database,
    sqlite_url,
    versions,
)

ROWS = 1000
GET_ID = 500
ENDPOINTS = {
    "list (Flash CRUDRouter)": "/items",
    "list (hand-written)": "/raw/items",
    "get (Flash CRUDRouter)": f"/items/{GET_ID}",
    "get (hand-written)": f"/raw/items/{GET_ID}",
}


@dataclass
class Runs:
    """Every round's (requests/s, p99 ms, failed requests) of one endpoint."""

    rps: list[float] = field(default_factory=list)
    p99: list[float] = field(default_factory=list)
    failed: int = 0


def expected(path: str) -> Any:
    """Return the JSON body the endpoint must answer with."""

    def row(i: int) -> dict[str, Any]:
        return {"id": i, **make_row(i)}

    if path.endswith("/items"):
        return {"items": [row(i) for i in range(1, 51)], "total": ROWS, "limit": 50, "offset": 0}
    return row(GET_ID)


async def verify(base: str) -> None:
    """Check every endpoint's body (and the 404 of a missing row) before loading it."""
    async with httpx.AsyncClient(base_url=base) as client:
        for name, path in ENDPOINTS.items():
            response = await client.get(path)
            if response.status_code != 200 or response.json() != expected(path):
                raise AssertionError(f"{name}: {response.status_code} {response.text[:200]}")
        for path in ("/items/999999", "/raw/items/999999"):
            if (await client.get(path)).status_code != 404:
                raise AssertionError(f"{path} should be a 404")


def run_wrk(url: str, duration: float, concurrency: int) -> tuple[float, float, int]:
    """Load ``url`` with wrk; return (requests/s, p99 ms, failed requests)."""
    out = subprocess.run(
        ["wrk", "-t1", f"-c{concurrency}", f"-d{duration:g}s", "--latency", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99_match = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", out)
    assert p99_match is not None, out
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99_match.group(2)]
    p99 = float(p99_match.group(1)) * scale
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*?timeout (\d+)", out)
    failed = (int(non2xx.group(1)) if non2xx else 0) + (int(errors.group(1)) if errors else 0)
    return rps, p99, failed


async def run_httpx(url: str, duration: float, concurrency: int) -> tuple[float, float, int]:
    """Load ``url`` with ``concurrency`` httpx workers for ``duration`` seconds."""
    latencies: list[float] = []
    failed = 0
    deadline = time.perf_counter() + duration
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits) as client:

        async def worker() -> None:
            nonlocal failed
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                response = await client.get(url)
                latencies.append(time.perf_counter() - start)
                if response.status_code != 200:
                    failed += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000 if latencies else 0.0
    return len(latencies) / elapsed, p99, failed


async def wait_ready(base: str, server: asyncio.subprocess.Process) -> None:
    """Wait for the server to answer (or fail if it exits)."""
    async with httpx.AsyncClient(base_url=base) as client:
        for _ in range(200):
            if server.returncode is not None:
                raise RuntimeError("uvicorn exited before it was ready")
            try:
                await client.get("/raw/items/1")
                return
            except httpx.TransportError:
                await asyncio.sleep(0.05)
    raise RuntimeError("uvicorn did not start within 10 s")


async def bench_backend(
    backend: str, args: argparse.Namespace, tool: str
) -> tuple[dict[str, Runs], str]:
    """Serve and load every endpoint on one backend; return the runs and the server version."""
    url = args.pg_url if backend == "postgresql" else sqlite_url(None)
    if backend == "postgresql":
        await ensure_pg_database(url)
    fixture = Fixture(url)
    await fixture.create()
    await fixture.seed(ROWS)
    server_version = await fixture.server_version()
    await fixture.close()
    base = f"http://127.0.0.1:{args.port}"
    env = {**os.environ, "BENCH_DATABASE_URL": url}
    if args.pre_ping != "default":
        env["BENCH_PRE_PING"] = "1" if args.pre_ping == "both" else "0"
    command = [sys.executable, "-m", "uvicorn", "benchmarks.http_app:app"]
    command += ["--host", "127.0.0.1", "--port", str(args.port)]
    command += ["--log-level", "warning", "--no-access-log"]
    server = await asyncio.create_subprocess_exec(*command, env=env)
    runs = {name: Runs() for name in ENDPOINTS}
    try:
        await wait_ready(base, server)
        await verify(base)
        names = list(ENDPOINTS)
        for round_no in range(args.rounds):
            order = names[round_no % len(names) :] + names[: round_no % len(names)]
            for name in order:
                target = base + ENDPOINTS[name]
                if tool == "wrk":
                    rps, p99, failed = run_wrk(target, args.duration, args.concurrency)
                else:
                    rps, p99, failed = await run_httpx(target, args.duration, args.concurrency)
                runs[name].rps.append(rps)
                runs[name].p99.append(p99)
                runs[name].failed += failed
            print(f"  http {backend}: round {round_no + 1}/{args.rounds} done", file=sys.stderr)
        await verify(base)
    finally:
        server.terminate()
        await asyncio.wait_for(server.wait(), timeout=10)
    return runs, server_version


def table(runs: dict[str, Runs]) -> str:
    """Return the markdown table of one backend."""
    lines = [
        "| endpoint | Flash CRUDRouter req/s | p99 ms | hand-written req/s | p99 ms | ratio |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for endpoint in ("list", "get"):
        flash = runs[f"{endpoint} (Flash CRUDRouter)"]
        raw = runs[f"{endpoint} (hand-written)"]
        f_rps, r_rps = statistics.median(flash.rps), statistics.median(raw.rps)
        failed = f" ({flash.failed + raw.failed} failed)" if flash.failed or raw.failed else ""
        lines.append(
            f"| {endpoint}{failed} | {f_rps:,.0f} | {statistics.median(flash.p99):.1f} | "
            f"{r_rps:,.0f} | {statistics.median(raw.p99):.1f} | {f_rps / r_rps:.2f} |"
        )
    return "\n".join(lines)


async def main() -> int:
    """Run the HTTP benchmark on the chosen backends; print and write the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "all"), default="all")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per endpoint run")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--tool", choices=("auto", "wrk", "httpx"), default="auto")
    parser.add_argument("--pg-url", default=DEFAULT_PG + "_http")
    parser.add_argument(
        "--pre-ping",
        choices=("default", "both", "none"),
        default="default",
        help="pool_pre_ping: Flash DB's default (on for PostgreSQL), on for both, off for both",
    )
    parser.add_argument("--tag", default="latest")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    tool = args.tool
    if tool == "auto":
        tool = "wrk" if shutil.which("wrk") else "httpx"
    backends = ["sqlite", "postgresql"] if args.backend == "all" else [args.backend]
    started = datetime.now(UTC)
    sections = []
    raw: dict[str, Any] = {}
    for backend in backends:
        runs, server_version = await bench_backend(backend, args, tool)
        sections += ["", f"## {server_version}", "", table(runs)]
        raw[backend] = {name: vars(r) for name, r in runs.items()}
    info = versions()
    for package in ("fastapi", "pydantic", "uvicorn"):
        info[package] = __import__("importlib.metadata").metadata.version(package)
    text = "\n".join(
        [
            f"# HTTP benchmark ({args.tag})",
            "",
            f"{started:%Y-%m-%d %H:%M} UTC; {tool}, {args.concurrency} connections, "
            f"{args.duration:g} s per run, {args.rounds} rounds, medians; one uvicorn worker; "
            f"pool_pre_ping: {args.pre_ping}.",
            "Versions: " + ", ".join(f"{k} {v}" for k, v in info.items()) + ".",
            *sections,
        ]
    )
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"http-{args.tag}.md").write_text(text + "\n")
    (args.out / f"http-{args.tag}.json").write_text(json.dumps(raw, indent=1) + "\n")
    failed = any(r["failed"] for runs in raw.values() for r in runs.values())
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
