"""The example blog, in-process on both backends: its routes, rules, signal and OpenAPI."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from openapi_spec_validator import validate
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import AsyncSession

from example_app.app import MIGRATIONS, create_app
from example_app.models import (
    BlogComment,
    BlogPost,
    BlogTag,
    BlogUser,
    Notification,
    PostStatus,
    post_tags,
)
from example_app.routes import OUTBOX
from flash_db.testing import capture_queries
from tests.fastapi.conftest import Serve


@asynccontextmanager
async def blog(
    url: str, serve: Serve, *, seed_data: bool = True
) -> AsyncIterator[httpx.AsyncClient]:
    # The test database has every table already (conftest's create_all), so the
    # startup only seeds; test_startup_migrates_a_new_database covers the schema step.
    async with serve(create_app(url, prepare_schema=False, seed_data=seed_data)) as client:
        yield client


async def _ids(db: AsyncSession) -> dict[str, int]:
    users = {u.email.split("@")[0]: u.id for u in await BlogUser.objects.fetch(db)}
    posts = {p.title: p.id for p in await BlogPost.objects.fetch(db)}
    return {**users, **posts}


async def test_demo_data_is_seeded_once(backend_url: str, db: AsyncSession, serve: Serve) -> None:
    async with blog(backend_url, serve) as client:
        users = (await client.get("/users")).json()
    async with blog(backend_url, serve):
        pass
    assert users["total"] == 3
    assert await BlogUser.objects.count(db) == 3
    assert await BlogPost.objects.count(db) == 5
    assert await BlogTag.objects.count(db) == 4
    assert await BlogComment.objects.count(db) == 4


async def test_crud_routes_and_filters(backend_url: str, db: AsyncSession, serve: Serve) -> None:
    async with blog(backend_url, serve) as client:
        ids = await _ids(db)
        by_author = await client.get(
            "/posts", params={"author__name__icontains": "grace", "order_by": "title"}
        )
        published = await client.get("/posts", params={"status": "published", "fields": "id"})
        created = await client.post("/posts", json={"title": "New", "author_id": ids["ada"]})
        forced = await client.post(
            "/posts", json={"title": "Sneaky", "author_id": ids["ada"], "status": "published"}
        )
        liked = await client.patch(f"/posts/{created.json()['id']}", json={"likes": 1000})
    assert [p["title"] for p in by_author.json()["items"]] == [
        "Draft: debugging moths",
        "What is a nanosecond?",
    ]
    assert published.json()["total"] == 4
    assert created.status_code == 201
    assert created.json()["status"] == "draft"
    assert forced.status_code == 422  # only the publish route publishes
    assert liked.status_code == 422  # likes have their own route


async def test_search_uses_lookups_q_and_a_relation_path(backend_url: str, serve: Serve) -> None:
    async with blog(backend_url, serve) as client:
        engine = await client.get("/posts/search", params={"q": "ENGINE"})
        in_body = await client.get("/posts/search", params={"q": "wire"})
        drafts = await client.get("/posts/search", params={"q": "moths"})
        tagged = await client.get("/posts/search", params={"q": "e", "tag": "math"})
        empty = await client.get("/posts/search", params={"q": ""})
        nul = await client.get("/posts/search", params={"q": "a\x00"})
    assert [p["title"] for p in engine.json()] == ["Notes on the Analytical Engine"]
    assert [p["title"] for p in in_body.json()] == ["What is a nanosecond?"]
    assert drafts.json() == []  # drafts are not searchable
    assert sorted(p["title"] for p in tagged.json()) == [
        "A first program",
        "Notes on the Analytical Engine",
    ]
    assert empty.status_code == 422
    assert nul.status_code == 422


async def test_popular_annotates_comment_counts(backend_url: str, serve: Serve) -> None:
    async with blog(backend_url, serve) as client:
        popular = await client.get("/posts/popular")
        busiest = await client.get("/posts/popular", params={"min_comments": 2})
    assert popular.json()[0] == {
        "id": popular.json()[0]["id"],
        "title": "Notes on the Analytical Engine",
        "comment_count": 2,
    }
    assert [p["comment_count"] for p in popular.json()] == [2, 1, 1]
    assert [p["title"] for p in busiest.json()] == ["Notes on the Analytical Engine"]


async def test_detail_loads_relations_in_three_queries(
    backend_url: str, db: AsyncSession, serve: Serve
) -> None:
    app = create_app(backend_url, prepare_schema=False)
    async with serve(app) as client:
        post_id = (await _ids(db))["Notes on the Analytical Engine"]
        async with capture_queries(app.state.flash_db.database) as captured:
            detail = await client.get(f"/posts/{post_id}/detail")
        missing = await client.get("/posts/424242/detail")
    body = detail.json()
    assert body["author"]["name"] == "Ada Lovelace"
    assert sorted(tag["name"] for tag in body["tags"]) == ["history", "math"]
    assert [c["text"] for c in body["comments"]] == ["Lovely.", "Still relevant."]
    assert len(captured) == 3
    assert missing.status_code == 404


async def test_publish_runs_clean_in_atomic_and_announces_on_commit(
    backend_url: str, db: AsyncSession, serve: Serve
) -> None:
    OUTBOX.clear()
    async with blog(backend_url, serve) as client:
        draft = (await _ids(db))["Draft: debugging moths"]
        empty_body = await client.post(f"/posts/{draft}/publish")
        assert type(OUTBOX)() == OUTBOX  # nothing announced for a rolled-back publish
        await client.patch(f"/posts/{draft}", json={"body": "Found one in relay 70."})
        published = await client.post(f"/posts/{draft}/publish")
        again = await client.post(f"/posts/{draft}/publish")
        missing = await client.post("/posts/424242/publish")
    assert empty_body.status_code == 422
    assert empty_body.json()["detail"] == [
        {"loc": ["body", "body"], "msg": "A published post needs a body.", "type": "value_error"}
    ]
    assert published.status_code == 200
    assert published.json()["status"] == "published"
    assert published.json()["published_at"] is not None
    assert list(OUTBOX) == ["Published: Draft: debugging moths"]
    assert again.status_code == 409
    assert missing.status_code == 404
    post = await BlogPost.objects.get(db, id=draft)
    assert post.status is PostStatus.PUBLISHED


async def test_like_with_f_expression(backend_url: str, db: AsyncSession, serve: Serve) -> None:
    async with blog(backend_url, serve) as client:
        post_id = (await _ids(db))["Just a hobby"]
        for _ in range(3):
            liked = await client.post(f"/posts/{post_id}/like")
        missing = await client.post("/posts/424242/like")
    assert liked.json() == {"id": post_id, "likes": 3}
    assert missing.status_code == 404


async def test_set_tags_creates_missing_ones(
    backend_url: str, db: AsyncSession, serve: Serve
) -> None:
    async with blog(backend_url, serve) as client:
        post_id = (await _ids(db))["Just a hobby"]
        response = await client.put(f"/posts/{post_id}/tags", json={"names": ["OS", "linux"]})
        too_many = await client.put(
            f"/posts/{post_id}/tags", json={"names": [str(n) for n in range(11)]}
        )
    assert response.json() == {"names": ["linux", "os"]}
    assert too_many.status_code == 422
    assert sorted(await BlogTag.objects.values_list("name", flat=True).fetch(db)) == [
        "hardware",
        "history",
        "linux",
        "math",
        "os",
    ]


async def test_user_stats_aggregate(backend_url: str, db: AsyncSession, serve: Serve) -> None:
    async with blog(backend_url, serve) as client:
        ids = await _ids(db)
        await client.post(f"/posts/{ids['A first program']}/like")
        grace = await client.get(f"/users/{ids['grace']}/stats")
        ada = await client.get(f"/users/{ids['ada']}/stats")
        missing = await client.get("/users/424242/stats")
    assert grace.json() == {
        "user_id": ids["grace"],
        "posts": 2,
        "published": 1,
        "total_views": 0,
        "total_likes": 0,
    }
    assert ada.json()["total_likes"] == 1
    assert missing.status_code == 404


async def test_new_comment_notifies_the_post_author(
    backend_url: str, db: AsyncSession, serve: Serve
) -> None:
    async with blog(backend_url, serve, seed_data=False) as client:
        ann = (await client.post("/users", json={"name": "Ann", "email": "ann@example.com"})).json()
        bob = (await client.post("/users", json={"name": "Bob", "email": "bob@example.com"})).json()
        post = (await client.post("/posts", json={"title": "Hi", "author_id": ann["id"]})).json()
        own = await client.post(
            "/comments", json={"post_id": post["id"], "author_id": ann["id"], "text": "Me"}
        )
        other = await client.post(
            "/comments", json={"post_id": post["id"], "author_id": bob["id"], "text": "Nice"}
        )
        blank = await client.post("/comments", json={"post_id": post["id"], "text": "  "})
        inbox = await client.get("/notifications", params={"user_id": ann["id"]})
    assert own.status_code == other.status_code == 201
    assert blank.status_code == 422
    assert [n["message"] for n in inbox.json()["items"]] == ["New comment on 'Hi'."]
    assert await Notification.objects.count(db) == 1


async def test_user_rules_and_admin_only_delete(
    backend_url: str, db: AsyncSession, serve: Serve
) -> None:
    async with blog(backend_url, serve) as client:
        ids = await _ids(db)
        bad_email = await client.post("/users", json={"name": "X", "email": "not-an-email"})
        duplicate = await client.post("/users", json={"name": "X", "email": "ada@example.com"})
        no_token = await client.delete(f"/users/{ids['ada']}")
        has_posts = await client.delete(f"/users/{ids['ada']}", headers={"X-Admin-Token": "admin"})
        new = await client.post("/users", json={"name": "Y", "email": "y@example.com"})
        deleted = await client.delete(
            f"/users/{new.json()['id']}", headers={"X-Admin-Token": "admin"}
        )
    assert bad_email.status_code == 422
    assert bad_email.json()["detail"][0]["loc"] == ["body", "email"]
    assert duplicate.status_code == 409
    assert no_token.status_code == 403
    assert has_posts.status_code == 409
    assert deleted.status_code == 204


async def test_deleting_a_post_removes_its_comments_and_tag_links(
    backend_url: str, db: AsyncSession, serve: Serve
) -> None:
    async with blog(backend_url, serve) as client:
        post_id = (await _ids(db))["Notes on the Analytical Engine"]
        response = await client.delete(f"/posts/{post_id}")
    assert response.status_code == 204
    assert not await BlogComment.objects.filter(post_id=post_id).exists(db)
    links = await db.execute(post_tags.select().where(post_tags.c.post_id == post_id))
    assert links.all() == []


async def test_startup_migrates_a_new_database(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'blog.sqlite3'}"
    app = create_app(url)
    async with app.router.lifespan_context(app):
        database = app.state.flash_db.database
        async with database.engine.connect() as conn:
            tables = await conn.run_sync(lambda sync: inspect(sync).get_table_names())
        async with database.session() as db:
            users = await BlogUser.objects.count(db)
    expected = {"blog_users", "blog_posts", "blog_tags", "blog_post_tags", "blog_comments"}
    assert expected <= set(tables)
    assert ("alembic_version" in tables) == (MIGRATIONS / "env.py").exists()
    assert users == 3


def _openapi() -> dict[str, Any]:
    app: FastAPI = create_app("sqlite+aiosqlite:///unused.sqlite3")
    return app.openapi()


def test_openapi_is_valid_and_names_schemas_stably() -> None:
    spec = _openapi()
    validate(spec)
    names = set(spec["components"]["schemas"])
    blog_names = {
        "CommentCreate",
        "CommentRead",
        "CommentReadPage",
        "CommentUpdate",
        "ErrorMessage",
        "Likes",
        "NotificationRead",
        "NotificationReadPage",
        "PostCreate",
        "PostDetail",
        "PostPopularity",
        "PostRead",
        "PostReadPage",
        "PostSummary",
        "PostUpdate",
        "Published",
        "TagCreate",
        "TagNames",
        "TagRead",
        "TagReadPage",
        "TagUpdate",
        "UserCreate",
        "UserRead",
        "UserReadPage",
        "UserStats",
        "UserUpdate",
    }
    assert blog_names <= names
    for name in names:  # no module-qualified or hash-suffixed names
        assert name.isidentifier(), name
        assert "__" not in name, name
        assert "_" not in name or name in {"Body_create_post"}, name
    assert spec == _openapi()  # the same document every time
