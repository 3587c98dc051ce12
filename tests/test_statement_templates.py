"""Statements built once per QuerySet shape and run with each call's values.

A template must give exactly the rows a freshly built statement gives, and
values whose SQL depends on the value (None, out-of-range integers, NUL
characters) must never reuse a statement built for another value.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from flash_db import compiler
from flash_db.testing import capture_queries
from tests.models import Company, Gauge, Note, Product, User


async def _users(db: AsyncSession) -> list[User]:
    return [
        await User.objects.create(db, name=f"u{i}", email=f"u{i}@x.org", age=None if i == 3 else i)
        for i in range(6)
    ]


def _count_builds(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the statements the compiler builds (every template miss builds one), from none."""
    monkeypatch.setattr(compiler, "_TEMPLATES", type(compiler._TEMPLATES)())  # no templates yet
    built = [0]
    select = compiler._select
    count_statement = compiler.count_statement

    def counting_select(*args: Any, **kwargs: Any) -> Any:
        built[0] += 1
        return select(*args, **kwargs)

    def counting_count(*args: Any, **kwargs: Any) -> Any:
        built[0] += 1
        return count_statement(*args, **kwargs)

    monkeypatch.setattr(compiler, "_select", counting_select)
    monkeypatch.setattr(compiler, "count_statement", counting_count)
    return built


async def test_each_call_gets_its_own_values(db: AsyncSession) -> None:
    users = await _users(db)
    for user in users:
        assert (await User.objects.get(db, pk=user.id)).email == user.email
        found = await User.objects.filter(email=user.email).first(db)
        assert found is not None
        assert found.id == user.id
    ages = [
        [u.name for u in await User.objects.filter(age__gte=k).order_by("id").fetch(db)]
        for k in (0, 2, 4)
    ]
    assert ages == [["u0", "u1", "u2", "u4", "u5"], ["u2", "u4", "u5"], ["u4", "u5"]]
    assert [await User.objects.filter(age__lt=k).count(db) for k in (1, 3, 9)] == [1, 3, 5]
    both = User.objects.filter(age__gt=0).filter(age__lte=4, name__gt="u1")
    assert [u.name for u in await both.order_by("-id").fetch(db)] == ["u4", "u2"]
    assert await User.objects.filter(age__gt=0).values_list("name", flat=True).order_by("id").fetch(
        db
    ) == ["u1", "u2", "u4", "u5"]
    with pytest.raises(User.DoesNotExist):
        await User.objects.get(db, pk=users[-1].id + 100)
    assert [await User.objects.filter(age__gt=k).exists(db) for k in (4, 5)] == [True, False]
    assert [await User.objects.filter(name=n).exists(db) for n in ("u1", "x")] == [True, False]


async def test_a_statement_is_built_once_per_shape(
    db: AsyncSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    users = await _users(db)
    built = _count_builds(monkeypatch)
    for user in users:
        await User.objects.get(db, pk=user.id)
    assert built[0] == 1
    for k in range(5):
        await User.objects.filter(age=k).count(db)
        await User.objects.filter(age=k).order_by("id")[:2].fetch(db)
    assert built[0] == 3
    await User.objects.filter(age=1).order_by("-id")[:2].fetch(db)  # another ordering
    await User.objects.filter(age=1).order_by("id")[:3].fetch(db)  # another slice
    await User.objects.filter(name="u1").count(db)  # another field
    assert built[0] == 6
    async with capture_queries(db) as queries:
        await User.objects.filter(age=1).count(db)
        await User.objects.filter(age=2).count(db)
    assert len(queries) == 2
    assert queries.statements[0] == queries.statements[1]


async def test_none_is_part_of_the_shape(db: AsyncSession) -> None:
    await _users(db)
    assert await User.objects.filter(age=1).count(db) == 1
    assert [u.name for u in await User.objects.filter(age=None).fetch(db)] == ["u3"]
    assert await User.objects.filter(age=None).count(db) == 1
    assert await User.objects.filter(age=2).count(db) == 1
    assert [u.name for u in await User.objects.filter(age__exact=None).fetch(db)] == ["u3"]
    with pytest.raises(ValueError, match="isnull"):
        await User.objects.filter(age__gt=None).fetch(db)


async def test_values_outside_a_columns_range_match_nothing(db: AsyncSession) -> None:
    gauge = await Gauge.objects.create(db, small=5, big=2**40, level=7)
    assert await Gauge.objects.filter(small=5).count(db) == 1
    assert await Gauge.objects.filter(small=2**20).count(db) == 0  # beyond SMALLINT
    assert await Gauge.objects.filter(small__lt=2**20).count(db) == 1
    assert await Gauge.objects.filter(small=5).count(db) == 1
    assert (await Gauge.objects.get(db, big=2**40)).id == gauge.id
    assert await Gauge.objects.filter(big=2**70).fetch(db) == []
    assert await Gauge.objects.filter(pk=2**40).fetch(db) == []
    assert (await Gauge.objects.get(db, pk=gauge.id)).big == 2**40


async def test_nul_characters_are_refused_every_time(db: AsyncSession) -> None:
    await Company.objects.create(db, name="acme")
    assert await Company.objects.filter(name="acme").count(db) == 1
    for _ in range(2):
        with pytest.raises(ValueError, match="NUL"):
            await Company.objects.filter(name="ac\x00me").count(db)
    assert await Company.objects.filter(name="acme").count(db) == 1


async def test_value_types_bind_as_the_column_does(db: AsyncSession) -> None:
    await Product.objects.create(db, code="a", price=Decimal("1.50"))
    await Product.objects.create(db, code="b", price=Decimal("2.25"))
    assert await Product.objects.filter(price__gt=Decimal("2")).values_list(
        "code", flat=True
    ).fetch(db) == ["b"]
    assert await Product.objects.filter(price__gt=1.6).count(db) == 1
    assert (await Product.objects.get(db, pk="a")).price == Decimal("1.50")
    users = await _users(db)
    later = datetime.now(UTC).replace(year=2100)
    assert await User.objects.filter(created_at__lt=later).count(db) == len(users)
    assert await User.objects.filter(created_at__gt=later).count(db) == 0


async def test_soft_delete_filter_is_templated_with_the_rest(db: AsyncSession) -> None:
    notes = [await Note.objects.create(db, text=f"n{i}") for i in range(3)]
    await notes[1].delete(db)
    assert [n.text for n in await Note.objects.order_by("id").fetch(db)] == ["n0", "n2"]
    assert await Note.objects.filter(text="n1").count(db) == 0
    assert await Note.all_objects.filter(text="n1").count(db) == 1
    assert (await Note.objects.get(db, pk=notes[2].id)).text == "n2"
    with pytest.raises(Note.DoesNotExist):
        await Note.objects.get(db, pk=notes[1].id)


async def test_other_filters_are_built_per_call(
    db: AsyncSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _users(db)
    built = _count_builds(monkeypatch)
    for k in (1, 2):
        assert await User.objects.exclude(age=k).count(db) == 5  # NULL age kept, as Django
        assert await User.objects.filter(age__in=[k, 4]).count(db) == 2
        assert await User.objects.filter(name__startswith=f"u{k}").count(db) == 1
        assert await User.objects.filter(company__name="none").count(db) == 0
    assert built[0] == 8
