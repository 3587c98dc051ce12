"""The rest of Django's QuerySet API: default aliases, alias(), order_by("?"), values(**exprs),
sql() and explain(), on both databases."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from flash_db import Count, F, FieldError, Lower, Max, Q, Sum
from flash_db.testing import capture_queries
from tests.models import Post, User
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
