"""annotate()/aggregate() with Count, Sum, Avg, Min, Max (distinct, filter=), across relations,
GROUP BY through values(), HAVING; and distinct(*fields) and in_bulk()."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from flash_db import Avg, Count, F, FlashDBError, Max, Min, Q, Sum
from flash_db.testing import capture_queries
from tests.models import Post, Tag, User
from tests.query_data import seed


def by_name(users: list[User], attribute: str) -> dict[str, Any]:
    """Return ``{user.name: user.<attribute>}``."""
    return {user.name: getattr(user, attribute) for user in users}


async def test_count_across_a_to_many_relation(db: AsyncSession) -> None:
    await seed(db)
    users = await User.objects.annotate(n=Count("posts")).fetch(db)
    assert by_name(users, "n") == {"Alice": 2, "Bob": 1, "Carol": 0, "Émile": 1}


async def test_two_to_many_aggregates_do_not_multiply(db: AsyncSession) -> None:
    await seed(db)
    qs = Post.objects.annotate(tags_n=Count("tags"), comments_n=Count("comments")).order_by("id")
    rows = [(p.title, p.tags_n, p.comments_n) for p in await qs.fetch(db)]  # type: ignore[attr-defined]
    assert rows == [
        ("Hello World", 2, 1),
        ("hello again", 1, 0),
        ("SQL 100% fun_stuff", 1, 1),
        ("Über Straße", 0, 0),
    ]
    users = await User.objects.annotate(
        posts_n=Count("posts"), tags_n=Count("posts__tags"), views=Sum("posts__views")
    ).fetch(db)
    assert by_name(users, "posts_n") == {"Alice": 2, "Bob": 1, "Carol": 0, "Émile": 1}
    assert by_name(users, "tags_n") == {"Alice": 3, "Bob": 1, "Carol": 0, "Émile": 0}
    assert by_name(users, "views") == {"Alice": 15, "Bob": 7, "Carol": None, "Émile": 0}


async def test_aggregate_functions_distinct_and_filter(db: AsyncSession) -> None:
    await seed(db)
    users = await User.objects.annotate(
        distinct_tags=Count("posts__tags", distinct=True),
        published=Count("posts", filter=Q(posts__published=True)),
        python_views=Sum("posts__views", filter=Q(posts__tags__name="python")),
        avg_views=Avg("posts__views"),
        low=Min("posts__views"),
        high=Max("posts__views"),
    ).fetch(db)
    assert by_name(users, "distinct_tags") == {"Alice": 2, "Bob": 1, "Carol": 0, "Émile": 0}
    assert by_name(users, "published") == {"Alice": 1, "Bob": 1, "Carol": 0, "Émile": 1}
    assert by_name(users, "python_views") == {
        "Alice": 15,
        "Bob": None,
        "Carol": None,
        "Émile": None,
    }
    assert by_name(users, "avg_views") == {"Alice": 7.5, "Bob": 7.0, "Carol": None, "Émile": 0.0}
    assert by_name(users, "low") == {"Alice": 5, "Bob": 7, "Carol": None, "Émile": 0}
    assert by_name(users, "high") == {"Alice": 10, "Bob": 7, "Carol": None, "Émile": 0}


async def test_aggregate_filter_may_name_the_outer_row(db: AsyncSession) -> None:
    await seed(db)
    # Count posts, but only for users older than 26 (the condition is on the user).
    users = await User.objects.annotate(n=Count("posts", filter=Q(age__gt=26))).fetch(db)
    assert by_name(users, "n") == {"Alice": 2, "Bob": 0, "Carol": 0, "Émile": 1}


async def test_filter_and_order_by_annotations(db: AsyncSession) -> None:
    await seed(db)
    qs = User.objects.annotate(n=Count("posts")).filter(n__gte=1).order_by("-n", "name")
    assert [(u.name, u.n) for u in await qs.fetch(db)] == [  # type: ignore[attr-defined]
        ("Alice", 2),
        ("Bob", 1),
        ("Émile", 1),
    ]
    assert await qs.count(db) == 3
    assert await User.objects.annotate(n=Count("posts")).filter(n=0).count(db) == 1
    values = await qs.values("name", "n").fetch(db)
    assert values[0] == {"name": "Alice", "n": 2}


async def test_values_annotate_groups_by_the_values_fields(db: AsyncSession) -> None:
    data = await seed(db)
    per_author = Post.objects.values("author_id").annotate(n=Count("id"), total=Sum("views"))
    rows = await per_author.order_by("author_id").fetch(db)
    assert rows == [
        {"author_id": data.alice.id, "n": 2, "total": 15},
        {"author_id": data.bob.id, "n": 1, "total": 7},
        {"author_id": data.emile.id, "n": 1, "total": 0},
    ]
    async with capture_queries(db) as captured:
        busy = await per_author.filter(n__gt=1).values_list("author_id", flat=True).fetch(db)
    assert busy == [data.alice.id]
    assert "GROUP BY" in captured.statements[0]
    assert "HAVING" in captured.statements[0]
    assert await per_author.count(db) == 3
    # Grouping by a related field.
    per_company = Post.objects.values("author__company__name").annotate(total=Sum("views"))
    totals = {r["author__company__name"]: r["total"] for r in await per_company.fetch(db)}
    assert totals == {"Acme": 15, "Globex": 7}
    per_tag = Tag.objects.values_list("name").annotate(n=Count("posts")).order_by("name")
    assert await per_tag.fetch(db) == [("python", 2), ("sql", 2)]


async def test_plain_aggregate_annotation_groups_by_primary_key(db: AsyncSession) -> None:
    await seed(db)
    # Count("company") is to-one: a plain aggregate, grouped per user; HAVING filters it.
    qs = User.objects.annotate(c=Count("company")).filter(c=0)
    assert [u.name for u in await qs.fetch(db)] == ["Carol"]


async def test_aggregate_terminal(db: AsyncSession) -> None:
    await seed(db)
    result = await Post.objects.aggregate(
        db, total=Sum("views"), n=Count("id"), avg=Avg("views"), low=Min("views"), high=Max("views")
    )
    assert result == {"total": 22, "n": 4, "avg": 5.5, "low": 0, "high": 10}
    published = await Post.objects.filter(published=True).aggregate(db, total=Sum("views"))
    assert published == {"total": 17}
    filtered = await Post.objects.aggregate(db, drafts=Count("id", filter=Q(published=False)))
    assert filtered == {"drafts": 1}
    empty = await Post.objects.filter(views__gt=100).aggregate(db, total=Sum("views"), n=Count("*"))
    assert empty == {"total": None, "n": 0}
    acme = await Post.objects.filter(author__company__name="Acme").aggregate(db, m=Max("views"))
    assert acme == {"m": 10}


async def test_aggregate_terminal_across_to_many_relations(db: AsyncSession) -> None:
    await seed(db)
    one = await User.objects.aggregate(db, views=Sum("posts__views"))
    assert one == {"views": 22}
    both = await User.objects.aggregate(
        db, views=Sum("posts__views"), tags=Count("posts__tags"), users=Count("id")
    )
    assert both == {"views": 22, "tags": 4, "users": 4}


async def test_aggregate_over_annotations_slices_and_groups(db: AsyncSession) -> None:
    await seed(db)
    over_annotation = await User.objects.annotate(n=Count("posts")).aggregate(db, avg=Avg("n"))
    assert over_annotation == {"avg": 1.0}
    top_two = Post.objects.order_by("-views")[:2]
    assert await top_two.aggregate(db, total=Sum("views")) == {"total": 17}
    grouped = Post.objects.values("author_id").annotate(n=Count("id"))
    assert await grouped.aggregate(db, most=Max("n"), groups=Count("*")) == {"most": 2, "groups": 3}
    # filter= works over the slice too (issue 14): p1 and p3, both published.
    assert await top_two.aggregate(db, n=Count("id", filter=Q(published=True))) == {"n": 2}


# -- distinct and in_bulk -------------------------------------------------------------------


async def test_distinct_on_fields(db: AsyncSession) -> None:
    await seed(db)
    top = Post.objects.order_by("author_id", "-views").distinct("author_id")
    if db.get_bind().dialect.name != "postgresql":
        async with capture_queries(db) as captured:
            with pytest.raises(FlashDBError, match="DISTINCT ON, which only PostgreSQL"):
                await top.fetch(db)
        assert captured.statements == []
        return
    titles = await top.values_list("title", flat=True).fetch(db)
    assert titles == ["Hello World", "SQL 100% fun_stuff", "Über Straße"]
    assert await top.count(db) == 3


async def test_plain_distinct(db: AsyncSession) -> None:
    await seed(db)
    flags = Post.objects.values_list("published", flat=True).distinct().order_by("published")
    assert await flags.fetch(db) == [False, True]
    assert await flags.count(db) == 2


async def test_in_bulk_on_unique_fields(db: AsyncSession) -> None:
    data = await seed(db)
    by_pk = await User.objects.in_bulk(db, [data.alice.id, data.carol.id])
    assert {k: u.name for k, u in by_pk.items()} == {data.alice.id: "Alice", data.carol.id: "Carol"}
    by_email = await User.objects.in_bulk(db, ["bob@x", "nobody@x"], field_name="email")
    assert list(by_email) == ["bob@x"]
    assert by_email["bob@x"].name == "Bob"
    tags = await Tag.objects.in_bulk(db, field_name="name")
    assert sorted(tags) == ["python", "sql"]
    assert await User.objects.in_bulk(db, []) == {}
    with pytest.raises(ValueError, match="must be a unique field but 'name' isn't"):
        await User.objects.in_bulk(db, ["Bob"], field_name="name")


async def test_annotations_in_values_and_f(db: AsyncSession) -> None:
    await seed(db)
    qs = User.objects.annotate(n=Count("posts"), double=F("n") * 2).filter(double__gt=2)
    assert await qs.values_list("name", "double").fetch(db) == [("Alice", 4)]


async def test_values_annotate_with_a_to_many_count(db: AsyncSession) -> None:
    await seed(db)
    per_company = User.objects.values("company__name").annotate(n=Count("posts"))
    counts = {row["company__name"]: row["n"] for row in await per_company.fetch(db)}
    assert counts == {"Acme": 3, "Globex": 1, None: 0}
    # first() on grouped rows orders by the grouping, not by a primary key.
    first = await per_company.filter(company__name__isnull=False).first(db)
    assert first == {"company__name": "Acme", "n": 3}


async def test_filter_before_annotate_restricts_the_aggregate_like_django(
    db: AsyncSession,
) -> None:
    await seed(db)
    before = User.objects.filter(posts__published=True).annotate(n=Count("posts"))
    assert by_name(await before.fetch(db), "n") == {"Alice": 1, "Bob": 1, "Émile": 1}
    after = User.objects.annotate(n=Count("posts")).filter(posts__published=True)
    assert by_name(await after.fetch(db), "n") == {"Alice": 2, "Bob": 1, "Émile": 1}
    views = User.objects.filter(posts__views__gte=5).annotate(total=Sum("posts__views"))
    assert by_name(await views.fetch(db), "total") == {"Alice": 15, "Bob": 7}


async def test_aggregate_filters_over_joined_rows_and_having_with_or(db: AsyncSession) -> None:
    await seed(db)
    published = await User.objects.aggregate(
        db, n=Count("posts", filter=Q(posts__published=True)), views=Sum("posts__views")
    )
    assert published == {"n": 3, "views": 22}
    per_company = User.objects.values("company__name").annotate(
        drafts=Count("posts", filter=Q(posts__published=False))
    )
    drafts = {row["company__name"]: row["drafts"] for row in await per_company.fetch(db)}
    assert drafts == {"Acme": 1, "Globex": 0, None: 0}
    busy_or_bob = Post.objects.values("author__name").annotate(n=Count("id"))
    rows = await busy_or_bob.filter(Q(n__gt=1) | Q(author__name="Bob")).fetch(db)
    assert sorted(row["author__name"] for row in rows) == ["Alice", "Bob"]
    excluded = await busy_or_bob.exclude(n__gt=1).order_by("author__name").fetch(db)
    assert [row["author__name"] for row in excluded] == ["Bob", "Émile"]
