"""Every keyword lookup on both backends, hostile strings, and FieldError before any SQL."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime, time
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from flash_db import Count, F, FieldError, Q, atomic
from flash_db.testing import capture_queries
from tests.models import Comment, Gauge, Post, Sample, User
from tests.query_data import seed


async def titles(db: AsyncSession, **lookups: Any) -> set[str]:
    """Return the titles of the posts matching ``lookups``."""
    return set(await Post.objects.filter(**lookups).values_list("title", flat=True).fetch(db))


async def names(db: AsyncSession, *conditions: Any, **lookups: Any) -> set[str]:
    """Return the names of the users matching the conditions and lookups."""
    qs = User.objects.filter(*conditions, **lookups).values_list("name", flat=True)
    return set(await qs.fetch(db))


ALL = {"Hello World", "hello again", "SQL 100% fun_stuff", "Über Straße"}


Case = tuple[str, Any, set[str]]

TEXT_CASES: list[Case] = [
    ("title", "Hello World", {"Hello World"}),
    ("title__exact", "hello world", set()),
    ("title__iexact", "HELLO WORLD", {"Hello World"}),
    ("title__iexact", "über straße", {"Über Straße"}),  # non-ASCII folding
    ("title__contains", "ello", {"Hello World", "hello again"}),
    ("title__contains", "Hello", {"Hello World"}),  # case-sensitive, also on SQLite
    ("title__contains", "ber", {"Über Straße"}),
    ("title__icontains", "HELLO", {"Hello World", "hello again"}),
    ("title__icontains", "ÜBER", {"Über Straße"}),
    ("title__startswith", "hello", {"hello again"}),
    ("title__istartswith", "hello", {"Hello World", "hello again"}),
    ("title__endswith", "world", set()),
    ("title__iendswith", "WORLD", {"Hello World"}),
    ("title__iendswith", "STRASSE", set()),  # lower('ß') is 'ß', as on PostgreSQL
    ("title__contains", "%", {"SQL 100% fun_stuff"}),
    ("title__contains", "_", {"SQL 100% fun_stuff"}),
    ("title__in", ["Hello World", "nope", "Über Straße"], {"Hello World", "Über Straße"}),
    ("title__in", [], set()),
    ("title__regex", r"^[Hh]ello", {"Hello World", "hello again"}),
    ("title__regex", r"^hello", {"hello again"}),
    ("title__iregex", r"^HELLO\s", {"Hello World", "hello again"}),
    ("title__iregex", r"stuff$", {"SQL 100% fun_stuff"}),
]

NUMBER_CASES: list[Case] = [
    ("views__gt", 5, {"Hello World", "SQL 100% fun_stuff"}),
    ("views__gte", 5, {"Hello World", "SQL 100% fun_stuff", "hello again"}),
    ("views__lt", 5, {"Über Straße"}),
    ("views__lte", 5, {"Über Straße", "hello again"}),
    ("views__range", (5, 7), {"hello again", "SQL 100% fun_stuff"}),
    ("published", False, {"hello again"}),
    ("published__lt", True, {"hello again"}),
    ("status__icontains", "RAF", ALL),  # an enum column (stored as its name, DRAFT)
    ("status__regex", "^DR", ALL),
    ("views__contains", 0, {"Hello World", "Über Straße"}),  # 10 and 0, as text
]

DATE_CASES: list[Case] = [
    ("created_at__date", date(2024, 1, 5), {"Hello World"}),
    ("created_at__date__gte", date(2024, 3, 10), {"hello again", "Über Straße"}),
    ("created_at__year", 2024, ALL - {"SQL 100% fun_stuff"}),
    ("created_at__year__lt", 2024, {"SQL 100% fun_stuff"}),
    ("created_at__month", 3, {"hello again"}),
    ("created_at__month__in", [1, 7], {"Hello World", "Über Straße"}),
    ("created_at__day", 31, {"SQL 100% fun_stuff"}),
    ("created_at__week_day", 1, {"hello again", "SQL 100% fun_stuff"}),  # Sunday
    ("created_at__week_day", 6, {"Hello World"}),  # Friday
    ("created_at__week_day", 5, {"Über Straße"}),  # Thursday
    ("created_at__hour", 23, {"hello again"}),
    ("created_at__hour__range", (8, 11), {"Hello World", "SQL 100% fun_stuff"}),
    ("created_at__gt", datetime(2024, 3, 10, 23, tzinfo=UTC), {"hello again", "Über Straße"}),
    # 2023-12-31 is a Sunday of ISO week 52 of 2023; 2024-01-05 is in ISO week 1.
    ("created_at__iso_year", 2023, {"SQL 100% fun_stuff"}),
    ("created_at__iso_year__gte", 2024, ALL - {"SQL 100% fun_stuff"}),
    ("created_at__quarter", 1, {"Hello World", "hello again"}),
    ("created_at__quarter__in", [3, 4], {"Über Straße", "SQL 100% fun_stuff"}),
    ("created_at__week", 1, {"Hello World"}),
    ("created_at__week", 52, {"SQL 100% fun_stuff"}),
    ("created_at__week__gte", 10, {"hello again", "SQL 100% fun_stuff", "Über Straße"}),
    ("created_at__iso_week_day", 7, {"hello again", "SQL 100% fun_stuff"}),  # Sunday
    ("created_at__iso_week_day", 5, {"Hello World"}),  # Friday
    ("created_at__minute", 30, {"Hello World"}),
    ("created_at__minute__gt", 0, {"Hello World", "hello again"}),
    ("created_at__second", 0, ALL),
    ("created_at__time", time(10, 30), {"Hello World"}),
    ("created_at__time__gte", time(12), {"hello again", "Über Straße"}),
    ("created_at__time__range", (time(8), time(11)), {"Hello World", "SQL 100% fun_stuff"}),
]


@pytest.mark.parametrize(
    "cases",
    [TEXT_CASES, NUMBER_CASES, DATE_CASES],
    ids=["text", "numbers", "dates"],
)
async def test_lookups(db: AsyncSession, cases: list[Case]) -> None:
    await seed(db)
    for lookup, value, expected in cases:
        assert await titles(db, **{lookup: value}) == expected, f"{lookup}={value!r}"


async def test_none_means_is_null_and_isnull(db: AsyncSession) -> None:
    await seed(db)
    assert await names(db, age=None) == {"Bob"}
    assert await names(db, age__isnull=True) == {"Bob"}
    assert await names(db, age__isnull=False) == {"Alice", "Carol", "Émile"}
    assert await names(db, company=None) == {"Carol"}
    with pytest.raises(TypeError, match="isnull"):
        await names(db, age__isnull="yes")


async def test_lookups_in_get_exclude_and_q(db: AsyncSession) -> None:
    data = await seed(db)
    assert (await User.objects.get(db, name__iexact="émile")).id == data.emile.id
    assert await names(db, Q(name__startswith="A") | Q(name__endswith="ol")) == {"Alice", "Carol"}
    qs = User.objects.exclude(name__icontains="l").values_list("name", flat=True)
    assert set(await qs.fetch(db)) == {"Bob"}


async def test_lookup_value_may_be_a_model_instance_or_f(db: AsyncSession) -> None:
    data = await seed(db)
    assert await titles(db, author=data.alice) == {"Hello World", "hello again"}
    assert await titles(db, author__in=[data.bob, data.emile]) == {
        "SQL 100% fun_stuff",
        "Über Straße",
    }
    # views greater than the author's age / 4: Alice 30/4=7.5 -> p1 (10); Émile 40/4 -> none.
    assert await titles(db, views__gt=F("author__age") / 4.0) == {"Hello World"}


async def test_date_parts_of_naive_and_aware_values_agree(db: AsyncSession) -> None:
    await seed(db)
    # created_at is stored in UTC: 23:15 UTC is still 2024-03-10, whatever the server zone.
    assert await titles(db, created_at__date=date(2024, 3, 10), created_at__hour=23) == {
        "hello again"
    }


# -- hostile strings -------------------------------------------------------------

HOSTILE = ["'; DROP TABLE users; --", "%_\\", 'it\'s "quoted"', "naïve ☃ café", "\\%", "a_b"]
STORED = [
    "'; DROP TABLE users; --",
    "50%_\\off",
    "50ab\\off",
    'say "hi", it\'s "quoted"',
    "naïve ☃ café",
    "x\\%y",
    "a_b",
    "axb",
]

PYTHON: dict[str, Callable[[str, str], bool]] = {
    "exact": lambda s, v: s == v,
    "iexact": lambda s, v: s.lower() == v.lower(),
    "contains": lambda s, v: v in s,
    "icontains": lambda s, v: v.lower() in s.lower(),
    "startswith": lambda s, v: s.startswith(v),
    "istartswith": lambda s, v: s.lower().startswith(v.lower()),
    "endswith": lambda s, v: s.endswith(v),
    "iendswith": lambda s, v: s.lower().endswith(v.lower()),
}


@pytest.mark.parametrize("lookup", sorted(PYTHON))
async def test_hostile_strings_match_literally_and_are_bound(db: AsyncSession, lookup: str) -> None:
    data = await seed(db)
    async with atomic(db):
        for i, title in enumerate(STORED):
            await Post.objects.create(db, title=title, author_id=data.carol.id, views=100 + i)
    hostile_posts = Post.objects.filter(views__gte=100)
    async with capture_queries(db) as harmless:
        await hostile_posts.filter(**{f"title__{lookup}": "abc"}).fetch(db)
    for value in HOSTILE:
        expected = {title for title in STORED if PYTHON[lookup](title, value)}
        async with capture_queries(db) as captured:
            rows = await hostile_posts.filter(**{f"title__{lookup}": value}).fetch(db)
        assert {post.title for post in rows} == expected, value
        assert captured.statements == harmless.statements
        # Hostile names in exclude()/Q go through the same code.
        async with capture_queries(db) as negated:
            rows = await hostile_posts.exclude(Q(**{f"title__{lookup}": value})).fetch(db)
        assert {post.title for post in rows} == set(STORED) - expected, value
        assert "DROP" not in " ".join(negated.statements)
    assert await User.objects.count(db) == 4  # the table is still there


@pytest.mark.parametrize("lookup", ["regex", "iregex", "in"])
async def test_hostile_strings_in_regex_and_in(db: AsyncSession, lookup: str) -> None:
    data = await seed(db)
    hostile = "'; DROP TABLE users; --"
    await Post.objects.create(db, title=hostile, author_id=data.carol.id)
    value: Any = [hostile] if lookup == "in" else "DROP TABLE"
    harmless: Any = ["abc"] if lookup == "in" else "abc"
    async with capture_queries(db) as safe:
        assert await titles(db, **{f"title__{lookup}": harmless}) == set()
    async with capture_queries(db) as captured:
        assert await titles(db, **{f"title__{lookup}": value}) == {hostile}
    assert captured.statements == safe.statements
    assert await User.objects.count(db) == 4


# -- FieldError before any SQL -------------------------------------------------------


async def test_bad_field_lookup_and_path_raise_field_error_without_sql(db: AsyncSession) -> None:
    await seed(db)
    async with capture_queries(db) as captured:
        with pytest.raises(FieldError) as bad_field:
            await User.objects.filter(nmae="x").fetch(db)
        with pytest.raises(FieldError) as bad_lookup:
            await User.objects.filter(name__containz="x").fetch(db)
        with pytest.raises(FieldError) as bad_path:
            await Post.objects.filter(author__nmae="x").fetch(db)
        with pytest.raises(FieldError) as deep_path:
            await Post.objects.filter(author__company__nmae="x").count(db)
        with pytest.raises(FieldError) as many_path:
            await User.objects.exclude(posts__titel="x").exists(db)
    assert captured.statements == []

    assert bad_field.value.model is User
    assert bad_field.value.field == "nmae"
    assert {"name", "email", "posts", "company", "pk"} <= set(bad_field.value.choices)
    assert "Cannot resolve keyword 'nmae'" in str(bad_field.value)

    assert bad_lookup.value.kind == "lookup"
    assert bad_lookup.value.field == "containz"
    assert {"contains", "icontains", "week_day", "regex"} <= set(bad_lookup.value.choices)
    assert "Unsupported lookup 'containz'" in str(bad_lookup.value)

    assert bad_path.value.model is User  # the related model, with its choices
    assert bad_path.value.field == "nmae"
    assert "name" in bad_path.value.choices
    assert "on User" in str(bad_path.value)
    assert deep_path.value.model.__name__ == "Company"
    assert deep_path.value.choices == ["id", "name", "pk", "users"]
    assert many_path.value.model is Post
    assert "title" in many_path.value.choices


async def test_bad_names_in_other_apis_raise_field_error_without_sql(db: AsyncSession) -> None:
    await seed(db)
    async with capture_queries(db) as captured:
        with pytest.raises(FieldError, match="'nmae'"):
            await User.objects.order_by("-nmae").fetch(db)
        with pytest.raises(FieldError, match=r"'nmae'.*on Company"):
            await User.objects.order_by("company__nmae").fetch(db)
        with pytest.raises(FieldError, match="'nmae'"):
            await User.objects.values("nmae").fetch(db)
        with pytest.raises(FieldError, match=r"'titel'.*on Post"):
            await User.objects.values("posts__titel").fetch(db)
        with pytest.raises(FieldError, match="'nmae'"):
            await User.objects.filter(age=F("nmae")).fetch(db)
        with pytest.raises(FieldError, match="'agee'"):
            await User.objects.annotate(x=F("agee") + 1).fetch(db)
        with pytest.raises(FieldError, match="'nope'"):
            await User.objects.annotate(x=F("age")).filter(nope=1).fetch(db)
        with pytest.raises(FieldError, match="'nope'"):
            await User.objects.update(db, age=F("nope"))
    assert captured.statements == []


async def test_misused_lookups_fail_before_any_sql(db: AsyncSession) -> None:
    await seed(db)
    async with capture_queries(db) as captured:
        with pytest.raises(ValueError, match=r"None .* title__contains; use title__isnull"):
            await titles(db, title__contains=None)
        with pytest.raises(FieldError, match="Unsupported lookup 'year'") as info:
            await titles(db, title__year=2024)
        with pytest.raises(FieldError, match="Unsupported lookup 'month'"):
            await titles(db, created_at__year__month=1)
        with pytest.raises(TypeError, match="iterable"):
            await titles(db, views__in=5)
        with pytest.raises(TypeError, match="pair"):
            await titles(db, views__range=5)
    assert captured.statements == []
    assert "contains" in info.value.choices
    assert await titles(db, title__iexact=None) == set()


async def test_negated_pattern_lookups_keep_nulls_on_both_backends(db: AsyncSession) -> None:
    data = await seed(db)
    await Comment.objects.create(db, text="anonymous", post_id=data.p2.id)
    for lookup in ("contains", "icontains", "startswith", "iendswith", "regex"):
        value = "B" if lookup in ("contains", "startswith", "regex") else "b"
        qs = Comment.objects.exclude(**{f"author__name__{lookup}": value})
        # "nice" is Bob's; "ok" is Alice's; "anonymous" has no author (NULL name): kept.
        texts = set(await qs.values_list("text", flat=True).fetch(db))
        assert texts == {"ok", "anonymous"}, lookup
        plain = Comment.objects.filter(**{f"author__name__{lookup}": value})
        assert await plain.values_list("text", flat=True).fetch(db) == ["nice"], lookup


async def test_statement_text_does_not_depend_on_values(db: AsyncSession) -> None:
    await seed(db)
    shapes = set()
    for published, views in ((True, 1), (False, 2), (True, None)):
        async with capture_queries(db) as captured:
            await Post.objects.filter(published=published, views__gte=views or 0).fetch(db)
        shapes.add(captured.statements[0])
    assert len(shapes) == 1


# -- values no database could take (found by the reliability fuzzer) ----------------------


async def test_integers_outside_the_column_range_match_as_in_django(db: AsyncSession) -> None:
    await seed(db)  # ages: Alice 30, Bob None, Carol 25, Émile 40
    non_null = {"Alice", "Carol", "Émile"}
    cases: list[tuple[dict[str, Any], set[str]]] = [
        ({"age": 2**40}, set()),
        ({"age": -(2**40)}, set()),
        ({"age": 2**70}, set()),  # beyond 64 bits: no backend could hold it
        ({"age__in": [30, 2**40, 2**63, -(2**70)]}, {"Alice"}),
        ({"age__in": [2**40]}, set()),
        ({"age__gt": 2**40}, set()),
        ({"age__gte": -(2**40)}, non_null),
        ({"age__lt": 2**40}, non_null),
        ({"age__lte": -(2**70)}, set()),
        ({"age__range": (26, 2**40)}, {"Alice", "Émile"}),
        ({"age__range": (-(2**63), 2**63)}, non_null),
        ({"age__range": (2**40, 2**41)}, set()),
        ({"pk__in": [2**63]}, set()),
        ({"created_at__year": 2**40}, set()),
        ({"posts__views__gt": 2**40}, set()),
        ({"posts__views__lt": 2**40}, {"Alice", "Bob", "Émile"}),
    ]
    async with capture_queries(db) as captured:
        for lookups, expected in cases:
            assert await names(db, **lookups) == expected, lookups
    # At most one query each (none where the WHERE is provably false: Django sends
    # none either), no error, no retry.
    assert 0 < len(captured.statements) <= len(cases)
    # exclude() keeps the NULL rows, as for any other value.
    assert await names(db, ~Q(age=2**40)) == {*non_null, "Bob"}
    assert await names(db, ~Q(age__lt=2**40)) == {"Bob"}
    with pytest.raises(User.DoesNotExist):
        await User.objects.get(db, pk=2**63)


async def test_out_of_range_integers_compared_with_annotations_are_sent_wider(
    db: AsyncSession,
) -> None:
    """An aggregate may exceed its declared type, so it is compared, not settled."""
    await seed(db)  # posts: Alice 2, Bob 1, Émile 1, Carol 0
    counted = User.objects.annotate(n=Count("posts"))

    async def annotated(**lookups: Any) -> set[str]:
        return set(await counted.filter(**lookups).values_list("name", flat=True).fetch(db))

    assert await annotated(n__gt=2**40) == set()
    assert await annotated(n__lt=2**40) == {"Alice", "Bob", "Carol", "Émile"}
    assert await annotated(n__in=[2, 2**40]) == {"Alice"}
    assert await annotated(n=2**70) == set()
    assert await annotated(n__range=(1, 2**70)) == {"Alice", "Bob", "Émile"}


async def test_out_of_range_integers_on_small_big_and_decorated_columns(db: AsyncSession) -> None:
    await Gauge.objects.create(db, small=5, big=2**40, level=7)
    await Gauge.objects.create(db)  # all NULL

    async def count(**lookups: Any) -> int:
        return await Gauge.objects.filter(**lookups).count(db)

    assert await count(small=2**20) == 0
    assert await count(small__lt=2**15) == 1
    assert await count(small__in=[5, 2**15]) == 1
    assert await count(big=2**40) == 1  # a BigInteger holds it
    assert await count(big=2**63) == 0
    assert await count(big__gte=-(2**63) - 1) == 1
    assert await count(level=2**31) == 0  # a TypeDecorator over Integer
    assert await count(level__gt=-(2**31) - 1) == 1


async def test_sqlite_integer_columns_hold_64_bits(db: AsyncSession) -> None:
    """On SQLite every integer column holds 64 bits, so such a value is still found there."""
    if db.get_bind().dialect.name != "sqlite":
        pytest.skip("PostgreSQL cannot store the value")
    await Gauge.objects.create(db, small=2**40, validate=False)
    assert await Gauge.objects.filter(small=2**40).count(db) == 1
    assert await Gauge.objects.filter(small__in=[2**40, 2**63]).count(db) == 1
    assert await Gauge.objects.filter(small__range=(2**39, 2**70)).count(db) == 1
    assert await Gauge.objects.filter(small__gt=2**63).count(db) == 0


async def test_nul_characters_raise_value_error_before_any_sql(db: AsyncSession) -> None:
    await seed(db)
    bad = "a\x00b"
    async with capture_queries(db) as captured:
        for lookup in ("exact", "iexact", "contains", "istartswith", "regex", "gt"):
            with pytest.raises(ValueError, match=rf"title__{lookup}.*NUL character"):
                await titles(db, **{f"title__{lookup}": bad})
        with pytest.raises(ValueError, match=r"title__in.*NUL character"):
            await titles(db, title__in={"ok", bad})
        with pytest.raises(ValueError, match=r"title__range.*NUL character"):
            await titles(db, title__range=("a", bad))
        with pytest.raises(ValueError, match="NUL character"):
            await User.objects.exclude(posts__title=bad).count(db)
        with pytest.raises(ValueError, match="NUL character"):
            await User.objects.get(db, Q(name=bad) | Q(name="Alice"))
    assert captured.statements == []
    assert await titles(db, title__contains="\\x00") == set()  # the escaped text is fine


async def test_invalid_regex_raises_value_error_before_any_sql(db: AsyncSession) -> None:
    await seed(db)
    async with capture_queries(db) as captured:
        for lookup in ("regex", "iregex"):
            for pattern in ("(", "[a-", "*x", "a{2,1}"):
                with pytest.raises(ValueError, match=rf"{re.escape(repr(pattern))}.*'{lookup}'"):
                    await titles(db, **{f"title__{lookup}": pattern})
    assert captured.statements == []
    assert await titles(db, title__regex=r"^(Hello|SQL) ") == {"Hello World", "SQL 100% fun_stuff"}


async def test_text_lookups_on_non_text_columns_and_ordering_on_booleans(db: AsyncSession) -> None:
    """Fixed before (the fuzzer's other two findings); kept as regression tests."""
    await seed(db)
    # Pattern lookups and lower() on integer, boolean, enum and datetime columns compare text.
    assert await titles(db, views__icontains="1") == {"Hello World"}
    assert await titles(db, views__iexact="7") == {"SQL 100% fun_stuff"}
    assert await titles(db, views__regex="^1") == {"Hello World"}
    assert await titles(db, status__iexact="draft") == ALL  # stored as its name, DRAFT
    assert await titles(db, published__istartswith="x") == set()
    assert await titles(db, created_at__icontains="2023") == {"SQL 100% fun_stuff"}
    assert await names(db, age__iendswith="5") == {"Carol"}
    # gt/gte/lt/lte/range with True/False compare booleans (False < True).
    assert await titles(db, published__gt=False) == ALL - {"hello again"}
    assert await titles(db, published__gte=True) == ALL - {"hello again"}
    assert await titles(db, published__lte=False) == {"hello again"}
    assert await titles(db, published__range=(False, True)) == ALL


async def test_time_parts_of_times_and_seconds_of_datetimes(db: AsyncSession) -> None:

    at = datetime(2024, 8, 17, 13, 47, 29, 900_000, tzinfo=UTC)
    naive = at.replace(tzinfo=None)
    await Sample.objects.create(db, label="a", clock=time(13, 47, 29, 900_000), at=at, naive=naive)
    found = Sample.objects.filter(
        clock__hour=13, clock__minute=47, clock__second=29, at__second=29, naive__second=29
    )
    assert await found.count(db) == 1  # whole seconds: 29.9 is second 29, as in Django
    assert await Sample.objects.filter(naive__time=time(13, 47, 29, 900_000)).count(db) == 1
