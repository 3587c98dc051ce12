"""The blog's admin site at ``/admin`` (sqladmin), over the same models and database.

Why sqladmin: it is the most used admin for SQLAlchemy on Starlette/FastAPI
(ahead of starlette-admin), maintained, built on SQLAlchemy's own session and
models (so Flash DB's declarative models need no adapter), works with
SQLAlchemy 2.1's async engines (tests/fastapi/test_admin.py, both databases)
and serves its CSS and JavaScript itself (it works offline).

Enabled only when ``EXAMPLE_ADMIN_USER`` and ``EXAMPLE_ADMIN_PASSWORD`` are set
(there are no default credentials); otherwise the app logs that it is off.

sqladmin reads and writes through SQLAlchemy's ORM session (Flash DB's models
are SQLAlchemy declarative classes), on an engine of its own made by Flash DB
for the same URL (so SQLite's foreign keys are enforced there too). Its writes
therefore bypass Flash DB's ``full_clean()``/``clean()`` and the
``pre_save``/``post_save``/``pre_delete``/``post_delete`` signals: the column
types, NOT NULL, unique and foreign-key constraints still hold, the rules in
``clean()`` do not (e.g. a published post without a body).
"""

from __future__ import annotations

import logging
import os
import secrets
from typing import Any, ClassVar

from fastapi import FastAPI
from sqladmin import Admin, ModelView
from sqladmin.authentication import AuthenticationBackend
from sqlalchemy.ext.asyncio import async_sessionmaker
from starlette.requests import Request

from example_app.models import BlogComment, BlogPost, BlogTag, BlogUser
from flash_db import Database

__all__ = ["ADMIN_PASSWORD_VARIABLE", "ADMIN_USER_VARIABLE", "mount_admin"]

logger = logging.getLogger("example_app")

ADMIN_USER_VARIABLE = "EXAMPLE_ADMIN_USER"
ADMIN_PASSWORD_VARIABLE = "EXAMPLE_ADMIN_PASSWORD"


class _Login(AuthenticationBackend):
    """One account, from the environment; the session cookie is signed with a random key."""

    def __init__(self, username: str, password: str) -> None:
        super().__init__(secret_key=secrets.token_urlsafe(32))
        self._username = username.encode()
        self._password = password.encode()

    async def login(self, request: Request) -> bool:
        form = await request.form()
        username = str(form.get("username", "")).encode()
        password = str(form.get("password", "")).encode()
        # Both compared in constant time, always: no early exit to time.
        valid = secrets.compare_digest(username, self._username) & secrets.compare_digest(
            password, self._password
        )
        if valid:
            request.session.update({"admin": True})
        return bool(valid)

    async def logout(self, request: Request) -> bool:
        request.session.clear()
        return True

    async def authenticate(self, request: Request) -> bool:
        return bool(request.session.get("admin"))


class UserAdmin(ModelView, model=BlogUser):
    name = "User"
    name_plural = "Users"
    column_list: ClassVar[Any] = ["id", "name", "email", "created_at"]
    column_searchable_list: ClassVar[Any] = ["name", "email"]
    form_excluded_columns: ClassVar[Any] = ["created_at", "updated_at"]


class PostAdmin(ModelView, model=BlogPost):
    name = "Post"
    name_plural = "Posts"
    column_list: ClassVar[Any] = [
        "id",
        "title",
        "status",
        "author",
        "views",
        "likes",
    ]
    column_searchable_list: ClassVar[Any] = ["title"]
    form_excluded_columns: ClassVar[Any] = [
        "created_at",
        "updated_at",
        "comments",
    ]


class TagAdmin(ModelView, model=BlogTag):
    name = "Tag"
    name_plural = "Tags"
    column_list: ClassVar[Any] = ["id", "name"]
    form_excluded_columns: ClassVar[Any] = ["posts"]


class CommentAdmin(ModelView, model=BlogComment):
    name = "Comment"
    name_plural = "Comments"
    column_list: ClassVar[Any] = [
        "id",
        "post",
        "author",
        "text",
    ]
    form_excluded_columns: ClassVar[Any] = ["created_at", "updated_at"]


def mount_admin(app: FastAPI, url: Any) -> Database | None:
    """Mount the admin at ``/admin`` when its credentials are set; return its database.

    The caller closes the returned database at shutdown. ``None``: the admin is
    off (credentials unset), and a log line says how to turn it on.
    """
    username = os.environ.get(ADMIN_USER_VARIABLE, "")
    password = os.environ.get(ADMIN_PASSWORD_VARIABLE, "")
    if not username or not password:
        logger.warning(
            "The admin site (/admin) is off: set %s and %s to turn it on.",
            ADMIN_USER_VARIABLE,
            ADMIN_PASSWORD_VARIABLE,
        )
        return None
    database = Database(url)
    admin = Admin(
        app,
        session_maker=async_sessionmaker(database.engine, expire_on_commit=False),
        authentication_backend=_Login(username, password),
        title="Flash DB blog admin",
    )
    for view in (UserAdmin, PostAdmin, TagAdmin, CommentAdmin):
        admin.add_view(view)
    return database
