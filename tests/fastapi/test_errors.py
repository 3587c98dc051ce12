"""The exception handlers: 404/409/422/400 bodies that name fields, never SQL or row values."""

import asyncio
from typing import Annotated, Any

import pytest
from fastapi import FastAPI, HTTPException, Request
from pydantic import BaseModel, ConfigDict
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

import flash_db
from flash_db import ValidationError, atomic
from flash_db_fastapi import Session, add_exception_handlers, exception_handlers, flash_lifespan
from flash_db_fastapi.schemas import NO_NUL
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
    async def list_users(order_by: str, db: Session) -> list[UserName]:
        return [UserName(name=u.name) for u in await User.objects.order_by(order_by).fetch(db)]

    @app.get("/names")
    async def list_names(order_by: str, db: Session) -> list[str]:
        return [user.name for user in await User.objects.order_by(order_by).fetch(db)]

    async with serve(app) as client:
        response = await client.get("/users", params={"order_by": "passwrd"})
        bare = await client.get("/names", params={"order_by": "passwrd"})
        ok = await client.get("/users", params={"order_by": "-name"})
    assert response.status_code == 400
    # Only the fields the route shows are offered: never email, age or company_id.
    assert response.json() == {"detail": "Cannot resolve field 'passwrd'. Choices are: name."}
    assert bare.json() == {"detail": "Cannot resolve field 'passwrd'."}
    assert ok.status_code == 200


class UserName(BaseModel):
    name: str


async def test_a_200_hop_path_is_a_field_error_not_a_recursion_error(
    backend_url: str, serve: Serve
) -> None:
    app = _app(backend_url)

    @app.get("/users")
    async def list_users(path: str, db: Session) -> list[str]:
        return [user.name for user in await User.objects.filter(**{path: "x"}).fetch(db)]

    async with serve(app) as client:
        response = await client.get("/users", params={"path": "__".join(["posts__author"] * 100)})
    assert response.status_code == 400
    assert "at most 24" not in response.text  # the route's message names no internals
    assert response.json()["detail"].startswith("Cannot resolve field 'posts__author__")


async def test_invalid_value_is_422_and_names_the_field(backend_url: str, serve: Serve) -> None:
    app = _app(backend_url)

    @app.get("/users/by-name/{name}")
    async def by_name(name: str, db: Session) -> list[str]:
        return [user.name for user in await User.objects.filter(name=name).fetch(db)]

    async with serve(app) as client:
        nul = await client.get("/users/by-name/a%00b")
        ok = await client.get("/users/by-name/ab")
    assert nul.status_code == 422
    assert nul.json()["detail"].startswith("Invalid value for 'name': expected text without NUL")
    assert ok.json() == []


def _render(request: Request, status_code: int, detail: Any) -> dict[str, Any]:
    return {"error": {"status": status_code, "detail": detail, "path": request.url.path}}


async def test_pool_timeout_is_503_with_retry_after_in_the_rendered_shape(
    backend_url: str, serve: Serve
) -> None:
    # One connection, a 0.2 s checkout timeout: a second session in one request waits, then 503.
    app = FastAPI(
        lifespan=flash_lifespan(backend_url, pool_size=1, max_overflow=0, pool_timeout=0.2)
    )
    add_exception_handlers(app, render=_render)

    @app.get("/hold")
    async def hold(db: Session) -> int:
        await User.objects.count(db)
        async with flash_db.session() as other:
            return await User.objects.count(other)

    @app.get("/missing")
    async def missing(db: Session) -> int:
        return (await User.objects.get(db, pk=1)).age or 0

    async with serve(app) as client:
        busy = await client.get("/hold")
        not_found = await client.get("/missing")
    assert busy.status_code == 503
    assert busy.headers["Retry-After"] == "1"
    assert busy.json() == {
        "error": {
            "status": 503,
            "detail": "The database is unavailable or busy; try again shortly.",
            "path": "/hold",
        }
    }
    assert not_found.status_code == 404
    assert not_found.json()["error"]["detail"] == "User not found."


async def test_a_connection_lost_mid_request_is_503_with_retry_after(
    backend_url: str, serve: Serve
) -> None:
    """The server ends the request's connection inside ``atomic``: 503, then the app recovers.

    SQLAlchemy's asyncpg adapter reports it as a bare ``DBAPIError`` with
    ``connection_invalidated`` (a PostgreSQL restart did this under load, test_faults.py).
    """
    if not backend_url.startswith("postgresql"):
        pytest.skip("needs pg_terminate_backend")
    app = _app(backend_url)

    @app.post("/lost")
    async def lost(db: Session) -> int:
        pid = (await db.execute(text("SELECT pg_backend_pid()"))).scalar_one()

        async def terminate() -> None:
            await asyncio.sleep(0.3)  # the statement below is in flight by then
            async with flash_db.session() as other:
                await other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})

        killer = asyncio.create_task(terminate())
        try:
            async with atomic(db):
                await User.objects.create(db, name="lost", email="lost@example.com")
                await db.execute(text("SELECT pg_sleep(5)"))
        finally:
            await killer
        return 1

    @app.get("/count")
    async def count(db: Session) -> int:
        return await User.objects.filter(name__startswith="lost").count(db)

    async with serve(app) as client:
        response = await client.post("/lost")
        after = await client.get("/count")
    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"] == "1"
    assert response.json() == {"detail": "The database is unavailable or busy; try again shortly."}
    assert after.json() == 0


@pytest.mark.parametrize(
    "raw",
    [
        b'{"name": 1e400, "age": 1}',
        b'{"name": NaN, "age": 1}',
        b'{"name": "x", "age": 1e400}',
        b'{"name": "\\ud800", "age": 1}',
        b'{"name": "x", "age": 1, "\\ud800": 1}',
        b'{"name": "x", "age": Infinity}',
    ],
)
async def test_unrepresentable_json_is_422_and_never_echoed(
    backend_url: str, serve: Serve, raw: bytes
) -> None:
    app = _app(backend_url)

    class Person(BaseModel):
        model_config = ConfigDict(extra="forbid")
        name: Annotated[str, NO_NUL]
        age: int

    @app.post("/people")
    async def create(person: Person) -> dict[str, str]:
        return {"name": person.name}

    async with serve(app) as client:
        response = await client.post(
            "/people", content=raw, headers={"Content-Type": "application/json"}
        )
    assert response.status_code == 422, response.text
    body = response.json()
    # What JSON cannot hold exactly is never echoed (an unknown key's value 1 may be).
    assert all(entry.get("input", 1) == 1 for entry in body["detail"]), body
    assert "inf" not in response.text.lower()
    assert "nan" not in response.text.lower()
    assert "\\ud800" not in response.text


async def test_any_other_error_is_a_json_500(backend_url: str, serve: Serve) -> None:
    app = _app(backend_url)

    @app.get("/broken")
    async def broken() -> None:
        raise RuntimeError("secret internals")

    async with serve(app, raise_app_exceptions=False) as client:
        response = await client.get("/broken")
    assert response.status_code == 500
    assert response.json() == {"detail": "Internal server error."}


async def test_http_exception_keeps_status_and_headers_under_render(
    backend_url: str, serve: Serve
) -> None:
    app = FastAPI(lifespan=flash_lifespan(backend_url))
    add_exception_handlers(app, render=_render)

    @app.get("/private")
    async def private() -> None:
        raise HTTPException(401, "Sign in first.", headers={"WWW-Authenticate": "Bearer"})

    async with serve(app) as client:
        response = await client.get("/private")
        unknown = await client.get("/nowhere")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.json()["error"]["detail"] == "Sign in first."
    assert unknown.status_code == 404
    assert unknown.json()["error"]["status"] == 404
