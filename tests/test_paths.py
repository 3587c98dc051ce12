"""Relation paths: to-one joins (aliased, reused), to-many EXISTS (no duplicates, Django's
same-row rule per filter() call), exclude() with NULLs, in filters, order_by, values and F."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from flash_db import Count, F, Q
from flash_db.testing import capture_queries
from tests.models import Comment, Post, Shelf, Tag, User
from tests.query_data import seed


async def user_names(db: AsyncSession, qs: Any) -> list[str]:
    """Return the names of ``qs``'s users, in result order (duplicates kept)."""
    return [user.name for user in await qs.fetch(db)]


# -- to-one ---------------------------------------------------------------------------


async def test_to_one_paths_in_filter(db: AsyncSession) -> None:
    await seed(db)
    qs = Post.objects.filter(author__name="Alice").order_by("title")
    assert await qs.values_list("title", flat=True).fetch(db) == ["Hello World", "hello again"]
    acme = Post.objects.filter(author__company__name="Acme").values_list("title", flat=True)
    assert set(await acme.fetch(db)) == {"Hello World", "hello again", "Über Straße"}
    icase = Post.objects.filter(author__company__name__iexact="GLOBEX").values_list("title")
    assert await icase.fetch(db) == [("SQL 100% fun_stuff",)]
    # A nullable to-one relation: Comment.author.
    texts = Comment.objects.filter(author__name="Bob").values_list("text", flat=True)
    assert await texts.fetch(db) == ["nice"]


async def test_to_one_join_is_aliased_outer_and_reused(db: AsyncSession) -> None:
    await seed(db)
    qs = (
        Post.objects.filter(author__name__startswith="A", author__age__gte=18)
        .filter(author__company__name="Acme")
        .order_by("author__name", "title")
        .values("title", "author__name", "author__company__name")
    )
    async with capture_queries(db) as captured:
        rows = await qs.fetch(db)
    assert rows == [
        {"title": "Hello World", "author__name": "Alice", "author__company__name": "Acme"},
        {"title": "hello again", "author__name": "Alice", "author__company__name": "Acme"},
    ]
    (sql,) = captured.statements
    # users and companies joined once each, whatever the number of references.
    assert sql.count("LEFT OUTER JOIN") == 2
    assert sql.count("JOIN users AS") == 1
    assert sql.count("JOIN companies AS") == 1


async def test_to_one_fk_shortcuts_need_no_join(db: AsyncSession) -> None:
    data = await seed(db)
    async with capture_queries(db) as captured:
        by_obj = (
            await Post.objects.filter(author=data.bob).values_list("title", flat=True).fetch(db)
        )
        by_id = Post.objects.filter(author__id=data.bob.id).values_list("title", flat=True)
        by_id_rows = await by_id.fetch(db)
    assert by_obj == by_id_rows == ["SQL 100% fun_stuff"]
    assert not any("JOIN" in sql for sql in captured.statements)


async def test_to_one_paths_in_order_by_values_and_f(db: AsyncSession) -> None:
    await seed(db)
    ordered = User.objects.order_by(F("company__name").desc(nulls_last=True), "name")
    assert await user_names(db, ordered) == ["Bob", "Alice", "Émile", "Carol"]
    ordered_first = User.objects.order_by(F("company__name").asc(nulls_first=True), "-name")
    assert await user_names(db, ordered_first) == ["Carol", "Émile", "Alice", "Bob"]
    rows = await Post.objects.order_by("views").values_list("views", "author__age").fetch(db)
    assert rows == [(0, 40), (5, 30), (7, None), (10, 30)]
    # Posts with more views than a quarter of their author's age (NULL age: no match).
    more = Post.objects.filter(views__gt=F("author__age") / 4).values_list("title", flat=True)
    assert await more.fetch(db) == ["Hello World"]
    doubled = Post.objects.annotate(score=F("views") * 2 + F("author__age")).order_by(
        F("score").desc(nulls_last=True), "title"
    )
    scores = [(p.title, p.score) for p in await doubled.fetch(db)]  # type: ignore[attr-defined]
    assert scores == [
        ("Hello World", 50),
        ("hello again", 40),
        ("Über Straße", 40),
        ("SQL 100% fun_stuff", None),
    ]


# -- to-many ----------------------------------------------------------------------------


async def test_to_many_filter_never_duplicates_parents(db: AsyncSession) -> None:
    await seed(db)
    # Both of Alice's posts match, and she is returned once.
    qs = User.objects.filter(posts__title__icontains="hello")
    assert await user_names(db, qs) == ["Alice"]
    assert await qs.count(db) == 1
    published = User.objects.filter(posts__published=True).order_by("name")
    assert await user_names(db, published) == ["Alice", "Bob", "Émile"]
    # Many-to-many, and two to-many hops.
    tagged = Post.objects.filter(tags__name__in=["python", "sql"]).order_by("title")
    assert await tagged.values_list("title", flat=True).fetch(db) == [
        "Hello World",
        "SQL 100% fun_stuff",
        "hello again",
    ]
    by_tag = User.objects.filter(posts__tags__name="sql").order_by("name")
    assert await user_names(db, by_tag) == ["Alice", "Bob"]
    reverse = Tag.objects.filter(posts__author__name="Bob").values_list("name", flat=True)
    assert await reverse.fetch(db) == ["sql"]
    via_one = Comment.objects.filter(post__tags__name="python").values_list("text", flat=True)
    assert await via_one.fetch(db) == ["nice"]


async def test_conditions_in_one_filter_call_refer_to_the_same_related_row(
    db: AsyncSession,
) -> None:
    await seed(db)
    # Alice has an unpublished post (5 views) and a published one (10 views).
    same_row = User.objects.filter(posts__published=False, posts__views=10)
    assert await user_names(db, same_row) == []
    same_row_q = User.objects.filter(Q(posts__published=False) & Q(posts__views=5))
    assert await user_names(db, same_row_q) == ["Alice"]
    any_rows = User.objects.filter(posts__published=False).filter(posts__views=10)
    assert await user_names(db, any_rows) == ["Alice"]
    # Many-to-many: a post tagged both python and sql (one filter per tag, as in Django).
    both = Post.objects.filter(tags__name="python").filter(tags__name="sql")
    assert await both.values_list("title", flat=True).fetch(db) == ["Hello World"]
    one_tag_row = Post.objects.filter(tags__name="python", tags__name__startswith="s")
    assert await one_tag_row.values_list("title", flat=True).fetch(db) == []


async def test_to_many_isnull_and_exclude_are_not_exists(db: AsyncSession) -> None:
    await seed(db)
    assert await user_names(db, User.objects.filter(posts__isnull=True)) == ["Carol"]
    with_posts = User.objects.filter(posts__isnull=False).order_by("name")
    assert await user_names(db, with_posts) == ["Alice", "Bob", "Émile"]
    excluded = User.objects.exclude(posts__published=True)
    assert await user_names(db, excluded) == ["Carol"]
    no_python = User.objects.exclude(posts__tags__name="python").order_by("name")
    assert await user_names(db, no_python) == ["Bob", "Carol", "Émile"]
    async with capture_queries(db) as captured:
        await excluded.fetch(db)
    assert "NOT (EXISTS" in captured.statements[0]
    assert "JOIN" not in captured.statements[0]


async def test_to_many_paths_in_values_and_order_by_join_like_django(db: AsyncSession) -> None:
    await seed(db)
    rows = await (
        User.objects.filter(name__in=["Alice", "Carol"])
        .order_by("name", "posts__title")
        .values_list("name", "posts__title")
        .fetch(db)
    )
    # One row per related row (a LEFT JOIN), as Django's values() does.
    assert rows == [("Alice", "Hello World"), ("Alice", "hello again"), ("Carol", None)]
    joined = User.objects.filter(name__in=["Alice", "Carol"]).values_list("name", "posts__title")
    assert await joined.count(db) == 3


# -- exclude() and NULL ---------------------------------------------------------------


async def test_exclude_keeps_null_values_through_paths_and_q(db: AsyncSession) -> None:
    await seed(db)
    by_age = User.objects.exclude(age=30).order_by("name")
    assert await user_names(db, by_age) == ["Bob", "Carol", "Émile"]
    # Carol has no company: excluding Acme keeps her.
    by_company = User.objects.exclude(company__name="Acme").order_by("name")
    assert await user_names(db, by_company) == ["Bob", "Carol"]
    nested = User.objects.exclude(Q(age__gt=26) | Q(name="Bob"))
    assert await user_names(db, nested) == ["Carol"]
    negated = User.objects.filter(~Q(age__gt=26)).order_by("name")
    assert await user_names(db, negated) == ["Bob", "Carol"]
    double = User.objects.filter(~~Q(age__gt=26)).order_by("name")
    assert await user_names(db, double) == ["Alice", "Émile"]
    deep = Post.objects.exclude(author__company__name="Globex").values_list("title", flat=True)
    assert set(await deep.fetch(db)) == {"Hello World", "hello again", "Über Straße"}
    f_compare = User.objects.exclude(age__lt=F("id") * 0 + 35).order_by("name")
    assert await user_names(db, f_compare) == ["Bob", "Émile"]


async def test_custom_join_conditions_are_kept_in_exists_and_aggregates(db: AsyncSession) -> None:
    data = await seed(db)
    for owner in (data.alice, data.carol):
        await Shelf.objects.create(db, name=f"{owner.name}'s", owner_id=owner.id)
    # Shelf.published_posts joins on the owner *and* Post.published.
    hello = Shelf.objects.filter(published_posts__title__istartswith="hello")
    assert await hello.values_list("name", flat=True).fetch(db) == ["Alice's"]
    draft = Shelf.objects.filter(published_posts__title="hello again")
    assert await draft.count(db) == 0
    counted = Shelf.objects.annotate(n=Count("published_posts")).order_by("name")
    assert [(s.name, s.n) for s in await counted.fetch(db)] == [  # type: ignore[attr-defined]
        ("Alice's", 1),
        ("Carol's", 0),
    ]


async def test_to_many_relation_compared_with_instances(db: AsyncSession) -> None:
    data = await seed(db)
    tagged = Post.objects.filter(tags=data.sql).order_by("title").values_list("title", flat=True)
    assert await tagged.fetch(db) == ["Hello World", "SQL 100% fun_stuff"]
    authors = User.objects.filter(posts__in=[data.p3, data.p4]).order_by("name")
    assert await user_names(db, authors) == ["Bob", "Émile"]
    assert await user_names(db, User.objects.exclude(posts=data.p1).order_by("name")) == [
        "Bob",
        "Carol",
        "Émile",
    ]
