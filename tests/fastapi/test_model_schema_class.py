"""ModelSchema: the class form of model_schema, checked against its model, usable as a type."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from fastapi import FastAPI
from pydantic import BaseModel, ValidationError
from pydantic.alias_generators import to_camel
from sqlalchemy.ext.asyncio import AsyncSession

from flash_db_fastapi import CRUDRouter, ModelSchema, Session, add_exception_handlers, model_schema
from tests.fastapi.conftest import Serve
from tests.fastapi.models import Kind, Wallet


class WalletRead(ModelSchema, model=Wallet):
    id: int
    name: str


class WalletCreate(ModelSchema, model=Wallet, mode="create", alias_generator=to_camel):
    name: str


class WalletPatch(ModelSchema, model=Wallet, mode="update", exclude=["kind"]):
    pass


class WalletSummary(ModelSchema, model=Wallet, include=["id", "name"]):
    id: int


def test_the_class_has_every_field_of_the_model_declared_or_not() -> None:
    assert issubclass(WalletRead, BaseModel)
    # The model's order, as model_schema() has it.
    assert list(WalletRead.model_fields) == list(model_schema(Wallet).model_fields)
    assert list(WalletRead.model_fields) == [
        "id",
        "name",
        "balance",
        "kind",
        "note",
        "created_at",
        "updated_at",
    ]
    assert list(WalletSummary.model_fields) == ["id", "name"]
    assert "id" not in WalletCreate.model_fields  # generated key: read-only
    assert WalletCreate.model_fields["balance"].default == Decimal("0")
    assert WalletCreate.model_fields["name"].is_required()
    assert list(WalletPatch.model_fields) == ["name", "balance", "note"]
    assert not WalletPatch.model_fields["name"].is_required()


def test_it_reads_from_objects_and_forbids_unknown_input() -> None:
    now = dt.datetime.now(dt.UTC)
    wallet = Wallet(id=3, name="Ada", balance=Decimal("2.5"), kind=Kind.SAVINGS, note=None)
    wallet.created_at = wallet.updated_at = now
    read = WalletRead.model_validate(wallet)
    assert (read.id, read.name) == (3, "Ada")
    assert read.model_dump()["kind"] is Kind.SAVINGS
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        WalletPatch.model_validate({"name": "x", "owner": "y"})
    with pytest.raises(ValidationError, match="String should have at most 50 characters"):
        WalletPatch.model_validate({"name": "x" * 51})


def test_aliases_name_the_json_both_ways() -> None:
    body = WalletCreate.model_validate({"name": "Ada", "kind": "savings"})
    assert body.model_dump(exclude_unset=True) == {"name": "Ada", "kind": Kind.SAVINGS}
    generated = model_schema(Wallet, "update", alias_generator=to_camel, name="WalletCamelUpdate")
    assert generated.model_validate({"note": "n"}).model_dump(exclude_unset=True) == {"note": "n"}
    assert (
        "createdAt"
        in model_schema(Wallet, alias_generator=to_camel).model_json_schema()["properties"]
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("nmae: str", "declares 'nmae', which Wallet does not have. Choices are: balance, "),
        ("name: int", "WalletBad.name is declared int, but Wallet.name holds str: declare str."),
        ("note: str", "WalletBad.note is declared str, but Wallet.note may be NULL: declare str"),
        ("kind: int", "WalletBad.kind is declared int, but Wallet.kind holds Kind"),
    ],
)
def test_a_declared_field_the_model_cannot_fill_is_refused_at_class_creation(
    body: str, message: str
) -> None:
    namespace: dict[str, Any] = {"ModelSchema": ModelSchema, "Wallet": Wallet}
    with pytest.raises(TypeError) as error:
        exec(f"class WalletBad(ModelSchema, model=Wallet):\n    {body}\n", namespace)
    assert message in str(error.value)


def test_options_without_a_model_and_a_bad_mode_are_refused() -> None:
    with pytest.raises(TypeError, match="mode, include and exclude need model="):

        class Orphan(ModelSchema, mode="create"):
            pass

    with pytest.raises(ValueError, match="got mode='write'; choose one of: read, create, update"):

        class Writer(ModelSchema, model=Wallet, mode="write"):  # type: ignore[arg-type, unused-ignore]  # pyright checks it
            pass


def test_declared_types_that_hold_the_column_are_accepted() -> None:
    class Loose(ModelSchema, model=Wallet):
        name: str | None  # wider than the column: fine
        balance: Decimal
        kind: str  # the enum's values are strings
        note: Any

    assert Loose.model_fields["name"].annotation == str | None


async def test_a_route_returns_it_and_crud_router_takes_it(backend_url: str, serve: Serve) -> None:
    app = FastAPI()
    add_exception_handlers(app)
    app.include_router(
        CRUDRouter(
            Wallet,
            prefix="/wallets",
            read_schema=WalletRead,
            create_schema=WalletCreate,
            update_schema=WalletPatch,
        )
    )

    @app.get("/named/{name}")
    async def by_name(name: str, db: Session) -> WalletRead:
        return WalletRead.model_validate(await Wallet.objects.get(db, name=name))

    async with serve(app) as client:
        created = await client.post("/wallets", json={"name": "Ada", "balance": "1.50"})
        patched = await client.patch(f"/wallets/{created.json()['id']}", json={"note": "hi"})
        fetched = await client.get("/named/Ada")
        refused = await client.post("/wallets", json={"name": "Bob", "owner": "x"})
        schema = (await client.get("/openapi.json")).json()
    assert created.status_code == 201, created.text
    assert patched.json()["note"] == "hi"
    assert fetched.json()["name"] == "Ada"
    assert fetched.json()["balance"] == "1.50"
    assert refused.status_code == 422
    assert {"WalletRead", "WalletCreate", "WalletPatch"} <= set(schema["components"]["schemas"])


async def test_aliased_crud_writes_camel_case(
    backend_url: str, serve: Serve, db: AsyncSession
) -> None:
    from tests.fastapi.models import Everything

    class EverythingPatch(ModelSchema, model=Everything, mode="update", alias_generator=to_camel):
        pass

    app = FastAPI()
    add_exception_handlers(app)
    app.include_router(
        CRUDRouter(
            Wallet,
            prefix="/wallets",
            create_schema=model_schema(
                Wallet, "create", alias_generator=to_camel, name="WalletCamelCreate"
            ),
            read_schema=model_schema(Wallet, alias_generator=to_camel, name="WalletCamelRead"),
        )
    )
    async with serve(app) as client:
        created = await client.post("/wallets", json={"name": "Cy", "balance": "3"})
    assert created.status_code == 201, created.text
    assert {"createdAt", "updatedAt"} <= set(created.json())
    assert (await Wallet.objects.get(db, name="Cy")).balance == Decimal("3")
    assert "maybe" in EverythingPatch.model_fields
