"""What every system shares: the workload data, the row shape, the timer and the interface."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

TABLE = "bench_item"

#: One benchmark row as the harness compares it: (id, name, level, score).
RowTuple = tuple[int, str, int, float]


def make_row(i: int) -> dict[str, Any]:
    """Return the column values of the ``i``-th seeded row (``i`` starts at 1)."""
    return {"name": f"item-{i}", "level": i % 10, "score": i * 0.5}


def as_tuple(pk: int, values: dict[str, Any]) -> RowTuple:
    """Return the comparable tuple for a row."""
    return (pk, values["name"], values["level"], values["score"])


@dataclass(slots=True)
class Sizes:
    """How many operations/rows each workload does at the chosen scale."""

    ops: int  # single-row operations (1,000 at scale 1)
    rows: int  # seeded rows / bulk rows (10,000 at scale 1)
    bulk_update: int  # loaded objects updated in one call (2,000 at scale 1)
    repeat: int = 5  # fetch_all / values passes

    @classmethod
    def at(cls, scale: float) -> Sizes:
        """Return the sizes for ``scale`` (1.0 is the full suite)."""
        return cls(
            ops=max(10, int(1000 * scale)),
            rows=max(100, int(10_000 * scale)),
            bulk_update=max(20, int(2000 * scale)),
        )


class Clock:
    """A stopwatch for the timed part of a workload (``with clock: ...``).

    It also measures the CPU time of this process in the block (``last_cpu``, the
    latest block's): the client-side cost, which a busy machine barely changes.
    """

    last_cpu: float = 0.0

    def __init__(self) -> None:
        self.elapsed = 0.0
        self._start = 0.0
        self._cpu_start = 0.0

    def __enter__(self) -> Clock:
        self._cpu_start = time.process_time()
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.elapsed += time.perf_counter() - self._start
        Clock.last_cpu = time.process_time() - self._cpu_start


@dataclass(slots=True)
class Outcome:
    """The timed seconds of a workload and what it returned, for verification."""

    seconds: float
    result: Any = None


class System(Protocol):
    """One system under test; every method times only the work the workload names.

    Single-row and per-query operations (the QuerySet writes update_qs and
    delete_qs among them) each open their own session (or connection) inside
    the timed block, as a web request does; fetch_all and values open one per
    pass; create_in_tx, bulk_create and bulk_update use one session for the
    timed call.
    """

    name: str

    async def open(self, url: str) -> None:
        """Connect to ``url`` (a SQLAlchemy URL; each system converts it)."""

    async def close(self) -> None:
        """Release every connection."""

    async def create_autocommit(self, rows: Sequence[dict[str, Any]]) -> Outcome:
        """Insert each row in its own session, each committed; result: the new pks."""

    async def create_in_tx(self, rows: Sequence[dict[str, Any]]) -> Outcome:
        """Insert each row inside one transaction (one session); result: the new pks."""

    async def bulk_create(self, rows: Sequence[dict[str, Any]]) -> Outcome | None:
        """Insert every row in one call (one session); result: the pks, or None if not returned."""

    async def fetch_all(self, repeat: int) -> Outcome:
        """Load every row as objects ``repeat`` times, a session each; result: lists of RowTuple."""

    async def filter_limit(self, levels: Sequence[int]) -> Outcome:
        """Per level, in its own session: 20 rows of that level by id; result: RowTuple lists."""

    async def get_pk(self, pks: Sequence[int]) -> Outcome:
        """Get each pk, each in its own session; result: RowTuples."""

    async def values(self, repeat: int) -> Outcome:
        """Load every row as dicts ``repeat`` times, a session each; result: lists of dicts."""

    async def update_one(self, pks: Sequence[int], levels: Sequence[int]) -> Outcome:
        """Load the objects (untimed), then set ``level`` and save each in its own session."""

    async def update_qs(self, pks: Sequence[int], levels: Sequence[int]) -> Outcome:
        """Per (pk, level), in its own session: ``UPDATE ... SET level WHERE id = pk``, no load.

        The QuerySet form (``filter(pk=pk).update(level=level)``); result: the
        number of rows each statement matched (or None where not reported).
        """

    async def bulk_update(self, pks: Sequence[int], levels: Sequence[int]) -> Outcome | None:
        """Load the objects (untimed), then set ``level`` on each and update them in one call."""

    async def count(self, levels: Sequence[int]) -> Outcome:
        """Count the rows of each level, each in its own session; result: the counts."""

    async def delete_one(self, pks: Sequence[int]) -> Outcome:
        """Load the objects (untimed), then delete each in its own session, each committed."""

    async def delete_qs(self, pks: Sequence[int]) -> Outcome:
        """Per pk, in its own session: ``DELETE ... WHERE id = pk``, no load.

        The QuerySet form (``filter(pk=pk).delete()``); result: the number of rows
        each statement deleted (or None where not reported).
        """
