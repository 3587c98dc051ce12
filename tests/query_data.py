"""A small, hand-checked data set for the query-language tests (lookups, paths, aggregates).

::

    Acme    Alice (30)  p1 "Hello World"        views 10, published, 2024-01-05 10:30 Fri,
                                                tags python, sql; a comment by Bob
                        p2 "hello again"        views 5, draft, 2024-03-10 23:15 Sun, tags python
            Émile (40)  p4 "Über Straße"        views 0, published, 2024-07-04 12:00 Thu
    Globex  Bob (None)  p3 "SQL 100% fun_stuff" views 7, published, 2023-12-31 08:00 Sun,
                                                tags sql; a comment by Alice
    (none)  Carol (25)  no posts

Datetimes are UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from flash_db import atomic
from tests.models import Comment, Company, Post, Tag, User


@dataclass
class Data:
    """The objects of the data set, by name."""

    acme: Company
    globex: Company
    alice: User
    bob: User
    carol: User
    emile: User
    p1: Post
    p2: Post
    p3: Post
    p4: Post
    python: Tag
    sql: Tag


async def seed(db: AsyncSession) -> Data:
    """Create the data set described in the module docstring (in one transaction)."""
    async with atomic(db):
        return await _create(db)


async def _create(db: AsyncSession) -> Data:
    acme = await Company.objects.create(db, name="Acme")
    globex = await Company.objects.create(db, name="Globex")
    alice = await User.objects.create(db, name="Alice", email="alice@x", age=30, company_id=acme.id)
    bob = await User.objects.create(db, name="Bob", email="bob@x", age=None, company_id=globex.id)
    carol = await User.objects.create(db, name="Carol", email="carol@x", age=25)
    emile = await User.objects.create(db, name="Émile", email="emile@x", age=40, company_id=acme.id)

    async def post(title: str, author: User, views: int, published: bool, at: datetime) -> Post:
        return await Post.objects.create(
            db, title=title, author_id=author.id, views=views, published=published, created_at=at
        )

    p1 = await post("Hello World", alice, 10, True, datetime(2024, 1, 5, 10, 30, tzinfo=UTC))
    p2 = await post("hello again", alice, 5, False, datetime(2024, 3, 10, 23, 15, tzinfo=UTC))
    p3 = await post("SQL 100% fun_stuff", bob, 7, True, datetime(2023, 12, 31, 8, 0, tzinfo=UTC))
    p4 = await post("Über Straße", emile, 0, True, datetime(2024, 7, 4, 12, 0, tzinfo=UTC))
    python = await Tag.objects.create(db, name="python")
    sql = await Tag.objects.create(db, name="sql")
    await p1.related("tags").add(db, python, sql)
    await p2.related("tags").add(db, python)
    await p3.related("tags").add(db, sql)
    await Comment.objects.create(db, text="nice", post_id=p1.id, author_id=bob.id)
    await Comment.objects.create(db, text="ok", post_id=p3.id, author_id=alice.id)
    return Data(acme, globex, alice, bob, carol, emile, p1, p2, p3, p4, python, sql)
