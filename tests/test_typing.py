"""Static types of the public API, checked by ``mypy --strict`` over the suite (and run too)."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any, assert_type

from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from flash_db import Lower, Manager, QuerySet
from tests.models import Note, User


async def test_public_api_types(db: AsyncSession) -> None:
    assert_type(User.objects, Manager[User])
    assert_type(Note.all_objects, Manager[Note])
    qs = User.objects.filter(name="a").order_by("-id")
    assert_type(qs, QuerySet[User, User])

    created = await User.objects.create(db, name="a", email="a@x")
    assert_type(created, User)
    assert_type(await qs.fetch(db), list[User])
    assert_type(await qs.first(db), User | None)
    assert_type(await qs.last(db), User | None)
    assert_type(await User.objects.get(db, pk=created.pk), User)
    assert_type(await qs.count(db), int)
    assert_type(await qs.exists(db), bool)
    assert_type(await qs.in_bulk(db), dict[Any, User])
    assert_type(await qs.values("name").fetch(db), list[dict[str, Any]])
    assert_type(await qs.values_list("name").fetch(db), list[tuple[Any, ...]])
    assert_type(await qs.values_list("name", flat=True).fetch(db), list[Any])
    assert_type(await qs.values_list("name", named=True).fetch(db), list[Row[Any]])
    with_lower = qs.values_list("name", Lower("name"), low=Lower("name"))
    assert_type(await with_lower.fetch(db), list[tuple[Any, ...]])
    assert_type(User.objects.values_list(Lower("name"), flat=True), QuerySet[User, Any])
    assert_type(await qs.update(db, age=1), int)
    assert_type(await User.objects.latest(db), User)
    assert_type(qs.iterator(db), AsyncGenerator[User, None])
    assert_type(qs.stream(db), AsyncGenerator[User, None])
    assert (await qs.fetch(db))[0].name == "a"
