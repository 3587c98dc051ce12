"""Database functions, Case/When, Value, Q ^ Q, F % n and F ** n: Django's answers."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import Date, Float, Integer, String
from sqlalchemy.ext.asyncio import AsyncSession

from flash_db import (
    Abs,
    Case,
    Cast,
    Coalesce,
    Concat,
    Count,
    Extract,
    ExtractIsoWeekDay,
    ExtractIsoYear,
    ExtractQuarter,
    ExtractWeek,
    ExtractWeekDay,
    ExtractYear,
    F,
    FieldError,
    Greatest,
    Least,
    Length,
    Lower,
    LTrim,
    Now,
    NullIf,
    Q,
    Replace,
    Round,
    RTrim,
    Substr,
    Sum,
    Trim,
    Trunc,
    TruncDate,
    TruncDay,
    TruncHour,
    TruncMonth,
    TruncQuarter,
    TruncTime,
    TruncWeek,
    TruncYear,
    Upper,
    Value,
    When,
    functions,
)
from flash_db.testing import capture_queries
from tests.models import Post, Sample, User
from tests.query_data import seed

UTC = dt.UTC
HOSTILE = "x'); DROP TABLE users; --"


async def user_rows(db: AsyncSession, **annotations: Any) -> list[tuple[Any, ...]]:
    """Return the annotations of every user, ordered by id (Alice, Bob, Carol, Émile)."""
    qs = User.objects.annotate(**annotations).order_by("id")
    return list(await qs.values_list(*annotations).fetch(db))


async def post_values(db: AsyncSession, expression: Any) -> list[Any]:
    """Return ``expression`` for each post, in the seed's order (p1, p2, p3, p4)."""
    qs = Post.objects.annotate(v=expression).order_by("id")
    return list(await qs.values_list("v", flat=True).fetch(db))


def is_sqlite(db: AsyncSession) -> bool:
    return db.get_bind().dialect.name == "sqlite"


async def test_text_functions(db: AsyncSession) -> None:
    await seed(db)
    rows = await user_rows(db, low=Lower("name"), up=Upper("name"), n=Length("name"))
    assert rows == [
        ("alice", "ALICE", 5),
        ("bob", "BOB", 3),
        ("carol", "CAROL", 5),
        ("émile", "ÉMILE", 5),  # Unicode-aware on SQLite too
    ]
    rows = await user_rows(
        db,
        sub=Substr("name", 2, 3),
        tail=Substr("name", 3),
        rep=Replace("name", Value("l"), Value("L")),
        gone=Replace("name", Value("e")),
    )
    assert rows == [
        ("lic", "ice", "ALice", "Alic"),
        ("ob", "b", "Bob", "Bob"),
        ("aro", "rol", "CaroL", "Carol"),
        ("mil", "ile", "ÉmiLe", "Émil"),
    ]
    padded = Concat(Value("  "), "name", Value(" "))
    rows = await user_rows(db, t=Trim(padded), lt=LTrim(padded), rt=RTrim(padded))
    assert rows[0] == ("Alice", "Alice ", "  Alice")
    # Lower() in filter() and order_by().
    qs = User.objects.filter(Q(name__startswith="a") | Q(name__startswith="b"))
    assert await qs.count(db) == 0
    lowered = User.objects.annotate(low=Lower("name")).filter(low__in=["alice", "bob"])
    assert await lowered.count(db) == 2
    by_length = User.objects.order_by(Length("name").desc(), "name").values_list("name", flat=True)
    assert await by_length.fetch(db) == ["Alice", "Carol", "Émile", "Bob"]


async def test_concat_treats_null_as_empty(db: AsyncSession) -> None:
    await seed(db)
    rows = await user_rows(db, c=Concat("name", Value(" is "), "age"))
    assert [r[0] for r in rows] == ["Alice is 30", "Bob is ", "Carol is 25", "Émile is 40"]
    nothing = await user_rows(db, c=Concat("age", "age"))
    assert [r[0] for r in nothing] == ["3030", "", "2525", "4040"]
    with pytest.raises(TypeError, match="at least 2"):
        Concat("name")


async def test_coalesce_nullif_greatest_least(db: AsyncSession) -> None:
    await seed(db)
    rows = await user_rows(db, c=Coalesce("age", 0), n=NullIf("age", 30), a=Abs(F("age") - 35))
    assert rows == [(30, None, 5), (0, None, None), (25, 25, 10), (40, 40, 5)]
    rows = await user_rows(db, g=Greatest("age", 28), least=Least("age", 28))
    # As in Django: SQLite's max()/min() are NULL when an argument is; PostgreSQL skips NULLs.
    bob = (None, None) if is_sqlite(db) else (28, 28)
    assert rows == [(30, 28), bob, (28, 25), (40, 28)]
    with pytest.raises(TypeError, match="at least 2"):
        Coalesce("age")


async def test_coalesce_over_an_aggregate(db: AsyncSession) -> None:
    await seed(db)
    rows = await user_rows(db, total=Coalesce(Sum("posts__views"), 0))
    assert rows == [(15,), (7,), (0,), (0,)]


async def test_round_and_cast(db: AsyncSession) -> None:
    await seed(db)
    rounded = await post_values(db, Round(F("views") / 3.0, 1))
    assert [float(v) for v in rounded] == [3.3, 1.7, 2.3, 0.0]
    assert await post_values(db, Round("views")) == [10, 5, 7, 0]
    assert await post_values(db, Cast("views", String())) == ["10", "5", "7", "0"]
    assert await post_values(db, Cast("views", Float)) == [10.0, 5.0, 7.0, 0.0]
    assert await post_values(db, Cast("created_at", Date())) == [
        dt.date(2024, 1, 5),
        dt.date(2024, 3, 10),
        dt.date(2023, 12, 31),
        dt.date(2024, 7, 4),
    ]
    rows = await user_rows(db, c=Cast(Value("12"), Integer()))
    assert rows[0] == (12,)
    with pytest.raises(TypeError, match="SQLAlchemy type"):
        Cast("views", "integer")


async def test_extract(db: AsyncSession) -> None:
    await seed(db)
    # p1 2024-01-05 10:30 Fri, p2 2024-03-10 23:15 Sun, p3 2023-12-31 08:00 Sun, p4 2024-07-04 Thu
    assert await post_values(db, ExtractYear("created_at")) == [2024, 2024, 2023, 2024]
    assert await post_values(db, ExtractIsoYear("created_at")) == [2024, 2024, 2023, 2024]
    assert await post_values(db, ExtractQuarter("created_at")) == [1, 1, 4, 3]
    assert await post_values(db, ExtractWeek("created_at")) == [1, 10, 52, 27]
    assert await post_values(db, ExtractWeekDay("created_at")) == [6, 1, 1, 5]
    assert await post_values(db, ExtractIsoWeekDay("created_at")) == [5, 7, 7, 4]
    assert await post_values(db, Extract("created_at", "minute")) == [30, 15, 0, 0]
    assert await post_values(db, Extract("created_at", "hour")) == [10, 23, 8, 12]
    assert await post_values(db, Extract("created_at", "second")) == [0, 0, 0, 0]
    by_quarter = (
        Post.objects.annotate(q=ExtractQuarter("created_at"))
        .values("q")
        .annotate(n=Count("id"))
        .order_by("q")
    )
    assert await by_quarter.fetch(db) == [{"q": 1, "n": 2}, {"q": 3, "n": 1}, {"q": 4, "n": 1}]


async def test_iso_weeks_at_year_boundaries(db: AsyncSession) -> None:
    days = [dt.date(2021, 1, 1), dt.date(2020, 12, 31), dt.date(2024, 12, 30), dt.date(2026, 1, 4)]
    for i, day in enumerate(days):
        await Sample.objects.create(db, label=str(i), day=day)
    qs = Sample.objects.order_by("id").annotate(
        w=ExtractWeek("day"), y=ExtractIsoYear("day"), d=ExtractIsoWeekDay("day")
    )
    rows = await qs.values_list("w", "y", "d").fetch(db)
    assert rows == [(d.isocalendar().week, d.isocalendar().year, d.isoweekday()) for d in days]


async def test_trunc_datetimes(db: AsyncSession) -> None:
    await seed(db)

    def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> dt.datetime:
        return dt.datetime(year, month, day, hour, minute, tzinfo=UTC)

    assert await post_values(db, TruncYear("created_at")) == [
        at(2024, 1, 1),
        at(2024, 1, 1),
        at(2023, 1, 1),
        at(2024, 1, 1),
    ]
    assert await post_values(db, TruncQuarter("created_at")) == [
        at(2024, 1, 1),
        at(2024, 1, 1),
        at(2023, 10, 1),
        at(2024, 7, 1),
    ]
    assert await post_values(db, TruncMonth("created_at")) == [
        at(2024, 1, 1),
        at(2024, 3, 1),
        at(2023, 12, 1),
        at(2024, 7, 1),
    ]
    assert await post_values(db, TruncWeek("created_at")) == [
        at(2024, 1, 1),
        at(2024, 3, 4),
        at(2023, 12, 25),
        at(2024, 7, 1),
    ]
    assert await post_values(db, TruncDay("created_at")) == [
        at(2024, 1, 5),
        at(2024, 3, 10),
        at(2023, 12, 31),
        at(2024, 7, 4),
    ]
    assert await post_values(db, TruncHour("created_at")) == [
        at(2024, 1, 5, 10),
        at(2024, 3, 10, 23),
        at(2023, 12, 31, 8),
        at(2024, 7, 4, 12),
    ]
    assert await post_values(db, Trunc("created_at", "minute")) == [
        at(2024, 1, 5, 10, 30),
        at(2024, 3, 10, 23, 15),
        at(2023, 12, 31, 8),
        at(2024, 7, 4, 12),
    ]
    assert (await post_values(db, TruncDate("created_at")))[1] == dt.date(2024, 3, 10)
    assert (await post_values(db, TruncTime("created_at")))[1] == dt.time(23, 15)
    as_date = await post_values(db, TruncMonth("created_at", output_field=Date()))
    assert as_date[1] == dt.date(2024, 3, 1)
    # In filter(): the posts of March 2024.
    march = Post.objects.filter(created_at__gte=at(2024, 3, 1)).annotate(m=TruncMonth("created_at"))
    assert await march.filter(m=at(2024, 3, 1)).values_list("title", flat=True).fetch(db) == [
        "hello again"
    ]


async def test_trunc_dates_times_and_naive_datetimes(db: AsyncSession) -> None:
    await Sample.objects.create(
        db,
        label="a",
        day=dt.date(2024, 8, 17),
        clock=dt.time(13, 47, 29, 500),
        naive=dt.datetime(2024, 8, 17, 13, 47, 29, 500),
    )
    qs = Sample.objects.annotate(
        m=TruncMonth("day"),
        w=TruncWeek("day"),
        h=TruncHour("clock"),
        mi=Trunc("clock", "minute"),
        q=TruncQuarter("naive"),
        s=Trunc("naive", "second"),
        t=TruncTime("naive"),
    )
    row = await qs.values("m", "w", "h", "mi", "q", "s", "t").get(db)
    assert row == {
        "m": dt.date(2024, 8, 1),
        "w": dt.date(2024, 8, 12),
        "h": dt.time(13),
        "mi": dt.time(13, 47),
        "q": dt.datetime(2024, 7, 1),
        "s": dt.datetime(2024, 8, 17, 13, 47, 29),
        "t": dt.time(13, 47, 29, 500),
    }
    with pytest.raises(ValueError, match="Cannot truncate a date to 'hour'"):
        await Sample.objects.annotate(x=TruncHour("day")).fetch(db)
    with pytest.raises(ValueError, match="Cannot truncate a time to 'month'"):
        await Sample.objects.annotate(x=TruncMonth("clock")).fetch(db)
    with pytest.raises(ValueError, match="date, datetime or time"):
        await Sample.objects.annotate(x=TruncMonth("label")).fetch(db)


async def test_now(db: AsyncSession) -> None:
    await seed(db)
    assert await Post.objects.filter(created_at__lt=Now()).count(db) == 4
    before = dt.datetime.now(UTC) - dt.timedelta(seconds=5)
    now = (await post_values(db, Now()))[0]
    assert now.tzinfo is not None
    assert before <= now <= dt.datetime.now(UTC) + dt.timedelta(seconds=5)


async def test_case_when(db: AsyncSession) -> None:
    await seed(db)
    band = Case(
        When(age__lt=30, then=Value("young")),
        When(Q(age__gte=30), then=Value("old")),
        default=Value("unknown"),
    )
    assert await user_rows(db, b=band) == [("old",), ("unknown",), ("young",), ("old",)]
    # then= a field name (as in Django), no default: NULL.
    name_if_acme = Case(When(company__name="Acme", then="name"))
    assert await user_rows(db, n=name_if_acme) == [("Alice",), (None,), (None,), ("Émile",)]
    # Conditional aggregation, and Case in order_by() and filter().
    acme = await User.objects.aggregate(
        db, n=Sum(Case(When(company__name="Acme", then=1), default=0))
    )
    assert acme == {"n": 2}
    order = Case(When(name="Carol", then=0), default=1)
    names = await User.objects.order_by(order, "name").values_list("name", flat=True).fetch(db)
    assert names == ["Carol", "Alice", "Bob", "Émile"]
    flagged = User.objects.annotate(
        big=Case(When(age__gt=26, then=1), default=0, output_field=Integer())
    )
    assert await flagged.filter(big=1).count(db) == 2
    assert await user_rows(db, c=Case(default=Value(7))) == [(7,)] * 4
    with pytest.raises(TypeError, match="needs a condition"):
        When(then=1)
    with pytest.raises(TypeError, match="When"):
        Case(Q(age=1))  # type: ignore[arg-type]


async def test_value_with_output_field(db: AsyncSession) -> None:
    await seed(db)
    rows = await user_rows(db, v=Value("7", output_field=String()), n=Value(None))
    assert rows[0] == ("7", None)
    with pytest.raises(TypeError, match="SQLAlchemy type"):
        Value(1, output_field="int")


async def test_q_xor(db: AsyncSession) -> None:
    await seed(db)

    async def names(*conditions: Any, exclude: bool = False) -> list[str]:
        base = User.objects.exclude if exclude else User.objects.filter
        return list(
            await base(*conditions).order_by("name").values_list("name", flat=True).fetch(db)
        )

    two = Q(age__gt=26) ^ Q(name__startswith="C")
    assert await names(two) == ["Alice", "Carol", "Émile"]
    assert await names(two, exclude=True) == ["Bob"]
    # Odd number true (Django 5): Carol is (False, NULL, True).
    three = Q(age__gte=30) ^ Q(company__name="Acme") ^ Q(name="Carol")
    assert await names(three) == ["Carol"]
    assert await names(~three) == ["Alice", "Bob", "Émile"]
    four = Q(age__gt=0) ^ Q(age__gt=26) ^ Q(age__gt=35) ^ Q(name="Alice")
    assert await names(four) == ["Alice", "Carol", "Émile"]  # 3, 1 and 3 true


async def test_f_modulo_and_power(db: AsyncSession) -> None:
    await seed(db)
    assert await post_values(db, F("views") % 3) == [1, 2, 1, 0]
    assert await post_values(db, F("views") ** 2) == [100, 25, 49, 0]
    assert await post_values(db, 2 ** F("views")) == [1024, 32, 128, 1]
    assert await post_values(db, 17 % (F("views") + 1)) == [6, 5, 1, 0]
    odd = Post.objects.annotate(m=F("views") % 2).filter(m=1)
    assert sorted(await odd.values_list("views", flat=True).fetch(db)) == [5, 7]


async def test_values_are_bound_never_sql_text(db: AsyncSession) -> None:
    await seed(db)
    async with capture_queries(db) as captured:
        rows = await user_rows(
            db,
            c=Concat("name", Value(HOSTILE)),
            r=Replace("name", Value("A"), Value(HOSTILE)),
            k=Coalesce(Cast("age", String()), Value(HOSTILE, output_field=String())),
            n=NullIf(Value(HOSTILE), "name"),
            w=Case(When(name=HOSTILE, then=Value("1")), default=Value(HOSTILE)),
            g=Greatest(Value(HOSTILE), "name"),
            s=Substr(Value(HOSTILE), 1, 2),
            lo=Lower(Value(HOSTILE)),
            le=Length(Value(HOSTILE)),
            t=Trim(Value(HOSTILE)),
        )
    assert rows[0][0] == "Alice" + HOSTILE
    assert rows[0][1] == HOSTILE + "lice"
    assert rows[0][3] == HOSTILE
    assert rows[0][4] == HOSTILE
    assert rows[0][6:] == (HOSTILE[:2], HOSTILE.lower(), len(HOSTILE), HOSTILE)
    assert captured.statements
    assert not any("DROP" in statement for statement in captured.statements)
    assert await User.objects.count(db) == 4


async def test_unknown_names_raise_field_error(db: AsyncSession) -> None:
    await seed(db)
    with pytest.raises(FieldError, match=r"'fortnight'.*Choices are: day, hour, iso_week_day"):
        await post_values(db, Extract("created_at", "fortnight"))
    with pytest.raises(FieldError, match=r"'decade'.*Choices are: date, day, hour, minute"):
        await post_values(db, Trunc("created_at", "decade"))
    with pytest.raises(FieldError, match="'titel'"):
        await post_values(db, Lower("titel"))
    with pytest.raises(FieldError, match="'nope'"):
        await post_values(db, Case(When(nope=1, then=1)))
    with pytest.raises(ValueError, match="date, datetime or time"):
        await post_values(db, ExtractYear("title"))
    with pytest.raises(ValueError, match="pos must be greater than 0"):
        Substr("title", 0)


def test_functions_module_mirrors_django() -> None:
    assert functions.Lower is Lower
    assert {"Cast", "Coalesce", "Concat", "Extract", "Trunc", "Now"} <= set(functions.__all__)
    assert repr(TruncMonth("created_at")) == "TruncMonth(F('created_at'), 'month')"
