"""What a user's checker sees: ModelSchema classes as types, typed keys (mypy --strict, pyright).

Checked by ``mypy`` over the suite and by pyright in ``tests/test_typing_checkers.py``;
its functions also run there, so the sample stays true at run time.
"""

from __future__ import annotations

import datetime as dt
from typing import assert_type

from fastapi import FastAPI

from flash_db_fastapi import ModelSchema, Session
from tests.models import User

app = FastAPI()


class AuthorRead(ModelSchema, model=User):
    id: int
    name: str
    age: int | None


class AuthorCreate(ModelSchema, model=User, mode="create", exclude=["company_id"]):
    name: str
    email: str


@app.get("/authors/{author_id}")
async def read_author(author_id: int, db: Session) -> AuthorRead:
    author = await User.objects.get(db, pk=author_id)
    return AuthorRead.model_validate(author)


@app.get("/authors", response_model=list[AuthorRead])
async def list_authors(db: Session) -> list[AuthorRead]:
    return [AuthorRead.model_validate(user) for user in await User.objects.fetch(db)]


@app.post("/authors", status_code=201)
async def create_author(body: AuthorCreate, db: Session) -> AuthorRead:
    author = await User.objects.create(db, **body.model_dump(exclude_unset=True))
    return AuthorRead.model_validate(author)


def read_fields(author: AuthorRead) -> str:
    """Fields declared in the body have their declared types."""
    assert_type(author.id, int)
    assert_type(author.name, str)
    assert_type(author.age, int | None)
    return f"{author.id}: {author.name}"


def typed_keys(user: User) -> int:
    """An integer primary key is an ``int`` to checkers, as ``pk`` and as ``id``."""
    assert_type(user.pk, int)
    assert_type(user.id, int)
    assert_type(user.created_at, dt.datetime)
    return user.pk + user.id
