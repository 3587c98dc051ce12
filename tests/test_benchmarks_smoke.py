"""Smoke tests of the benchmark harnesses: one tiny round on SQLite, every result verified."""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run_module(module: str, args: list[str], *, timeout: int) -> subprocess.CompletedProcess[str]:
    """Run ``python -m module args`` from the repository; fail with its output unless it exits 0."""
    done = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def test_benchmark_harness_runs_and_verifies_one_tiny_round(tmp_path: Path) -> None:
    systems = ["Flash DB", "SA Core", "SA ORM"]
    if importlib.util.find_spec("tortoise") is not None:  # only in the bench extra
        systems.append("Tortoise")
    args = ["--backend", "sqlite", "--rounds", "1", "--scale", "0.01", "--no-plot"]
    args += ["--systems", ",".join(systems), "--out", str(tmp_path), "--tag", "smoke"]
    args += ["--sqlite-path", str(tmp_path / "bench.sqlite3")]
    _run_module("benchmarks.run", args, timeout=60)
    table = (tmp_path / "smoke.md").read_text()
    assert "FAILED" not in table
    workloads = ["create_autocommit", "get_pk", "fetch_all", "values"]
    for workload in [*workloads, "update_qs", "delete_one", "delete_qs"]:
        row = next(line for line in table.splitlines() if line.startswith(f"| {workload} |"))
        assert row.count("(") == len(systems) - 1, row  # a measured ratio for every peer
    assert "## Ratios and targets" in table
    assert (tmp_path / "smoke.json").exists()


def _free_port_pair() -> int:
    """Return a port p such that p and p + 1 are free on 127.0.0.1 (the two HTTP servers)."""
    for _ in range(50):
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            port = int(first.getsockname()[1])
            with socket.socket() as second:
                try:
                    second.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
        return port
    raise RuntimeError("no two consecutive free ports")


def test_http_benchmark_checks_answers_and_loads_every_endpoint(tmp_path: Path) -> None:
    if importlib.util.find_spec("tortoise") is None:  # only in the bench extra
        pytest.skip("the HTTP benchmark's Tortoise app needs tortoise-orm (the bench extra)")
    args = ["--backend", "sqlite", "--rounds", "1", "--duration", "0.3", "--warmup", "0.2"]
    args += ["--concurrency", "8", "--delete-supply", "2000", "--port", str(_free_port_pair())]
    args += ["--out", str(tmp_path), "--tag", "smoke"]
    _run_module("benchmarks.http", args, timeout=120)
    table = (tmp_path / "http-smoke.md").read_text()
    for endpoint in ("list", "get", "create", "update", "delete"):
        row = next(line for line in table.splitlines() if line.startswith(f"| {endpoint} |"))
        assert row.endswith("| 0 |"), row  # no failed request
    assert "Failures" not in table


def test_in_process_http_probe_prints_every_route() -> None:
    if importlib.util.find_spec("tortoise") is None:  # only in the bench extra
        pytest.skip("the in-process probe drives the Tortoise app too (the bench extra)")
    done = _run_module(
        "benchmarks.http_inprocess", ["--requests", "20", "--repeats", "1"], timeout=120
    )
    rows = [
        line for line in done.stdout.splitlines() if line.startswith("| ") and "---" not in line
    ]
    assert len(rows) == 8, done.stdout  # the header and seven routes
    for line in rows[1:]:
        assert float(line.rsplit("|", 2)[1].replace(",", "")) > 0, line


def test_list_transaction_benchmark_prints_every_route(tmp_path: Path) -> None:
    args = ["--requests", "20", "--repeats", "1", "--concurrency", "4"]
    args += ["--sqlite-path", str(tmp_path / "bench.sqlite3")]
    done = _run_module("benchmarks.list_transaction", args, timeout=120)
    rows = [
        line for line in done.stdout.splitlines() if line.startswith("| ") and "---" not in line
    ]
    assert len(rows) == 6, done.stdout  # the header and five routes
    assert rows[3].startswith("| `/plain`"), rows[3]
    assert "| 1.00x |" in rows[3], rows[3]  # the baseline
