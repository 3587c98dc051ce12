"""CRUDRouter: every route, the list query language, allow-lists, errors and OpenAPI."""

import asyncio
import uuid
from collections import Counter
from typing import Any

import pytest
from fastapi import Depends, FastAPI, Header, HTTPException
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

from flash_db.testing import capture_queries
from flash_db_fastapi import CRUDRouter, flash_lifespan, model_schema
from tests.fastapi.conftest import Serve
from tests.fastapi.models import Everything, Ledger, Wallet
from tests.models import Gadget, Post, Product, User


def _app(url: str, *routers: CRUDRouter) -> FastAPI:
    app = FastAPI(lifespan=flash_lifespan(url))
    for router in routers:
        app.include_router(router)
    return app


def _users_router(**kwargs: Any) -> CRUDRouter:
    options: dict[str, Any] = {
        "prefix": "/users",
        "filter_fields": ["name", "email", "age", "id", "created_at", "company_id"],
        "order_fields": ["name", "age", "created_at"],
        **kwargs,
    }
    return CRUDRouter(User, **options)


async def _users(db: AsyncSession, *rows: tuple[str, int | None]) -> list[User]:
    return [
        await User.objects.create(db, name=name, email=f"{name.lower()}@example.com", age=age)
        for name, age in rows
    ]


async def test_create_returns_201_and_the_read_schema(
    backend_url: str, db: AsyncSession, serve: Serve
) -> None:
    async with serve(_app(backend_url, _users_router())) as client:
        response = await client.post("/users", json={"name": "Ann", "email": "ann@example.com"})
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id", "name", "email", "age", "company_id", "created_at", "updated_at"}
    saved = await User.objects.get(db, id=body["id"])
    assert (saved.name, saved.email, saved.age) == ("Ann", "ann@example.com", None)


async def test_mass_assignment_of_pk_and_timestamps_does_not_take_effect(
    backend_url: str, db: AsyncSession, serve: Serve
) -> None:
    async with serve(_app(backend_url, _users_router())) as client:
        for extra in ({"id": 999}, {"created_at": "2000-01-01T00:00:00Z"}, {"is_admin": True}):
            body = {"name": "Mal", "email": "mal@example.com", **extra}
            response = await client.post("/users", json=body)
            assert response.status_code == 422
            assert response.json()["detail"][0]["type"] == "extra_forbidden"
            patched = await client.patch("/users/1", json=extra)
            assert patched.status_code == 422
    assert await User.objects.count(db) == 0


async def test_get_one_and_404(backend_url: str, db: AsyncSession, serve: Serve) -> None:
    (ann,) = await _users(db, ("Ann", 30))
    async with serve(_app(backend_url, _users_router())) as client:
        found = await client.get(f"/users/{ann.id}")
        missing = await client.get("/users/424242")
        bad = await client.get("/users/not-a-number")
    assert found.status_code == 200
    assert found.json()["name"] == "Ann"
    assert missing.status_code == 404
    assert missing.json() == {"detail": "User not found."}
    assert bad.status_code == 422


async def test_patch_changes_only_the_fields_sent(
    backend_url: str, db: AsyncSession, serve: Serve
) -> None:
    (ann,) = await _users(db, ("Ann", 30))
    async with serve(_app(backend_url, _users_router())) as client:
        response = await client.patch(f"/users/{ann.id}", json={"age": 31})
        cleared = await client.patch(f"/users/{ann.id}", json={"age": None})
        refused = await client.patch(f"/users/{ann.id}", json={"name": None})
        missing = await client.patch("/users/424242", json={"age": 1})
    assert response.status_code == 200
    assert response.json()["age"] == 31
    assert cleared.json()["age"] is None
    assert refused.status_code == 422  # name is NOT NULL: null is refused, omission keeps it
    assert missing.status_code == 404
    db.expunge_all()  # read the row back, not the identity map
    saved = await User.objects.get(db, id=ann.id)
    assert (saved.name, saved.email, saved.age) == ("Ann", "ann@example.com", None)
    assert saved.updated_at > ann.updated_at


async def test_put_replaces_the_row(backend_url: str, db: AsyncSession, serve: Serve) -> None:
    (ann,) = await _users(db, ("Ann", 30))
    async with serve(_app(backend_url, _users_router())) as client:
        response = await client.put(
            f"/users/{ann.id}", json={"name": "Anne", "email": "anne@example.com"}
        )
        incomplete = await client.put(f"/users/{ann.id}", json={"name": "Anne"})
        missing = await client.put("/users/424242", json={"name": "X", "email": "x@example.com"})
    assert response.status_code == 200
    assert response.json()["age"] is None  # omitted: back to its default
    assert incomplete.status_code == 422  # a replacement needs every required field
    assert missing.status_code == 404
    db.expunge_all()
    saved = await User.objects.get(db, id=ann.id)
    assert (saved.name, saved.email, saved.age) == ("Anne", "anne@example.com", None)


async def test_delete_204_then_404(backend_url: str, db: AsyncSession, serve: Serve) -> None:
    (ann,) = await _users(db, ("Ann", 30))
    async with serve(_app(backend_url, _users_router())) as client:
        deleted = await client.delete(f"/users/{ann.id}")
        again = await client.delete(f"/users/{ann.id}")
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert again.status_code == 404
    assert not await User.objects.filter(id=ann.id).exists(db)


async def test_delete_is_one_statement_unless_the_model_has_its_own_delete(
    backend_url: str, db: AsyncSession, serve: Serve
) -> None:
    (ann,) = await _users(db, ("Ann", 30))
    ledger = await Ledger.objects.create(db, name="kept")
    ledgers = CRUDRouter(Ledger, prefix="/ledgers")
    app = _app(backend_url, _users_router(), ledgers)
    async with serve(app) as client:
        async with capture_queries(app.state.flash_db.database) as captured:
            deleted = await client.delete(f"/users/{ann.id}")
        archived = await client.delete(f"/ledgers/{ledger.id}")
    assert deleted.status_code == archived.status_code == 204
    assert [sql.split()[0] for sql in captured.statements] == ["DELETE"]
    stored = await Ledger.objects.get(db, pk=ledger.id)
    assert stored.archived  # Ledger.delete() ran: the row is kept


async def test_unique_and_foreign_key_violations_are_409(
    backend_url: str, db: AsyncSession, serve: Serve
) -> None:
    (ann,) = await _users(db, ("Ann", 30))
    await Post.objects.create(db, title="Hello", author_id=ann.id)
    posts = CRUDRouter(Post, prefix="/posts")
    async with serve(_app(backend_url, _users_router(), posts)) as client:
        duplicate = await client.post("/users", json={"name": "B", "email": "ann@example.com"})
        dangling = await client.post("/posts", json={"title": "t", "author_id": 424242})
        referenced = await client.delete(f"/users/{ann.id}")
    assert duplicate.status_code == 409
    assert duplicate.json() == {"detail": "A User with this email already exists."}
    assert dangling.status_code == 409
    assert "refers to a row that does not exist" in dangling.json()["detail"]
    assert referenced.status_code == 409
    for response in (duplicate, dangling, referenced):
        assert "ann@example.com" not in response.text
        assert "424242" not in response.text
        assert "INSERT" not in response.text
        assert "DELETE" not in response.text


async def test_clean_is_422(backend_url: str, db: AsyncSession, serve: Serve) -> None:
    async with serve(_app(backend_url, CRUDRouter(Wallet, prefix="/wallets"))) as client:
        response = await client.post("/wallets", json={"name": "a", "balance": "-1.00"})
        created = await client.post("/wallets", json={"name": "b", "balance": "1.00"})
        patched = await client.patch(f"/wallets/{created.json()['id']}", json={"balance": "-2.00"})
    assert response.status_code == 422
    assert response.json() == {
        "detail": [
            {
                "loc": ["body", "balance"],
                "msg": "The balance may not be negative.",
                "type": "value_error",
            }
        ]
    }
    assert patched.status_code == 422
    assert [str(a.balance) for a in await Wallet.objects.fetch(db)] == ["1.00"]


async def test_list_envelope_pagination_and_default_order(
    backend_url: str, db: AsyncSession, serve: Serve
) -> None:
    users = await _users(db, *[(f"U{n:02d}", n) for n in range(7)])
    router = _users_router(default_limit=3, max_limit=5)
    async with serve(_app(backend_url, router)) as client:
        first = await client.get("/users")
        last = await client.get("/users", params={"offset": 6})
        count_only = await client.get("/users", params={"limit": 0})
        too_many = await client.get("/users", params={"limit": 6})
        negative = await client.get("/users", params={"offset": -1})
        beyond = await client.get("/users", params={"offset": 2**63})
    assert first.status_code == 200
    body = first.json()
    assert (body["total"], body["limit"], body["offset"]) == (7, 3, 0)
    assert [item["id"] for item in body["items"]] == [user.id for user in users[:3]]
    assert [item["name"] for item in last.json()["items"]] == ["U06"]
    assert count_only.json() == {"items": [], "total": 7, "limit": 0, "offset": 0}
    assert too_many.status_code == 422
    assert too_many.json()["detail"][0]["loc"] == ["query", "limit"]
    assert negative.status_code == 422
    assert beyond.status_code == 422  # no database takes an OFFSET past 2**63 - 1
    assert beyond.json()["detail"][0]["loc"] == ["query", "offset"]


async def test_list_order_by(backend_url: str, db: AsyncSession, serve: Serve) -> None:
    await _users(db, ("Bob", 20), ("Ann", 20), ("Cid", 10))
    async with serve(_app(backend_url, _users_router())) as client:
        by_name = await client.get("/users", params={"order_by": "-name"})
        by_age = await client.get("/users", params={"order_by": "age,-name"})
        not_allowed = await client.get("/users", params={"order_by": "email"})
    assert [u["name"] for u in by_name.json()["items"]] == ["Cid", "Bob", "Ann"]
    assert [u["name"] for u in by_age.json()["items"]] == ["Cid", "Bob", "Ann"]
    assert not_allowed.status_code == 400
    assert not_allowed.json() == {
        "detail": "Cannot order by 'email'. Choices are: name, age, created_at."
    }


async def test_list_filters_with_lookups(backend_url: str, db: AsyncSession, serve: Serve) -> None:
    ann, bob, jo, _ = await _users(db, ("Ann", 17), ("Bob", 18), ("Jo", 40), ("Joanna", None))

    async def names(**params: Any) -> list[str]:
        response = await client.get("/users", params=params)
        assert response.status_code == 200, response.text
        return sorted(item["name"] for item in response.json()["items"])

    async with serve(_app(backend_url, _users_router())) as client:
        assert await names(name__icontains="jo") == ["Jo", "Joanna"]
        assert await names(name="Jo") == ["Jo"]
        assert await names(age__gte=18) == ["Bob", "Jo"]
        assert await names(age__gte=18, name__startswith="J") == ["Jo"]
        assert await names(id__in=f"{ann.id},{jo.id}") == ["Ann", "Jo"]
        assert await names(age__range="17,18") == ["Ann", "Bob"]
        assert await names(age__isnull="true") == ["Joanna"]
        assert await names(name__icontains="%") == []  # a wildcard is a literal character
        assert await names(created_at__lte="2999-01-01T00:00:00Z") == ["Ann", "Bob", "Jo", "Joanna"]
        bad_int = await client.get("/users", params={"age__gte": "old"})
        bad_list = await client.get("/users", params={"id__in": f"{bob.id},x"})
        bad_range = await client.get("/users", params={"age__range": "1"})
    assert bad_int.status_code == 422
    assert bad_int.json()["detail"][0]["loc"] == ["query", "age__gte"]
    assert bad_list.status_code == 422
    assert bad_list.json()["detail"][0]["loc"] == ["query", "id__in"]
    assert bad_range.status_code == 422


async def test_unknown_parameters_and_non_allow_listed_filters_are_400(
    backend_url: str, db: AsyncSession, serve: Serve
) -> None:
    router = _users_router(filter_fields=["name"])
    app = _app(backend_url, router)
    async with serve(app) as client, capture_queries(app.state.flash_db.database) as captured:
        email = await client.get("/users", params={"email": "a@example.com"})
        unknown = await client.get("/users", params={"colour": "red"})
        lookup = await client.get("/users", params={"name__gt": "A"})
        path = await client.get("/users", params={"company__name": "Acme"})
    for response in (email, unknown, lookup, path):
        assert response.status_code == 400
    assert email.json()["detail"].startswith("Unknown query parameter 'email'.")
    assert "filters on name" in email.json()["detail"]
    assert lookup.json()["detail"].startswith("Unsupported lookup 'gt' on 'name'.")
    assert captured.statements == []  # refused before any SQL


async def test_relation_paths_only_when_allow_listed(
    backend_url: str, db: AsyncSession, serve: Serve
) -> None:
    ann, bob = await _users(db, ("Ann", 1), ("Bob", 2))
    await Post.objects.create(db, title="By Ann", author_id=ann.id)
    await Post.objects.create(db, title="By Bob", author_id=bob.id)
    posts = CRUDRouter(
        Post, prefix="/posts", filter_fields=["title", "author__name"], order_fields=["title"]
    )
    async with serve(_app(backend_url, posts)) as client:
        response = await client.get("/posts", params={"author__name__iexact": "ANN"})
        refused = await client.get("/posts", params={"author__email": "ann@example.com"})
    assert [p["title"] for p in response.json()["items"]] == ["By Ann"]
    assert refused.status_code == 400


async def test_fields_returns_a_subset(backend_url: str, db: AsyncSession, serve: Serve) -> None:
    await _users(db, ("Ann", 30))
    async with serve(_app(backend_url, _users_router())) as client:
        subset = await client.get("/users", params={"fields": "id,name"})
        unknown = await client.get("/users", params={"fields": "id,password"})
    assert list(subset.json()["items"][0]) == ["id", "name"]
    assert subset.json()["total"] == 1
    assert unknown.status_code == 400
    assert unknown.json()["detail"].startswith("Unknown field 'password' in fields.")


async def test_custom_schemas_limit_what_is_exposed(
    backend_url: str, db: AsyncSession, serve: Serve
) -> None:
    await _users(db, ("Ann", 30))
    read = model_schema(User, "read", include=["id", "name"], name="PublicUser")
    router = CRUDRouter(User, prefix="/users", read_schema=read)
    async with serve(_app(backend_url, router)) as client:
        listed = await client.get("/users")
        by_email = await client.get("/users", params={"email": "ann@example.com"})
    assert listed.json()["items"][0] == {"id": listed.json()["items"][0]["id"], "name": "Ann"}
    assert by_email.status_code == 400  # not in the read schema: not filterable by default


async def test_string_and_uuid_primary_keys(backend_url: str, serve: Serve) -> None:
    products = CRUDRouter(Product, prefix="/products")
    gadgets = CRUDRouter(Gadget, prefix="/gadgets")
    async with serve(_app(backend_url, products, gadgets)) as client:
        created = await client.post("/products", json={"code": "A-1", "price": "9.99"})
        fetched = await client.get("/products/A-1")
        patched = await client.patch("/products/A-1", json={"price": "10.50"})
        replaced = await client.put("/products/A-1", json={"code": "B-2", "price": "1.00"})
        gadget = await client.post("/gadgets", json={"label": "g"})
        gadget_id = gadget.json()["id"]
        fetched_gadget = await client.get(f"/gadgets/{gadget_id}")
        bad_uuid = await client.get("/gadgets/not-a-uuid")
        missing_uuid = await client.get(f"/gadgets/{uuid.uuid4()}")
        deleted = await client.delete("/products/A-1")
    assert created.status_code == 201
    assert fetched.json() == {"code": "A-1", "price": "9.99"}
    assert patched.json()["price"] == "10.50"
    assert replaced.json() == {"code": "A-1", "price": "1.00"}  # the path names the row
    assert uuid.UUID(gadget_id)
    assert fetched_gadget.json()["label"] == "g"
    assert bad_uuid.status_code == 422
    assert missing_uuid.status_code == 404
    assert deleted.status_code == 204


async def test_routes_can_be_switched_off(backend_url: str, serve: Serve) -> None:
    router = CRUDRouter(User, prefix="/users", routes=("list", "get"))
    async with serve(_app(backend_url, router)) as client:
        assert (await client.get("/users")).status_code == 200
        assert (await client.post("/users", json={})).status_code == 405
        assert (await client.delete("/users/1")).status_code == 405
    assert {route.name for route in router.routes} == {"list_user", "get_user"}  # type: ignore[attr-defined]  # APIRoute


async def test_dependencies_for_all_routes_or_per_route(backend_url: str, serve: Serve) -> None:
    def token(x_token: str | None = Header(default=None)) -> None:
        if x_token != "secret":
            raise HTTPException(401, "Missing token.")

    guarded = CRUDRouter(User, prefix="/users", dependencies={"create": [Depends(token)]})
    everything = CRUDRouter(Product, prefix="/products", dependencies=[Depends(token)])
    async with serve(_app(backend_url, guarded, everything)) as client:
        body = {"name": "Ann", "email": "ann@example.com"}
        assert (await client.get("/users")).status_code == 200
        assert (await client.post("/users", json=body)).status_code == 401
        ok = await client.post("/users", json=body, headers={"X-Token": "secret"})
        assert ok.status_code == 201
        assert (await client.get("/products")).status_code == 401


def test_bad_configuration_is_refused() -> None:
    with pytest.raises(ValueError, match=r"unknown route 'patch'\. Choices are: list, get"):
        CRUDRouter(User, prefix="/u", routes=("list", "patch"))
    with pytest.raises(ValueError, match="unknown field 'nmae'"):
        CRUDRouter(User, prefix="/u", filter_fields=["nmae"])
    with pytest.raises(ValueError, match=r"'company__nope'\. Choices on Company are: id, name"):
        CRUDRouter(User, prefix="/u", order_fields=["company__nope"])
    with pytest.raises(ValueError, match="not a relation of User"):
        CRUDRouter(User, prefix="/u", filter_fields=["name__x"])
    with pytest.raises(ValueError, match="default_limit"):
        CRUDRouter(User, prefix="/u", default_limit=500, max_limit=200)
    with pytest.raises(ValueError, match="cannot filter on 'data'"):
        CRUDRouter(Everything, prefix="/e", filter_fields=["data"])
    with pytest.raises(ValueError, match="unknown route 'remove'"):
        CRUDRouter(User, prefix="/u", dependencies={"remove": []})
    with pytest.raises(TypeError, match="list of field names"):
        CRUDRouter(User, prefix="/u", filter_fields="name")


def test_openapi_documents_parameters_bodies_and_responses() -> None:
    app = FastAPI()
    app.include_router(_users_router())
    spec = app.openapi()
    listing = spec["paths"]["/users"]["get"]
    params = {p["name"]: p for p in listing["parameters"]}
    assert {"limit", "offset", "order_by", "fields", "name", "name__icontains", "age__gte"} <= set(
        params
    )
    assert "id__in" in params
    assert "age__isnull" in params
    assert "email__gt" not in params  # strings have no ordering lookups
    assert params["limit"]["schema"]["maximum"] == 200
    assert set(listing["responses"]) == {"200", "400", "422"}
    assert listing["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/UserReadPage"
    }
    one = spec["paths"]["/users/{id}"]
    assert one["get"]["parameters"][0]["schema"]["type"] == "integer"
    assert set(one["get"]["responses"]) == {"200", "404", "422"}
    assert set(one["patch"]["responses"]) == {"200", "404", "409", "422"}
    assert set(one["put"]["responses"]) == {"200", "404", "409", "422"}
    assert set(one["delete"]["responses"]) == {"204", "404", "409", "422"}
    create = spec["paths"]["/users"]["post"]
    assert set(create["responses"]) == {"201", "409", "422"}
    assert create["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/UserCreate"
    }
    assert one["patch"]["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/UserUpdate"
    }
    assert {"UserRead", "UserCreate", "UserUpdate", "UserReadPage", "ErrorMessage"} <= set(
        spec["components"]["schemas"]
    )


async def test_routes_inside_atomic_requests(
    backend_url: str, db: AsyncSession, serve: Serve
) -> None:
    app = FastAPI(lifespan=flash_lifespan(backend_url, atomic_requests=True))
    app.include_router(_users_router())
    async with serve(app) as client:
        first = await client.post("/users", json={"name": "Ann", "email": "ann@example.com"})
        duplicate = await client.post("/users", json={"name": "B", "email": "ann@example.com"})
        patched = await client.patch(f"/users/{first.json()['id']}", json={"age": 5})
        listed = await client.get("/users", params={"age__gte": 5})
        assert app.state.flash_db.database.engine.pool.checkedout() == 0
    assert (first.status_code, duplicate.status_code, patched.status_code) == (201, 409, 200)
    assert listed.json()["total"] == 1
    assert [(u.name, u.age) for u in await User.objects.fetch(db)] == [("Ann", 5)]


async def test_integers_beyond_the_column_range_are_422(
    backend_url: str, db: AsyncSession, serve: Serve
) -> None:
    """An INTEGER column holds 32 bits: a larger number must not reach the database."""
    huge = str(2**31)
    async with serve(_app(backend_url, _users_router())) as client:
        by_pk = await client.get(f"/users/{huge}")
        by_filter = await client.get("/users", params={"age__gte": huge})
        in_list = await client.get("/users", params={"id__in": f"1,{huge}"})
        created = await client.post(
            "/users", json={"name": "A", "email": "a@example.com", "age": 2**31}
        )
        fine = await client.get("/users", params={"age__lte": str(2**31 - 1)})
    for response in (by_pk, by_filter, in_list, created):
        assert response.status_code == 422, response.text
    assert fine.status_code == 200
    assert await User.objects.count(db) == 0


async def test_nul_characters_are_422(backend_url: str, db: AsyncSession, serve: Serve) -> None:
    """PostgreSQL cannot store NUL in text: it is refused on every backend, before SQL."""
    async with serve(_app(backend_url, _users_router())) as client:
        created = await client.post("/users", json={"name": "A\x00", "email": "a@example.com"})
        filtered = await client.get("/users", params={"name__icontains": "a\x00"})
    assert created.status_code == 422
    assert created.json()["detail"][0]["msg"].endswith("may not contain NUL (\\x00) characters.")
    assert filtered.status_code == 422
    assert await User.objects.count(db) == 0


async def test_order_by_terms_and_text_filters_are_bounded(
    backend_url: str, db: AsyncSession, serve: Serve
) -> None:
    await _users(db, ("Ann", 30))
    async with serve(_app(backend_url, _users_router())) as client:
        eight = await client.get(
            "/users", params={"order_by": "name,-age,created_at"}
        )  # within the bound
        many = await client.get("/users", params={"order_by": ",".join(["name"] * 2000)})
        nine = await client.get(
            "/users", params={"order_by": "name,age,created_at,-name,-age,a,b,c,d"}
        )
        twice = await client.get("/users", params={"order_by": "name,-name"})
        long_filter = await client.get("/users", params={"name__icontains": "a" * 50_001})
        at_limit = await client.get("/users", params={"name__icontains": "a" * 1000})
    assert eight.status_code == 200
    assert many.status_code == nine.status_code == 400
    assert many.json() == {"detail": "order_by takes at most 8 comma-separated fields."}
    assert twice.status_code == 400
    assert twice.json() == {"detail": "order_by names 'name' twice."}
    assert long_filter.status_code == 400
    assert long_filter.json() == {
        "detail": "The filter 'name__icontains' takes at most 1000 characters, got 50001."
    }
    assert at_limit.json()["total"] == 0


async def test_total_is_optional_per_request_or_per_router(
    backend_url: str, db: AsyncSession, serve: Serve
) -> None:
    await _users(db, ("Ann", 30), ("Bob", 40))
    app = _app(backend_url, _users_router(), _users_router(prefix="/quick", count=False))
    async with serve(app) as client, capture_queries(app.state.flash_db.database) as captured:
        counted = await client.get("/users")
        uncounted = await client.get("/users", params={"total": "false"})
        quick = await client.get("/quick")
        quick_counted = await client.get("/quick", params={"total": "true"})
    assert counted.json()["total"] == 2
    assert uncounted.json()["total"] is None
    assert len(uncounted.json()["items"]) == 2
    assert quick.json()["total"] is None
    assert quick_counted.json()["total"] == 2
    counts = [sql for sql in captured.statements if "count(" in sql.lower()]
    assert len(counts) == 2  # the two counted requests only


async def test_the_count_and_the_page_come_from_one_transaction(
    backend_url: str, db: AsyncSession, serve: Serve
) -> None:
    await _users(db, ("Ann", 30))
    app = _app(backend_url, _users_router())
    seen: list[str] = []
    async with serve(app) as client:
        engine = app.state.flash_db.database.engine.sync_engine
        event.listen(engine, "begin", lambda conn: seen.append("BEGIN"))
        event.listen(engine, "commit", lambda conn: seen.append("COMMIT"))
        async with capture_queries(app.state.flash_db.database) as captured:
            response = await client.get("/users")
            uncounted = await client.get("/users", params={"total": "false"})
    assert response.json()["total"] == 1
    assert uncounted.json()["total"] is None
    assert [sql.split()[0].upper() for sql in captured.statements] == ["SELECT"] * 3
    assert seen == ["BEGIN", "COMMIT"]  # around the counted request's two statements only


async def test_concurrent_patch_and_delete_of_one_row_never_500(
    backend_url: str, db: AsyncSession, serve: Serve
) -> None:
    """25 PATCH + 25 DELETE of one row at once: only 200, 204 and 404; one 204 per row."""
    (user,) = await _users(db, ("Ann", 30))
    # Four connections at most (the 50 requests queue for them): a shared test server
    # near its connection limit cannot turn this test into 503s.
    app = FastAPI(lifespan=flash_lifespan(backend_url, pool_size=4, max_overflow=0))
    app.include_router(_users_router())
    async with serve(app) as client:
        requests = [client.patch(f"/users/{user.id}", json={"age": n}) for n in range(25)]
        requests += [client.delete(f"/users/{user.id}") for _ in range(25)]
        responses = await asyncio.gather(*requests)
    patches = Counter(r.status_code for r in responses[:25])
    deletes = Counter(r.status_code for r in responses[25:])
    assert set(patches) <= {200, 404}, [r.text for r in responses[:25]]
    assert deletes[204] == 1
    assert deletes[404] == 24
    assert not await User.objects.filter(id=user.id).exists(db)
