"""Exists, Subquery and OuterRef in filter() and annotate(), and QuerySets as ``__in`` values."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from flash_db import Count, Exists, F, Max, OuterRef, Q, Subquery
from flash_db.testing import capture_queries
from tests.models import Post, User
from tests.query_data import seed


async def names(db: AsyncSession, *conditions: object, **lookups: object) -> list[str]:
    """Return the names of the users matching the conditions, ordered by name."""
    qs = User.objects.filter(*conditions, **lookups).order_by("name")
    return list(await qs.values_list("name", flat=True).fetch(db))


async def test_exists_in_filter(db: AsyncSession) -> None:
    await seed(db)
    published = Post.objects.filter(author_id=OuterRef("id"), published=True)
    assert await names(db, Exists(published)) == ["Alice", "Bob", "Émile"]
    assert await names(db, ~Exists(published)) == ["Carol"]
    assert await names(db, Exists(published) & Q(age__gt=26)) == ["Alice", "Émile"]
    drafts = Post.objects.filter(author=OuterRef("pk"), published=False)
    assert await names(db, Q(Exists(drafts)) | Q(name="Carol")) == ["Alice", "Carol"]


async def test_exists_over_the_same_model_is_correlated_to_the_outer_row(
    db: AsyncSession,
) -> None:
    await seed(db)
    # Users with someone older than them (Bob's age is NULL).
    older = User.objects.filter(age__gt=OuterRef("age"))
    assert await names(db, Exists(older)) == ["Alice", "Carol"]


async def test_outer_ref_through_relations(db: AsyncSession) -> None:
    await seed(db)
    # Users who commented on a post by someone of their own company.
    colleagues = Post.objects.filter(
        comments__author_id=OuterRef("id"), author__company_id=OuterRef("company_id")
    )
    assert await names(db, Exists(colleagues)) == []
    same_company_posts = Post.objects.filter(author__company__name=OuterRef("company__name"))
    assert await names(db, Exists(same_company_posts)) == ["Alice", "Bob", "Émile"]


async def test_exists_and_subquery_in_annotate(db: AsyncSession) -> None:
    await seed(db)
    best = Post.objects.filter(author_id=OuterRef("id")).order_by("-views").values("title")[:1]
    qs = User.objects.annotate(
        has_drafts=Exists(Post.objects.filter(author_id=OuterRef("id"), published=False)),
        best_title=Subquery(best),
    ).order_by("name")
    rows = [(u.name, u.has_drafts, u.best_title) for u in await qs.fetch(db)]  # type: ignore[attr-defined]
    assert rows == [
        ("Alice", True, "Hello World"),
        ("Bob", False, "SQL 100% fun_stuff"),
        ("Carol", False, None),
        ("Émile", False, "Über Straße"),
    ]
    # Annotations built from subqueries can be filtered and ordered on.
    with_best = qs.filter(best_title__icontains="o").values_list("name", flat=True)
    assert await with_best.fetch(db) == ["Alice"]


async def test_subquery_in_filter_with_grouped_values(db: AsyncSession) -> None:
    await seed(db)
    author_max = (
        Post.objects.filter(author_id=OuterRef("author_id"))
        .values("author_id")
        .annotate(m=Max("views"))
        .values("m")
    )
    top = Post.objects.filter(views=Subquery(author_max)).order_by("title")
    assert await top.values_list("title", flat=True).fetch(db) == [
        "Hello World",
        "SQL 100% fun_stuff",
        "Über Straße",
    ]
    counts = Post.objects.filter(author_id=OuterRef("id")).values("author_id")
    counted = User.objects.annotate(n=Subquery(counts.annotate(c=Count("id")).values("c")))
    assert await counted.filter(n__gte=2).values_list("name", flat=True).fetch(db) == ["Alice"]


async def test_querysets_as_in_values(db: AsyncSession) -> None:
    await seed(db)
    acme = User.objects.filter(company__name="Acme")
    titles = Post.objects.filter(author__in=acme).order_by("title").values_list("title", flat=True)
    assert await titles.fetch(db) == ["Hello World", "hello again", "Über Straße"]
    popular = Post.objects.filter(views__gte=7).values_list("author_id", flat=True)
    assert await names(db, id__in=popular) == ["Alice", "Bob"]
    assert await names(db, ~Q(id__in=popular)) == ["Carol", "Émile"]


async def test_subquery_misuse_is_a_clear_error(db: AsyncSession) -> None:
    await seed(db)
    with pytest.raises(TypeError, match="values"):
        Subquery(Post.objects.all())
    with pytest.raises(TypeError, match="exactly one column"):
        await User.objects.annotate(x=Subquery(Post.objects.values("id", "title"))).fetch(db)
    async with capture_queries(db) as captured:
        with pytest.raises(ValueError, match="OuterRef"):
            await User.objects.filter(age=OuterRef("age")).fetch(db)
    assert captured.statements == []


async def test_f_and_outer_ref_combine(db: AsyncSession) -> None:
    await seed(db)
    # Users who wrote a post with more views than a quarter of their age.
    posts = Post.objects.filter(author_id=OuterRef("id"), views__gt=OuterRef("age") / 4)
    assert await names(db, Exists(posts)) == ["Alice"]
    plus = User.objects.annotate(next_age=F("age") + 1).filter(
        Exists(User.objects.filter(age=OuterRef("next_age")))
    )
    assert await plus.count(db) == 0


async def test_plain_sqlalchemy_correlation_inside_exists(db: AsyncSession) -> None:
    await seed(db)
    # A subquery over another model selects from that model's table, so plain
    # SQLAlchemy conditions correlate as they would in SQLAlchemy.
    drafts = Post.objects.filter(Post.author_id == User.__table__.c.id, Post.published.is_(False))
    assert await names(db, Exists(drafts)) == ["Alice"]
