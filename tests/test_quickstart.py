"""The original Flash DB quickstart, verbatim, on both databases; each step read back fresh."""

from __future__ import annotations

import flash_db
from flash_db import get_db
from tests.models import User


async def read_back(database: flash_db.Database) -> list[tuple[str, str]]:
    """Return (name, email) of every user through a fresh session."""
    async with database.session() as fresh:
        users = await User.objects.order_by("id").fetch(fresh)
        return [(user.name, user.email) for user in users]


async def create_user() -> None:
    async for db in get_db():
        user = await User.objects.create(db, name="John Doe", email="john.doe@example.com")
        assert user.id is not None


async def list_users() -> list[User]:
    async for db in get_db():
        users = await User.objects.all().fetch(db)
        return users  # noqa: RET504 - the quickstart, verbatim
    raise AssertionError("get_db() yielded nothing")  # pragma: no cover


async def find_user() -> User | None:
    async for db in get_db():
        user = await User.objects.filter(User.email == "john.doe@example.com").first(db)
        return user  # noqa: RET504 - the quickstart, verbatim
    raise AssertionError("get_db() yielded nothing")  # pragma: no cover


async def get_user() -> str:
    async for db in get_db():
        try:
            user = await User.objects.get(db, User.name == "John Doe")
        except ValueError:
            return "User not found or multiple users found."
        return user.email
    raise AssertionError("get_db() yielded nothing")  # pragma: no cover


async def update_user_email() -> None:
    async for db in get_db():
        await User.objects.filter(User.name == "John Doe").update(db, email="new.email@example.com")


async def delete_user() -> None:
    async for db in get_db():
        await User.objects.filter(User.name == "John Doe").delete(db)


async def test_quickstart_as_written(database: flash_db.Database) -> None:
    await create_user()
    assert await read_back(database) == [("John Doe", "john.doe@example.com")]

    users = await list_users()
    assert [u.email for u in users] == ["john.doe@example.com"]

    found = await find_user()
    assert found is not None
    assert found.name == "John Doe"
    assert found.created_at.tzinfo is not None

    assert await get_user() == "john.doe@example.com"

    await update_user_email()
    assert await read_back(database) == [("John Doe", "new.email@example.com")]

    await delete_user()
    assert await read_back(database) == []
    assert await get_user() == "User not found or multiple users found."
