"""model_schema(): the type map, read/create/update modes, caching and names."""

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any, Literal

import pytest
from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError
from sqlalchemy import Integer, String
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from flash_db_fastapi import model_schema
from flash_db_fastapi.schemas import python_type
from tests.fastapi.models import Everything, Kind, Wallet
from tests.models import Gadget, Post, Product, Status, Tag, User


def _properties(schema: type[BaseModel]) -> dict[str, Any]:
    properties: dict[str, Any] = schema.model_json_schema()["properties"]
    return properties


def test_type_map_covers_every_column_type() -> None:
    fields = model_schema(Everything, "read").model_fields
    expected: dict[str, Any] = {
        "id": int,
        "short": str,
        "long": str,
        "number": int,
        "big": int,
        "ratio": float,
        "money": Decimal,
        "flag": bool,
        "day": dt.date,
        "moment": dt.datetime,
        "aware": dt.datetime,  # flash_db.AwareDateTime, a TypeDecorator
        "clock": dt.time,
        "span": dt.timedelta,
        "token": uuid.UUID,
        "kind": Kind,
        "letter": Literal["a", "b"],
        "data": Any,
        "blob": bytes,
    }
    assert {name: field.annotation for name, field in fields.items() if name != "maybe"} == expected
    assert _properties(model_schema(Everything, "read"))["maybe"]["anyOf"] == [
        {"maxLength": 10, "type": "string"},
        {"type": "null"},
    ]


def test_array_maps_to_a_list_of_its_item_type() -> None:
    assert python_type(ARRAY(Integer)) == (list[int], ())
    annotation, _ = python_type(ARRAY(String(5)))
    assert annotation == list[str]


def test_constraints_string_length_and_numeric_digits() -> None:
    properties = _properties(model_schema(Everything, "create"))
    assert properties["short"]["maxLength"] == 20
    assert (properties["number"]["minimum"], properties["number"]["maximum"]) == (
        -(2**31),
        2**31 - 1,
    )
    assert properties["big"]["maximum"] == 2**63 - 1
    assert "maxLength" not in properties["long"]
    schema = model_schema(Everything, "create")
    base = {
        "short": "s",
        "long": "l",
        "number": 1,
        "big": 2,
        "ratio": 1.5,
        "money": "123456.78",
        "day": "2024-01-02",
        "moment": "2024-01-02T03:04:05Z",
        "aware": "2024-01-02T03:04:05+02:00",
        "clock": "10:00",
        "span": "PT1H",
        "token": str(uuid.uuid4()),
        "kind": "savings",
        "letter": "a",
        "data": {"any": ["json"]},
        "blob": "YWJj",
    }
    parsed = schema.model_validate(base)
    assert parsed.model_dump()["money"] == Decimal("123456.78")
    assert parsed.model_dump()["kind"] is Kind.SAVINGS
    for field, bad in [
        ("short", "x" * 21),
        ("money", "1234567.89"),  # 9 digits > Numeric(8, 2)
        ("money", "1.234"),  # 3 decimal places
        ("kind", "CHECKING"),
        ("letter", "c"),
        ("token", "not-a-uuid"),
    ]:
        with pytest.raises(PydanticValidationError) as info:
            schema.model_validate({**base, field: bad})
        assert info.value.errors()[0]["loc"] == (field,)


def test_create_schema_requirements_and_defaults() -> None:
    schema = model_schema(Post, "create")
    json_schema = schema.model_json_schema()
    assert sorted(json_schema["required"]) == ["author_id", "title"]
    properties = json_schema["properties"]
    assert properties["body"]["default"] == ""
    assert properties["views"]["default"] == 0
    assert properties["published"]["default"] is False
    assert properties["status"]["default"] == "draft"
    assert (
        schema.model_validate({"title": "t", "author_id": 1}).model_dump()["status"] is Status.DRAFT
    )
    nullable = _properties(model_schema(User, "create"))["age"]
    assert nullable["anyOf"] == [
        {"type": "integer", "minimum": -(2**31), "maximum": 2**31 - 1},
        {"type": "null"},
    ]


def test_pk_and_timestamps_are_read_only() -> None:
    assert list(model_schema(User, "read").model_fields)[:1] == ["id"]
    assert {"id", "created_at", "updated_at"} <= set(model_schema(User, "read").model_fields)
    for mode in ("create", "update"):
        fields = set(model_schema(User, mode).model_fields)
        assert not fields & {"id", "created_at", "updated_at"}
    assert "id" not in model_schema(Gadget, "create").model_fields  # UUID default: generated


def test_a_pk_without_default_is_required_on_create_and_absent_from_update() -> None:
    assert "code" in model_schema(Product, "create").model_json_schema()["required"]
    assert "code" not in model_schema(Product, "update").model_fields


def test_create_and_update_reject_unknown_fields() -> None:
    for mode in ("create", "update"):
        schema = model_schema(User, mode)
        for extra in ({"id": 7}, {"created_at": "2020-01-01T00:00:00Z"}, {"is_admin": True}):
            with pytest.raises(PydanticValidationError, match="Extra inputs"):
                schema.model_validate({"name": "n", "email": "e@example.com", **extra})


def test_update_schema_is_patch_style() -> None:
    schema = model_schema(User, "update")
    assert "required" not in schema.model_json_schema()
    patch = schema.model_validate({"age": None})
    assert patch.model_dump(exclude_unset=True) == {"age": None}
    assert schema.model_validate({}).model_dump(exclude_unset=True) == {}
    with pytest.raises(PydanticValidationError):
        schema.model_validate({"name": None})  # not nullable: null is refused, omission is fine


def test_include_and_exclude() -> None:
    schema = model_schema(User, "read", include=["id", "name"])
    assert list(schema.model_fields) == ["id", "name"]
    assert schema.__name__.startswith("UserRead_")
    excluded = model_schema(User, "create", exclude=["age"], name="UserSignup")
    assert set(excluded.model_fields) == {"name", "email", "company_id"}
    assert excluded.__name__ == "UserSignup"
    with pytest.raises(PydanticValidationError, match="Extra inputs"):
        excluded.model_validate({"name": "n", "email": "e", "age": 3})
    with pytest.raises(ValueError, match=r"unknown include field 'nmae'.*Choices are: .*name"):
        model_schema(User, "read", include=["nmae"])
    with pytest.raises(TypeError, match="list of field names"):
        model_schema(User, "read", include="name")


def test_schemas_are_cached_and_named_stably() -> None:
    assert model_schema(User) is model_schema(User, "read")
    assert model_schema(User, "read", include=["name", "id"]) is model_schema(
        User, "read", include=("id", "name")
    )
    names = [model_schema(Wallet, mode).__name__ for mode in ("read", "create", "update")]
    assert names == ["WalletRead", "WalletCreate", "WalletUpdate"]
    with pytest.raises(ValueError, match="'WalletRead' is already used"):
        model_schema(Wallet, "read", include=["id"], name="WalletRead")


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match=r"mode='write'.*read, create, update"):
        model_schema(User, "write")  # type: ignore[arg-type]  # the error under test
    with pytest.raises(TypeError, match="mapped Model class"):
        model_schema(int, "read")  # type: ignore[arg-type]  # the error under test


async def test_read_schema_validates_orm_objects_with_loaded_relations(db: AsyncSession) -> None:
    author = await User.objects.create(db, name="Ann", email="ann@example.com")
    post = await Post.objects.create(db, title="Hello", author_id=author.id)
    tag = await Tag.objects.create(db, name="news")
    await post.fetch_related(db, "author", "tags")
    post.tags.append(tag)
    await post.save(db)
    schema = model_schema(
        Post, "read", include=["id", "title", "author", "tags"], name="PostDetail"
    )
    data = schema.model_validate(post).model_dump(mode="json")
    assert data == {
        "id": post.id,
        "title": "Hello",
        "author": model_schema(User).model_validate(author).model_dump(mode="json"),
        "tags": [{"id": tag.id, "name": "news"}],
    }
    refs = schema.model_json_schema()["properties"]
    assert refs["tags"]["items"] == {"$ref": "#/$defs/TagRead"}
