"""Load: N requests at 64 concurrent connections, pool at 10; no error, no leaked connection."""

from __future__ import annotations

import asyncio
from collections import defaultdict

import httpx
import pytest

from tests.reliability.harness import (
    POOL_SIZE,
    AppServer,
    LoadResult,
    Request,
    RequestFactory,
    client_for,
    pg_fetchval,
    pick,
    run_load,
    table,
)

pytestmark = pytest.mark.reliability

CONCURRENCY = 64
ACCOUNTS = 20
START_BALANCE = 1_000
OK = frozenset({200})
CREATED = frozenset({201})


async def seed_accounts(client: httpx.AsyncClient, prefix: str) -> list[int]:
    """Create the accounts the transfers move money between; return their ids."""
    ids = []
    for n in range(ACCOUNTS):
        response = await client.post(
            "/ops/accounts", json={"owner": f"{prefix}-{n}", "balance": START_BALANCE}
        )
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    return ids


async def seed_counter(client: httpx.AsyncClient, name: str) -> None:
    """Create a counter at 0."""
    response = await client.post("/ops/counters", json={"name": name, "value": 0})
    assert response.status_code == 201, response.text


async def seed_blog(client: httpx.AsyncClient, prefix: str) -> tuple[list[int], list[int]]:
    """Sign users up, write posts and comments as them; return post and user ids.

    The client then sends the first user's token with every request (likes need one).
    """
    users, tokens, posts = [], [], []
    for n in range(4):
        response = await client.post(
            "/users", json={"name": f"{prefix} {n}", "email": f"{prefix}-{n}@example.com"}
        )
        assert response.status_code == 201, response.text
        users.append(response.json()["id"])
        tokens.append({"Authorization": f"Bearer {response.json()['token']}"})
    for n in range(12):
        body = {"title": f"{prefix} post {n}", "body": "the body"}
        response = await client.post("/posts", json=body, headers=tokens[n % 4])
        assert response.status_code == 201, response.text
        posts.append(response.json()["id"])
        comment = {"post_id": posts[-1], "text": "Lovely."}
        response = await client.post("/comments", json=comment, headers=tokens[0])
        assert response.status_code == 201, response.text
    client.headers.update(tokens[0])
    return posts, users


def mixed_requests(
    accounts: list[int], counter: str, posts: list[int], users: list[int]
) -> tuple[dict[str, int], RequestFactory]:
    """Return the per-kind request counts and a factory over CRUD and hand-written routes."""
    sent: dict[str, int] = defaultdict(int)

    def factory(i: int) -> Request:
        a, b = accounts[i % len(accounts)], accounts[(i * 7 + 3) % len(accounts)]
        post, user = posts[i % len(posts)], users[i % len(users)]
        kind = i % 16
        if kind == 0:  # CRUD router: list with a filter and an ordering
            return ("GET", "/posts?limit=10&order_by=-views&views__gte=0", None, OK)
        if kind == 1:  # CRUD router: get
            return ("GET", f"/users/{user}", None, OK)
        if kind == 2:  # hand-written: select_related + prefetch_related
            return ("GET", f"/posts/{post}/detail", None, OK)
        if kind == 3:  # hand-written: Q objects and icontains
            return ("GET", "/posts/search?q=the", None, OK)
        if kind == 4:  # hand-written: annotate(Count) + HAVING
            return ("GET", "/posts/popular?min_comments=0", None, OK)
        if kind == 5:  # hand-written: UPDATE ... SET likes = likes + 1
            sent["likes"] += 1
            return ("POST", f"/posts/{post}/like", None, OK)
        if kind == 6:  # hand-written: aggregate with filtered Count
            return ("GET", f"/users/{user}/stats", None, OK)
        if kind in (7, 8, 9) and a != b:  # hand-written: atomic + select_for_update
            sent["transfers"] += 1
            return ("POST", "/ops/transfers", {"source": a, "target": b, "amount": 1 + i % 5}, OK)
        if kind == 10:
            sent["increments"] += 1
            return ("POST", f"/ops/counters/{counter}/increment", None, OK)
        if kind == 11:
            return ("POST", "/ops/labels/get-or-create", {"name": f"load-{i % 50}"}, OK)
        if kind == 12:  # CRUD router: list ordered
            return ("GET", "/ops/accounts?limit=10&order_by=-balance", None, OK)
        if kind == 13:
            return ("GET", f"/ops/accounts/{a}", None, OK)
        if kind == 14:
            return ("GET", f"/comments?post_id={post}&limit=5", None, OK)
        return ("GET", "/ops/health", None, OK)

    return sent, factory


async def checked_out(client: httpx.AsyncClient) -> int:
    """Return the app's checked-out connections once in-flight work has settled."""
    value = -1
    for _ in range(20):
        value = int((await client.get("/ops/health")).json()["checked_out"])
        if value == 0:
            break
        await asyncio.sleep(0.05)
    return value


def route_rows(result: LoadResult) -> list[tuple[str, int, float, float, int]]:
    """Return one row per route: count, p50, p99, non-2xx."""
    by_route: dict[str, LoadResult] = defaultdict(LoadResult)
    for sample in result.samples:
        by_route[sample.name].samples.append(sample)
    return [
        (
            name,
            len(r.samples),
            r.percentile(0.5),
            r.percentile(0.99),
            sum(1 for s in r.samples if not 200 <= s.status < 300),
        )
        for name, r in sorted(by_route.items())
    ]


async def test_load_mixed_routes(app_server: AppServer) -> None:
    """N mixed requests at 64 connections: all 2xx, sums and counters exact, pool drained."""
    total = pick(300, 10_000)
    async with client_for(app_server, CONCURRENCY) as client:
        accounts = await seed_accounts(client, "load")
        await seed_counter(client, "load")
        posts, users = await seed_blog(client, "load")
        await asyncio.to_thread(app_server.settle)  # replicas serve the reads: let them catch up
        likes_before = await pg_fetchval(
            app_server.dsn, "SELECT coalesce(sum(likes), 0) FROM blog_posts"
        )
        sent, factory = mixed_requests(accounts, "load", posts, users)
        result = await run_load(client, factory, total=total, concurrency=CONCURRENCY)
        pool_left = await checked_out(client)
        counter = (await client.get("/ops/counters?name=load")).json()["items"][0]["value"]
    total_balance = await pg_fetchval(
        app_server.dsn, "SELECT sum(balance) FROM accounts WHERE owner LIKE 'load-%'"
    )
    likes_after = await pg_fetchval(
        app_server.dsn, "SELECT coalesce(sum(likes), 0) FROM blog_posts"
    )
    idle_in_tx = await pg_fetchval(
        app_server.dsn,
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND state LIKE 'idle in transaction%'",
    )
    statuses = result.statuses()
    table(
        "Load: mixed CRUD-router and hand-written routes",
        [
            "requests",
            "concurrency",
            "pool",
            "wall s",
            "req/s",
            "p50 ms",
            "p99 ms",
            "unexpected",
            "checked out at end",
            "idle in tx",
        ],
        [
            (
                len(result.samples),
                CONCURRENCY,
                POOL_SIZE,
                result.wall,
                len(result.samples) / result.wall,
                result.percentile(0.5),
                result.percentile(0.99),
                len(result.unexpected),
                pool_left,
                idle_in_tx,
            )
        ],
    )
    table(
        "Load: per route", ["route", "requests", "p50 ms", "p99 ms", "non-2xx"], route_rows(result)
    )
    table(
        "Load: invariants",
        ["check", "expected", "got"],
        [
            ("statuses", f"{{200: {total}}}", dict(statuses)),
            ("sum of balances", ACCOUNTS * START_BALANCE, total_balance),
            ("counter value", sent["increments"], counter),
            ("likes added", sent["likes"], likes_after - likes_before),
        ],
    )
    assert result.unexpected == [], result.unexpected[:5]
    assert len(result.samples) == total
    assert pool_left == 0
    assert idle_in_tx == 0
    assert total_balance == ACCOUNTS * START_BALANCE
    assert counter == sent["increments"]
    assert likes_after - likes_before == sent["likes"]
