"""Check a results file against an issue's targets: ``python -m benchmarks.targets FILE``.

Prints one markdown table per database: Flash DB's ratio to each peer on every
workload, marked ``✓``/``✗`` where a target of the chosen issue applies
(``--issue``, 6 by default):

- issue 6: PostgreSQL: at least Tortoise and SA ORM everywhere, at least 0.85x
  SA Core on the bulk and simple write/aggregate workloads; SQLite: at least SA
  ORM everywhere, at least Tortoise on bulk_create, fetch_all, values and
  bulk_update.
- issue 13: at least Tortoise on every workload, on both databases; at least
  SA Core on PostgreSQL's single-row workloads (:data:`SINGLE_ROW`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

PEERS = ("Tortoise", "SA ORM", "SA Core")
CORE_085 = ("values", "count", "update_one", "delete_one", "bulk_create", "bulk_update")
SQLITE_TORTOISE = ("bulk_create", "fetch_all", "values", "bulk_update")
#: Workloads made of single-row statements: one row written or read by each.
#: filter_limit (20 rows) and count (an aggregate) are per-query, not single-row.
SINGLE_ROW = (
    "create_autocommit",
    "create_in_tx",
    "get_pk",
    "update_one",
    "update_qs",
    "delete_one",
    "delete_qs",
)
ISSUES = (6, 13)


def goals(issue: int, backend: str, workload: str) -> dict[str, float]:
    """Return the smallest ratio of Flash DB to each peer that ``issue`` asks for."""
    if issue == 6:
        if backend == "postgresql":
            found = {"Tortoise": 1.0, "SA ORM": 1.0}
            if workload in CORE_085:
                found["SA Core"] = 0.85
            return found
        if workload in SQLITE_TORTOISE:
            return {"Tortoise": 1.0, "SA ORM": 1.0}
        return {"SA ORM": 1.0}
    if issue == 13:
        if backend == "postgresql" and workload in SINGLE_ROW:
            return {"Tortoise": 1.0, "SA Core": 1.0}
        return {"Tortoise": 1.0}
    raise ValueError(f"No targets for issue {issue!r}; choices are {', '.join(map(str, ISSUES))}.")


def _ratio(row: dict[str, Any], peer: str) -> float | None:
    flash, other = row.get("Flash DB", {}).get("median"), row.get(peer, {}).get("median")
    return flash / other if flash and other else None


def _cell(value: float | None, target: float | None) -> str:
    if value is None:
        return "n/a"
    if target is None:
        return f"{value:.2f}"
    if value < target <= round(value, 2):  # 0.998 would read "1.00 ✗"
        return f"{value:.3f} ✗"
    return f"{value:.2f} {'✓' if value >= target else '✗'}"


def report(raw: dict[str, Any], issue: int = 6) -> str:
    """Return the markdown tables for a results JSON (as written by ``benchmarks.run``)."""
    out = []
    for backend, cells in raw["results"].items():
        out += [
            f"### {backend}: Flash DB's ratio to each peer (targets of issue {issue})",
            "",
            "| workload | " + " | ".join(f"vs {peer}" for peer in PEERS) + " |",
            "|---|" + "---:|" * len(PEERS),
        ]
        met = missed = 0
        for workload, row in cells.items():
            wanted = goals(issue, backend, workload)
            cells_md = []
            for peer in PEERS:
                value, goal = _ratio(row, peer), wanted.get(peer)
                if goal is not None and value is not None:
                    met, missed = (met + 1, missed) if value >= goal else (met, missed + 1)
                cells_md.append(_cell(value, goal))
            out.append(f"| {workload} | " + " | ".join(cells_md) + " |")
        out += ["", f"{met} targets met, {missed} missed.", ""]
    return "\n".join(out)


def main() -> None:
    """Print the report for the file given on the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "file", nargs="?", type=Path, default=Path("benchmarks/results/latest.json")
    )
    parser.add_argument("--issue", type=int, choices=ISSUES, default=6)
    args = parser.parse_args()
    print(report(json.loads(args.file.read_text()), args.issue))


if __name__ == "__main__":
    main()
