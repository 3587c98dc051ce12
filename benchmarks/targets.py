"""Check a results file against the targets of issue 6: ``python -m benchmarks.targets FILE``.

Prints one markdown table per database: Flash DB's ratio to each peer on every
workload, marked ``✓``/``✗`` where a target applies (PostgreSQL: at least
Tortoise and SA ORM everywhere, at least 0.85x SA Core on the bulk and simple
write/aggregate workloads; SQLite: at least SA ORM everywhere, at least Tortoise
on bulk_create, fetch_all, values and bulk_update).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

CORE_085 = ("values", "count", "update_one", "delete_one", "bulk_create", "bulk_update")
SQLITE_TORTOISE = ("bulk_create", "fetch_all", "values", "bulk_update")


def _ratio(row: dict[str, Any], peer: str) -> float | None:
    flash, other = row.get("Flash DB", {}).get("median"), row.get(peer, {}).get("median")
    return flash / other if flash and other else None


def _cell(value: float | None, target: float | None) -> str:
    if value is None:
        return "n/a"
    if target is None:
        return f"{value:.2f}"
    return f"{value:.2f} {'✓' if value >= target else '✗'}"


def report(raw: dict[str, Any]) -> str:
    """Return the markdown tables for a results JSON (as written by ``benchmarks.run``)."""
    out = []
    for backend, cells in raw["results"].items():
        out += [
            f"### {backend}: Flash DB's ratio to each peer",
            "",
            "| workload | vs Tortoise | vs SA ORM | vs SA Core |",
            "|---|---:|---:|---:|",
        ]
        met = missed = 0
        for workload, row in cells.items():
            goals: tuple[float | None, float | None, float | None]
            if backend == "postgresql":
                goals = (1.0, 1.0, 0.85 if workload in CORE_085 else None)
            else:
                goals = (1.0 if workload in SQLITE_TORTOISE else None, 1.0, None)
            ratios = (_ratio(row, "Tortoise"), _ratio(row, "SA ORM"), _ratio(row, "SA Core"))
            for value, goal in zip(ratios, goals, strict=True):
                if goal is not None and value is not None:
                    met, missed = (met + 1, missed) if value >= goal else (met, missed + 1)
            cells_md = [_cell(v, g) for v, g in zip(ratios, goals, strict=True)]
            out.append(f"| {workload} | " + " | ".join(cells_md) + " |")
        out += ["", f"{met} targets met, {missed} missed.", ""]
    return "\n".join(out)


def main() -> None:
    """Print the report for the file given on the command line."""
    path = Path(sys.argv[1] if len(sys.argv) > 1 else "benchmarks/results/latest.json")
    print(report(json.loads(path.read_text())))


if __name__ == "__main__":
    main()
