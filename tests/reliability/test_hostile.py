"""The hostile-input suite (issue 15): the attack table replayed, and a sweep of every route.

Against the example app under uvicorn, on SQLite and on PostgreSQL. Every
response is judged the same way (:func:`problems`): never a 500, always JSON
(a 204 has no body), no SQL, table or driver names in an error body, no email
address or ``email`` field in what a public ``GET`` returns, and a 503 carries
``Retry-After``. The rows of the table that are direct ORM calls (regular
expressions on SQLite, a 200-hop path, cancellation, two streams on a pool of
two) run on the served database with Flash DB itself.

``FLASH_RELIABILITY=full`` (``make reliability``) sends the sweep's larger
values and more requests; the reduced form runs in ``make test``.
"""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type information
import httpx
import pytest

import flash_db
from example_app.models import BlogPost, BlogUser
from flash_db import FieldError, atomic
from tests.conftest import IN_CI, start_private_cluster
from tests.loop_watch import LoopWatch
from tests.reliability.harness import (
    ADMIN,
    FULL,
    PG_ADMIN_DSN,
    AppServer,
    pg_database,
    pick,
    table,
    terminate_backends,
)

pytestmark = pytest.mark.reliability

POOL = 4
POOL_TIMEOUT = 2.0
_LEAKS = re.compile(
    r"\bSELECT\b|\bINSERT INTO\b|\bUPDATE \w+ SET\b|\bDELETE FROM\b|Traceback|sqlalchemy|"
    r"asyncpg|sqlite3|aiosqlite|psycopg|blog_users|blog_posts|blog_tags|blog_post_tags|"
    r"blog_comments|blog_notifications|pg_catalog",
    re.IGNORECASE,
)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AppServer]:
    """Serve the example app on a database of its own: a SQLite file, or a PostgreSQL database."""
    context: AbstractContextManager[str]
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("hostile") / "blog.sqlite3"
        context = nullcontext(f"sqlite+aiosqlite:///{path}")
    else:
        context = pg_database("flash_hostile")
    try:
        dsn = context.__enter__()
    except OSError as error:  # pragma: no cover - CI always has PostgreSQL
        if IN_CI:
            pytest.fail(f"PostgreSQL is not reachable: {error} (CI=true: it is mandatory)")
        pytest.skip(f"PostgreSQL is not reachable: {error}")
    app = AppServer(dsn, pool_size=POOL, env={"FLASH_DB_POOL_TIMEOUT": str(POOL_TIMEOUT)})
    try:
        app.start()
        yield app
    finally:
        app.stop()
        context.__exit__(None, None, None)


def _backend(server: AppServer) -> str:
    return "sqlite" if server.dsn.startswith("sqlite") else "postgresql"


#: Fields of the example app's models that no public response shows (emails are private).
_UNEXPOSED = ("email",)


def problems(method: str, path: str, response: httpx.Response, sent: str = "") -> list[str]:
    """Return what is wrong with one response (an empty list: nothing).

    ``sent`` is the request's body: an error may name an unexposed field only
    when the request named it first (``?email__startswith=``, a sign-up's email).
    """
    found = []
    status = response.status_code
    where = f"{method} {path[:80]} -> {status}"
    if status >= 500 and status != 503:
        found.append(f"{where}: server error {response.text[:200]!r}")
    if status == 503 and "retry-after" not in response.headers:
        found.append(f"{where}: 503 without Retry-After")
    if status != 204 and not response.headers.get("content-type", "").startswith(
        "application/json"
    ):
        found.append(f"{where}: not JSON ({response.headers.get('content-type')!r})")
    if status >= 400 and _LEAKS.search(response.text):
        found.append(f"{where}: leaks {_LEAKS.search(response.text)!r}: {response.text[:200]!r}")
    for name in _UNEXPOSED:
        if status >= 400 and name in response.text and name not in path + sent:
            found.append(f"{where}: names the unexposed field {name!r}: {response.text[:200]!r}")
    public_read = method == "GET" and not path.startswith("/users/me") and status < 400
    if public_read and ("@example.com" in response.text or '"email"' in response.text):
        found.append(f"{where}: shows an email address")
    return found


class Client:
    """An HTTP client that judges every response it gets."""

    def __init__(self, server: AppServer, concurrency: int = 16) -> None:
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        self.http = httpx.AsyncClient(base_url=server.base_url, limits=limits, timeout=60.0)
        self.found: list[str] = []
        self.statuses: Counter[int] = Counter()
        self.sent = 0

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.http.aclose()

    async def send(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """Send one request and judge its response."""
        sent_headers = dict(headers or {})
        if json_body is not None:
            # json.dumps escapes lone surrogates ("\udcff"), which httpx cannot encode.
            content = json.dumps(json_body).encode()
        if content is not None:
            sent_headers["Content-Type"] = "application/json"
        response = await self.http.request(method, path, content=content, headers=sent_headers)
        self.sent += 1
        self.statuses[response.status_code] += 1
        sent = content.decode(errors="replace") if content is not None else ""
        self.found.extend(problems(method, path, response, sent))
        return response


async def _sign_up(client: Client, name: str) -> tuple[int, dict[str, str]]:
    """Sign a user up; return the id and the headers of requests made as that user."""
    email = f"{name}-{uuid.uuid4().hex[:8]}@example.com"
    response = await client.send("POST", "/users", json_body={"name": name, "email": email})
    assert response.status_code == 201, response.text
    body = response.json()
    return body["id"], {"Authorization": f"Bearer {body['token']}"}


# -- the attack table, row by row ---------------------------------------------------------


async def test_order_by_with_2000_terms_is_400(server: AppServer) -> None:
    async with Client(server) as client:
        users = await client.send("GET", "/users?order_by=" + ",".join(["name"] * 2000))
        posts = await client.send("GET", "/posts?order_by=" + ",".join(["-title"] * 2000))
        twice = await client.send("GET", "/posts?order_by=title,-title")
    assert users.status_code == posts.status_code == twice.status_code == 400
    assert users.json() == {"detail": "order_by takes at most 8 comma-separated fields."}
    assert client.found == []


async def test_a_text_filter_over_50000_characters_is_400(server: AppServer) -> None:
    async with Client(server) as client:
        long = "a" * 50_001
        posts = await client.send("GET", f"/posts?title__icontains={long}")
        comments = await client.send("GET", f"/comments?text__contains={long}")
        users = await client.send("GET", f"/users?name__istartswith={long}")
    assert posts.status_code == comments.status_code == users.status_code == 400
    assert "at most 1000 characters" in posts.json()["detail"]
    assert client.found == []


async def test_a_nul_in_a_path_segment_or_a_json_string_is_422(server: AppServer) -> None:
    async with Client(server) as client:
        counter = await client.send("POST", "/ops/counters/a%00b/increment", headers=ADMIN)
        label = await client.send(
            "POST", "/ops/labels/get-or-create", json_body={"name": "a\0b"}, headers=ADMIN
        )
        upsert = await client.send(
            "POST",
            "/ops/labels/update-or-create",
            json_body={"name": "a\0b", "hits": 1},
            headers=ADMIN,
        )
        search = await client.send("GET", "/posts/search?q=a%00b")
        signup = await client.send(
            "POST", "/users", json_body={"name": "a\0b", "email": "nul@example.com"}
        )
        account = await client.send("GET", "/ops/accounts?owner=a%00b", headers=ADMIN)
    assert counter.status_code == 422
    assert counter.json()["detail"].startswith("Invalid value for 'name'")
    assert label.status_code == upsert.status_code == 422
    assert search.status_code == signup.status_code == account.status_code == 422
    assert client.found == []


async def test_25_patch_and_25_delete_of_one_row(server: AppServer) -> None:
    """Only 200, 204 and 404; exactly one 204 per row."""
    rounds = pick(2, 10)
    deleted = 0
    async with Client(server, concurrency=50) as client:
        _, author = await _sign_up(client, "racer")
        for n in range(rounds):
            post = await client.send(
                "POST", "/posts", json_body={"title": f"race {n}"}, headers=author
            )
            path = f"/posts/{post.json()['id']}"
            requests = [
                client.send("PATCH", path, json_body={"body": f"edit {i}"}, headers=author)
                for i in range(25)
            ]
            requests += [client.send("DELETE", path, headers=author) for _ in range(25)]
            responses = await asyncio.gather(*requests)
            deletes = Counter(r.status_code for r in responses[25:])
            deleted += deletes[204]
            assert deletes == {204: 1, 404: 24}, deletes
            assert {r.status_code for r in responses[:25]} <= {200, 404}
    table(
        f"Hostile: 25 PATCH + 25 DELETE of one row ({_backend(server)})",
        ["rounds", "statuses", "204s", "problems"],
        [(rounds, dict(client.statuses), deleted, len(client.found))],
    )
    assert deleted == rounds
    assert client.found == []


async def test_50_parallel_creates_of_one_unique_value(server: AppServer) -> None:
    """One 201, 49 x 409: the unique constraint decides, and says so."""
    email = f"same-{uuid.uuid4().hex[:8]}@example.com"
    async with Client(server, concurrency=50) as client:
        responses = await asyncio.gather(
            *(
                client.send("POST", "/users", json_body={"name": f"twin {n}", "email": email})
                for n in range(50)
            )
        )
    statuses = Counter(r.status_code for r in responses)
    conflict = next(r for r in responses if r.status_code == 409)
    table(
        f"Hostile: 50 parallel creates of one email ({_backend(server)})",
        ["statuses", "409 body", "problems"],
        [(dict(statuses), conflict.json()["detail"], len(client.found))],
    )
    assert statuses == {201: 1, 409: 49}
    assert conflict.json() == {"detail": "A BlogUser with this email already exists."}
    assert client.found == []


async def _hold_write_lock(server: AppServer, release: asyncio.Event, name: str) -> None:
    """Hold what the increments of counter ``name`` wait for until ``release`` is set."""
    if _backend(server) == "postgresql":
        conn = await asyncpg.connect(server.dsn)
        try:
            async with conn.transaction():
                await conn.execute("SELECT * FROM counters WHERE name = $1 FOR UPDATE", name)
                await release.wait()
        finally:
            await conn.close()
        return
    path = server.dsn.split("///", 1)[1]
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")  # SQLite's write lock: every writer waits
        await release.wait()
        conn.execute("ROLLBACK")
    finally:
        conn.close()


async def test_all_pool_connections_held_gives_503_with_retry_after(server: AppServer) -> None:
    """A held lock, 90 waiting requests: 503 + Retry-After after the pool's timeout, not 30 s."""
    name = f"held-{uuid.uuid4().hex[:6]}"
    waiting = pick(30, 90)
    async with Client(server, concurrency=waiting) as client:
        created = await client.send(
            "POST", "/ops/counters", json_body={"name": name}, headers=ADMIN
        )
        assert created.status_code == 201, created.text
        release = asyncio.Event()
        holder = asyncio.create_task(_hold_write_lock(server, release, name))
        await asyncio.sleep(0.5)
        started = time.monotonic()
        times: list[tuple[int, float]] = []

        async def increment() -> None:
            response = await client.send("POST", f"/ops/counters/{name}/increment", headers=ADMIN)
            times.append((response.status_code, time.monotonic() - started))

        requests = [asyncio.create_task(increment()) for _ in range(waiting)]
        await asyncio.sleep(POOL_TIMEOUT + 2)
        release.set()
        await asyncio.gather(*requests)
        await holder
        after = await client.send("POST", f"/ops/counters/{name}/increment", headers=ADMIN)
    statuses = Counter(status for status, _ in times)
    slowest_503 = max((t for status, t in times if status == 503), default=0.0)
    table(
        f"Hostile: every pooled connection held ({_backend(server)}, pool {POOL})",
        ["waiting requests", "statuses", "slowest 503 s", "after release", "problems"],
        [(waiting, dict(statuses), slowest_503, after.status_code, len(client.found))],
    )
    assert set(statuses) <= {200, 503}
    assert statuses[503] >= waiting - POOL - 1
    assert slowest_503 < POOL_TIMEOUT + 3
    assert after.status_code == 200
    assert client.found == []


_RAW_BODIES = [
    b'{"name": 1e400, "email": "x@example.com"}',
    b'{"name": NaN, "email": "x@example.com"}',
    b'{"name": Infinity, "email": "x@example.com"}',
    b'{"name": "\\ud800", "email": "x@example.com"}',
    b'{"name": "x", "email": "x@example.com", "\\udc80": 1}',
    b'{"name": "x", "email": "x@example.com", "bio": -1e400}',
]


async def test_unrepresentable_json_is_422_and_never_echoed(server: AppServer) -> None:
    async with Client(server) as client:
        responses = [await client.send("POST", "/users", content=raw) for raw in _RAW_BODIES] + [
            await client.send(
                "POST", "/ops/labels/get-or-create", content=b'{"name": "\\udfff"}', headers=ADMIN
            ),
            await client.send(
                "POST",
                "/ops/transfers",
                content=b'{"source": 1e400, "target": 2, "amount": 1}',
                headers=ADMIN,
            ),
        ]
    for response in responses:
        assert response.status_code == 422, response.text
        assert "\\ud" not in response.text.lower()
        assert "inf" not in response.text.lower()
        assert "nan" not in response.text.lower()
    assert client.found == []


async def test_a_database_that_refuses_connections_gives_503_then_recovers(
    server: AppServer,
) -> None:
    """PostgreSQL 'stopped' for this app only: its database refuses connections, then allows."""
    if _backend(server) != "postgresql":
        pytest.skip("SQLite is a file: it has no server to stop")
    name = server.dsn.rsplit("/", 1)[1]
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    async with Client(server) as client:
        try:
            await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            await terminate_backends(server.dsn)
            down = [await client.send("GET", "/posts") for _ in range(5)]
            down += [
                await client.send(
                    "POST", "/ops/counters", json_body={"name": "down"}, headers=ADMIN
                )
            ]
        finally:
            await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            await admin.close()
        up = await client.send("GET", "/posts")
    table(
        "Hostile: PostgreSQL refusing the app's connections",
        ["while down", "Retry-After", "after", "problems"],
        [
            (
                dict(Counter(r.status_code for r in down)),
                down[0].headers.get("retry-after"),
                up.status_code,
                len(client.found),
            )
        ],
    )
    assert {r.status_code for r in down} == {503}
    assert all(r.headers["retry-after"] == "1" for r in down)
    assert up.status_code == 200
    assert client.found == []


async def test_postgresql_stopped_while_the_app_runs_gives_503_then_recovers() -> None:
    """The issue's row as it was: the server stopped (a private cluster, never the shared one)."""
    cluster = start_private_cluster()
    try:
        cluster.psql("CREATE DATABASE flash_stopped")
        app = AppServer(
            cluster.dsn("flash_stopped"),
            pool_size=POOL,
            env={"FLASH_DB_POOL_TIMEOUT": str(POOL_TIMEOUT)},
        )
        app.start()
        try:
            async with Client(app) as client:
                before = await client.send("GET", "/posts")
                await asyncio.to_thread(cluster.stop)
                down = [await client.send("GET", "/posts") for _ in range(3)]
                down += [await client.send("GET", "/ops/health", headers=ADMIN)]
                down += [
                    await client.send(
                        "POST", "/ops/counters", json_body={"name": "down"}, headers=ADMIN
                    )
                ]
                await asyncio.to_thread(cluster.start)
                up = await client.send("GET", "/posts")
        finally:
            app.stop()
    finally:
        cluster.remove()
    table(
        "Hostile: PostgreSQL stopped while the app runs (a private cluster)",
        ["before", "while stopped", "Retry-After", "after start", "problems"],
        [
            (
                before.status_code,
                dict(Counter(r.status_code for r in down)),
                down[0].headers.get("retry-after"),
                up.status_code,
                len(client.found),
            )
        ],
    )
    assert before.status_code == 200
    # /ops/health reads the pool only (no query): it answers while the server is down.
    assert [r.status_code for r in down] == [503, 503, 503, 200, 503]
    assert all(r.headers["retry-after"] == "1" for r in down if r.status_code == 503)
    assert up.status_code == 200
    assert client.found == []


async def test_a_field_error_names_no_unexposed_field(server: AppServer) -> None:
    async with Client(server) as client:
        order = await client.send("GET", "/users?order_by=password_hash")
        fields = await client.send("GET", "/users?fields=email")
        probe = await client.send("GET", "/users?email__startswith=a")
    for response in (order, fields, probe):
        assert response.status_code == 400
        choices = response.json()["detail"].split("Choices are:")[1]
        assert "email" not in choices
    assert client.found == []


# -- the rows that are direct ORM calls, on the served database ---------------------------


async def test_orm_rows_regex_path_cancellation_and_two_streams(server: AppServer) -> None:
    """SQLite regex ticks and ends; 200-hop path; cancelled statement; two streams, pool of 2."""
    database = flash_db.Database(server.dsn, pool_size=2, max_overflow=0, pool_timeout=2)
    rows: list[tuple[str, str]] = []
    try:
        async with database.session() as db:
            user = await BlogUser.objects.create(
                db, name="a" * 28 + "!", email=f"orm-{uuid.uuid4().hex[:6]}@example.com"
            )
            for n in range(6):
                await BlogPost.objects.create(db, title=f"orm {n}", author_id=user.id)
            async with asyncio.timeout(10), LoopWatch() as short:
                started = time.monotonic()
                matched = await BlogUser.objects.filter(name__regex="^(a+)+$").count(db)
            elapsed = time.monotonic() - started
            rows.append(
                (
                    "regex ^(a+)+$ on 'a'*28+'!'",
                    f"{elapsed:.3f} s, longest loop stall {short.longest_stall * 1000:.0f} ms",
                )
            )
            assert matched == 0
            assert elapsed < 2
            assert short.longest_stall < 0.5  # Python's re held the loop 8.9 s
            # The same pattern over 100 bodies of 20,000 a's and a '!': long enough
            # (RE2 is linear, some ms a row) to see the loop answer during the call.
            long = "a" * 20_000 + "!"
            await BlogPost.objects.bulk_create(
                db, [BlogPost(title=f"long {n}", body=long, author_id=user.id) for n in range(100)]
            )
            async with asyncio.timeout(10), LoopWatch() as watch:
                started = time.monotonic()
                matched = await BlogPost.objects.filter(body__regex="^(a+)+$").count(db)
            elapsed = time.monotonic() - started
            rows.append(
                (
                    "the same on 100 rows of 'a'*20000+'!'",
                    f"{elapsed:.3f} s, {watch.ticks} ticks, longest loop stall "
                    f"{watch.longest_stall * 1000:.0f} ms",
                )
            )
            assert matched == 0
            assert elapsed < 5
            assert watch.longest_stall < 0.5
            if _backend(server) == "sqlite":  # the matching runs in this process
                assert watch.ticks >= 3
            await BlogPost.objects.filter(author_id=user.id, title__startswith="long ").delete(db)

            with pytest.raises(FieldError):
                await BlogUser.objects.filter(**{"__".join(["posts__author"] * 100): 1}).count(db)
            rows.append(("200-hop relation path", "FieldError"))

            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.001):
                    while True:
                        await BlogPost.objects.filter(title__icontains="orm").count(db)
            assert await BlogPost.objects.filter(author_id=user.id).count(db) == 6
            with pytest.raises(ExceptionGroup):
                async with asyncio.TaskGroup() as group:
                    group.create_task(BlogPost.objects.filter(author_id=user.id).count(db))
                    group.create_task(_fail_soon())
            async with atomic(db):
                assert await BlogPost.objects.filter(author_id=user.id).count(db) == 6
            rows.append(("cancelled statement, then the session", "usable"))

        async def stream() -> list[str]:
            async with database.session() as session:
                titles = []
                qs = BlogPost.objects.filter(author_id=user.id).order_by("title")
                async for post in qs.iterator(session, chunk_size=2):
                    titles.append(post.title)
                    await asyncio.sleep(0.01)
                return titles

        async with asyncio.timeout(15):
            first, second = await asyncio.gather(stream(), stream())
        assert first == second == [f"orm {n}" for n in range(6)]
        rows.append(("two iterator() streams, pool of 2", "both complete"))
    finally:
        await database.close()
    table(f"Hostile: direct ORM rows ({_backend(server)})", ["attack", "result"], rows)


async def _fail_soon() -> None:
    await asyncio.sleep(0.01)
    raise RuntimeError("a sibling failed")


# -- the generic sweep -----------------------------------------------------------------------


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _kind(spec: dict[str, Any], schema: dict[str, Any]) -> str:
    schema = _resolve(spec, schema)
    for option in schema.get("anyOf", []):
        if option.get("type") != "null":
            return _kind(spec, option)
    if "enum" in schema:
        return "enum"
    return str(schema.get("type", "string"))


def _valid(spec: dict[str, Any], schema: dict[str, Any]) -> Any:
    schema = _resolve(spec, schema)
    kind = _kind(spec, schema)
    if "enum" in schema:
        return schema["enum"][0]
    if kind == "integer":
        return 1
    if kind == "number":
        return 1.0
    if kind == "boolean":
        return True
    if kind == "array":
        return []
    if kind == "object":
        return {
            name: _valid(spec, prop)
            for name, prop in schema.get("properties", {}).items()
            if name in schema.get("required", [])
        }
    return "x@example.org"


def _string_values(long: int) -> list[Any]:
    """A NUL, an over-long value, a wrong type (and, in the full form, more)."""
    return ["a\x00b", "x" * long, 12345, *(([["list"], "\udcff"]) if FULL else [])]


def _number_values() -> list[Any]:
    return ["abc", 2**70, *(([-(2**70), "1e400", True]) if FULL else [])]


# httpx refuses URLs over 64 KiB: values in a URL stay below that.
_URL_LONG = 60_000


def _requests(spec: dict[str, Any], long: int) -> list[tuple[str, str, Any]]:
    """Return (method, path, JSON body or raw bytes) for every route and every hostile value."""
    out: list[tuple[str, str, Any]] = []
    in_url = min(long, _URL_LONG)
    for template, item in spec["paths"].items():
        for method, operation in item.items():
            params = operation.get("parameters", [])
            path_params = {p["name"]: p for p in params if p["in"] == "path"}
            query = [p for p in params if p["in"] == "query"]

            def path_with(
                values: dict[str, str],
                template: str = template,
                path_params: dict[str, Any] = path_params,
            ) -> str:
                path = template
                for name in path_params:
                    path = path.replace("{" + name + "}", values.get(name, "1"))
                return path

            body_schema = (
                operation.get("requestBody", {})
                .get("content", {})
                .get("application/json", {})
                .get("schema")
            )
            body = _valid(spec, body_schema) if body_schema else None
            verb = method.upper()
            out.append((verb, path_with({}), body))
            path_values = ["a%00b", "9" * in_url, "abc"]
            if FULL:
                path_values += ["1e400", str(2**70), "-1"]
            for name in path_params:
                for value in path_values:
                    out.append((verb, path_with({name: value}), body))
            for param in query:
                kind = _kind(spec, param.get("schema", {}))
                values: list[str] = (
                    ["a%00b", "x" * 1001, "x" * in_url, "%ED%A0%80"]
                    if kind == "string"
                    else ["abc", "1e400", str(2**70), "-1", "a%00b"]
                )
                if not FULL:
                    values = values[:3]
                for value in values:
                    out.append((verb, f"{path_with({})}?{param['name']}={value}", body))
            if body_schema is None:
                continue
            resolved = _resolve(spec, body_schema)
            base: dict[str, Any] = body if isinstance(body, dict) else {}
            for name, prop in resolved.get("properties", {}).items():
                kind = _kind(spec, prop)
                hostile = _string_values(long) if kind == "string" else _number_values()
                for value in hostile:
                    out.append((verb, path_with({}), {**base, name: value}))
            out.append((verb, path_with({}), json.dumps(body)[:-1].encode() + b', "x": NaN}'))
            out.append((verb, path_with({}), b"[" * 2000 + b"]" * 2000))
            out.append((verb, path_with({}), b'{"unterminated": "'))
    return out


def _list_limits(spec: dict[str, Any], long: int) -> list[tuple[str, str, Any]]:
    """Return the limit probes of every list route (those with order_by)."""
    out: list[tuple[str, str, Any]] = []
    for path, item in spec["paths"].items():
        operation = item.get("get", {})
        names = {p["name"] for p in operation.get("parameters", [])}
        if "order_by" not in names or "{" in path:
            continue
        probes = [
            "limit=100000",
            "limit=-1",
            "offset=-1",
            f"offset={2**70}",
            "order_by=" + ",".join(["-created_at"] * 9),
            "order_by=" + ",".join(["x"] * (min(long, _URL_LONG) // 2)),
            "order_by=id,id",
            "order_by=%00",
            "fields=" + ",".join(["nope"] * 50),
            "total=maybe",
            "unknown__icontains=a",
        ]
        for extra in operation.get("parameters", []):
            if "__" in extra["name"] or extra["name"] not in ("limit", "offset", "order_by"):
                probes.append(f"{extra['name']}={'x' * 1001}")
        out.extend(("GET", f"{path}?{probe}", None) for probe in probes)
    return out


async def test_generic_sweep_of_every_route(server: AppServer) -> None:
    """Every route and field: a NUL, an over-long value, a wrong type; every list route's limits."""
    long = pick(10_000, 100_000)
    async with Client(server, concurrency=POOL) as client:
        spec = (await client.http.get("/openapi.json")).json()
        _, user = await _sign_up(client, "sweeper")
        both = {**user, **ADMIN}
        requests = _requests(spec, long) + _list_limits(spec, long)
        semaphore = asyncio.Semaphore(POOL)

        async def one(method: str, path: str, body: Any, headers: dict[str, str]) -> None:
            async with semaphore:
                if isinstance(body, bytes):
                    await client.send(method, path, content=body, headers=headers)
                else:
                    await client.send(method, path, json_body=body, headers=headers)

        started = time.monotonic()
        await asyncio.gather(*(one(m, p, b, both) for m, p, b in requests))
        # And once per route without any credentials: 401s, never worse.
        anonymous = {(m, p.split("?")[0]) for m, p, _ in requests}
        await asyncio.gather(*(one(m, p, None, {}) for m, p in sorted(anonymous)))
        wall = time.monotonic() - started
    operations = sum(len(item) for item in spec["paths"].values())
    table(
        f"Hostile: sweep of the example app ({_backend(server)})",
        ["operations", "requests", "wall s", "statuses", "500s", "problems"],
        [
            (
                operations,
                client.sent,
                wall,
                dict(sorted(client.statuses.items())),
                client.statuses[500],
                len(client.found),
            )
        ],
    )
    assert client.found == [], "\n".join(client.found[:30])
