"""Q and F: combining, nesting, mixing with SQLAlchemy, arithmetic, ordering and update()."""

from __future__ import annotations

import pytest
from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncSession

from flash_db import F, Q, Value
from flash_db.testing import capture_queries
from tests.models import Post, User
from tests.query_data import seed


async def names(db: AsyncSession, *conditions: object, **lookups: object) -> list[str]:
    """Return the names of the users matching the conditions, ordered by name."""
    qs = User.objects.filter(*conditions, **lookups).order_by("name")
    return list(await qs.values_list("name", flat=True).fetch(db))


async def test_q_and_or_not_and_nesting(db: AsyncSession) -> None:
    await seed(db)
    assert await names(db, Q(age__gte=30) & Q(name__startswith="A")) == ["Alice"]
    assert await names(db, Q(age__gte=40) | Q(name="Carol")) == ["Carol", "Émile"]
    assert await names(db, ~Q(name="Alice") & Q(age__isnull=False)) == ["Carol", "Émile"]
    nested = Q(Q(age__lt=26) | Q(age__gt=35)) & ~Q(company__name="Acme")
    assert await names(db, nested) == ["Carol"]
    assert await names(db, Q(), name="Bob") == ["Bob"]  # an empty Q matches everything


async def test_q_mixes_with_sqlalchemy_expressions(db: AsyncSession) -> None:
    await seed(db)
    assert await names(db, Q(User.age > 26) | Q(name="Carol")) == ["Alice", "Carol", "Émile"]
    assert await names(db, Q(name__endswith="e") & (User.age > 35)) == ["Émile"]
    assert await names(db, User.age < 35, Q(company__name="Acme")) == ["Alice"]
    assert await names(db, func.length(User.name) == 3) == ["Bob"]


async def test_f_arithmetic_in_filter_and_annotate(db: AsyncSession) -> None:
    await seed(db)
    # age - 5 > 22: Alice (25), Émile (35); Bob's NULL age never compares.
    assert await names(db, age__gt=F("age") * 0 + 26) == ["Alice", "Émile"]
    assert await names(db, Q(age__gt=Value(22) + 5)) == ["Alice", "Émile"]
    assert await names(db, age__range=(F("id") * 0 + 20, 35)) == ["Alice", "Carol"]
    assert await names(db, age__in=[F("id") * 0 + 25, 40]) == ["Carol", "Émile"]
    qs = User.objects.filter(age__isnull=False).annotate(
        next_decade=(F("age") + 10) / 10, neg=-F("age"), twice=2 * F(User.age)
    )
    users = await qs.fetch(db)
    got = {u.name: (float(u.next_decade), u.neg, u.twice) for u in users}  # type: ignore[attr-defined]
    # ``/`` is true division, as in Python 3 (SQLAlchemy 2), also between integers.
    assert got == {"Alice": (4.0, -30, 60), "Carol": (3.5, -25, 50), "Émile": (5.0, -40, 80)}


async def test_f_ordering_with_nulls_placement(db: AsyncSession) -> None:
    await seed(db)
    base = User.objects.values_list("name", flat=True)
    last = await base.order_by(F("age").desc(nulls_last=True)).fetch(db)
    assert last == ["Émile", "Alice", "Carol", "Bob"]
    first = await base.order_by(F("age").asc(nulls_first=True)).fetch(db)
    assert first == ["Bob", "Carol", "Alice", "Émile"]
    # reverse() flips the direction and the NULLs placement, as Django does.
    flipped = await base.order_by(F("age").asc(nulls_first=True)).reverse().fetch(db)
    assert flipped == ["Émile", "Alice", "Carol", "Bob"]
    by_attr = await base.order_by(F(User.name).desc()).fetch(db)
    assert by_attr == ["Émile", "Carol", "Bob", "Alice"]


async def test_update_with_f_across_columns(db: AsyncSession, database: object) -> None:
    data = await seed(db)
    matched = await Post.objects.filter(author=data.alice).update(
        db, views=F("views") * 2 + 1, body=F("title")
    )
    assert matched == 2
    rows = await Post.objects.order_by("title").values_list("title", "views", "body").fetch(db)
    assert rows == [
        ("Hello World", 21, "Hello World"),
        ("SQL 100% fun_stuff", 7, ""),
        ("hello again", 11, "hello again"),
        ("Über Straße", 0, ""),
    ]
    # A filter through a relation is fine; the values stay on the model's own columns.
    assert await Post.objects.filter(author__company__name="Globex").update(db, views=F("id")) == 1
    assert await Post.objects.filter(views=data.p3.id).count(db) == 1


async def test_update_refuses_related_f_before_any_sql(db: AsyncSession) -> None:
    await seed(db)
    async with capture_queries(db) as captured:
        with pytest.raises(ValueError, match="own fields only"):
            await Post.objects.update(db, views=F("author__age"))
    assert captured.statements == []


async def test_annotate_rejects_conflicting_names_and_non_expressions() -> None:
    with pytest.raises(ValueError, match="'name' conflicts with a field on User"):
        User.objects.annotate(name=F("age"))
    with pytest.raises(TypeError, match="takes expressions"):
        User.objects.annotate(x=3)


async def test_update_leaves_loaded_objects_as_loaded(db: AsyncSession) -> None:
    data = await seed(db)
    alice = await User.objects.prefetch_related("posts").get(db, id=data.alice.id)
    assert await User.objects.filter(age__gte=30).update(db, age=F("age") + 1) == 2
    # As in Django: a loaded object keeps the values it was loaded with (SPEC
    # 2.1); a later query returns a new object holding the database's values.
    assert alice.age == 30
    assert (await User.objects.get(db, id=data.alice.id)).age == 31
    assert len(alice.posts) == 2
    await alice.refresh_from_db(db)
    assert alice.age == 31
    async with capture_queries(db) as captured:
        assert await Post.objects.filter(views__gt=100).update(db, views=0) == 0
    assert len(captured) == 1
