"""The example blog, in-process on both backends: its routes, rules, signal and OpenAPI."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from openapi_spec_validator import validate
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import AsyncSession

from example_app.app import MIGRATIONS, create_app
from example_app.auth import token_for
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


def _as(user_id: int) -> dict[str, str]:
    """Return the headers of a request made by this user."""
    return {"Authorization": f"Bearer {token_for(user_id)}"}


ADMIN = {"X-Admin-Token": "test-admin-token"}


@pytest.fixture(autouse=True)
def _admin_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BLOG_ADMIN_TOKEN", ADMIN["X-Admin-Token"])


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
        created = await client.post("/posts", json={"title": "New"}, headers=_as(ids["ada"]))
        post = f"/posts/{created.json()['id']}"
        forced = await client.post(
            "/posts", json={"title": "Sneaky", "status": "published"}, headers=_as(ids["ada"])
        )
        liked = await client.patch(post, json={"likes": 1000}, headers=_as(ids["ada"]))
        edited = await client.patch(post, json={"body": "More."}, headers=_as(ids["ada"]))
        anonymous = await client.post("/posts", json={"title": "Who?"})
    assert [p["title"] for p in by_author.json()["items"]] == [
        "Draft: debugging moths",
        "What is a nanosecond?",
    ]
    assert published.json()["total"] == 4
    assert created.status_code == 201
    assert created.json()["status"] == "draft"
    assert created.json()["author_id"] == ids["ada"]  # the signed-in user
    assert forced.status_code == 422  # only the publish route publishes
    assert liked.status_code == 422  # likes have their own route
    assert edited.json()["body"] == "More."
    assert anonymous.status_code == 401


async def test_writes_act_as_the_signed_in_user_only(
    backend_url: str, db: AsyncSession, serve: Serve
) -> None:
    async with blog(backend_url, serve) as client:
        ids = await _ids(db)
        ada, grace = _as(ids["ada"]), _as(ids["grace"])
        adas_post = ids["Notes on the Analytical Engine"]
        as_other = await client.post(
            "/posts", json={"title": "Forged", "author_id": ids["grace"]}, headers=ada
        )
        reassign = await client.patch(
            f"/posts/{adas_post}", json={"author_id": ids["grace"]}, headers=ada
        )
        not_mine = await client.patch(f"/posts/{adas_post}", json={"title": "X"}, headers=grace)
        replace = await client.put(f"/posts/{adas_post}", json={"title": "X"}, headers=grace)
        delete = await client.delete(f"/posts/{adas_post}", headers=grace)
        publish = await client.post(f"/posts/{ids['Draft: debugging moths']}/publish", headers=ada)
        tags = await client.put(f"/posts/{adas_post}/tags", json={"names": ["x"]}, headers=grace)
        comment = await client.post(
            "/comments",
            json={"post_id": adas_post, "text": "Hi", "author_id": ids["ada"]},
            headers=grace,
        )
        forged = await client.get("/users/me", headers={"Authorization": "Bearer 1.forged"})
        other_account = await client.patch(
            f"/users/{ids['ada']}", json={"bio": "hacked"}, headers=grace
        )
        own_account = await client.patch(
            f"/users/{ids['grace']}", json={"bio": "Hi"}, headers=grace
        )
        me = await client.get("/users/me", headers=grace)
        tag_delete = await client.delete("/tags/1", headers=grace)
    assert as_other.status_code == 422  # author_id is not writable
    assert reassign.status_code == 422
    assert not_mine.status_code == replace.status_code == delete.status_code == 403
    assert publish.status_code == 403  # Grace's draft
    assert tags.status_code == 403
    assert comment.status_code == 422  # author_id is not writable on comments either
    assert forged.status_code == 401
    assert other_account.status_code == 403
    assert own_account.json()["bio"] == "Hi"
    assert me.json()["email"] == "grace@example.com"
    assert tag_delete.status_code == 401  # the admin token, not a user's
    assert (await BlogPost.objects.get(db, id=adas_post)).title == "Notes on the Analytical Engine"


async def test_emails_are_private_and_sizes_bounded(
    backend_url: str, db: AsyncSession, serve: Serve
) -> None:
    async with blog(backend_url, serve) as client:
        ids = await _ids(db)
        users = await client.get("/users")
        one = await client.get(f"/users/{ids['ada']}")
        probe = await client.get("/users", params={"email__startswith": "ada"})
        detail = await client.get(f"/posts/{ids['A first program']}/detail")
        big_bio = await client.post(
            "/users", json={"name": "Big", "email": "big@example.com", "bio": "x" * 2001}
        )
        big_post = await client.post(
            "/posts", json={"title": "Big", "body": "x" * 20_001}, headers=_as(ids["ada"])
        )
        big_comment = await client.post(
            "/comments",
            json={"post_id": ids["A first program"], "text": "x" * 2001},
            headers=_as(ids["ada"]),
        )
    for body in (users.text, one.text, detail.text):
        assert "@example.com" not in body
        assert "email" not in body
    assert probe.status_code == 400
    assert "email" not in probe.json()["detail"].split("Choices are:")[1]
    assert big_bio.status_code == big_post.status_code == big_comment.status_code == 422


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
        grace = _as((await _ids(db))["grace"])
        empty_body = await client.post(f"/posts/{draft}/publish", headers=grace)
        assert type(OUTBOX)() == OUTBOX  # nothing announced for a rolled-back publish
        await client.patch(
            f"/posts/{draft}", json={"body": "Found one in relay 70."}, headers=grace
        )
        published = await client.post(f"/posts/{draft}/publish", headers=grace)
        again = await client.post(f"/posts/{draft}/publish", headers=grace)
        missing = await client.post("/posts/424242/publish", headers=grace)
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
        ids = await _ids(db)
        post_id = ids["Just a hobby"]
        for _ in range(3):
            liked = await client.post(f"/posts/{post_id}/like", headers=_as(ids["ada"]))
        missing = await client.post("/posts/424242/like", headers=_as(ids["ada"]))
    assert liked.json() == {"id": post_id, "likes": 3}
    assert missing.status_code == 404


async def test_set_tags_creates_missing_ones(
    backend_url: str, db: AsyncSession, serve: Serve
) -> None:
    async with blog(backend_url, serve) as client:
        ids = await _ids(db)
        post_id, linus = ids["Just a hobby"], _as(ids["linus"])
        response = await client.put(
            f"/posts/{post_id}/tags", json={"names": ["OS", "linux"]}, headers=linus
        )
        too_many = await client.put(
            f"/posts/{post_id}/tags", json={"names": [str(n) for n in range(11)]}, headers=linus
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
        await client.post(f"/posts/{ids['A first program']}/like", headers=_as(ids["grace"]))
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
        as_ann = {"Authorization": f"Bearer {ann['token']}"}
        as_bob = {"Authorization": f"Bearer {bob['token']}"}
        post = (await client.post("/posts", json={"title": "Hi"}, headers=as_ann)).json()
        own = await client.post(
            "/comments", json={"post_id": post["id"], "text": "Me"}, headers=as_ann
        )
        other = await client.post(
            "/comments", json={"post_id": post["id"], "text": "Nice"}, headers=as_bob
        )
        blank = await client.post(
            "/comments", json={"post_id": post["id"], "text": "  "}, headers=as_bob
        )
        inbox = await client.get("/notifications", headers=as_ann)
        bobs_view = await client.get("/notifications", headers=as_bob)
        probe = await client.get("/notifications", params={"user_id": ann["id"]}, headers=as_bob)
        one = inbox.json()["items"][0]["id"]
        mine = await client.get(f"/notifications/{one}", headers=as_ann)
        not_mine = await client.get(f"/notifications/{one}", headers=as_bob)
        anonymous = await client.get("/notifications")
    assert own.status_code == other.status_code == 201
    assert other.json()["author_id"] == bob["id"]
    assert blank.status_code == 422
    assert [n["message"] for n in inbox.json()["items"]] == ["New comment on 'Hi'."]
    assert bobs_view.json()["items"] == []
    assert probe.json()["items"] == []
    assert mine.status_code == 200
    assert not_mine.status_code == 404
    assert anonymous.status_code == 401
    assert await Notification.objects.count(db) == 1


async def test_user_rules_and_admin_only_delete(
    backend_url: str, db: AsyncSession, serve: Serve
) -> None:
    async with blog(backend_url, serve) as client:
        ids = await _ids(db)
        bad_email = await client.post("/users", json={"name": "X", "email": "not-an-email"})
        duplicate = await client.post("/users", json={"name": "X", "email": "ada@example.com"})
        no_token = await client.delete(f"/users/{ids['ada']}")
        wrong_token = await client.delete(
            f"/users/{ids['ada']}", headers={"X-Admin-Token": "admin"}
        )
        has_posts = await client.delete(f"/users/{ids['ada']}", headers=ADMIN)
        new = await client.post("/users", json={"name": "Y", "email": "y@example.com"})
        deleted = await client.delete(f"/users/{new.json()['id']}", headers=ADMIN)
    assert bad_email.status_code == 422
    assert bad_email.json()["detail"][0]["loc"] == ["body", "email"]
    assert duplicate.status_code == 409
    assert no_token.status_code == 401
    assert wrong_token.status_code == 403
    assert has_posts.status_code == 409
    assert deleted.status_code == 204


async def test_ops_routes_need_the_admin_token(backend_url: str, serve: Serve) -> None:
    """Every /ops route: 401 without X-Admin-Token, 403 with another token, served with it."""
    app = create_app(backend_url, prepare_schema=False, seed_data=False)
    operations = sorted(
        (method.upper(), path.replace("{id}", "1").replace("{name}", "hits"))
        for path, item in app.openapi()["paths"].items()
        if path.startswith("/ops")
        for method in item
    )
    async with serve(app) as client:
        anonymous = {op: (await client.request(*op)).status_code for op in operations}
        wrong = {
            op: (await client.request(*op, headers={"X-Admin-Token": "admin"})).status_code
            for op in operations
        }
        health = await client.get("/ops/health", headers=ADMIN)
        created = await client.post("/ops/counters", json={"name": "hits"}, headers=ADMIN)
        increment = await client.post("/ops/counters/hits/increment", headers=ADMIN)
    assert len(operations) == 18
    assert anonymous == dict.fromkeys(operations, 401)
    assert wrong == dict.fromkeys(operations, 403)
    assert health.status_code == 200
    assert created.status_code == 201
    assert increment.json() == {"name": "hits", "value": 1}


async def test_deleting_a_post_removes_its_comments_and_tag_links(
    backend_url: str, db: AsyncSession, serve: Serve
) -> None:
    async with blog(backend_url, serve) as client:
        ids = await _ids(db)
        post_id = ids["Notes on the Analytical Engine"]
        response = await client.delete(f"/posts/{post_id}", headers=_as(ids["ada"]))
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
        "NotificationPage",
        "NotificationRead",
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
        "UserAccount",
        "UserRead",
        "UserReadPage",
        "UserSignedUp",
        "UserSignup",
        "UserStats",
        "UserUpdate",
    }
    assert blog_names <= names
    for name in names:  # no module-qualified or hash-suffixed names
        assert name.isidentifier(), name
        assert "__" not in name, name
        assert "_" not in name or name in {"Body_create_post"}, name
    assert spec == _openapi()  # the same document every time


def test_openapi_documents_who_may_call_what() -> None:
    paths = _openapi()["paths"]
    delete_user = paths["/users/{id}"]["delete"]
    assert delete_user["security"] == [{"AdminToken": []}]
    assert {"401", "403"} <= set(delete_user["responses"])
    create_post = paths["/posts"]["post"]
    assert create_post["security"] == [{"UserToken": []}]
    assert {"401", "403"} <= set(create_post["responses"])
    assert "author_id" not in str(create_post["requestBody"])
    users = paths["/users"]["get"]
    assert not any("email" in p["name"] for p in users.get("parameters", []))
    for path, item in paths.items():  # the operational routes are the admin's
        for method, operation in item.items():
            if path.startswith("/ops"):
                assert operation["security"] == [{"AdminToken": []}], (method, path)
                assert {"401", "403"} <= set(operation["responses"]), (method, path)
