"""Streaming: iterator()/stream() return every row in order, in chunks, with prefetch per chunk."""

from __future__ import annotations

import asyncio
from contextlib import aclosing

import pytest
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import AsyncSession

import flash_db
from flash_db import Prefetch, RelationNotLoaded, SessionBusy, atomic
from flash_db.testing import assert_num_queries, capture_queries
from tests.models import Post, Tag, User


async def _seed(database: flash_db.Database, posts: int = 10) -> None:
    async with database.session() as db:
        red, blue = Tag(name="red"), Tag(name="blue")
        ann = User(name="Ann", email="ann@x.io")
        ann.posts = [
            Post(title=f"p{i:02d}", views=i, tags=[red] if i % 2 else [red, blue])
            for i in range(posts)
        ]
        db.add(ann)
        await db.commit()


async def test_iterator_returns_every_row_in_order(
    database: flash_db.Database, db: AsyncSession
) -> None:
    await _seed(database)
    titles = [p.title async for p in Post.objects.order_by("-views").iterator(db, chunk_size=3)]
    assert titles == [f"p{i:02d}" for i in reversed(range(10))]
    same = [p.title async for p in Post.objects.order_by("title").stream(db, chunk_size=4)]
    assert same == sorted(titles)


async def test_iterator_inside_atomic_sees_the_transaction(
    database: flash_db.Database, db: AsyncSession
) -> None:
    await _seed(database, posts=3)
    async with atomic(db):
        user = await User.objects.get(db, name="Ann")
        await Post.objects.create(db, title="p99", author_id=user.id)
        titles = [p.title async for p in Post.objects.order_by("title").iterator(db, chunk_size=2)]
    assert titles == ["p00", "p01", "p02", "p99"]


async def test_prefetch_related_runs_once_per_chunk(
    database: flash_db.Database, db: AsyncSession
) -> None:
    await _seed(database)
    qs = Post.objects.prefetch_related("tags").order_by("title")
    # Inside atomic the stream is on the session's own connection, so every
    # statement is counted: the SELECT, then one tag query per chunk of 4 (4 + 4 + 2).
    async with atomic(db), assert_num_queries(db, 1 + 3):
        seen = [(p.title, sorted(t.name for t in p.tags)) async for p in qs.iterator(db, 4)]
    assert seen == [(f"p{i:02d}", ["red"] if i % 2 else ["blue", "red"]) for i in range(10)]


async def test_prefetch_object_runs_once_per_chunk(
    database: flash_db.Database, db: AsyncSession
) -> None:
    await _seed(database)
    qs = User.objects.prefetch_related(
        Prefetch("posts", queryset=Post.objects.filter(views__gte=8).order_by("-views"))
    )
    async with atomic(db), assert_num_queries(db, 1 + 1):
        users = [u async for u in qs.iterator(db)]
    assert [[p.title for p in u.posts] for u in users] == [["p09", "p08"]]


async def test_iterator_outside_atomic_on_every_backend(
    database: flash_db.Database, db: AsyncSession
) -> None:
    await _seed(database)
    seen = [
        (p.title, p.author.name, len(p.tags))
        async for p in Post.objects.select_related("author")
        .prefetch_related("tags")
        .order_by("title")
        .iterator(db, chunk_size=3)
    ]
    assert seen == [(f"p{i:02d}", "Ann", 1 if i % 2 else 2) for i in range(10)]


async def test_objects_from_a_stream_can_be_saved(
    database: flash_db.Database, db: AsyncSession
) -> None:
    await _seed(database, posts=5)
    async for post in Post.objects.order_by("title").iterator(db, chunk_size=2):
        post.views += 100
        await post.save(db)
    async with database.session() as fresh:
        views = await Post.objects.order_by("title").values_list("views", flat=True).fetch(fresh)
    assert views == [100, 101, 102, 103, 104]


async def test_stream_of_values(database: flash_db.Database, db: AsyncSession) -> None:
    await _seed(database, posts=3)
    qs = Post.objects.order_by("title")
    assert [row async for row in qs.values("title", "views").iterator(db, 2)] == [
        {"title": "p00", "views": 0},
        {"title": "p01", "views": 1},
        {"title": "p02", "views": 2},
    ]
    assert [row async for row in qs.values_list("views").iterator(db, 2)] == [(0,), (1,), (2,)]
    assert [v async for v in qs.values_list("title", flat=True).stream(db)] == ["p00", "p01", "p02"]
    named = [row async for row in qs.values_list("title", named=True).stream(db)]
    assert [row.title for row in named] == ["p00", "p01", "p02"]


async def test_breaking_out_early_leaves_the_session_usable(
    database: flash_db.Database, db: AsyncSession
) -> None:
    await _seed(database)
    async with aclosing(Post.objects.order_by("title").iterator(db, chunk_size=2)) as posts:
        async for post in posts:
            if post.title == "p02":
                break
    await User.objects.create(db, name="Bob", email="bob@x.io")
    async with database.session() as fresh:
        assert await User.objects.count(fresh) == 2


async def test_another_task_gets_session_busy_while_a_stream_is_open(
    database: flash_db.Database, db: AsyncSession
) -> None:
    await _seed(database)
    async with atomic(db):
        seen = []
        async for post in Post.objects.order_by("title").iterator(db, chunk_size=2):
            seen.append(post.title)
            if len(seen) == 1:
                with pytest.raises(SessionBusy):
                    await asyncio.create_task(User.objects.count(db))
                assert await User.objects.count(db) == 1  # the streaming task itself may query
    assert len(seen) == 10


async def test_stream_on_postgresql_outside_atomic_uses_the_sessions_connection(
    database: flash_db.Database, db: AsyncSession
) -> None:
    await _seed(database, posts=3)
    posts = []
    async with capture_queries(db) as captured:
        async for post in Post.objects.order_by("title").iterator(db):
            with pytest.raises(RelationNotLoaded, match=r"Post\.author"):
                _ = post.author
            posts.append(post)
    assert [p.title for p in posts] == ["p00", "p01", "p02"]
    if database.backend == "postgresql":
        # A WITH HOLD cursor on the session's own connection: DECLARE, FETCH, CLOSE.
        assert [sql.split()[0] for sql in captured.statements] == ["DECLARE", "FETCH", "CLOSE"]
    else:
        assert len(captured) == 1
    assert all(inspect(p).session is None for p in posts)  # objects belong to no session


async def test_streamed_objects_with_loaded_relations_can_be_saved(
    database: flash_db.Database, db: AsyncSession
) -> None:
    await _seed(database, posts=4)
    qs = Post.objects.select_related("author").prefetch_related("tags").order_by("title")
    async for post in qs.iterator(db, chunk_size=2):
        post.title = f"{post.title}-{post.author.name}-{len(post.tags)}"
        await post.save(db)
        assert inspect(post).session is None  # saved through db, held by no session
    async with database.session() as fresh:
        titles = await Post.objects.order_by("title").values_list("title", flat=True).fetch(fresh)
    assert titles == ["p00-Ann-2", "p01-Ann-1", "p02-Ann-2", "p03-Ann-1"]


async def test_chunk_size_must_be_positive(db: AsyncSession) -> None:
    with pytest.raises(ValueError, match="chunk_size must be positive, got 0"):
        async for _ in Post.objects.iterator(db, chunk_size=0):
            pass  # pragma: no cover


async def test_two_streams_on_a_pool_of_two_do_not_deadlock(
    backend_url: str, database: flash_db.Database
) -> None:
    """Two sessions hold the pool's two connections; each streams at once (and writes, on
    PostgreSQL: SQLite's open read cursor of the other stream blocks a writer's commit)."""
    del database  # the fixture empties the tables afterwards
    database = flash_db.Database(backend_url, pool_size=2, max_overflow=0, pool_timeout=2)
    writes = database.backend == "postgresql"
    try:
        await _seed(database, posts=6)

        async def stream(tag: str) -> list[str]:
            async with database.session() as db:
                titles = []
                async for post in Post.objects.order_by("title").iterator(db, chunk_size=2):
                    titles.append(post.title)
                    if writes and tag == "a":
                        post.views += 1
                        await post.save(db)  # the loop body writes on the same connection
                    await asyncio.sleep(0.01)  # interleave with the other stream
                return titles

        async with asyncio.timeout(10):
            first, second = await asyncio.gather(stream("a"), stream("b"))
        async with database.session() as db:
            views = await Post.objects.order_by("title").values_list("views", flat=True).fetch(db)
    finally:
        await database.close()
    assert first == second == [f"p{i:02d}" for i in range(6)]
    assert views == [i + (1 if writes else 0) for i in range(6)]  # the saves committed
