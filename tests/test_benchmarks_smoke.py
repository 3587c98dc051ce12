"""A smoke test of the benchmark harness: one tiny round on SQLite, every result verified."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_benchmark_harness_runs_and_verifies_one_tiny_round(tmp_path: Path) -> None:
    systems = ["Flash DB", "SA Core", "SA ORM"]
    if importlib.util.find_spec("tortoise") is not None:  # only in the bench extra
        systems.append("Tortoise")
    args = ["--backend", "sqlite", "--rounds", "1", "--scale", "0.01", "--no-plot"]
    args += ["--systems", ",".join(systems), "--out", str(tmp_path), "--tag", "smoke"]
    args += ["--sqlite-path", str(tmp_path / "bench.sqlite3")]
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    table = (tmp_path / "smoke.md").read_text()
    assert "FAILED" not in table
    workloads = ["create_autocommit", "get_pk", "fetch_all", "values"]
    for workload in [*workloads, "update_qs", "delete_one", "delete_qs"]:
        row = next(line for line in table.splitlines() if line.startswith(f"| {workload} |"))
        assert row.count("(") == len(systems) - 1, row  # a measured ratio for every peer
    assert "## Ratios and targets" in table
    assert (tmp_path / "smoke.json").exists()
