"""The blog application: ``uvicorn example_app.app:app`` (or ``python -m example_app``).

SQLite file ``blog.sqlite3`` by default (``[tool.flash_db] url`` in the
repository's pyproject.toml, the same database as the ``flash-db`` commands),
PostgreSQL (or any URL) from ``$DATABASE_URL``. At startup the schema is migrated when the app ships
migrations (``example_app/migrations``) and created otherwise, and demo data
is written on the first start.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal

from fastapi import Depends, FastAPI
from fastapi.routing import APIRoute

from example_app import ops, signals  # noqa: F401  (signals: connects the receivers)
from example_app.admin import mount_admin
from example_app.auth import ADMIN_RESPONSES, USER_RESPONSES, current_user, require_admin
from example_app.models import BlogComment, BlogPost, BlogTag, BlogUser
from example_app.routes import (
    require_comment_author,
    require_post_author,
    require_self,
)
from example_app.routes import router as blog_router
from example_app.schemas import (
    CommentCreate,
    CommentRead,
    CommentUpdate,
    PostCreate,
    PostRead,
    PostUpdate,
    TagCreate,
    TagRead,
    TagUpdate,
    UserRead,
    UserUpdate,
)
from example_app.seed import seed
from flash_db import Database, database_url, get_database
from flash_db_fastapi import CRUDRouter, add_exception_handlers, flash_lifespan, offline_docs

__all__ = ["MIGRATIONS", "app", "create_app", "prepare_database"]

HERE = Path(__file__).resolve().parent
MIGRATIONS = HERE / "migrations"


async def prepare_database(database: Database) -> None:
    """Bring the schema up to date: run the app's migrations if it has them, else create tables."""
    if (MIGRATIONS / "env.py").exists():
        from flash_db.migrations import Settings, amigrate

        settings = Settings(
            root=HERE.parent,
            migrations=MIGRATIONS,
            models=("example_app.models", "example_app.ops"),
            url=database.url.render_as_string(hide_password=False),
        )
        await amigrate(settings=settings)
    else:
        await database.create_all()


def _engine_options() -> dict[str, Any]:
    """Pool settings from the environment.

    ``FLASH_DB_POOL_SIZE``, ``FLASH_DB_MAX_OVERFLOW`` and ``FLASH_DB_POOL_TIMEOUT``
    (seconds a request waits for a connection before its 503).
    """
    options: dict[str, Any] = {}
    # FLASH_DB_REPLICAS (comma-separated URLs): read replicas (docs/scaling.md).
    replicas = [url for url in os.environ.get("FLASH_DB_REPLICAS", "").split(",") if url]
    if replicas:
        options["replicas"] = replicas
    for name, key, kind in (
        ("FLASH_DB_POOL_SIZE", "pool_size", int),
        ("FLASH_DB_MAX_OVERFLOW", "max_overflow", int),
        ("FLASH_DB_POOL_TIMEOUT", "pool_timeout", float),
    ):
        if os.environ.get(name):
            options[key] = kind(os.environ[name])
    return options


def create_app(
    url: str | None = None, *, prepare_schema: bool = True, seed_data: bool = True
) -> FastAPI:
    """Build the blog app on ``url`` (default: :func:`flash_db.database_url`'s, as ``flash-db``'s).

    At startup it migrates (or creates) the schema unless ``prepare_schema=False``
    (tests whose database already has the tables), then seeds the demo data
    unless ``seed_data=False``.
    """

    @asynccontextmanager
    async def startup(app: FastAPI) -> AsyncIterator[None]:
        database = get_database()
        if prepare_schema:
            await prepare_database(database)
        if seed_data:
            async with database.session() as db:
                await seed(db)
        try:
            yield
        finally:
            if admin_database is not None:
                await admin_database.close()

    app = FastAPI(
        title="Flash DB blog",
        summary="The example app of Flash DB: users, posts, tags and comments.",
        version="0.1.0",
        lifespan=flash_lifespan(url, lifespan=startup, **_engine_options()),
    )
    # FLASH_DB_READ_FROM=replica: the blog's CRUD list/get routes read from replicas.
    read_from: Literal["primary", "replica"] = (
        "replica" if os.environ.get("FLASH_DB_READ_FROM") == "replica" else "primary"
    )
    add_exception_handlers(app)
    offline_docs(app)  # /docs and /redoc with their assets served from here: no CDN
    # /admin (sqladmin) when EXAMPLE_ADMIN_USER and EXAMPLE_ADMIN_PASSWORD are set.
    admin_database = mount_admin(app, database_url(url))
    # Hand-written routes first: /posts/search must not be taken for /posts/{id}.
    app.include_router(blog_router)
    # Sign-up (POST /users) and creating posts and comments as the signed-in user are
    # hand-written (example_app.routes); the routers serve the rest. Emails are not
    # public (UserRead has none, and they cannot be filtered on); writes need the
    # user's token and touch only the user's own rows; deletes of users, tags and
    # edits of tags need the admin token.
    owner = [Depends(require_self)]
    app.include_router(
        _documented(
            CRUDRouter(
                BlogUser,
                prefix="/users",
                tags=["users"],
                read_from=read_from,
                read_schema=UserRead,
                update_schema=UserUpdate,
                filter_fields=["name", "created_at"],
                order_fields=["name", "created_at"],
                routes=("list", "get", "update", "delete"),
                dependencies={"update": owner, "delete": [Depends(require_admin)]},
            )
        )
    )
    author = [Depends(require_post_author)]
    app.include_router(
        _documented(
            CRUDRouter(
                BlogPost,
                prefix="/posts",
                tags=["posts"],
                read_from=read_from,
                read_schema=PostRead,
                create_schema=PostCreate,
                update_schema=PostUpdate,
                routes=("list", "get", "update", "replace", "delete"),
                dependencies={"update": author, "replace": author, "delete": author},
                filter_fields=[
                    "title",
                    "status",
                    "author_id",
                    "views",
                    "likes",
                    "created_at",
                    "published_at",
                    "author__name",
                ],
                order_fields=["created_at", "published_at", "views", "likes", "title"],
            )
        )
    )
    admin = [Depends(require_admin)]
    app.include_router(
        _documented(
            CRUDRouter(
                BlogTag,
                prefix="/tags",
                tags=["tags"],
                read_from=read_from,
                read_schema=TagRead,
                create_schema=TagCreate,
                update_schema=TagUpdate,
                order_fields=["name"],
                dependencies={
                    "create": [Depends(current_user)],
                    "update": admin,
                    "replace": admin,
                    "delete": admin,
                },
            )
        )
    )
    commenter = [Depends(require_comment_author)]
    app.include_router(
        _documented(
            CRUDRouter(
                BlogComment,
                prefix="/comments",
                tags=["comments"],
                read_from=read_from,
                read_schema=CommentRead,
                create_schema=CommentCreate,
                update_schema=CommentUpdate,
                routes=("list", "get", "update", "delete"),
                dependencies={"update": commenter, "delete": commenter},
                filter_fields=["post_id", "author_id", "text"],
                order_fields=["created_at"],
            )
        )
    )
    app.include_router(ops.router)
    return app


def _documented(router: CRUDRouter) -> CRUDRouter:
    """Document the 401/403 answers of the router's routes that need a token."""
    for route in router.routes:
        if not isinstance(route, APIRoute):
            continue
        calls = {dependency.call for dependency in route.dependant.dependencies}
        if require_admin in calls:
            route.responses = {**route.responses, **ADMIN_RESPONSES}
        elif calls & {current_user, require_self, require_post_author, require_comment_author}:
            route.responses = {**route.responses, **USER_RESPONSES}
    return router


app = create_app()
