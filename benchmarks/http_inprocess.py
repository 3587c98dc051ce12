"""Where a CRUDRouter request's CPU goes: routes of growing weight, driven in process.

``python -m benchmarks.http_inprocess`` drives ``benchmarks.http_app`` (Flash
DB's CRUDRouter) and ``benchmarks.http_tortoise`` (the same endpoints on
FastAPI + Tortoise ORM) through ASGI, without sockets or a server, and prints
the CPU time per request (the process's, the driver's thread included) of:

- a FastAPI route returning a fixed body (FastAPI's own share);
- the same route with ``db: Session`` (FastAPI's generator dependency and a
  session opened and closed);
- the same route opening ``database.session()`` itself;
- a get by pk with the session opened in the route, and with ``db: Session``;
- the CRUDRouter's get (``GET /items/{pk}``) and Tortoise's.

The differences between rows are what each layer costs. Each row is the best
of ``--repeats`` passes of ``--requests`` requests, after a warm-up.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Response

from benchmarks.flash import BenchItem
from benchmarks.run import DEFAULT_PG, Fixture, ensure_pg_database, sqlite_url
from flash_db import get_database
from flash_db_fastapi import Session

ROWS = 1000
ASGIApp = Callable[..., Awaitable[None]]


async def exchange(app: ASGIApp, target: str, state: dict[str, Any]) -> tuple[int, bytes]:
    """Send ``GET target`` (a path, and a query after ``?``) to ``app`` through ASGI.

    Return the response's status and body.
    """
    path, _, query = target.partition("?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"bench")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
        "state": dict(state),
    }
    received = False
    status: list[int] = []
    body: list[bytes] = []

    async def receive() -> dict[str, Any]:
        nonlocal received
        if not received:
            received = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()  # the client never disconnects
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])
        elif message["type"] == "http.response.body":
            body.append(message.get("body", b""))

    await app(scope, receive, send)
    return status[0], b"".join(body)


async def request(app: ASGIApp, path: str, state: dict[str, Any]) -> int:
    """Send one ``GET path`` to ``app`` through ASGI and return the response's status."""
    return (await exchange(app, path, state))[0]


async def cpu_per_request(
    app: ASGIApp, prefix: str, state: dict[str, Any], requests: int, repeats: int
) -> float:
    """Return the best CPU µs per request of ``repeats`` passes of ``GET prefix{pk}``."""
    for i in range(min(requests, 300)):
        status = await request(app, f"{prefix}{1 + i % ROWS}", state)
        if status != 200:
            raise RuntimeError(f"GET {prefix}{1 + i % ROWS} answered {status}")
    best = float("inf")
    for _ in range(repeats):
        started = time.process_time()
        for i in range(requests):
            await request(app, f"{prefix}{1 + i % ROWS}", state)
        best = min(best, (time.process_time() - started) / requests * 1e6)
    return best


def add_probes(app: FastAPI) -> list[tuple[str, str]]:
    """Add the probe routes to Flash DB's benchmark app; return (description, path prefix)."""
    body = b'{"id": 1}'

    @app.get("/probe/fixed/{pk}")
    async def fixed(pk: int) -> Response:
        return Response(body, media_type="application/json")

    @app.get("/probe/dependency/{pk}")
    async def dependency(pk: int, db: Session) -> Response:
        return Response(body, media_type="application/json")

    @app.get("/probe/session/{pk}")
    async def session(pk: int) -> Response:
        async with get_database().session():
            pass
        return Response(body, media_type="application/json")

    @app.get("/probe/session-get/{pk}")
    async def session_get(pk: int) -> Response:
        async with get_database().session() as db:
            await BenchItem.objects.get(db, pk=pk)
        return Response(body, media_type="application/json")

    @app.get("/probe/dependency-get/{pk}")
    async def dependency_get(pk: int, db: Session) -> Response:
        await BenchItem.objects.get(db, pk=pk)
        return Response(body, media_type="application/json")

    return [
        ("a FastAPI route returning a fixed body", "/probe/fixed/"),
        ("the same with `db: Session`", "/probe/dependency/"),
        ("the same opening `database.session()` in the route", "/probe/session/"),
        ("get by pk, session opened in the route", "/probe/session-get/"),
        ("get by pk with `db: Session`", "/probe/dependency-get/"),
        ("the CRUDRouter's get", "/items/"),
    ]


async def main() -> None:
    """Seed the table, run every probe on both apps, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--pg-url", default=DEFAULT_PG + "_http")
    args = parser.parse_args()
    url = sqlite_url(None) if args.backend == "sqlite" else args.pg_url
    if args.backend == "postgresql":
        await ensure_pg_database(url)
    os.environ["BENCH_DATABASE_URL"] = url  # read by both apps when they are imported
    fixture = Fixture(url)
    await fixture.create()
    await fixture.seed(ROWS)

    from benchmarks import http_app, http_tortoise

    probes = add_probes(http_app.app)
    rows: list[tuple[str, float]] = []
    async with http_app.app.router.lifespan_context(http_app.app) as state:
        for description, prefix in probes:
            cpu = await cpu_per_request(
                http_app.app, prefix, dict(state or {}), args.requests, args.repeats
            )
            rows.append((description, cpu))
    async with http_tortoise.app.router.lifespan_context(http_tortoise.app) as state:
        cpu = await cpu_per_request(
            http_tortoise.app, "/items/", dict(state or {}), args.requests, args.repeats
        )
        rows.append(("Tortoise's get (`from_queryset_single`)", cpu))
    await fixture.engine.dispose()
    print(f"CPU µs per request, {args.backend}, best of {args.repeats} x {args.requests}\n")
    print("| route | CPU µs per request |\n|---|---:|")
    for description, cpu in rows:
        print(f"| {description} | {cpu:,.0f} |")


if __name__ == "__main__":
    asyncio.run(main())
