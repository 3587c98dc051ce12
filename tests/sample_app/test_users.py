"""A user's tests written against the flash_db_session fixture (no table cleanup anywhere).

The two tests create the same unique email: the second passes only because the
first one's rows were rolled back.
"""

from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from flash_db import atomic, on_commit
from flash_db.testing import assert_num_queries
from tests.models import Tag, User


async def test_signup_creates_a_user(flash_db_session: AsyncSession) -> None:
    db = flash_db_session
    assert await User.objects.count(db) == 0
    user = await User.objects.create(db, name="Ann", email="ann@example.com")
    async with assert_num_queries(db, 1):
        assert await User.objects.filter(email="ann@example.com").exists(db)
    assert user.pk is not None


async def test_signup_again_sees_a_clean_database(flash_db_session: AsyncSession) -> None:
    db = flash_db_session
    assert await User.objects.count(db) == 0
    await User.objects.create(db, name="Ann", email="ann@example.com")
    with pytest.raises(IntegrityError):
        await User.objects.create(db, name="Ann", email="ann@example.com")
    assert await User.objects.count(db) == 1  # the failed write left the test usable


async def test_atomic_blocks_behave_as_in_production(flash_db_session: AsyncSession) -> None:
    db = flash_db_session
    sent: list[str] = []
    async with atomic(db):
        await Tag.objects.create(db, name="kept")
        on_commit(db, lambda: sent.append("mail"))
    with pytest.raises(RuntimeError):
        async with atomic(db):
            await Tag.objects.create(db, name="rolled back")
            raise RuntimeError("undo")
    assert await Tag.objects.values_list("name", flat=True).fetch(db) == ["kept"]
    assert sent == ["mail"]
