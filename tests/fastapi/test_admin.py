"""The example app's admin site: off without credentials, then log in, list, create, edit."""

from __future__ import annotations

import logging
import re

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from example_app.app import create_app
from example_app.models import BlogPost, BlogUser, PostStatus
from tests.fastapi.conftest import Serve


def test_without_credentials_the_admin_is_off_and_says_how_to_turn_it_on(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("EXAMPLE_ADMIN_USER", "boss")
    monkeypatch.delenv("EXAMPLE_ADMIN_PASSWORD", raising=False)
    with caplog.at_level(logging.WARNING, logger="example_app"):
        app = create_app("sqlite+aiosqlite://", prepare_schema=False, seed_data=False)
    assert "The admin site (/admin) is off: set EXAMPLE_ADMIN_USER and EXAMPLE_ADMIN_PASSWORD" in (
        caplog.text
    )
    assert not [route for route in app.routes if getattr(route, "path", "") == "/admin"]


async def test_log_in_list_create_and_edit_a_post(
    backend_url: str, serve: Serve, db: AsyncSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EXAMPLE_ADMIN_USER", "boss")
    monkeypatch.setenv("EXAMPLE_ADMIN_PASSWORD", "correct horse")
    async with serve(create_app(backend_url, prepare_schema=False)) as client:
        assert (await client.get("/admin/blog-post/list")).status_code == 302  # to the login
        refused = await client.post("/admin/login", data={"username": "boss", "password": "no"})
        assert refused.status_code == 400
        assert (await client.get("/admin/blog-post/list")).status_code == 302
        login = {"username": "boss", "password": "correct horse"}
        assert (await client.post("/admin/login", data=login)).status_code == 302

        listed = await client.get("/admin/blog-post/list")
        assert listed.status_code == 200
        assert "What is a nanosecond?" in listed.text  # a seeded post

        ada = await BlogUser.objects.get(db, email="ada@example.com")
        form = {"title": "From the admin", "author": str(ada.pk), "status": "DRAFT"}
        form |= {"body": "", "views": "0", "likes": "0"}
        created = await client.post("/admin/blog-post/create", data=form)
        assert created.status_code == 302, created.text
        post = await BlogPost.objects.get(db, title="From the admin")
        assert (post.author_id, post.status, post.created_at is not None) == (
            ada.pk,
            PostStatus.DRAFT,
            True,
        )

        found = await client.get("/admin/blog-post/list", params={"search": "From the admin"})
        assert re.findall(r"/admin/blog-post/edit/(\d+)", found.text) == [str(post.pk)]
        edited = await client.post(
            f"/admin/blog-post/edit/{post.pk}", data=form | {"title": "Edited", "views": "7"}
        )
        assert edited.status_code == 302, edited.text
    await post.refresh_from_db(db)
    assert (post.title, post.views) == ("Edited", 7)
