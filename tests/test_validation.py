"""Validation: field checks, sync and async clean(), and failed validated writes writing nothing."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

import flash_db
from flash_db import ValidationError
from flash_db.testing import assert_num_queries
from tests.models import Booking, Event, Gauge, Post, Status, User


def test_full_clean_reports_every_field_check() -> None:
    user = User(name=None, email="e" * 201)
    with pytest.raises(ValidationError) as info:
        user.full_clean()
    assert info.value.errors == {
        "name": ["This field cannot be null."],
        "email": ["Ensure this value has at most 200 characters (it has 201)."],
    }
    assert "name: This field cannot be null." in str(info.value)


def test_full_clean_checks_enum_membership() -> None:
    post = Post(title="t", author_id=1, status="archived")
    with pytest.raises(ValidationError) as info:
        post.full_clean()
    assert info.value.errors == {
        "status": ["Value 'archived' is not a valid choice. Choices are: draft, published."]
    }
    Post(title="t", author_id=1, status=Status.PUBLISHED).full_clean()


def test_full_clean_accepts_defaults_nullable_columns_and_related_objects() -> None:
    User(name="n", email="e").full_clean()  # id, age, company_id and timestamps may be empty
    author = User(name="a", email="a@x")
    Post(title="t", author=author).full_clean()  # author_id comes from the related object
    with pytest.raises(ValidationError) as info:
        Post(title="t").full_clean()
    assert info.value.errors == {"author_id": ["This field cannot be null."]}


def test_clean_runs_after_failed_field_checks_and_errors_merge() -> None:
    event = Event(title="x" * 21, starts=5, ends=1)
    with pytest.raises(ValidationError) as info:
        event.full_clean()
    assert info.value.errors == {
        "title": ["Ensure this value has at most 20 characters (it has 21)."],
        "ends": ["Must not be before starts."],
    }


def test_full_clean_refuses_an_async_clean() -> None:
    with pytest.raises(TypeError, match=r"Booking.clean\(\) is async.*afull_clean"):
        Booking(room="a").full_clean()


async def test_afull_clean_awaits_an_async_clean() -> None:
    with pytest.raises(ValidationError) as info:
        await Booking(room="closed").afull_clean()
    assert info.value.errors == {"__all__": ["The room is closed."]}
    await Booking(room="open").afull_clean()
    with pytest.raises(ValidationError):
        await Event(title="t", starts=2, ends=1).afull_clean()  # sync clean works too


async def test_create_validation_failure_writes_nothing(
    db: AsyncSession, database: flash_db.Database
) -> None:
    async with assert_num_queries(db, 0):
        with pytest.raises(ValidationError) as info:
            await User.objects.create(db, name="n" * 101, email="a@x")
    assert info.value.errors == {
        "name": ["Ensure this value has at most 100 characters (it has 101)."]
    }
    with pytest.raises(ValidationError) as async_info:
        await Booking.objects.create(db, room="closed")
    assert async_info.value.errors == {"__all__": ["The room is closed."]}
    async with database.session() as fresh:
        assert await User.objects.count(fresh) == 0
        assert await Booking.objects.count(fresh) == 0
    # The session is still usable after a failed validation.
    assert (await Booking.objects.create(db, room="open")).pk is not None


async def test_save_validation_failure_leaves_the_row_unchanged(
    db: AsyncSession, database: flash_db.Database
) -> None:
    event = await Event.objects.create(db, title="ok", starts=1, ends=2)
    event.ends = 0
    event.title = "still fine"
    with pytest.raises(ValidationError) as info:
        await event.save(db)
    assert list(info.value.errors) == ["ends"]
    async with database.session() as fresh:
        stored = await Event.objects.get(fresh, pk=event.pk)
    assert (stored.title, stored.ends) == ("ok", 2)


async def test_validate_false_skips_validation(
    db: AsyncSession, database: flash_db.Database
) -> None:
    event = await Event.objects.create(db, title="t", starts=3, ends=1, validate=False)
    booking = Booking(room="closed")
    await booking.save(db, validate=False)
    async with database.session() as fresh:
        assert (await Event.objects.get(fresh, pk=event.pk)).ends == 1
        assert await Booking.objects.filter(room="closed").exists(fresh)


async def test_save_update_fields_checks_only_those_fields(
    db: AsyncSession, database: flash_db.Database
) -> None:
    user = await User.objects.create(db, name="n", email="a@x")
    user.email = "e" * 300  # invalid, but not written
    user.age = 40
    await user.save(db, update_fields=["age"])
    user.name = "x" * 101
    with pytest.raises(ValidationError) as info:
        await user.save(db, update_fields=["name"])
    assert list(info.value.errors) == ["name"]
    async with database.session() as fresh:
        stored = await User.objects.get(fresh, pk=user.pk)
    assert (stored.name, stored.email, stored.age) == ("n", "a@x", 40)


def test_validation_error_shapes() -> None:
    assert ValidationError("bad").errors == {"__all__": ["bad"]}
    assert ValidationError(["a", "b"]).errors == {"__all__": ["a", "b"]}
    error = ValidationError({"name": "short", "age": ["low", "odd"]})
    assert error.errors == {"name": ["short"], "age": ["low", "odd"]}
    assert str(error) == "name: short; age: low; odd"
    assert isinstance(error, ValueError)


def test_full_clean_checks_integer_ranges_and_nul_characters() -> None:
    user = User(name="a\x00b", email="e", age=2**31)
    with pytest.raises(ValidationError) as info:
        user.full_clean()
    assert info.value.errors == {
        "name": ["Null characters are not allowed."],
        "age": ["Ensure this value is less than or equal to 2147483647."],
    }
    gauge = Gauge(small=-(2**15) - 1, big=2**63, level=2**31)
    with pytest.raises(ValidationError) as gauge_info:
        gauge.full_clean()
    assert gauge_info.value.errors == {
        "small": ["Ensure this value is greater than or equal to -32768."],
        "big": ["Ensure this value is less than or equal to 9223372036854775807."],
        "level": ["Ensure this value is less than or equal to 2147483647."],  # a TypeDecorator
    }
    Gauge(small=-(2**15), big=2**63 - 1, level=-(2**31)).full_clean()
    Post(title="t", author_id=1, published=True, status=Status.DRAFT).full_clean()  # not integers


async def test_create_and_save_reject_out_of_range_integers_and_nul_without_sql(
    db: AsyncSession, database: flash_db.Database
) -> None:
    async with assert_num_queries(db, 0):
        with pytest.raises(ValidationError) as info:
            await User.objects.create(db, name="n", email="a@x", age=2**40)
        with pytest.raises(ValidationError) as big_info:
            await Gauge.objects.create(db, big=2**63)
    assert list(info.value.errors) == ["age"]
    assert list(big_info.value.errors) == ["big"]
    user = await User.objects.create(db, name="n", email="a@x", age=30)
    user.name = "\x00"
    with pytest.raises(ValidationError) as save_info:
        await user.save(db)
    assert save_info.value.errors == {"name": ["Null characters are not allowed."]}
    async with database.session() as fresh:
        assert (await User.objects.get(fresh, pk=user.pk)).name == "n"
        assert await Gauge.objects.count(fresh) == 0
