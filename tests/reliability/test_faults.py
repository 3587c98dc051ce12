"""Faults: PostgreSQL backends killed, and a PostgreSQL server restarted, under load.

Only requests in flight at a fault may fail; every request that starts after it
succeeds (the pool's checkout listener replaces connections asyncpg reports
closed, with no ping per request), and the sum of
balances written by ``atomic`` transfers holds after every fault.

The backends are killed on the shared server (only the app's own, in its own
database). The restart is of a private cluster the test starts itself
(``tests/servers.py``, ``initdb`` on a free port): the shared server, which
other test runs use, is never stopped.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator

import pytest

from tests import servers
from tests.conftest import start_private_cluster
from tests.reliability.harness import (
    POOL_SIZE,
    AppServer,
    LoadResult,
    Request,
    RequestFactory,
    Sample,
    client_for,
    pg_fetchval,
    pick,
    run_load,
    table,
    terminate_backends,
)
from tests.reliability.test_load import ACCOUNTS, START_BALANCE, checked_out, seed_accounts

pytestmark = pytest.mark.reliability

CONCURRENCY = 64
OK = frozenset({200})


def _factory(accounts: list[int]) -> RequestFactory:
    def factory(i: int) -> Request:
        a, b = accounts[i % len(accounts)], accounts[(i * 7 + 3) % len(accounts)]
        if i % 2 == 0 and a != b:
            return ("POST", "/ops/transfers", {"source": a, "target": b, "amount": 1 + i % 3}, OK)
        if i % 4 == 1:
            return ("GET", "/ops/accounts?limit=5&order_by=-balance", None, OK)
        return ("GET", f"/ops/accounts/{a}", None, OK)

    return factory


def _outside_samples(result: LoadResult, windows: list[tuple[float, float]]) -> list[Sample]:
    """Return the failed requests that were not in flight during any fault window."""
    return [
        sample
        for sample in result.unexpected
        if not any(sample.start <= end and sample.end >= start for start, end in windows)
    ]


def _outside(result: LoadResult, windows: list[tuple[float, float]]) -> int:
    """Count failed requests that were not in flight during any fault window."""
    return len(_outside_samples(result, windows))


async def _sum(dsn: str, prefix: str) -> int:
    return int(
        await pg_fetchval(dsn, "SELECT sum(balance) FROM accounts WHERE owner LIKE $1", prefix)
    )


async def test_backends_terminated_under_load(app_server: AppServer) -> None:
    """Kill the app's backends every second under load; only in-flight requests fail."""
    seconds = pick(2, 10)
    expected_sum = ACCOUNTS * START_BALANCE
    windows: list[tuple[float, float]] = []
    rows: list[tuple[int, float, int, int]] = []
    async with client_for(app_server, CONCURRENCY) as client:
        accounts = await seed_accounts(client, "fault")

        stop = asyncio.Event()

        async def faults() -> None:
            began = time.monotonic()
            for n in range(1, seconds + 1):
                await asyncio.sleep(max(0.0, began + n - time.monotonic()))  # at 1 s, 2 s, ...
                start = time.monotonic()
                killed = await terminate_backends(app_server.dsn)
                windows.append((start, time.monotonic()))
                rows.append((n, start, killed, await _sum(app_server.dsn, "fault-%")))
            await asyncio.sleep(1.0)
            stop.set()

        result = await run_load(
            client,
            _factory(accounts),
            total=1_000_000,
            concurrency=CONCURRENCY,
            during=faults,
            stop=stop,
        )
        after = await run_load(
            client, _factory(accounts), total=pick(100, 500), concurrency=CONCURRENCY
        )
        pool_left = await checked_out(client)
    final_sum = await _sum(app_server.dsn, "fault-%")
    in_flight_failures = len(result.unexpected) - _outside(result, windows)
    failed = Counter(sample.status for sample in result.unexpected)
    table(
        "Faults: pg_terminate_backend every second",
        ["fault", "at s", "backends killed", "sum of balances after"],
        [(n, at - result.samples[0].start, killed, total) for n, at, killed, total in rows],
    )
    table(
        "Faults: requests",
        [
            "phase",
            "requests",
            "failed in flight",
            "their statuses",
            "failed otherwise",
            "retried",
            "req/s",
            "p99 ms",
        ],
        [
            (
                "during faults",
                len(result.samples),
                in_flight_failures,
                dict(failed),
                _outside(result, windows),
                result.retried,
                len(result.samples) / result.wall,
                result.percentile(0.99),
            ),
            (
                "after faults",
                len(after.samples),
                0,
                "",
                len(after.unexpected),
                after.retried,
                len(after.samples) / after.wall,
                after.percentile(0.99),
            ),
        ],
    )
    table(
        "Faults: end state",
        ["check", "expected", "got"],
        [
            ("sum of balances", expected_sum, final_sum),
            ("checked out", 0, pool_left),
            ("pool size", POOL_SIZE, POOL_SIZE),
        ],
    )
    assert all(total == expected_sum for *_, total in rows)
    outside = _outside_samples(result, windows)
    assert outside == [], (windows, outside[:5], app_server.log_tail())
    # A killed connection is a 503 (with Retry-After), never a 500.
    assert set(failed) <= {503}, (failed, app_server.log_tail())
    assert after.unexpected == []
    assert final_sum == expected_sum
    assert pool_left == 0


@pytest.fixture
def private_server() -> Iterator[tuple[AppServer, servers.Cluster]]:
    """Serve the example app on a PostgreSQL cluster of its own, which the test may restart."""
    cluster = start_private_cluster()
    try:
        cluster.psql("CREATE DATABASE flash_faults")
        server = AppServer(cluster.dsn("flash_faults"))
        server.start()
        try:
            yield server, cluster
        finally:
            server.stop()
    finally:
        cluster.remove()


async def test_postgresql_restart_under_load(
    private_server: tuple[AppServer, servers.Cluster],
) -> None:
    """Restart PostgreSQL mid-run: the app recovers without a restart of its own."""
    app_server, cluster = private_server
    expected_sum = ACCOUNTS * START_BALANCE
    windows: list[tuple[float, float]] = []
    async with client_for(app_server, CONCURRENCY) as client:
        accounts = await seed_accounts(client, "restart")

        stop = asyncio.Event()

        async def restart() -> None:
            await asyncio.sleep(pick(1, 2))
            start = time.monotonic()
            await asyncio.to_thread(cluster.restart)
            windows.append((start, time.monotonic()))
            await asyncio.sleep(pick(2, 3))  # keep the load on while the app reconnects
            stop.set()

        result = await run_load(
            client,
            _factory(accounts),
            total=1_000_000,
            concurrency=CONCURRENCY,
            during=restart,
            stop=stop,
        )
        after = await run_load(
            client, _factory(accounts), total=pick(100, 500), concurrency=CONCURRENCY
        )
        pool_left = await checked_out(client)
    final_sum = await _sum(app_server.dsn, "restart-%")
    outside = _outside(result, windows)
    failed = Counter(sample.status for sample in result.unexpected)
    table(
        "Faults: PostgreSQL restarted mid-run",
        [
            "phase",
            "requests",
            "failed during restart",
            "their statuses",
            "failed otherwise",
            "retried",
            "restart s",
        ],
        [
            (
                "during",
                len(result.samples),
                len(result.unexpected) - outside,
                dict(failed),
                outside,
                result.retried,
                windows[0][1] - windows[0][0],
            ),
            ("after", len(after.samples), 0, "", len(after.unexpected), after.retried, ""),
        ],
    )
    table(
        "Faults: after the restart",
        ["check", "expected", "got"],
        [("sum of balances", expected_sum, final_sum), ("checked out", 0, pool_left)],
    )
    assert outside == 0
    # The server going away is a 503 (with Retry-After, tests/fastapi/test_errors.py), never a 500.
    assert set(failed) <= {503}, (failed, app_server.log_tail())
    assert after.unexpected == []
    assert final_sum == expected_sum
    assert pool_left == 0
