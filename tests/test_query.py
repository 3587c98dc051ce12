"""The core QuerySet: laziness, builders, slicing, values, and every terminal method."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

import flash_db
from flash_db import DoesNotExist, F, FieldError, MultipleObjectsReturned
from flash_db.testing import assert_num_queries, capture_queries
from tests.models import Post, Product, User


async def make_users(db: AsyncSession) -> list[User]:
    """Create five users with ages 10..50 (carol has none)."""
    users = []
    for i, name in enumerate(["alice", "bob", "carol", "dave", "erin"], start=1):
        age = None if name == "carol" else i * 10
        users.append(await User.objects.create(db, name=name, email=f"{name}@x", age=age))
    return users


async def test_builders_are_lazy_and_immutable(db: AsyncSession) -> None:
    await make_users(db)
    base = User.objects.all()
    async with assert_num_queries(db, 0):
        filtered = base.filter(age__gte=30).order_by("-age").limit(2)
        assert filtered is not base
    assert len(await base.fetch(db)) == 5
    assert [u.name for u in await filtered.fetch(db)] == ["erin", "dave"]


async def test_filter_with_expressions_and_keywords(db: AsyncSession) -> None:
    await make_users(db)
    qs = User.objects.filter(User.age > 15, name__in=["bob", "dave", "alice"])
    assert sorted(u.name for u in await qs.fetch(db)) == ["bob", "dave"]
    assert [u.name for u in await User.objects.filter(age=None).fetch(db)] == ["carol"]


async def test_exclude_keeps_nulls(db: AsyncSession) -> None:
    await make_users(db)
    names = User.objects.exclude(age=20).order_by("name").values_list("name", flat=True)
    assert await names.fetch(db) == ["alice", "carol", "dave", "erin"]


async def test_order_by_replaces_and_reverse_flips(db: AsyncSession) -> None:
    await make_users(db)
    qs = User.objects.order_by("name").order_by("-email")
    assert [u.name for u in await qs.fetch(db)] == ["erin", "dave", "carol", "bob", "alice"]
    assert (await qs.reverse().fetch(db))[0].name == "alice"
    by_expr = await User.objects.order_by(User.name.desc()).values_list("name", flat=True).fetch(db)
    assert by_expr[0] == "erin"
    by_f = User.objects.order_by(F("age").desc(nulls_last=True)).values_list("name", flat=True)
    assert (await by_f.fetch(db))[-1] == "carol"
    by_pk = User.objects.order_by("-pk").values_list("name", flat=True)
    assert (await by_pk.fetch(db))[0] == "erin"


async def test_slicing_is_limit_offset_and_rejects_negative(db: AsyncSession) -> None:
    await make_users(db)
    qs = User.objects.order_by("id")
    assert [u.name for u in await qs[1:3].fetch(db)] == ["bob", "carol"]
    assert [u.name for u in await qs[1:][1:2].fetch(db)] == ["carol"]
    assert [u.name for u in await qs.offset(3).fetch(db)] == ["dave", "erin"]
    with pytest.raises(ValueError, match="Negative"):
        qs[-1:]
    with pytest.raises(TypeError, match="slicing"):
        qs[0]  # type: ignore[index]
    # Beyond a 64-bit integer no database takes the number: refused before any SQL.
    assert await qs[2**63 - 1 :].fetch(db) == []
    with pytest.raises(ValueError, match=r"at most 2\*\*63 - 1"):
        qs[2**63 :]
    with pytest.raises(ValueError, match=r"at most 2\*\*63 - 1"):
        qs.offset(2**63)
    with pytest.raises(ValueError, match=r"at most 2\*\*63 - 1"):
        qs.limit(2**70)


async def test_distinct(db: AsyncSession) -> None:
    await make_users(db)
    await User.objects.create(db, name="alice", email="alice2@x")
    names = User.objects.distinct().order_by("name").values_list("name", flat=True)
    assert await names.fetch(db) == ["alice", "bob", "carol", "dave", "erin"]
    assert await User.objects.distinct().values_list("name", flat=True).count(db) == 5


async def test_values_and_values_list(db: AsyncSession) -> None:
    await make_users(db)
    qs = User.objects.filter(name__in=["alice", "bob"]).order_by("name")
    assert await qs.values("name", "age").fetch(db) == [
        {"name": "alice", "age": 10},
        {"name": "bob", "age": 20},
    ]
    assert await qs.values_list("name", "age").fetch(db) == [("alice", 10), ("bob", 20)]
    rows = await qs.values_list("name", "age", named=True).fetch(db)
    assert rows[0].name == "alice"
    assert rows[1].age == 20
    assert await qs.values_list("pk", flat=True).count(db) == 2
    everything = await qs.values().first(db)
    assert everything is not None
    assert set(everything) >= {"id", "name", "email", "age", "created_at"}
    with pytest.raises(TypeError, match="exactly one field"):
        qs.values_list("name", "age", flat=True)


async def test_first_last_default_to_pk_order(db: AsyncSession) -> None:
    assert await User.objects.first(db) is None
    users = await make_users(db)
    first = await User.objects.first(db)
    last = await User.objects.last(db)
    assert first is not None
    assert last is not None
    assert (first.pk, last.pk) == (users[0].pk, users[-1].pk)
    oldest = await User.objects.filter(age__isnull=False).order_by("age").last(db)
    assert oldest is not None
    assert oldest.name == "erin"


async def test_get_raises_model_specific_errors(db: AsyncSession) -> None:
    await make_users(db)
    assert (await User.objects.get(db, name="bob")).email == "bob@x"
    assert (await User.objects.filter(age__gt=15).get(db, User.name == "dave")).age == 40
    with pytest.raises(User.DoesNotExist) as missing:
        await User.objects.get(db, name="zed")
    assert isinstance(missing.value, DoesNotExist)
    assert isinstance(missing.value, ValueError)
    assert "User matching query does not exist" in str(missing.value)
    with pytest.raises(User.MultipleObjectsReturned, match="it returned 4!"):
        await User.objects.get(db, age__isnull=False)
    with pytest.raises(MultipleObjectsReturned):
        await User.objects.get(db)


async def test_other_models_does_not_exist_does_not_catch(db: AsyncSession) -> None:
    with pytest.raises(User.DoesNotExist):
        try:
            await User.objects.get(db, pk=123)
        except Post.DoesNotExist:  # pragma: no cover - must not match
            pytest.fail("Post.DoesNotExist caught a missing User")
    assert not issubclass(User.DoesNotExist, Post.DoesNotExist)
    assert issubclass(User.DoesNotExist, DoesNotExist)


async def test_count_and_exists_load_no_rows(db: AsyncSession) -> None:
    await make_users(db)
    async with capture_queries(db) as captured:
        assert await User.objects.filter(age__gte=30).count(db) == 2
        assert await User.objects.filter(name="bob").exists(db)
        assert not await User.objects.filter(name="zed").exists(db)
        assert await User.objects.order_by("id")[1:3].count(db) == 2
    assert "count(*)" in captured.statements[0].lower()
    assert "exists" in captured.statements[1].lower()


async def test_in_bulk(db: AsyncSession) -> None:
    users = await make_users(db)
    by_pk = await User.objects.in_bulk(db, [users[0].pk, users[2].pk])
    assert {key: u.name for key, u in by_pk.items()} == {users[0].pk: "alice", users[2].pk: "carol"}
    by_email = await User.objects.in_bulk(db, ["bob@x"], field_name="email")
    assert list(by_email) == ["bob@x"]
    assert len(await User.objects.in_bulk(db)) == 5
    assert await User.objects.in_bulk(db, []) == {}


async def test_latest_and_earliest(db: AsyncSession) -> None:
    with pytest.raises(User.DoesNotExist):
        await User.objects.latest(db)
    await make_users(db)
    assert (await User.objects.latest(db, "age")).name == "erin"
    assert (await User.objects.earliest(db, "age")).name == "alice"
    assert (await User.objects.latest(db)).name == "erin"


async def test_update_with_values_and_f(db: AsyncSession, database: flash_db.Database) -> None:
    users = await make_users(db)
    before = users[0].updated_at
    assert await User.objects.filter(age__isnull=False).update(db, age=F("age") + 1) == 4
    assert await User.objects.filter(name="carol").update(db, name="caroline") == 1
    async with database.session() as fresh:
        rows = await User.objects.order_by("id").values_list("name", "age").fetch(fresh)
        alice = await User.objects.get(fresh, name="alice")
    assert rows == [("alice", 11), ("bob", 21), ("caroline", None), ("dave", 41), ("erin", 51)]
    assert alice.updated_at > before
    with pytest.raises(TypeError, match="sliced"):
        await User.objects.all()[:2].update(db, age=1)


async def test_delete_returns_count(db: AsyncSession, database: flash_db.Database) -> None:
    await make_users(db)
    async with assert_num_queries(db, 1):
        assert await User.objects.filter(age__lt=25).delete(db) == 2
    async with database.session() as fresh:
        assert await User.objects.count(fresh) == 3


async def test_string_primary_key_works_as_pk(db: AsyncSession) -> None:
    await Product.objects.create(db, code="A-1", price=3)
    await Product.objects.create(db, code="B-2", price=5)
    product = await Product.objects.get(db, pk="B-2")
    assert product.pk == "B-2"
    assert await Product.objects.filter(pk__in=["A-1"]).count(db) == 1
    assert await Product.objects.order_by("-pk").values_list("pk", flat=True).fetch(db) == [
        "B-2",
        "A-1",
    ]


@pytest.mark.parametrize(
    ("call", "bad"),
    [
        (lambda: User.objects.filter(nmae="x"), "nmae"),
        (lambda: User.objects.order_by("-nmae"), "nmae"),
        (lambda: User.objects.values("nmae"), "nmae"),
        (lambda: User.objects.filter(age__gt=F("nmae")), "nmae"),
    ],
)
async def test_field_error_names_model_and_choices_before_sql(
    db: AsyncSession, call: Any, bad: str
) -> None:
    async with assert_num_queries(db, 0):
        with pytest.raises(FieldError) as info:
            await call().fetch(db)
    message = str(info.value)
    assert f"'{bad}'" in message
    assert "User" in message
    assert "Choices are:" in message
    assert "email" in message
    assert info.value.model is User


async def test_update_unknown_field_is_field_error(db: AsyncSession) -> None:
    async with assert_num_queries(db, 0):
        with pytest.raises(FieldError, match="nmae"):
            await User.objects.update(db, nmae="x")
