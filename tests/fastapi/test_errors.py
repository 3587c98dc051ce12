"""The exception handlers: 404/409/422/400 bodies that name fields, never SQL or row values."""

from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from flash_db import ValidationError
from flash_db_fastapi import Session, add_exception_handlers, exception_handlers, flash_lifespan
from tests.fastapi.conftest import Serve
from tests.fastapi.models import Wallet
from tests.models import Comment, Post, User


def _app(url: str, *, register: str = "add") -> FastAPI:
    if register == "constructor":
        return FastAPI(lifespan=flash_lifespan(url), exception_handlers=exception_handlers)
    app = FastAPI(lifespan=flash_lifespan(url))
    add_exception_handlers(app)
    return app


def _assert_no_leak(body: str, *values: str) -> None:
    for word in ("SELECT", "INSERT", "UPDATE", "DELETE", "Traceback", "sqlalchemy", *values):
        assert word not in body


@pytest.mark.parametrize("register", ["add", "constructor"])
async def test_does_not_exist_is_404(backend_url: str, serve: Serve, register: str) -> None:
    app = _app(backend_url, register=register)

    @app.get("/users/{user_id}")
    async def read_user(user_id: int, db: Session) -> dict[str, Any]:
        user = await User.objects.get(db, id=user_id)
        return {"name": user.name}

    async with serve(app) as client:
        response = await client.get("/users/4242")
    assert response.status_code == 404
    assert response.json() == {"detail": "User not found."}


async def test_multiple_objects_returned_is_409(
    backend_url: str, db: AsyncSession, serve: Serve
) -> None:
    app = _app(backend_url)
    for n in range(2):
        await User.objects.create(db, name="Twin", email=f"twin{n}@example.com")

    @app.get("/users/by-name/{name}")
    async def by_name(name: str, db: Session) -> dict[str, Any]:
        user = await User.objects.get(db, name=name)
        return {"id": user.id}

    async with serve(app) as client:
        response = await client.get("/users/by-name/Twin")
    assert response.status_code == 409
    assert response.json() == {"detail": "More than one User matched; expected exactly one."}


async def test_unique_violation_is_409_naming_the_field(
    backend_url: str, db: AsyncSession, serve: Serve
) -> None:
    app = _app(backend_url)
    await User.objects.create(db, name="Ann", email="ann@example.com")

    @app.post("/users")
    async def create(email: str, db: Session) -> dict[str, Any]:
        user = await User.objects.create(db, name="Other", email=email)
        return {"id": user.id}

    async with serve(app) as client:
        response = await client.post("/users", params={"email": "ann@example.com"})
    assert response.status_code == 409
    assert response.json() == {"detail": "A User with this email already exists."}
    _assert_no_leak(response.text, "ann@example.com")


async def test_missing_foreign_key_is_409_naming_the_field(
    backend_url: str, db: AsyncSession, serve: Serve
) -> None:
    app = _app(backend_url)

    @app.post("/comments")
    async def create(post_id: int, db: Session) -> dict[str, Any]:
        comment = await Comment.objects.create(db, text="hi", post_id=post_id)
        return {"id": comment.id}

    async with serve(app) as client:
        response = await client.post("/comments", params={"post_id": 987654})
    assert response.status_code == 409
    if db.get_bind().dialect.name == "postgresql":
        expected = "The Comment post_id refers to a row that does not exist."
    else:  # SQLite's message names no column
        expected = "The Comment refers to a row that does not exist."
    assert response.json() == {"detail": expected}
    _assert_no_leak(response.text, "987654")


async def test_deleting_a_referenced_row_is_409(
    backend_url: str, db: AsyncSession, serve: Serve
) -> None:
    app = _app(backend_url)
    author = await User.objects.create(db, name="Ann", email="ann@example.com")
    await Post.objects.create(db, title="t", author_id=author.id)

    @app.delete("/users/{user_id}")
    async def delete(user_id: int, db: Session) -> None:
        await User.objects.filter(id=user_id).delete(db)

    async with serve(app) as client:
        response = await client.delete(f"/users/{author.id}")
    assert response.status_code == 409
    assert response.json() == {
        "detail": "The User is still referenced by other rows and cannot be deleted."
    }


async def test_not_null_violation_is_422(backend_url: str, serve: Serve) -> None:
    app = _app(backend_url)

    @app.post("/users")
    async def create(db: Session) -> None:
        await User.objects.create(db, name=None, email="x@example.com", validate=False)

    async with serve(app) as client:
        response = await client.post("/users")
    assert response.status_code == 422
    assert response.json() == {"detail": "The User name may not be null."}


async def test_check_violation_is_422_naming_the_constraint(backend_url: str, serve: Serve) -> None:
    app = _app(backend_url)

    @app.post("/wallets")
    async def create(db: Session) -> None:
        await Wallet.objects.create(db, name="", validate=False)

    async with serve(app) as client:
        response = await client.post("/wallets")
    assert response.status_code == 422
    assert response.json() == {
        "detail": "The Wallet violates the check constraint api_wallet_name_not_empty."
    }


async def test_validation_error_is_422_in_fastapi_shape(backend_url: str, serve: Serve) -> None:
    app = _app(backend_url)

    @app.post("/check")
    async def check() -> None:
        raise ValidationError(
            {"name": "Too short.", "__all__": ["Pick another.", "Really."], "age": ["Bad."]}
        )

    async with serve(app) as client:
        response = await client.post("/check")
    assert response.status_code == 422
    assert response.json() == {
        "detail": [
            {"loc": ["body", "name"], "msg": "Too short.", "type": "value_error"},
            {"loc": ["body"], "msg": "Pick another. Really.", "type": "value_error"},
            {"loc": ["body", "age"], "msg": "Bad.", "type": "value_error"},
        ]
    }


async def test_clean_rule_is_422(backend_url: str, db: AsyncSession, serve: Serve) -> None:
    app = _app(backend_url)

    @app.post("/wallets")
    async def create(balance: int, db: Session) -> dict[str, Any]:
        account = await Wallet.objects.create(db, name="a", balance=balance)
        return {"id": account.id}

    async with serve(app) as client:
        response = await client.post("/wallets", params={"balance": -5})
    assert response.status_code == 422
    assert response.json()["detail"] == [
        {
            "loc": ["body", "balance"],
            "msg": "The balance may not be negative.",
            "type": "value_error",
        }
    ]
    assert await Wallet.objects.count(db) == 0


async def test_field_error_from_a_query_parameter_is_400(backend_url: str, serve: Serve) -> None:
    app = _app(backend_url)

    @app.get("/users")
    async def list_users(order_by: str, db: Session) -> list[str]:
        return [user.name for user in await User.objects.order_by(order_by).fetch(db)]

    async with serve(app) as client:
        response = await client.get("/users", params={"order_by": "passwrd"})
        ok = await client.get("/users", params={"order_by": "-name"})
    assert response.status_code == 400
    assert "'passwrd'" in response.json()["detail"]
    assert "Choices are:" in response.json()["detail"]
    assert ok.status_code == 200
