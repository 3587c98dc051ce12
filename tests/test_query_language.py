"""The rest of Django's QuerySet API: default aliases, alias(), order_by("?"), values(**exprs),
sql() and explain(), on both databases."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from flash_db import Count, Exists, F, FieldError, Lower, Max, OuterRef, Q, Sum
from flash_db.testing import capture_queries
from tests.models import Post, Sample, User
from tests.query_data import seed

HOSTILE = "x'); DROP TABLE users; --"


async def test_positional_aggregates_take_django_default_alias(db: AsyncSession) -> None:
    await seed(db)
    qs = User.objects.annotate(Count("posts"), Max("posts__views")).order_by("id")
    users = await qs.fetch(db)
    got = [(u.name, u.posts__count, u.posts__views__max) for u in users]  # type: ignore[attr-defined]
    assert got == [("Alice", 2, 10), ("Bob", 1, 7), ("Carol", 0, None), ("Émile", 1, 0)]
    rows = (
        await User.objects.annotate(Count(F("posts")))
        .filter(posts__count__gt=1)
        .values("name", "posts__count")
        .fetch(db)
    )
    assert rows == [{"name": "Alice", "posts__count": 2}]
    assert await Post.objects.aggregate(db, Sum("views"), n=Count("id")) == {
        "views__sum": 22,
        "n": 4,
    }
    with pytest.raises(TypeError, match="Complex aggregates require an alias"):
        User.objects.annotate(Count("*"))
    with pytest.raises(TypeError, match="positional aggregates only"):
        User.objects.annotate(F("age"))
    with pytest.raises(ValueError, match="conflicts with the default name"):
        User.objects.annotate(Count("posts"), posts__count=Count("id"))


async def test_alias_filters_and_orders_without_selecting(db: AsyncSession) -> None:
    await seed(db)
    qs = User.objects.alias(n=Count("posts")).filter(n__gte=1).order_by("-n", "name")
    users = await qs.fetch(db)
    assert [u.name for u in users] == ["Alice", "Bob", "Émile"]
    assert not hasattr(users[0], "n")
    async with capture_queries(db) as captured:
        assert await qs.values_list("name", flat=True).fetch(db) == ["Alice", "Bob", "Émile"]
    assert captured.statements[0].split("FROM")[0] == "SELECT users.name AS name \n"
    assert await qs.count(db) == 3
    # An alias can feed an annotation.
    both = User.objects.alias(n=Count("posts")).annotate(twice=F("n") * 2).order_by("id")
    assert [u.twice for u in await both.fetch(db)] == [4, 2, 0, 2]  # type: ignore[attr-defined]
    with pytest.raises(FieldError, match="Cannot select the 'n' alias"):
        await User.objects.alias(n=Count("posts")).values("name", "n").fetch(db)
    with pytest.raises(ValueError, match="conflicts with a field"):
        User.objects.alias(name=Lower("name"))


async def test_order_by_random(db: AsyncSession) -> None:
    await seed(db)
    qs = User.objects.order_by("?")
    async with capture_queries(db) as captured:
        names = await qs.values_list("name", flat=True).fetch(db)
    assert sorted(names) == ["Alice", "Bob", "Carol", "Émile"]
    assert "ORDER BY random()" in captured.statements[0]
    orders = {tuple(await qs.values_list("id", flat=True).fetch(db)) for _ in range(30)}
    assert len(orders) > 1  # 30 draws of 24 orders: one order every time is (1/24)**29
    assert len(await User.objects.order_by("?")[:2].fetch(db)) == 2


async def test_values_with_expressions(db: AsyncSession) -> None:
    await seed(db)
    rows = await (
        Post.objects.order_by("id")
        .values("id", name=F("title"), lower=Lower("title"), who=F("author__name"))
        .fetch(db)
    )
    assert rows[0] == {
        "id": rows[0]["id"],
        "name": "Hello World",
        "lower": "hello world",
        "who": "Alice",
    }
    assert [row["who"] for row in rows] == ["Alice", "Alice", "Bob", "Émile"]
    grouped = await (
        Post.objects.values(author_name=F("author__name"))
        .annotate(n=Count("id"))
        .order_by("author_name")
        .fetch(db)
    )
    assert grouped == [
        {"author_name": "Alice", "n": 2},
        {"author_name": "Bob", "n": 1},
        {"author_name": "Émile", "n": 1},
    ]
    with pytest.raises(ValueError, match="conflicts with a field"):
        Post.objects.values(title=F("body"))


async def test_values_list_takes_expressions_named_as_django_names_them(db: AsyncSession) -> None:
    await seed(db)
    qs = User.objects.filter(name__in=["Alice", "Carol"]).order_by("id")
    rows = await qs.values_list("name", Lower("name"), Count("posts"), "name").fetch(db)
    assert rows == [("Alice", "alice", 2, "Alice"), ("Carol", "carol", 0, "Carol")]
    named = await qs.values_list("name", Lower("name"), Count("posts"), "name", named=True).fetch(
        db
    )
    # Django's names: the default alias or the class name, then a counter (name1 for a repeat).
    assert named[0]._fields == ("name", "lower1", "posts__count1", "name1")
    assert await qs.values_list(Lower("name"), flat=True).fetch(db) == ["alice", "carol"]
    by_keyword = await qs.values_list("id", low=Lower("name"), named=True).fetch(db)
    assert [(row.low, row._fields) for row in by_keyword] == [
        ("alice", ("id", "low")),
        ("carol", ("id", "low")),
    ]
    # As in Django, the expressions are annotated before the fields are chosen: an
    # aggregate is per row, not per distinct "published" (that is values().annotate()).
    per_post = await Post.objects.values_list("published", Count("id")).fetch(db)
    assert sorted(per_post) == [(False, 1), (True, 1), (True, 1), (True, 1)]
    with pytest.raises(TypeError, match="exactly one field"):
        qs.values_list("name", low=Lower("name"), flat=True)
    with pytest.raises(ValueError, match="the name 'name' twice"):
        qs.values_list("name", name=Lower("name"))
    with pytest.raises(TypeError, match="field names and expressions"):
        qs.values_list("name", 3)  # type: ignore[call-overload]


async def test_values_after_union_select_those_columns_of_each_query(db: AsyncSession) -> None:
    await seed(db)
    young = User.objects.filter(age__lt=35)  # Alice 30, Carol 25
    acme = User.objects.filter(company__name="Acme")  # Alice, Émile
    combined = young.union(acme)
    assert await combined.values("name").order_by("name").fetch(db) == [
        {"name": "Alice"},
        {"name": "Carol"},
        {"name": "Émile"},
    ]
    # One row per distinct selected tuple: UNION compares the selected columns only.
    assert await combined.values_list("company_id", flat=True).count(db) == 2
    assert await combined.values_list("name", "company__name").order_by("-name").fetch(db) == [
        ("Émile", "Acme"),
        ("Carol", None),
        ("Alice", "Acme"),
    ]
    row = await combined.values_list("name", named=True).order_by("name").first(db)
    assert row is not None
    assert row.name == "Alice"
    assert await young.intersection(acme).values_list("name", flat=True).fetch(db) == ["Alice"]
    assert await young.difference(acme).values("age").fetch(db) == [{"age": 25}]
    everything = await young.union(acme, all=True).values().order_by("name").fetch(db)
    assert everything[0]["name"] == "Alice"
    assert sorted(everything[0]) == sorted(c.key for c in User.__mapper__.column_attrs)
    assert len(everything) == 4
    # Queries that already select their columns keep them; the same names are fine.
    own = User.objects.filter(name="Bob").values("name").union(acme.values("name"))
    assert await own.values("name").order_by("name").fetch(db) == [
        {"name": "Alice"},
        {"name": "Bob"},
        {"name": "Émile"},
    ]
    # Nested combinations get the columns too.
    nested = combined.union(User.objects.filter(name="Bob")).values_list("name", flat=True)
    assert sorted(await nested.fetch(db)) == ["Alice", "Bob", "Carol", "Émile"]


async def test_values_after_union_refuses_what_django_would_answer_wrongly(
    db: AsyncSession,
) -> None:
    await seed(db)
    combined = User.objects.filter(age__lt=35).union(User.objects.filter(name="Bob"))
    with pytest.raises(TypeError, match=r"Calling values\(\) with expressions after union\(\)"):
        combined.values(lower=Lower("name"))
    with pytest.raises(TypeError, match=r"values_list\(\) with expressions after union\(\)"):
        combined.values_list(Lower("name"))
    # Django would label the first query's 'name' column 'age'.
    own = User.objects.values("name").union(User.objects.values("name"))
    with pytest.raises(TypeError, match=r"cannot rename the columns the first QuerySet selects"):
        own.values("age")
    with pytest.raises(FieldError, match="'nme'"):
        await combined.values("nme").fetch(db)


async def test_exists_xor_q(db: AsyncSession) -> None:
    await seed(db)
    wrote = Exists(Post.objects.filter(author_id=OuterRef("id")))
    acme = Q(company__name="Acme")
    # Alice, Bob and Émile wrote; Alice and Émile are at Acme: only Bob is one of the two.
    names = User.objects.order_by("name").values_list("name", flat=True)
    assert await names.filter(wrote ^ acme).fetch(db) == ["Bob"]
    assert await names.filter(acme ^ wrote).fetch(db) == ["Bob"]
    assert await names.filter(~wrote ^ acme).fetch(db) == ["Alice", "Carol", "Émile"]
    popular = Exists(Post.objects.filter(author_id=OuterRef("id"), views__gte=7))  # Alice, Bob
    assert await names.filter(wrote ^ popular).fetch(db) == ["Émile"]
    # Alice: wrote, Acme, 30 (two of three); Carol: none of them.
    assert await names.exclude(wrote ^ acme ^ Q(age__gt=35)).fetch(db) == ["Alice", "Carol"]
    with pytest.raises(TypeError):
        wrote ^ 1


async def test_sql_shows_the_statement_with_placeholders(db: AsyncSession) -> None:
    await seed(db)
    qs = User.objects.filter(name=HOSTILE, age__in=[1, 2]).annotate(n=Count("posts"))
    text = qs.sql(db)
    assert text.startswith("SELECT users.")
    assert HOSTILE not in text
    assert "DROP" not in text
    placeholder = "?" if db.get_bind().dialect.name == "sqlite" else "$1"
    assert placeholder in text
    async with capture_queries(db) as captured:
        assert await qs.fetch(db) == []
    assert captured.statements == [text]
    # A templated query: the same text fetch() sends on the driver.
    plain = User.objects.filter(name="Alice").order_by("id")
    async with capture_queries(db) as captured:
        await plain.fetch(db)
    assert captured.statements == [plain.sql(db)]
    async with capture_queries(db) as captured:
        plain.sql(db)
    assert captured.statements == []  # nothing is sent
    with pytest.raises(FieldError, match="'nme'"):
        User.objects.filter(nme="x").sql(db)


async def test_explain(db: AsyncSession) -> None:
    await seed(db)
    qs = User.objects.filter(Q(name=HOSTILE) | Q(age__gt=1)).order_by("name")
    plan = await qs.explain(db)
    assert "users" in plan.lower()
    assert HOSTILE not in plan
    if db.get_bind().dialect.name == "sqlite":
        assert "SCAN" in plan
        with pytest.raises(ValueError, match="only PostgreSQL"):
            await qs.explain(db, analyze=True)
    else:
        assert "Seq Scan on users" in plan or "Index" in plan
        analyzed = await qs.explain(db, analyze=True)
        assert "actual time" in analyzed
        assert "Execution Time" in analyzed
    templated = await User.objects.filter(name="Alice").explain(db)
    assert templated


async def test_union_intersection_difference(db: AsyncSession) -> None:
    await seed(db)
    young = User.objects.filter(age__lt=35)  # Alice 30, Carol 25
    acme = User.objects.filter(company__name="Acme")  # Alice, Émile

    async def names(qs: object) -> list[str]:
        users = await qs.order_by("name").fetch(db)  # type: ignore[attr-defined]
        return [u.name for u in users]

    assert await names(young.union(acme)) == ["Alice", "Carol", "Émile"]
    assert await names(young.intersection(acme)) == ["Alice"]
    assert await names(young.difference(acme)) == ["Carol"]
    assert await names(acme.difference(young)) == ["Émile"]
    both = young.union(acme, all=True)
    assert await both.count(db) == 4  # Alice twice
    assert await young.union(acme).count(db) == 3
    assert await young.intersection(User.objects.filter(age__gt=100)).exists(db) is False
    # Ordering (by the first query's column names), reverse, slicing, first/last.
    combined = young.union(acme)
    assert [u.name for u in await combined.order_by("-age")[:2].fetch(db)] == ["Émile", "Alice"]
    assert [u.name for u in await combined.order_by("age").reverse().fetch(db)] == [
        "Émile",
        "Alice",
        "Carol",
    ]
    first = await combined.first(db)  # by primary key
    last = await combined.last(db)
    assert (first and first.name, last and last.name) == ("Alice", "Émile")
    # Three queries; a sliced one keeps its own order and slice.
    bob = User.objects.filter(name="Bob")
    oldest = User.objects.filter(age__isnull=False).order_by("-age")[:1]
    assert await names(young.union(bob, oldest)) == ["Alice", "Bob", "Carol", "Émile"]
    # values()/values_list() queries, also across models.
    rows = await (
        User.objects.filter(age__gt=35)
        .values_list("name", flat=True)
        .union(Post.objects.filter(views__gt=9).values_list("title", flat=True))
        .order_by("name")
        .fetch(db)
    )
    assert rows == ["Hello World", "Émile"]
    dicts = await (
        User.objects.filter(name="Bob")
        .values("name", "age")
        .union(User.objects.filter(name="Carol").values("name", "age"))
        .order_by("-name")
        .fetch(db)
    )
    assert dicts == [{"name": "Carol", "age": 25}, {"name": "Bob", "age": None}]
    # Annotated queries combine too.
    counted = await (
        User.objects.filter(name="Alice")
        .annotate(n=Count("posts"))
        .union(User.objects.filter(name="Bob").annotate(n=Count("posts")))
        .order_by("n")
        .fetch(db)
    )
    assert [(u.name, u.n) for u in counted] == [("Bob", 1), ("Alice", 2)]  # type: ignore[attr-defined]
    assert await young.union().count(db) == 2


async def test_combined_querysets_refuse_what_django_refuses(db: AsyncSession) -> None:
    await seed(db)
    combined = User.objects.filter(age__lt=35).union(User.objects.filter(name="Bob"))
    with pytest.raises(TypeError, match=r"Calling filter\(\) after union\(\) is not supported"):
        combined.filter(name="Alice")
    with pytest.raises(TypeError, match=r"Calling annotate\(\) after union\(\)"):
        combined.annotate(n=Count("posts"))
    with pytest.raises(TypeError, match=r"Calling update\(\) after union\(\)"):
        await combined.update(db, age=1)
    with pytest.raises(TypeError, match=r"Calling delete\(\) after union\(\)"):
        await combined.delete(db)
    with pytest.raises(TypeError, match="same number of columns"):
        await User.objects.values("name").union(User.objects.values("name", "age")).fetch(db)
    with pytest.raises(FieldError, match="'nme'"):
        await combined.order_by("nme").fetch(db)
    with pytest.raises(TypeError, match="names of its columns"):
        await combined.order_by(F("name")).fetch(db)
    with pytest.raises(TypeError, match="takes QuerySets"):
        User.objects.union([1])  # type: ignore[arg-type]
    assert await User.objects.count(db) == 4


async def test_dates_and_datetimes(db: AsyncSession) -> None:
    await seed(db)
    # p1 2024-01-05 10:30, p2 2024-03-10 23:15, p3 2023-12-31 08:00, p4 2024-07-04 12:00 (UTC)
    assert await Post.objects.dates("created_at", "year").fetch(db) == [
        date(2023, 1, 1),
        date(2024, 1, 1),
    ]
    assert await Post.objects.dates("created_at", "month", order="DESC").fetch(db) == [
        date(2024, 7, 1),
        date(2024, 3, 1),
        date(2024, 1, 1),
        date(2023, 12, 1),
    ]
    assert await Post.objects.filter(published=True).dates("created_at", "quarter").fetch(db) == [
        date(2023, 10, 1),
        date(2024, 1, 1),
        date(2024, 7, 1),
    ]
    weeks = await Post.objects.dates("created_at", "week").fetch(db)
    assert weeks == [date(2023, 12, 25), date(2024, 1, 1), date(2024, 3, 4), date(2024, 7, 1)]
    assert await Post.objects.dates("created_at", "day").count(db) == 4
    assert await Post.objects.datetimes("created_at", "hour").fetch(db) == [
        datetime(2023, 12, 31, 8, tzinfo=UTC),
        datetime(2024, 1, 5, 10, tzinfo=UTC),
        datetime(2024, 3, 10, 23, tzinfo=UTC),
        datetime(2024, 7, 4, 12, tzinfo=UTC),
    ]
    assert await Post.objects.datetimes("created_at", "year", order="DESC").fetch(db) == [
        datetime(2024, 1, 1, tzinfo=UTC),
        datetime(2023, 1, 1, tzinfo=UTC),
    ]
    # NULL dates are left out; a Date column.
    await Sample.objects.create(db, label="a", day=date(2024, 2, 29))
    await Sample.objects.create(db, label="b", day=date(2024, 2, 3))
    await Sample.objects.create(db, label="c")
    assert await Sample.objects.dates("day", "month").fetch(db) == [date(2024, 2, 1)]
    with pytest.raises(ValueError, match="kind must be one of year, quarter, month, week, day"):
        Post.objects.dates("created_at", "hour")
    with pytest.raises(ValueError, match="order must be 'ASC' or 'DESC'"):
        Post.objects.dates("created_at", "day", order="up")
    with pytest.raises(TypeError, match="needs a datetime field"):
        Sample.objects.datetimes("day", "month")
    with pytest.raises(FieldError, match="'created'"):
        await Post.objects.dates("created", "day").fetch(db)
