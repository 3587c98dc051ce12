"""What the SQLite list route pays for reading its count and its page in one transaction.

``python -m benchmarks.list_transaction`` serves, in one process and through
ASGI (no sockets; ``benchmarks.http_inprocess``'s driver), four list routes over the
same SQLite table, each request with a session of its own (``db: Session``):

- ``/items``: the ``CRUDRouter`` list route, which reads ``count`` and the page
  in one transaction; on SQLite that is ``atomic()``, so ``BEGIN IMMEDIATE``
  (the write lock: one such request at a time, and none while a write runs);
- ``/items?total=false``: the same route without the count, so without the
  transaction;
- ``/plain``: the count and the page, hand-written, each statement on its own
  (autocommit: two snapshots, which a write between them can make disagree);
- ``/atomic``: the same two statements inside ``atomic(db)``, the router's way;
- ``/deferred``: the same two statements between a plain ``BEGIN`` (deferred:
  a snapshot without the write lock) and ``COMMIT``, what a read-only block
  could send instead.

``/atomic`` against ``/plain`` is the transaction's cost alone; ``/items``
against ``/atomic`` is the router's own work. Each route is timed one request
at a time (wall µs per request, the best of ``--repeats`` passes) and with
``--concurrency`` requests in flight (requests/s), in the same run, after a
warm-up. Every answer is checked (status 200, the total, the page's size).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from fastapi import FastAPI, Response
from sqlalchemy import text

from benchmarks.flash import BenchItem
from benchmarks.http_inprocess import ASGIApp, exchange, request
from benchmarks.run import Fixture, sqlite_url
from flash_db import atomic
from flash_db_fastapi import CRUDRouter, Session, add_exception_handlers, flash_lifespan

ROWS = 1000
LIMIT = 20


def build_app(url: str) -> FastAPI:
    """Return the app with the router's list route and the hand-written ones."""
    app = FastAPI(lifespan=flash_lifespan(url))
    add_exception_handlers(app)
    router = CRUDRouter(BenchItem, prefix="/items", routes=("list",))
    app.include_router(router)
    read, page = router.read_schema, router.page_schema

    def _body(total: int, rows: list[BenchItem]) -> Response:
        items = [read.model_validate(row) for row in rows]
        content = page(items=items, total=total, limit=LIMIT, offset=0).model_dump_json()
        return Response(content, media_type="application/json")

    @app.get("/plain")
    async def plain(db: Session) -> Response:
        qs = BenchItem.objects.all()
        total = await qs.count(db)
        return _body(total, await qs.order_by("id")[:LIMIT].fetch(db))

    @app.get("/atomic")
    async def in_atomic(db: Session) -> Response:
        qs = BenchItem.objects.all()
        async with atomic(db):
            total = await qs.count(db)
            rows = await qs.order_by("id")[:LIMIT].fetch(db)
        return _body(total, rows)

    @app.get("/deferred")
    async def deferred(db: Session) -> Response:
        # What a read-only block could send instead: a deferred BEGIN takes no write
        # lock (in WAL mode the snapshot starts at the first read), so readers do not
        # queue behind each other or behind writers. The session is in autocommit
        # mode outside atomic(), so the driver passes BEGIN and COMMIT through.
        qs = BenchItem.objects.all()
        await db.execute(text("BEGIN"))
        try:
            total = await qs.count(db)
            rows = await qs.order_by("id")[:LIMIT].fetch(db)
        finally:
            await db.execute(text("COMMIT"))
        return _body(total, rows)

    return app


async def check(app: ASGIApp, target: str, state: dict[str, Any], counted: bool) -> None:
    """Fail unless ``target`` answers 200 with a full page and the right total."""
    status, body = await exchange(app, target, state)
    page = json.loads(body) if status == 200 else {}
    if status != 200 or len(page["items"]) != LIMIT or page["total"] != (ROWS if counted else None):
        raise RuntimeError(f"GET {target} answered {status}: {body[:200]!r}")


async def sequential_us(app: ASGIApp, target: str, state: dict[str, Any], requests: int) -> float:
    """Return the wall µs per request of ``requests`` requests sent one at a time."""
    started = time.perf_counter()
    for _ in range(requests):
        await request(app, target, state)
    return (time.perf_counter() - started) / requests * 1e6


async def concurrent_rps(
    app: ASGIApp, target: str, state: dict[str, Any], requests: int, concurrency: int
) -> float:
    """Return the requests/s of ``requests`` requests sent with ``concurrency`` in flight."""
    remaining = iter(range(requests))
    statuses: list[int] = []

    async def worker() -> None:
        for _ in remaining:
            statuses.append(await request(app, target, state))

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    if set(statuses) != {200}:
        raise RuntimeError(f"GET {target} under load answered {sorted(set(statuses))}")
    return requests / elapsed


ROUTES = [
    ("`/items`: CRUDRouter list, count + page in BEGIN IMMEDIATE", f"/items?limit={LIMIT}", True),
    (
        "`/items?total=false`: the page only, no transaction",
        f"/items?limit={LIMIT}&total=false",
        False,
    ),
    ("`/plain`: count + page, no transaction", "/plain", True),
    ("`/atomic`: count + page in `atomic` (BEGIN IMMEDIATE)", "/atomic", True),
    ("`/deferred`: count + page after a plain (deferred) BEGIN", "/deferred", True),
]


async def main() -> None:
    """Seed the table, time every route both ways, print the table and the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--sqlite-path", default=None)
    args = parser.parse_args()
    url = sqlite_url(args.sqlite_path)
    fixture = Fixture(url)  # WAL mode, as benchmarks.run sets it
    await fixture.create()
    await fixture.seed(ROWS)
    await fixture.engine.dispose()
    app = build_app(url)
    results: dict[str, tuple[float, float]] = {}
    async with app.router.lifespan_context(app) as lifespan_state:
        state = dict(lifespan_state or {})
        for _, target, counted in ROUTES:
            await check(app, target, state, counted)
            await sequential_us(app, target, state, min(args.requests, 300))  # warm-up
        # Interleaved passes: a noisy moment on a shared machine hits every route alike.
        for _ in range(args.repeats):
            for _, target, _ in ROUTES:
                us = await sequential_us(app, target, state, args.requests)
                rps = await concurrent_rps(app, target, state, args.requests, args.concurrency)
                old_us, old_rps = results.get(target, (float("inf"), 0.0))
                results[target] = (min(old_us, us), max(old_rps, rps))
    plain_us, plain_rps = results["/plain"]
    print(
        f"SQLite (WAL), {ROWS} rows, pages of {LIMIT}; best of {args.repeats} x "
        f"{args.requests} requests; {args.concurrency} in flight for requests/s\n"
    )
    print(
        "| route | µs per request, one at a time | vs `/plain` | "
        f"requests/s, {args.concurrency} in flight | vs `/plain` |"
    )
    print("|---|---:|---:|---:|---:|")
    for description, target, _ in ROUTES:
        us, rps = results[target]
        print(
            f"| {description} | {us:,.0f} | {us / plain_us:.2f}x | {rps:,.0f} | "
            f"{rps / plain_rps:.2f}x |"
        )


if __name__ == "__main__":
    asyncio.run(main())
