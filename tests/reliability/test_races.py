"""Races over HTTP: get_or_create/update_or_create stampedes and select_for_update counters."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx
import pytest

from tests.reliability.harness import AppServer, client_for, pg_fetchval, pick, table

pytestmark = pytest.mark.reliability


async def test_select_for_update_counter_loses_no_increment(app_server: AppServer) -> None:
    """W concurrent workers x K increments of one counter end at exactly W x K."""
    workers, per_worker = pick(10, 20), pick(10, 50)
    async with client_for(app_server, workers) as client:
        response = await client.post("/ops/counters", json={"name": "race", "value": 0})
        assert response.status_code == 201, response.text

        async def worker() -> Counter[int]:
            statuses: Counter[int] = Counter()
            for _ in range(per_worker):
                statuses[(await client.post("/ops/counters/race/increment")).status_code] += 1
            return statuses

        results = await asyncio.gather(*(worker() for _ in range(workers)))
    statuses = sum(results, Counter[int]())
    value = await pg_fetchval(app_server.dsn, "SELECT value FROM counters WHERE name = 'race'")
    table(
        "Races: select_for_update counter",
        ["workers", "increments each", "statuses", "expected value", "final value"],
        [(workers, per_worker, dict(statuses), workers * per_worker, value)],
    )
    assert statuses == {200: workers * per_worker}
    assert value == workers * per_worker


async def _stampede(
    client: httpx.AsyncClient, route: str, names: list[str], per_name: int
) -> list[httpx.Response]:
    """Send ``per_name`` concurrent requests for each name, all names at once."""
    requests = [
        client.post(route, json={"name": name, "hits": hit})
        for hit in range(per_name)
        for name in names
    ]
    return await asyncio.gather(*requests)


@pytest.mark.parametrize("route", ["get-or-create", "update-or-create"])
async def test_create_stampede_makes_one_row_per_name(app_server: AppServer, route: str) -> None:
    """Concurrent get_or_create/update_or_create per name: one row, one creator."""
    names = [f"{route}-{n}" for n in range(pick(4, 20))]
    per_name = pick(8, 32)
    async with client_for(app_server, 64) as client:
        responses = await _stampede(client, f"/ops/labels/{route}", names, per_name)
    statuses = Counter(r.status_code for r in responses)
    bodies = [r.json() for r in responses if r.status_code == 200]
    ids = {name: {b["id"] for b in bodies if b["name"] == name} for name in names}
    creators = Counter(b["name"] for b in bodies if b["created"])
    rows = await pg_fetchval(
        app_server.dsn, "SELECT count(*) FROM labels WHERE name LIKE $1", f"{route}-%"
    )
    table(
        f"Races: {route} stampede",
        ["names", "requests per name", "statuses", "rows", "ids per name", "creators per name"],
        [
            (
                len(names),
                per_name,
                dict(statuses),
                rows,
                sorted({len(v) for v in ids.values()}),
                sorted(set(creators.values())),
            )
        ],
    )
    assert statuses == {200: len(names) * per_name}
    assert rows == len(names)
    assert all(len(v) == 1 for v in ids.values())
    assert creators == dict.fromkeys(names, 1)
