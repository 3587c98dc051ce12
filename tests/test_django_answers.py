"""Issue 14's wrong answers and crashes, each pinned to the answer Django gives.

Every expectation is derived from the rows the test creates (or the shared
data set of ``tests/query_data.py``), the way Django answers the query; the
comments say which Django rule gives it.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import JSON, Integer, String
from sqlalchemy.ext.asyncio import AsyncSession

from flash_db import (
    Avg,
    Count,
    Exists,
    F,
    FieldError,
    InvalidValue,
    Max,
    OuterRef,
    Prefetch,
    Q,
    Sum,
    Value,
)
from flash_db.functions import Abs, Cast, Coalesce, Replace
from flash_db.testing import capture_queries
from tests.models import Comment, Company, Document, Gauge, Post, Product, Sample, Tag, User
from tests.oracle.schema import Author as OracleAuthor
from tests.oracle.schema import Book as OracleBook
from tests.oracle.schema import Publisher
from tests.query_data import seed


async def user_names(db: AsyncSession, qs: Any) -> list[str]:
    """Return the sorted names of the users ``qs`` selects."""
    return sorted(await qs.values_list("name", flat=True).fetch(db))


async def post_titles(db: AsyncSession, qs: Any) -> list[str]:
    """Return the sorted titles of the posts ``qs`` selects."""
    return sorted(await qs.values_list("title", flat=True).fetch(db))


# -- 1. F() as the value of a text lookup ------------------------------------------------


async def test_text_lookups_with_f_compare_with_the_column(db: AsyncSession) -> None:
    data = await seed(db)
    # Every tag's name equals itself, whatever the case (was: the text "tags.name").
    assert await Tag.objects.filter(name__iexact=F("name")).count(db) == 2
    rows = [
        ("Al", "alice@y"),  # istartswith: yes; contains: no (case)
        ("a_c", "abc@y"),  # "_" in the name is a plain character: no match
        ("b%", "bxx@y"),  # "%" likewise
        ("x_y", "1x_y@y"),  # the literal "x_y" is there: match
        ("z\\", "z\\@y"),  # a backslash matches itself
    ]
    for name, email in rows:
        await User.objects.create(db, name=name, email=email)
    contains = User.objects.filter(email__contains=F("name")).exclude(age__gte=0)
    assert await user_names(db, contains) == ["x_y", "z\\"]
    istarts = User.objects.filter(email__istartswith=F("name")).exclude(age__gte=0)
    assert await user_names(db, istarts) == ["Al", "Bob", "z\\"]
    iends = User.objects.filter(email__iendswith=F("name"))
    assert await user_names(db, iends) == []
    # The referenced column through a relation, and an integer column's text.
    by_author = Post.objects.filter(title__icontains=F("author__name"))
    assert await post_titles(db, by_author) == []
    views = Post.objects.filter(title__contains=F("views"))
    assert await post_titles(db, views) == []  # no title holds its views' digits
    await Post.objects.filter(pk=data.p3.pk).update(db, views=100)
    assert await post_titles(db, views) == ["SQL 100% fun_stuff"]


# -- 2. None inside __in --------------------------------------------------------------


async def test_none_in_an_in_list_equals_nothing(db: AsyncSession) -> None:
    await seed(db)  # ages: Alice 30, Bob None, Carol 25, Émile 40
    everyone = ["Alice", "Bob", "Carol", "Émile"]
    assert await user_names(db, User.objects.filter(age__in=[None])) == []
    assert await user_names(db, User.objects.exclude(age__in=[None])) == everyone
    assert await user_names(db, User.objects.filter(~Q(age__in=[None]))) == everyone
    assert await user_names(db, User.objects.filter(age__in=[None, 30])) == ["Alice"]
    # NOT (age IN (30)) keeps the NULL age, as Django's exclude() does.
    assert await user_names(db, User.objects.exclude(age__in=[None, 30])) == [
        "Bob",
        "Carol",
        "Émile",
    ]


# -- 3. Negated comparisons with a nullable F() ---------------------------------------


async def test_exclude_with_a_nullable_f_keeps_null_rows(db: AsyncSession) -> None:
    pairs = [(1, 1), (1, 2), (None, 1), (1, None), (None, None), (3, 2)]
    for small, big in pairs:
        await Gauge.objects.create(db, small=small, big=big)

    async def pairs_of(qs: Any) -> list[tuple[int | None, int | None]]:
        rows = await qs.values_list("small", "big").fetch(db)
        return sorted(rows, key=repr)

    def without(*dropped: tuple[int | None, int | None]) -> list[tuple[int | None, int | None]]:
        return sorted((p for p in pairs if p not in dropped), key=repr)

    # Django: NOT (small = big AND small IS NOT NULL AND big IS NOT NULL).
    assert await pairs_of(Gauge.objects.exclude(small=F("big"))) == without((1, 1))
    assert await pairs_of(Gauge.objects.filter(small=F("big"))) == [(1, 1)]
    assert await pairs_of(Gauge.objects.exclude(small__gt=F("big"))) == without((3, 2))
    assert await pairs_of(Gauge.objects.filter(~Q(small__lt=F("big")))) == without((1, 2))
    assert await pairs_of(Gauge.objects.exclude(Q(small__lt=F("big")) | Q(big=2))) == without(
        (1, 2), (3, 2)
    )


async def test_exclude_with_a_nullable_f_through_a_relation(db: AsyncSession) -> None:
    await seed(db)
    # Posts' views 10, 5 (Alice, 30), 7 (Bob, no age), 0 (Émile, 40): only Bob's is kept.
    assert await post_titles(db, Post.objects.exclude(views__lt=F("author__age"))) == [
        "SQL 100% fun_stuff"
    ]


# -- 4. A to-many relation compared with None -----------------------------------------


async def test_to_many_relation_compared_with_none(db: AsyncSession) -> None:
    data = await seed(db)
    # Posts: Alice p1, p2; Bob p3; Émile p4; Carol none. Tags: p1 python+sql, p2 python,
    # p3 sql, p4 none. Comments: on p1 (by Bob) and p3 (by Alice).
    assert await user_names(db, User.objects.filter(posts=None)) == ["Carol"]
    assert await user_names(db, User.objects.exclude(posts=None)) == ["Alice", "Bob", "Émile"]
    assert await post_titles(db, Post.objects.filter(tags=None)) == ["Über Straße"]
    assert await post_titles(db, Post.objects.filter(tags__name=None)) == ["Über Straße"]
    assert await post_titles(db, Post.objects.filter(tags__name__isnull=True)) == ["Über Straße"]
    assert await post_titles(db, Post.objects.filter(comments=None)) == [
        "hello again",
        "Über Straße",
    ]
    # Two hops: users with a post without tags, or with no post at all.
    assert await user_names(db, User.objects.filter(posts__tags=None)) == ["Carol", "Émile"]
    # A related row whose field is NULL also matches: a comment without an author.
    await Comment.objects.create(db, text="anon", post_id=data.p2.id)
    assert await post_titles(db, Post.objects.filter(comments__author=None)) == [
        "hello again",
        "Über Straße",
    ]
    assert await post_titles(db, Post.objects.filter(comments__author__isnull=True)) == [
        "hello again",
        "Über Straße",
    ]
    # With a second lookup on the same relation, both hold for one related row.
    same_row = Post.objects.filter(comments__author=None, comments__text="anon")
    assert await post_titles(db, same_row) == ["hello again"]


# -- 8. Case-insensitive lookups compare upper() -----------------------------------------


async def test_case_insensitive_lookups_fold_final_sigma(db: AsyncSession) -> None:
    data = await seed(db)
    await Post.objects.create(db, title="Οδος books", author_id=data.carol.id)
    assert await post_titles(db, Post.objects.filter(title__istartswith="ΟΔΟΣ BOOKS")) == [
        "Οδος books"
    ]
    assert await post_titles(db, Post.objects.filter(title__iexact="ΟΔΟΣ BOOKS")) == ["Οδος books"]
    assert await post_titles(db, Post.objects.filter(title__icontains="δοσ")) == ["Οδος books"]
    # One character for one, as PostgreSQL's upper(): 'ß' is not 'SS'.
    assert await post_titles(db, Post.objects.filter(title__iendswith="STRASSE")) == []
    assert await post_titles(db, Post.objects.filter(title__iendswith="STRAßE")) == ["Über Straße"]


# -- 5. GROUP BY and DISTINCT with orderings (crashes on PostgreSQL) ----------------------


async def test_values_annotate_groups_by_the_ordering_too(db: AsyncSession) -> None:
    await seed(db)  # ages 30, None, 25, 40: four users, one per age
    await User.objects.create(db, name="Dan", email="dan@x", age=30)
    # Django groups by the ordering too: one group per user, each counting 1.
    rows = await User.objects.order_by("pk").values("age").annotate(n=Count("id")).fetch(db)
    assert [row["n"] for row in rows] == [1, 1, 1, 1, 1]
    assert [row["age"] for row in rows] == [30, None, 25, 40, 30]
    # Ordered by the aggregate or by the grouped field: grouped by age only.
    by_count = (
        User.objects.filter(age__isnull=False)
        .values("age")
        .annotate(n=Count("id"))
        .order_by("-n", "age")
    )
    assert await by_count.values_list("age", "n").fetch(db) == [(30, 2), (25, 1), (40, 1)]
    # Ordered through a relation: grouped by the company's name as well.
    by_company = User.objects.order_by("company__name").values("age").annotate(n=Count("id"))
    assert sorted(await by_company.values_list("age", "n").fetch(db), key=repr) == [
        (25, 1),
        (30, 1),
        (30, 1),
        (40, 1),
        (None, 1),
    ]


async def test_distinct_selects_what_it_is_ordered_by(db: AsyncSession) -> None:
    data = await seed(db)
    # A to-one ordering: the same posts, in their authors' order (Alice, Bob, Émile).
    posts = await Post.objects.order_by("author__name", "pk").distinct().fetch(db)
    assert [post.title for post in posts] == [
        "Hello World",
        "hello again",
        "SQL 100% fun_stuff",
        "Über Straße",
    ]
    # A to-many ordering: Django selects the post title, so Alice (two posts) is there
    # twice (Carol, with no post, sorts where the database puts NULL).
    users = await User.objects.order_by("posts__title", "pk").distinct().fetch(db)
    assert sorted(user.name for user in users) == ["Alice", "Alice", "Bob", "Carol", "Émile"]
    flat = User.objects.order_by("-posts__views").values_list("name", flat=True).distinct()
    assert sorted(await flat.fetch(db)) == ["Alice", "Alice", "Bob", "Carol", "Émile"]
    assert len(await flat[1:3].fetch(db)) == 2
    assert await flat.count(db) == 4  # as Django: count() drops the ordering
    # Already selected: no extra column, no second row.
    titles = Post.objects.order_by("-views").values_list("title", flat=True).distinct()
    assert await titles.fetch(db) == [
        "Hello World",
        "SQL 100% fun_stuff",
        "hello again",
        "Über Straße",
    ]
    assert data.p1.title == "Hello World"


async def test_aggregate_annotations_next_to_a_correlated_count(db: AsyncSession) -> None:
    await seed(db)
    # Comments: "nice" on p1 (views 10, one comment), "ok" on p3 (views 7, one comment).
    await Comment.objects.create(db, text="more", post_id=(await Post.objects.get(db, views=10)).id)
    qs = (
        Comment.objects.annotate(a0=Count("post__comments__id"))
        .annotate(a1=Max("post__views"))
        .order_by("text")
    )
    assert await qs.values_list("text", "a0", "a1").fetch(db) == [
        ("more", 2, 10),
        ("nice", 2, 10),
        ("ok", 1, 7),
    ]
    rows = [(c.text, c.a0, c.a1) for c in await qs.fetch(db)]  # type: ignore[attr-defined]
    assert rows == [
        ("more", 2, 10),
        ("nice", 2, 10),
        ("ok", 1, 7),
    ]


async def test_aggregate_annotations_with_to_many_values_and_filters(db: AsyncSession) -> None:
    await seed(db)
    # values() through a to-many relation next to an aggregate annotation: grouped
    # by the post too (Django groups by every selected column), one row per post.
    rows = User.objects.annotate(a=Max("age")).values_list("name", "posts__views", "a")
    assert sorted(await rows.fetch(db), key=repr) == sorted(
        [
            ("Alice", 10, 30),
            ("Alice", 5, 30),
            ("Bob", 7, None),
            ("Carol", None, 25),
            ("Émile", 0, 40),
        ],
        key=repr,
    )
    # F() in an aggregate's filter= names the aggregated row (one join in Django).
    views = Sum("posts__views", filter=Q(age__gt=F("posts__views") * 5))
    qs = User.objects.annotate(v=views).annotate(m=Max("age")).order_by("name")
    assert await qs.values_list("name", "v").fetch(db) == [
        ("Alice", 5),  # p2 only: 30 > 25; p1: 30 > 50 is false
        ("Bob", None),
        ("Carol", None),
        ("Émile", 0),
    ]
    assert await qs.aggregate(db, n=Count("posts__title")) == {"n": 4}


# -- 7. Avg() of a Numeric column ---------------------------------------------------------


async def test_avg_of_a_numeric_column_is_not_rounded(db: AsyncSession) -> None:
    for code, price in [("a", "10.00"), ("b", "10.01"), ("c", "10.01")]:
        await Product.objects.create(db, code=code, price=Decimal(price))
    result = await Product.objects.aggregate(db, avg=Avg("price"))
    # 30.02 / 3 = 10.006666...: Django's Decimal keeps the digits (15 significant on SQLite).
    assert isinstance(result["avg"], Decimal)
    assert abs(result["avg"] - Decimal("30.02") / 3) < Decimal("1e-12")
    assert result["avg"] != Decimal("10.01")
    annotated = (
        await Product.objects.values("code").annotate(a=Avg("price")).order_by("code").fetch(db)
    )
    assert [row["a"] for row in annotated] == [Decimal("10.00"), Decimal("10.01"), Decimal("10.01")]


# -- 10. Values converted to the column's type, or InvalidValue before any SQL -------------


async def _refused(db: AsyncSession, qs: Any, field: str, expected: str) -> InvalidValue:
    """Run ``qs`` and return its InvalidValue, checking that no SQL was sent."""
    async with capture_queries(db) as captured:
        with pytest.raises(InvalidValue) as raised:
            await qs.fetch(db)
    assert captured.statements == []
    assert raised.value.field == field
    assert expected in str(raised.value)
    return raised.value


async def test_values_no_column_could_hold_raise_invalid_value(db: AsyncSession) -> None:
    await seed(db)
    error = await _refused(db, User.objects.filter(age="abc"), "age", "an integer")
    assert error.model is User
    assert error.value == "abc"
    assert isinstance(error, ValueError)
    await _refused(db, User.objects.exclude(age__gt="1.5"), "age", "an integer")
    await _refused(db, User.objects.filter(age__in=[30, "x"]), "age", "an integer")
    await _refused(db, User.objects.filter(age__range=("1", "z")), "age", "an integer")
    await _refused(db, User.objects.filter(pk="one"), "id", "an integer")
    await _refused(db, Post.objects.filter(published="yes"), "published", "True or False")
    await _refused(db, Post.objects.filter(created_at__gte="someday"), "created_at", "datetime")
    await _refused(db, Post.objects.filter(created_at__date="2024-02-30"), "created_at", "date")
    await _refused(db, Post.objects.filter(created_at__year="MMXXIV"), "created_at", "integer")
    await _refused(db, Sample.objects.filter(price="cheap"), "price", "decimal")
    await _refused(db, Sample.objects.filter(price="NaN"), "price", "decimal")
    await _refused(db, Sample.objects.filter(ratio="half"), "ratio", "number")
    await _refused(db, Sample.objects.filter(token="not-a-uuid"), "token", "UUID")
    await _refused(db, Sample.objects.filter(clock="25:00"), "clock", "time")
    await _refused(db, Sample.objects.filter(day__lt="tomorrow"), "day", "date")
    await _refused(db, Gauge.objects.filter(small=float("inf")), "small", "integer")


async def test_values_django_converts_are_converted(db: AsyncSession) -> None:
    data = await seed(db)  # ages: Alice 30, Bob None, Carol 25, Émile 40
    assert await user_names(db, User.objects.filter(age="40")) == ["Émile"]
    assert await user_names(db, User.objects.filter(age__in=["30", 25, None])) == ["Alice", "Carol"]
    assert await user_names(db, User.objects.filter(age__range=("20", "35"))) == ["Alice", "Carol"]
    assert await user_names(db, User.objects.filter(pk=str(data.bob.pk))) == ["Bob"]
    # Floats for an integer column: gte/lt round up, the others truncate (as Django).
    assert await user_names(db, User.objects.filter(age__gte=29.5)) == ["Alice", "Émile"]
    assert await user_names(db, User.objects.filter(age__lt=29.5)) == ["Carol"]
    assert await user_names(db, User.objects.filter(age__gt=29.5)) == ["Alice", "Émile"]
    assert await user_names(db, User.objects.filter(age__lte=29.5)) == ["Carol"]
    assert await user_names(db, User.objects.filter(age=30.7)) == ["Alice"]
    assert await user_names(db, User.objects.filter(age=True)) == []  # 1
    # Beyond any integer column: no row, as for the integer itself.
    assert await user_names(db, User.objects.filter(age="99999999999999999999999")) == []
    # Text columns compare with the value's text: every title is above "5".
    assert len(await post_titles(db, Post.objects.filter(title__gt=5))) == 4
    assert await post_titles(db, Post.objects.filter(title__in=[5, "hello again"])) == [
        "hello again"
    ]
    assert await post_titles(db, Post.objects.filter(published="0")) == ["hello again"]
    assert await post_titles(db, Post.objects.filter(created_at__gte="2024-03-01")) == [
        "hello again",
        "Über Straße",
    ]
    assert await post_titles(db, Post.objects.filter(created_at__date="2024-01-05")) == [
        "Hello World"
    ]
    assert len(await post_titles(db, Post.objects.filter(created_at__year="2024"))) == 3
    token = uuid.uuid4()
    await Sample.objects.create(
        db,
        label="s",
        price=Decimal("1.50"),
        ratio=0.5,
        token=token,
        clock=dt.time(10, 30),
        day=dt.date(2024, 2, 29),
        naive=dt.datetime(2024, 2, 29, 12, 0),
    )
    cases: list[dict[str, Any]] = [
        {"price": "1.5"},
        {"price__gt": 1},
        {"price": 1.5},
        {"ratio": "0.5"},
        {"ratio__lt": Decimal("0.75")},
        {"token": str(token)},
        {"token": token.int},
        {"clock": "10:30"},
        {"day": "2024-02-29"},
        {"day": dt.datetime(2024, 2, 29, 23, 0)},
        {"naive__date": "2024-02-29"},
        {"naive__lt": "2024-03-01"},
    ]
    for lookups in cases:
        assert await Sample.objects.filter(**lookups).count(db) == 1, lookups


# -- 11. aggregate() over a sliced, distinct or grouped query ------------------------------


async def test_aggregate_over_a_subquery_takes_relations_and_filters(db: AsyncSession) -> None:
    await seed(db)
    # As Django, the relation is joined inside the subquery: its rows are the query's
    # rows times their posts (Alice p1, p2; Bob p3; Carol none; Émile p4 by pk).
    sliced = User.objects.order_by("pk")[1:3]  # Alice's second post row, Bob's p3
    assert await sliced.aggregate(db, x=Count("posts")) == {"x": 2}
    everyone = User.objects.all()[0:10]
    assert await everyone.aggregate(db, x=Count("posts"), n=Count("*")) == {"x": 4, "n": 5}
    distinct = User.objects.distinct()
    assert await distinct.aggregate(db, x=Count("posts"), views=Sum("posts__views")) == {
        "x": 4,
        "views": 10 + 5 + 7 + 0,
    }
    busy = Count("posts", filter=Q(posts__views__gt=5))  # p1 (10) and p3 (7)
    assert await distinct.aggregate(db, x=busy) == {"x": 2}
    acme = Sum("age", filter=Q(company__name="Acme"))  # the last three: Bob, Carol, Émile
    assert await User.objects.order_by("-pk")[:3].aggregate(db, x=acme) == {"x": 40}
    # Over aggregate annotations: max author age per post (30, 30, None, 40), one row per
    # post and tag (p1 twice), so 30 + 30 + 30 + 40.
    ages = Post.objects.annotate(m=Max("author__age"))
    assert await ages.aggregate(db, s=Sum("m"), c=Count("tags")) == {"s": 130, "c": 4}
    per_author = Post.objects.values("author_id").annotate(n=Count("id"))
    assert await per_author.aggregate(db, s=Sum("n"), m=Max("n")) == {"s": 4, "m": 2}


# -- 9. prefetch_related() loads a path once --------------------------------------------------


async def test_prefetch_with_a_queryset_then_through_it_loads_once(db: AsyncSession) -> None:
    await seed(db)
    hot = Prefetch("posts", queryset=Post.objects.filter(views__gt=1))  # all but p4 (0 views)
    expected = [
        ("Alice", [("Hello World", ["python", "sql"]), ("hello again", ["python"])]),
        ("Bob", [("SQL 100% fun_stuff", ["sql"])]),
        ("Carol", []),
        ("Émile", []),
    ]
    for lookups in [(hot, "posts__tags"), (hot, "posts__tags", "posts")]:
        async with capture_queries(db) as captured:
            users = await User.objects.order_by("pk").prefetch_related(*lookups).fetch(db)
        assert len(captured.statements) == 3  # users, posts, tags: as Django
        loaded = [
            (
                user.name,
                [(post.title, sorted(tag.name for tag in post.tags)) for post in user.posts],
            )
            for user in users
        ]
        assert sorted(loaded) == expected
    # A queryset for a path already loaded by an earlier lookup: Django's ValueError,
    # here before any SQL.
    async with capture_queries(db) as captured:
        with pytest.raises(ValueError, match="'posts' lookup was already seen"):
            await User.objects.prefetch_related("posts__tags", hot).fetch(db)
    assert captured.statements == []


# -- 6. F() through a to-many relation in filter() -------------------------------------------


async def test_f_through_a_to_many_names_the_lookups_related_row(db: AsyncSession) -> None:
    await seed(db)
    # Alice (30): p1 views 10, p2 views 5; Bob (no age): p3 views 7; Émile (40): p4 views 0.
    # As Django, both conditions hold for one post (Flash DB: one EXISTS, no duplicates).
    same_post = User.objects.filter(posts__views__gt=6, age__gt=F("posts__views") * 2)
    assert await user_names(db, same_post) == ["Alice"]  # p1: 30 > 20
    # Each condition holds for some post of Alice's, never for one post: no match.
    split = User.objects.filter(posts__views__gt=6, age__gt=F("posts__views") * 5)
    assert await user_names(db, split) == []
    # Alone, the F() still names a related row, and the user is there once.
    assert await user_names(db, User.objects.filter(age__gt=F("posts__views"))) == [
        "Alice",
        "Émile",
    ]
    # Inside the to-many lookup itself.
    own_row = User.objects.filter(posts__views__gt=F("posts__views") - 1)
    assert await user_names(db, own_row) == ["Alice", "Bob", "Émile"]
    # A separate filter() call is a separate related row, as in Django.
    chained = User.objects.filter(posts__views__gt=6).filter(age__gt=F("posts__views") * 5)
    assert await user_names(db, chained) == ["Alice"]  # p1 for the first, p2 (25) for the second


# -- 12. An empty IN, % of floats, aggregates over no rows (the oracle's later classes) ---------


async def test_an_empty_in_makes_its_and_false_before_the_database_sees_it(
    db: AsyncSession,
) -> None:
    data = await seed(db)
    # Django's EmptyResultSet: the whole WHERE is false, so PostgreSQL never type-checks
    # the comparison it makes moot (a timestamp with an integer raised there).
    moot = Post.objects.filter(id__in=[]).filter(created_at__gte=F("views"))
    async with capture_queries(db) as captured:
        assert await moot.count(db) == 0
        assert await moot.fetch(db) == []
        assert await moot.exists(db) is False
        assert await moot.first(db) is None
        assert await moot.annotate(n=Count("tags")).values_list("n").fetch(db) == []
        assert await moot.distinct().order_by("author__name").count(db) == 0
        assert await moot.aggregate(db, n=Count("id"), m=Max("views")) == {"n": 0, "m": None}
        over_tags = {"t": Count("tags"), "c": Count("comments"), "s": Sum("views")}
        assert await moot.aggregate(db, **over_tags) == {"t": 0, "c": 0, "s": None}
        assert await moot.distinct().aggregate(db, a=Avg("views")) == {"a": None}
    assert captured.statements == []  # as Django: no query for a WHERE that is FALSE
    # An expression of aggregates is computed by the database, over no row.
    assert await moot.aggregate(db, x=Count("id") + 1) == {"x": 1}
    both = Post.objects.filter(Q(tags__name="sql") & Q(pk__in=[]) & Q(created_at__gte=F("views")))
    assert await both.count(db) == 0
    # Negated it is TRUE: every row, the NULL ones too (Bob's age), as in Django.
    assert len(await user_names(db, User.objects.exclude(age__in=[]))) == 4
    assert len(await user_names(db, User.objects.filter(~Q(age__in=[None]) | Q(age__gt=99)))) == 4
    assert await user_names(db, User.objects.filter(Q(age__in=[]) | Q(age__gt=35))) == ["Émile"]
    # Through a to-many relation: no EXISTS at all (its joins would fold away: a
    # cartesian-product warning), and an aggregate after it has no row to count.
    assert await post_titles(db, Post.objects.filter(tags__name__in=[])) == []
    assert len(await post_titles(db, Post.objects.exclude(tags__id__in=[]))) == 4
    counted = Post.objects.filter(tags__id__in=[]).annotate(n=Count("tags"))
    assert await counted.fetch(db) == []
    assert await counted.aggregate(db, s=Sum("n")) == {"s": None}
    assert data.p1.views == 10


async def test_modulo_of_float_integer_and_numeric_expressions(db: AsyncSession) -> None:
    sqlite = db.get_bind().dialect.name == "sqlite"
    await Sample.objects.create(db, label="a", ratio=7.5, price=Decimal("7.50"))
    rows = Sample.objects.annotate(
        f=F("ratio") % 2, n=F("price") % 2, i=(F("pk") * 0 + 5) % 3, p=(F("ratio") + 0.5) % 3
    )
    (row,) = await rows.values_list("f", "n", "i", "p").fetch(db)
    # SQLite's % takes the integer parts of its operands (Django's answer there is SQLite's);
    # PostgreSQL has no % for floats (Django raises): Flash DB gives the remainder.
    assert row[0] == (1.0 if sqlite else 1.5)
    assert row[1] == (1 if sqlite else Decimal("1.50"))
    assert row[2] == 2  # (a + b) % c: the sum first
    assert row[3] == 2.0
    halves = Sample.objects.filter(price__lte=(F("ratio") / 2) % 2)  # 3.75 % 2
    assert await halves.count(db) == 0
    assert await Sample.objects.filter(pk__in=[]).filter(price__lte=F("ratio") % 2).count(db) == 0


async def test_lookups_on_an_aggregate_over_no_rows_match_nothing(db: AsyncSession) -> None:
    await seed(db)
    # filter=Q(x__in=[]) aggregates no row: selected, Max is NULL and Count 0 (as Django).
    none = Max("posts__views", filter=Q(posts__views__in=[]))
    users = User.objects.annotate(m=none, c=Count("posts", filter=Q(posts__id__in=[])))
    assert {(m, c) for m, c in await users.values_list("m", "c").fetch(db)} == {(None, 0)}
    # A lookup on it is Django's EmptyResultSet: filter() matches nothing, exclude() all.
    assert await users.filter(m__isnull=True).count(db) == 0
    assert await users.exclude(m__gte=0).count(db) == 4
    assert await users.exclude(c=0).count(db) == 4
    assert await users.filter(c=0).count(db) == 0
    assert await users.annotate(d=F("c") + 1).exclude(d=1).count(db) == 4
    # Over the query's own rows (GROUP BY and HAVING) too.
    own = Post.objects.annotate(m=Max("author__age", filter=Q(author__age__in=[])))
    assert await own.exclude(m__gte=0).count(db) == 4
    assert await own.filter(m__lt=0).count(db) == 0
    # Through a function it is a plain NULL again (Coalesce(NULL, 3) = 3).
    assert await own.annotate(k=Coalesce("m", 3)).filter(k=3).count(db) == 4


async def test_distinct_ordered_by_an_alias_through_a_relation(db: AsyncSession) -> None:
    await seed(db)
    # The ordering (not selected) joins the author: SQLAlchemy's compare() of it
    # with the selected annotation raised AttributeError.
    qs = (
        Post.objects.annotate(v=Abs("views"))
        .alias(a=Replace("author__name", Value("l"), Value("L")))
        .order_by("-a", "pk")
        .distinct()
    )
    assert [(p.title, p.v) for p in await qs.fetch(db)] == [  # type: ignore[attr-defined]
        ("Über Straße", 0),  # ÉmiLe
        ("SQL 100% fun_stuff", 7),  # Bob
        ("Hello World", 10),  # ALice
        ("hello again", 5),
    ]


async def test_distinct_ordered_by_an_aggregate_through_a_many_to_many(db: AsyncSession) -> None:
    await seed(db)  # python: p1 (10 views, 2 tags), p2 (5); sql: p1, p3 (7)
    # The filter() before annotate() restricts the aggregate's rows through the same
    # relation, as Django's reused join: p1 counts once per tag (Django's answer).
    qs = (
        Tag.objects.filter(posts__tags__id__isnull=False)
        .annotate(v=Sum("posts__views"))
        .order_by("-v")
        .distinct()
    )
    # PostgreSQL: ORDER BY the label (the expression written twice had two aliases
    # of the link table: "ORDER BY expressions must appear in select list").
    assert await qs.values_list("name", "v").fetch(db) == [("sql", 27), ("python", 25)]
    assert [(t.name, t.v) for t in await qs.fetch(db)] == [  # type: ignore[attr-defined]
        ("sql", 27),
        ("python", 25),
    ]


# -- JSON columns (found by the oracle's JSON column) -----------------------------------------


async def _documents(db: AsyncSession) -> None:
    bodies: list[Any] = [
        None,  # SQL NULL
        JSON.NULL,  # the JSON null
        "alpha",
        True,
        False,
        [1, 2],
        {"a": 1, "b": "x"},
        {"a": "1"},
    ]
    for i, body in enumerate(bodies):
        await Document.objects.create(db, name=f"d{i}", body=body)


async def document_names(db: AsyncSession, qs: Any) -> list[str]:
    """Return the sorted names of the documents ``qs`` selects."""
    return sorted(await qs.values_list("name", flat=True).fetch(db))


async def test_json_values_compare_as_json_documents(db: AsyncSession) -> None:
    await _documents(db)
    # As Django's JSONField: a string, a boolean, a list or a dict is one JSON value
    # (was: the string bound as text, no match on SQLite and "jsonb = character
    # varying" on PostgreSQL; a list in __in was not bindable).
    docs = Document.objects
    assert await document_names(db, docs.filter(body="alpha")) == ["d2"]
    assert await document_names(db, docs.filter(name__startswith="d", body="alpha")) == ["d2"]
    assert await document_names(db, docs.filter(body=True)) == ["d3"]
    assert await document_names(db, docs.filter(body=[1, 2])) == ["d5"]
    # (On SQLite the document is compared as text, as Django does: keys in the stored order.)
    assert await document_names(db, docs.filter(body={"a": 1, "b": "x"})) == ["d6"]
    # exclude() keeps the SQL NULL row, as Django's does.
    assert await document_names(db, docs.exclude(body="alpha")) == [
        "d0",
        "d1",
        "d3",
        "d4",
        "d5",
        "d6",
        "d7",
    ]
    found = docs.filter(body__in=[False, "alpha", [1, 2], {"a": "1"}, None])
    assert await document_names(db, found) == ["d2", "d4", "d5", "d7"]
    assert await docs.exclude(body__in=[True, [1, 2]]).count(db) == 6


async def test_json_none_is_the_json_null(db: AsyncSession) -> None:
    await _documents(db)
    docs = Document.objects
    # Django: filter(field=None) on a JSONField matches the JSON null; isnull, SQL NULL.
    assert await document_names(db, docs.filter(body=None)) == ["d1"]
    assert await document_names(db, docs.filter(body__isnull=True)) == ["d0"]
    assert await document_names(db, docs.filter(body__isnull=False)) == [
        "d1",
        "d2",
        "d3",
        "d4",
        "d5",
        "d6",
        "d7",
    ]
    # Django adds no "IS NOT NULL" for a None value: the SQL NULL row is left out too.
    assert await docs.exclude(body=None).count(db) == 6
    assert await document_names(db, docs.filter(Q(body=None) | Q(body=False))) == ["d1", "d4"]


async def test_json_none_through_a_to_many_path_is_the_json_null(db: AsyncSession) -> None:
    # The oracle's models: publishers with books whose "extra" is a JSON column.
    when = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    author = await OracleAuthor.objects.create(db, name="a", joined=when)
    extras: dict[str, list[Any]] = {"p-null": [JSON.NULL, {}], "p-sql": [None], "p-none": []}
    for name, bodies in extras.items():
        publisher = await Publisher.objects.create(db, name=name, founded=dt.date(2000, 1, 1))
        for body in bodies:
            await OracleBook.objects.create(
                db,
                title="t",
                pages=1,
                price=Decimal("1.00"),
                rating=1.0,
                published=dt.date(2020, 1, 1),
                created=when,
                in_print=True,
                author_id=author.id,
                publisher_id=publisher.id,
                extra=body,
            )
    names = Publisher.objects.order_by("name").values_list("name", flat=True)
    # As Django: books__extra=None is a book whose extra is the JSON null; a publisher
    # with no book does not match (it does for a column's NULL: Django's outer join).
    assert await names.filter(books__extra=None).fetch(db) == ["p-null"]
    assert await names.filter(books__extra__isnull=True).fetch(db) == ["p-none", "p-sql"]


async def test_a_text_lookup_against_a_null_expression_is_null(db: AsyncSession) -> None:
    await seed(db)  # ages: Alice 30, Bob None, Carol 25, Émile 40
    age_text = Cast("age", String())
    # LIKE against NULL is NULL, so NOT of it too: exclude() drops Bob, as Django does
    # (an expression, not a plain F(): no IS NOT NULL rule). SQLite said false, kept him.
    expected = ["Alice", "Carol", "Émile"]
    assert await user_names(db, User.objects.exclude(name__contains=age_text)) == expected
    assert await user_names(db, User.objects.filter(~Q(name__istartswith=age_text))) == expected
    assert await user_names(db, User.objects.filter(name__endswith=age_text)) == []


async def test_json_in_with_only_none_is_empty_and_double_negation_cancels(
    db: AsyncSession,
) -> None:
    await seed(db)
    await Sample.objects.create(db, label="s", data={"a": 1}, day=dt.date(2024, 1, 1))
    # None inside __in equals nothing on a JSON column too: the IN is empty, so the
    # WHERE is FALSE and no query is sent (PostgreSQL raised on date < integer).
    moot = Sample.objects.filter(data__in=[None], day__lt=F("pk"))
    async with capture_queries(db) as captured:
        assert await moot.fetch(db) == []
    assert captured.statements == []
    # ~~Q(x) is Q(x), as in Django: its to-many lookup shares the call's EXISTS, so
    # both conditions hold for one post (Alice's are 10 and 5 views: none is both).
    same_post = User.objects.filter(~~Q(posts__views__gt=6), posts__views__lt=8)
    assert await user_names(db, same_post) == ["Bob"]  # p3: 7 views
    assert await user_names(db, User.objects.filter(~~~Q(age__gt=26))) == ["Bob", "Carol"]


# -- 13. One filter() call through a to-many relation: one related row -----------------------
#
# Django joins a to-many relation once per filter() call and every condition of the call
# on it (under &, |, ^, ~ after the join, in F()) names the joined row; Flash DB asks the
# same of one row in an EXISTS, so each parent comes once.


async def test_one_filter_call_through_two_hops_names_one_far_row(db: AsyncSession) -> None:
    data = await seed(db)
    # p1 has the tags python and sql: no one tag is both.
    both = User.objects.filter(posts__tags__name="python", posts__tags__id=data.sql.id)
    assert await user_names(db, both) == []
    one = User.objects.filter(posts__tags__name="python", posts__tags__id=data.python.id)
    assert await user_names(db, one) == ["Alice"]
    # The SQL: one EXISTS per hop, the inner one inside the outer one.
    assert one.sql(db).count("EXISTS") == 2


async def test_or_in_one_filter_call_names_the_same_related_row(db: AsyncSession) -> None:
    await seed(db)
    # (over 8 views or Bob's) and a draft, on one post: Alice's draft p2 has 5 views.
    draft = User.objects.filter(Q(posts__views__gt=8) | Q(name="Bob"), posts__published=False)
    assert await user_names(db, draft) == []
    draft = User.objects.filter(Q(posts__views__gt=4) | Q(name="Bob"), posts__published=False)
    assert await user_names(db, draft) == ["Alice"]
    # Under | Django's join is LEFT OUTER: Carol, with no post, matches by her name.
    either = User.objects.filter(Q(posts__views__gt=8) | Q(name="Carol"))
    assert await user_names(db, either) == ["Alice", "Carol"]


async def test_xor_in_one_filter_call_is_taken_per_related_row(db: AsyncSession) -> None:
    await seed(db)
    # Alice (30): p1 (10 views) makes both sides true, p2 (5 views) only the first: a match.
    # Bob (no age): p3 (7 views). Émile (40): p4 (0 views). Carol (25): no post, no side.
    xor = User.objects.filter(Q(age__gt=28) ^ Q(posts__views__gt=6))
    assert await user_names(db, xor) == ["Alice", "Bob", "Émile"]


async def test_negated_q_reuses_the_row_an_earlier_lookup_joined(db: AsyncSession) -> None:
    await seed(db)
    # After posts__views__gt=0 joined a post, ~Q names that post: Alice's draft p2.
    reused = User.objects.filter(Q(posts__views__gt=0) & ~Q(posts__published=True))
    assert await user_names(db, reused) == ["Alice"]
    # Written first, ~Q is a subquery of its own: no published post at all.
    alone = User.objects.filter(~Q(posts__published=True), posts__views__gt=0)
    assert await user_names(db, alone) == []
    # A negated F() through the relation names a joined post too (Django: NOT (age >
    # views * 4 AND age IS NOT NULL) per post): Alice's p1, Bob's p3.
    negated_f = User.objects.filter(~Q(age__gt=F("posts__views") * 4))
    assert await user_names(db, negated_f) == ["Alice", "Bob"]


async def test_negated_q_before_any_join_stays_its_own_subquery_on_the_null_row(
    db: AsyncSession,
) -> None:
    await seed(db)
    # Written first under ^, ~Q(posts__published=True) is a subquery of its own in
    # Django (no published post at all), also where the LEFT OUTER JOIN through
    # posts__comments finds no comment (the row of NULLs): only Carol. (It named the
    # post of the later lookup there: Alice's draft p2, without comments, matched.)
    qs = User.objects.filter(~Q(posts__published=True) ^ Q(posts__comments__pk__lt=0))
    assert await user_names(db, qs) == ["Carol"]


async def test_isnull_twice_on_one_to_many_relation_means_no_related_row(db: AsyncSession) -> None:
    await seed(db)
    # Django: one LEFT OUTER JOIN, both IS NULL on its NULL row: the posts without comments.
    none = Post.objects.filter(Q(comments__pk__isnull=True), comments__post_id__isnull=True)
    assert await post_titles(db, none) == ["hello again", "Über Straße"]


async def test_to_many_filters_stay_one_exists(db: AsyncSession) -> None:
    await seed(db)
    # No cost for the rule in the plain cases: one EXISTS, no outer join, no NULL row.
    for qs in (
        User.objects.filter(posts__views__gt=6),
        User.objects.filter(posts__views__gt=6, posts__published=True, name__gt="A"),
        User.objects.filter(age__gt=F("posts__views")),
    ):
        sql = qs.sql(db)
        assert sql.count("EXISTS") == 1, sql
        assert "JOIN" not in sql, sql
    # Each parent once, where Django repeats Alice per matching post.
    assert await User.objects.filter(age__gt=F("posts__views")).count(db) == 2


async def test_exclude_is_the_complement_of_filter_with_a_to_one_f(db: AsyncSession) -> None:
    data = await seed(db)
    await Post.objects.create(db, title="Carol's", author_id=data.carol.id, views=9)
    # filter(): a post over 6 views and a name before the company's: Bob (Globex).
    # Carol has no company: her comparison is NULL, so she is in neither answer (as in
    # Django, whose F() of a NOT NULL column through a nullable relation adds no IS NULL).
    args = (Q(posts__views__gt=6),)
    kwargs = {"name__lt": F("company__name")}
    assert await user_names(db, User.objects.filter(*args, **kwargs)) == ["Bob"]
    assert await user_names(db, User.objects.exclude(*args, **kwargs)) == ["Alice", "Émile"]


async def test_f_between_two_to_many_paths_beside_an_aggregate(db: AsyncSession) -> None:
    await seed(db)
    # A SQL aggregate annotation (GROUP BY) and, in one filter() call, a to-many lookup
    # whose F() goes through another to-many relation: the rows of both relations stay
    # inside EXISTS (PostgreSQL refused the joined comment as an ungrouped column).
    qs = (
        Post.objects.annotate(total=Sum("views", filter=Q(author__age__gt=20)))
        .filter(total__gte=1, tags__pk__lt=F("comments__pk") + 1000)
        .order_by("title")
    )
    assert await post_titles(db, qs) == ["Hello World"]  # p2 has no comment, p3's author no age


async def test_exists_xor_q_inner_joins_the_q_side_as_django(db: AsyncSession) -> None:
    await seed(db)
    # Django's Exists(...) ^ Q(...) keeps Q(...) a node of its own, whose join through
    # posts is INNER: Carol (no company: the left side is true) has no post, so no row.
    # Alice: p1 (10 views) makes the right side true; Bob: p3 (7); Émile: p4 (0) not.
    no_company = ~Exists(Company.objects.filter(pk=OuterRef("company_id")))
    qs = User.objects.filter(no_company ^ Q(posts__views__gt=6))
    assert await user_names(db, qs) == ["Alice", "Bob"]
    # Q(...) ^ Q(...) is one node over both lookups: the join is LEFT OUTER, Carol stays.
    qs = User.objects.filter(Q(company=None) ^ Q(posts__views__gt=6))
    assert await user_names(db, qs) == ["Alice", "Bob", "Carol"]


async def test_aggregate_over_a_subquery_with_an_empty_filter_is_over_no_row(
    db: AsyncSession,
) -> None:
    await seed(db)
    # Django moves the filter= into the subquery it aggregates over (distinct(), a
    # slice, grouped rows): the empty IN empties it, so every aggregate is over no row.
    empty = Max("views", filter=Q(views__in=[]))
    async with capture_queries(db) as captured:
        assert await Post.objects.distinct().aggregate(db, n=Count("id"), m=empty) == {
            "n": 0,
            "m": None,
        }
        assert await Post.objects.all()[:3].aggregate(db, n=Count("tags"), m=empty) == {
            "n": 0,
            "m": None,
        }
    assert captured.statements == []
    # Over the rows themselves only that aggregate is over no row, as in Django.
    assert await Post.objects.aggregate(db, n=Count("id"), m=empty) == {"n": 4, "m": None}


async def test_distinct_count_counts_the_annotations_too(db: AsyncSession) -> None:
    await seed(db)
    # DISTINCT applies to the whole row, annotations included: one row per user and
    # post views (Alice twice: 10 and 5; Carol once, with None), as Django counts.
    qs = User.objects.annotate(v=F("posts__views")).distinct()
    assert await qs.count(db) == len(await qs.fetch(db)) == 5
    assert await qs[1:].count(db) == 4
    assert await User.objects.values().annotate(v=F("posts__views")).distinct().count(db) == 5
    # An alias() is not selected: one row per user.
    assert await User.objects.alias(v=F("posts__views")).distinct().count(db) == 4


async def test_decimal_arithmetic_is_not_rounded_to_the_column_scale(db: AsyncSession) -> None:
    await Product.objects.create(db, code="a", price=Decimal("12.50"))
    await Product.objects.create(db, code="b", price=Decimal("0.05"))
    qs = Product.objects.annotate(
        third=F("price") / 3, square=F("price") * F("price"), half=F("price") * Decimal("0.5")
    ).order_by("code")
    rows = await qs.values("third", "square", "half").fetch(db)
    # Django's Decimal keeps the digits (15 significant on SQLite), not Numeric(10, 2)'s.
    assert all(isinstance(row["third"], Decimal) for row in rows)
    assert abs(rows[0]["third"] - Decimal("12.50") / 3) < Decimal("1e-12")
    assert [row["square"] for row in rows] == [Decimal("156.25"), Decimal("0.0025")]
    assert [row["half"] for row in rows] == [Decimal("6.25"), Decimal("0.025")]


async def test_an_annotation_beside_an_aggregate_is_grouped_by_its_value(db: AsyncSession) -> None:
    await seed(db)  # Alice's posts: 10 and 5 views; Bob's: 7; Émile's: 0; Carol: none
    # Django groups by the annotation's value, not by the columns it reads: Alice's
    # two posts give one group (z = 0) of two rows.
    qs = User.objects.annotate(z=F("posts__views") * 0).annotate(n=Count("id"))
    rows = sorted(await qs.values_list("name", "z", "n").fetch(db))
    assert rows == [("Alice", 0, 2), ("Bob", 0, 1), ("Carol", None, 1), ("Émile", 0, 1)]


async def test_json_has_key_has_keys_has_any_keys(db: AsyncSession) -> None:
    await _documents(db)
    await Document.objects.create(db, name="d8", body=["a", "c"])
    docs = Document.objects
    assert await document_names(db, docs.filter(body__has_key="a")) == ["d6", "d7"] + (
        # PostgreSQL's ? also finds a string in a top-level array, as Django's has_key there.
        ["d8"] if db.get_bind().dialect.name == "postgresql" else []
    )
    assert await document_names(db, docs.filter(body__has_keys=["a", "b"])) == ["d6"]
    assert await document_names(db, docs.filter(body__has_any_keys=("b", "z"))) == ["d6"]
    assert await document_names(db, docs.filter(body__has_key="0")) == []  # a key, not an index
    # exclude() keeps the SQL NULL row, as Django's does.
    assert await document_names(db, docs.exclude(body__has_keys=["a", "b"])) == [
        "d0",
        "d1",
        "d2",
        "d3",
        "d4",
        "d5",
        "d7",
        "d8",
    ]
    with pytest.raises(TypeError, match="'has_key' lookup is for JSON columns; 'name'"):
        await docs.filter(name__has_key="a").fetch(db)
    with pytest.raises(TypeError, match="non-empty list of keys"):
        await docs.filter(body__has_keys="ab").fetch(db)


async def test_json_key_lookups(db: AsyncSession) -> None:
    await _documents(db)
    owner = {"name": "Ada", "tags": ["x", "y"]}
    await Document.objects.create(db, name="d8", body={"a": 2, "owner": owner, "m": None, "n": 5})
    await Document.objects.create(db, name="d9", body={"n": 10})
    docs = Document.objects

    async def names(**lookup: Any) -> list[str]:
        return await document_names(db, docs.filter(**lookup))

    # A key's value is compared as JSON, as Django's KeyTransform: 1 is not "1".
    assert await names(body__a=1) == ["d6"]
    assert await names(body__a="1") == ["d7"]
    assert await names(body__a__in=[1, "1"]) == ["d6", "d7"]
    assert await names(body__n__gt=6) == ["d9"]
    assert await names(body__n__lte=5) == ["d8"]
    # Paths: nested keys and array indexes.
    assert await names(body__owner__name="Ada") == ["d8"]
    assert await names(body__owner__name__istartswith="ad") == ["d8"]
    assert await names(body__owner__tags__0="x") == ["d8"]
    assert await names(body__owner__tags__1__iexact="Y") == ["d8"]
    assert await names(body__owner={"name": "Ada", "tags": ["x", "y"]}) == ["d8"]
    # None is the JSON null at the key; isnull=True is "no such key" (or no document).
    assert await names(body__m=None) == ["d8"]
    missing = ["d0", "d1", "d2", "d3", "d4", "d5", "d6", "d7", "d9"]
    assert await names(body__m__isnull=True) == missing
    assert await names(body__m__isnull=False) == ["d8"]
    # exclude(): as Django, a document without the key is left out (its key is NULL).
    assert await document_names(db, docs.exclude(body__a=1)) == ["d0", "d7", "d8"]
    with pytest.raises(TypeError, match="'contains' lookup on a JSON key"):
        await docs.filter(body__owner__contains={"name": "Ada"}).fetch(db)
    with pytest.raises(TypeError, match="takes a value, not an expression"):
        await docs.filter(body__a=F("name")).fetch(db)


async def test_count_of_distinct_rows_with_an_annotation_counts_what_fetch_returns(
    db: AsyncSession,
) -> None:
    await seed(db)
    # As Django: DISTINCT compares the annotation too, one row per (user, post views).
    qs = User.objects.annotate(v=F("posts__views")).distinct()
    rows = await qs.fetch(db)
    # Alice: 10, 5; Bob: 7; Carol: no post (None); Émile: 0.
    assert sorted((u.name, u.v) for u in rows) == [  # type: ignore[attr-defined]
        ("Alice", 5),
        ("Alice", 10),
        ("Bob", 7),
        ("Carol", None),
        ("Émile", 0),
    ]
    assert await qs.count(db) == 5  # was 4: the distinct users, annotation left out


async def test_count_of_groups_leaves_out_an_aggregate_nothing_uses(db: AsyncSession) -> None:
    await seed(db)
    # Django's count() of values().annotate() counts the groups without computing an
    # aggregate no later call names: PostgreSQL is not asked to compare a timestamp
    # with an integer (the filter= below), and the answer is the number of tag names.
    grouped = Tag.objects.values("name").annotate(
        n=Count("name", filter=Q(posts__created_at__gt=F("id")))
    )
    assert await grouped.count(db) == 2
    # Named by a later filter() (HAVING), the aggregate is computed: one group left.
    assert (
        await Post.objects.values("author_id").annotate(n=Count("id")).filter(n__gt=1).count(db)
        == 1
    )


async def test_a_negated_lookup_on_the_row_of_nulls_holds(db: AsyncSession) -> None:
    await seed(db)
    # Under |, Django LEFT OUTER JOINs posts; ~Q(posts__title="x") after a lookup that
    # joined posts is NOT EXISTS (...) tied to the joined post, which holds on the row
    # of NULLs of a user without posts. Carol (no posts) is there, although the title
    # column is NOT NULL (it was: NOT (NULL = 'x'), unknown, Carol left out).
    args = (Q(posts__views__gt=100) | ~Q(posts__title="x"),)
    assert await user_names(db, User.objects.filter(*args)) == ["Alice", "Bob", "Carol", "Émile"]
    assert await user_names(db, User.objects.exclude(*args)) == []
    # With an F() on the right: Bob's age is NULL (NOT EXISTS of nothing: true), the
    # others' posts have fewer views than their ages, Carol is the row of NULLs.
    f_args = (Q(posts__views__gt=100) | ~Q(posts__views__gte=F("age")),)
    assert await user_names(db, User.objects.filter(*f_args)) == [
        "Alice",
        "Bob",
        "Carol",
        "Émile",
    ]


async def test_an_unused_alias_beside_an_aggregate_is_not_grouped_or_computed(
    db: AsyncSession,
) -> None:
    await seed(db)
    # Django groups by what is selected; an alias() is not (PostgreSQL refused the
    # CAST of "Hello World" to an integer the GROUP BY asked for).
    qs = Post.objects.annotate(oldest=Max("author__age")).alias(n=Cast("title", Integer()))
    assert "CAST" not in qs.sql(db)
    # An alias a HAVING condition names is grouped (PostgreSQL wants it): the filter
    # names the aggregate too, so all of it is a HAVING.
    having = (
        Post.objects.alias(double=F("views") * 2)
        .annotate(oldest=Max("author__age"))
        .filter(double__gte=10, oldest__gte=30)
    )
    assert await post_titles(db, having) == ["Hello World", "hello again"]
    rows = sorted(await qs.values_list("title", "oldest").fetch(db))
    assert rows == [
        ("Hello World", 30),
        ("SQL 100% fun_stuff", None),
        ("hello again", 30),
        ("Über Straße", 40),
    ]


async def test_xor_keeps_a_row_without_its_nullable_to_one_row(db: AsyncSession) -> None:
    await seed(db)
    # Deliberate (docs/querying.md): the & inside the ^ names the company, and Django's
    # join promotion makes that join INNER, leaving Carol (no company) out: Django [].
    # In Flash DB her first operand is false and her age (25) makes the ^ true.
    # Alice and Émile (Acme, over 20) are true ^ true; Bob's age is NULL.
    by_name = Q(company__name="Acme", age__gt=0) ^ Q(age__gt=20)
    assert await user_names(db, User.objects.filter(by_name)) == ["Carol"]
    # The foreign key's own column too (Django resolves company_id through the join).
    by_key = Q(company_id__gt=0, age__gt=0) ^ Q(age__gt=20)
    assert await user_names(db, User.objects.filter(by_key)) == ["Carol"]


async def test_writes_and_streams_over_an_empty_in_send_no_query(db: AsyncSession) -> None:
    await seed(db)
    # As Django (EmptyResultSet): a WHERE an empty IN makes FALSE sends nothing.
    nobody = User.objects.filter(Q(pk__in=[]) | Q(pk__in=[]), name__startswith="A")
    async with capture_queries(db) as captured:
        assert await nobody.update(db, age=F("age") + 1) == 0
        assert await nobody.delete(db) == 0
        assert [user async for user in nobody.iterator(db)] == []
    assert captured.statements == []
    # A false branch under | is not the whole WHERE: Alice's row is updated.
    some = User.objects.filter(Q(pk__in=[]) | Q(name="Alice"))
    async with capture_queries(db) as captured:
        assert await some.update(db, age=F("age") + 1) == 1
    assert len(captured.statements) == 1
    assert await User.objects.filter(name="Alice").values_list("age", flat=True).fetch(db) == [31]
    assert await User.objects.count(db) == 4  # nothing deleted


async def test_an_aggregate_beside_a_to_many_annotation_groups_the_rows(db: AsyncSession) -> None:
    await seed(db)
    # As Django's GROUP BY: a row per user and annotation value, not per joined post;
    # an alias() is not grouped, so a row per user. (The count is each user's own:
    # Flash DB does not multiply aggregates over joins, see docs/querying.md.)
    aliased = User.objects.annotate(n=Count("posts")).alias(v=F("posts__views"))
    assert sorted(await aliased.values_list("name", "n").fetch(db)) == [
        ("Alice", 2),
        ("Bob", 1),
        ("Carol", 0),
        ("Émile", 1),
    ]
    assert await aliased.count(db) == 4
    grouped = User.objects.annotate(n=Count("posts")).annotate(v=F("posts__views"))
    rows = await grouped.values_list("name", "n", "v").fetch(db)
    assert sorted(rows, key=str) == sorted(
        [("Alice", 2, 10), ("Alice", 2, 5), ("Bob", 1, 7), ("Carol", 0, None), ("Émile", 1, 0)],
        key=str,
    )


async def test_json_contains_and_contained_by_are_jsonb_containment(db: AsyncSession) -> None:
    # As Django's JSONField on PostgreSQL (jsonb @> and <@); the same rules on SQLite,
    # where Django refuses the lookups. (The text LIKE of the document's text was sent.)
    docs = {
        "obj": {"a": 1, "tags": ["sf", "x"], "nested": {"k": 1.5}},
        "list": ["sf", "fantasy", 3],
        "nested-list": [["sf", "x"], 2],
        "scalar": "sf",
        "true": True,
        "one": 1,
    }
    for name, data in docs.items():
        await Document.objects.create(db, name=name, body=data)

    async def names(**lookup: Any) -> list[str]:
        return sorted(
            await Document.objects.filter(**lookup).values_list("name", flat=True).fetch(db)
        )

    assert await names(body__contains={"a": 1}) == ["obj"]
    assert await names(body__contains={"tags": ["x"]}) == ["obj"]  # a list: its elements
    assert await names(body__contains={"nested": {}}) == ["obj"]
    assert await names(body__contains={"a": 1.0}) == ["obj"]  # one JSON number
    assert await names(body__contains={"a": True}) == []  # true is not 1
    assert await names(body__contains=["fantasy", "sf"]) == ["list"]  # order does not count
    assert await names(body__contains="sf") == ["list", "scalar"]  # a top-level list's scalar
    assert await names(body__contains=[["x"]]) == ["nested-list"]
    assert await names(body__contains=["x"]) == []  # not inside a nested list
    assert await names(body__contains=1) == ["one"]
    assert await names(body__contains=True) == ["true"]
    assert await names(body__contains={}) == ["obj"]  # every object contains {}
    assert await names(
        body__contained_by={"a": 1, "tags": ["x", "sf", "y"], "nested": {"k": 1.5, "j": 0}}
    ) == ["obj"]
    # The top-level exception again: "sf" is in the list.
    assert await names(body__contained_by=["sf", "fantasy", 3, 4]) == ["list", "scalar"]
    assert await names(body__contained_by="sf") == ["scalar"]
    assert sorted(
        await Document.objects.exclude(body__contains="sf").values_list("name", flat=True).fetch(db)
    ) == [
        "nested-list",
        "obj",
        "one",
        "true",
    ]
    with pytest.raises(TypeError, match="contained_by' lookup is for JSON columns"):
        await Document.objects.filter(name__contained_by="x").fetch(db)
    with pytest.raises(TypeError, match="takes a JSON value"):
        await Document.objects.filter(body__contains={1, 2}).fetch(db)


async def test_json_keys_in_values_order_by_and_f(db: AsyncSession) -> None:
    # As Django's KeyTransform: the value at the key, decoded (a missing key and the
    # JSON null are None), also through nested keys and array indexes.
    for name, body in [
        ("a", {"room": 2, "owner": {"name": "Ada"}, "tags": ["x", "y"]}),
        ("b", {"room": 1, "owner": {"name": "Bo"}, "tags": []}),
        ("c", {"floor": 3}),
        ("d", ["first"]),
    ]:
        await Document.objects.create(db, name=name, body=body)
    rows = await Document.objects.order_by("name").values("name", "body__owner__name").fetch(db)
    assert [row["body__owner__name"] for row in rows] == ["Ada", "Bo", None, None]
    rooms = Document.objects.filter(body__room__gte=1).order_by("body__room")
    assert await rooms.values_list("name", flat=True).fetch(db) == ["b", "a"]
    tags = await Document.objects.order_by("name").values_list("body__tags", flat=True).fetch(db)
    assert tags == [["x", "y"], [], None, None]
    first = Document.objects.annotate(first=F("body__0")).order_by("name")
    assert await first.values_list("first", flat=True).fetch(db) == [None, None, None, "first"]
    # Grouped by a key (PostgreSQL refused GROUP BY data -> $2 beside SELECT data -> $1).
    per_room = Document.objects.values("body__room").annotate(n=Count("id")).order_by("body__room")
    grouped = await per_room.values_list("body__room", "n").fetch(db)
    assert [row for row in grouped if row[0] is not None] == [(1, 1), (2, 1)]  # NULLs: per database
    assert (None, 2) in grouped
    with pytest.raises(FieldError, match="room"):
        await Document.objects.values("name__room").fetch(db)  # not a JSON column


async def company_names(db: AsyncSession, qs: Any) -> list[str]:
    """Return the sorted names of the companies ``qs`` selects."""
    return sorted(await qs.values_list("name", flat=True).fetch(db))


async def test_a_negated_isnull_through_a_to_many_is_its_own_subquery(db: AsyncSession) -> None:
    await seed(db)
    initech = await Company.objects.create(db, name="Initech")
    await User.objects.create(db, name="Ned", email="ned@x", company_id=initech.id)
    await User.objects.create(db, name="Otto", email="otto@x", age=50, company_id=initech.id)
    # Django's subquery for ~Q(users__age__isnull=True) keeps its LEFT OUTER JOIN, so
    # it is not tied to the user the first lookup joined: Initech has a user without
    # an age (Ned), so it is out, although Otto has one. Globex: Bob has no age.
    qs = Company.objects.filter(Q(users__name__startswith="A") | ~Q(users__age__isnull=True))
    assert await company_names(db, qs) == ["Acme"]


async def test_arithmetic_of_f_in_a_negated_to_many_lookup_names_its_own_row(
    db: AsyncSession,
) -> None:
    data = await seed(db)
    await Post.objects.create(db, title="zero", author_id=data.alice.id, views=0)
    # Django resolves F("posts__views") / 2 inside the negated lookup's subquery: no
    # post with views > views / 2 (views > 0). Alice has such posts besides her new
    # one; Émile's only post has 0 views; Carol has none.
    qs = User.objects.filter(~Q(posts__views__gt=F("posts__views") / 2))
    assert await user_names(db, qs) == ["Carol", "Émile"]


async def test_xor_under_or_holds_for_one_related_row(db: AsyncSession) -> None:
    await seed(db)
    # Django joins posts once and tests the ^ on each joined post: Alice (30) has a
    # post of 5 views (true ^ false); Bob's NULL age counts as false there; Carol has
    # no post (the row of NULLs: false ^ NULL is not true).
    qs = User.objects.filter((Q(age__gt=26) ^ Q(posts__views__gt=6)) | Q(name="Zed"))
    assert await user_names(db, qs) == ["Alice", "Bob", "Émile"]


async def test_or_on_a_foreign_key_column_makes_the_joins_through_it_outer(
    db: AsyncSession,
) -> None:
    await seed(db)
    # Exists(...) ^ Q(...) keeps the Q a node of its own, which inner-joins company
    # and its users; the | with company_id makes Django promote the company join and
    # every join through it to LEFT OUTER, so Carol (no company) is there: true ^ NULL.
    always = Exists(Company.objects.filter(name="Acme"))
    qs = User.objects.filter((always ^ Q(company__users__age__gt=35)) | Q(company_id=-1))
    assert await user_names(db, qs) == ["Alice", "Bob", "Carol", "Émile"]


async def test_or_on_a_non_null_relation_promotes_nothing(db: AsyncSession) -> None:
    data = await seed(db)
    await Comment.objects.create(db, text="untagged", post_id=data.p4.id)
    # The & makes Django's joins to the post and its tags INNER; the | names the post
    # (F("post__title")), but a comment always has one, so Django promotes nothing:
    # the comment on the post without tags (p4) stays out, whatever the ^ says.
    qs = Comment.objects.filter(
        (Q(pk__gt=0) & Q(post__tags__pk__lt=-1)) ^ (Q(text__iexact=F("post__title")) | Q(pk__gt=0))
    )
    assert sorted(await qs.values_list("text", flat=True).fetch(db)) == ["nice", "ok"]


async def test_aggregate_over_annotations_leaves_an_unread_one_uncomputed(db: AsyncSession) -> None:
    await seed(db)
    # As Django's aggregate(): the rows stay one per user, but the annotation nothing
    # reads is not computed (PostgreSQL refused its filter, a timestamp <= an integer).
    qs = User.objects.annotate(n=Count("posts", filter=Q(created_at__lte=F("id"))))
    async with capture_queries(db) as captured:
        assert await qs.aggregate(db, total=Sum("posts__views")) == {"total": 22}
    assert not any("created_at" in statement for statement in captured.statements)
    # One a later annotation reads is computed: 2 + 1 posts, and 1 for each other user.
    read = User.objects.annotate(n=Count("posts")).annotate(m=F("n") + 1)
    assert await read.aggregate(db, total=Sum("m")) == {"total": 8}


async def test_an_or_in_an_earlier_filter_restricts_the_aggregate_as_django(
    db: AsyncSession,
) -> None:
    await seed(db)
    # Django's one join of posts: the Count sees the posts the whole filter() call
    # kept, its | tree included (it counted all of Alice's posts: the tree was left out).
    qs = User.objects.filter(Q(posts__views__gt=6) | Q(age__lte=-1)).annotate(n=Count("posts"))
    assert sorted(await qs.values_list("name", "n").fetch(db)) == [("Alice", 1), ("Bob", 1)]


async def test_a_call_s_lookups_are_built_in_written_order(db: AsyncSession) -> None:
    await seed(db)
    # Written first, ~Q(posts__comments...) is a subquery of its own in Django (no
    # post of the user has a comment): Alice's and Bob's posts have comments. The
    # later posts__views__gte lookup was compiled before it, and the negated lookup
    # took the post it joined (Alice's uncommented draft matched).
    qs = User.objects.filter(
        ~Q(posts__comments__pk__gt=0) | Q(posts__tags__pk__lt=0), posts__views__gte=0
    )
    assert await user_names(db, qs) == ["Émile"]


async def test_a_negated_lookup_reuses_only_the_row_of_its_first_to_many_hop(
    db: AsyncSession,
) -> None:
    data = await seed(db)
    zed = await User.objects.create(db, name="Zed", email="zed@x")
    both = await Post.objects.create(db, title="both", author_id=zed.id)
    await both.related("tags").add(db, data.python, data.sql)
    # Django's subquery for ~Q(posts__tags__name="sql") is tied to the post the
    # first lookup joined, not to its tag: a post tagged python or sql without the
    # tag sql. Alice's p2 is one; Zed's only post has both tags (it was tied to the
    # python tag's row, and Zed matched).
    qs = User.objects.filter(
        Q(posts__tags__name__in=["python", "sql"]) & ~Q(posts__tags__name="sql")
    )
    assert await user_names(db, qs) == ["Alice"]
