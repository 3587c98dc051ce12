"""bulk_create and bulk_update: one statement per batch, primary keys back, upserts, timestamps."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

import flash_db
from flash_db import FieldError, atomic
from flash_db.testing import assert_num_queries, capture_queries
from tests.models import Company, Gadget, Note, Post, Product, Status, Tag, User


def _inserts(statements: list[str]) -> list[str]:
    return [sql for sql in statements if sql.lstrip().upper().startswith("INSERT")]


async def test_bulk_create_10000_rows_in_batches_of_1000_sends_10_statements(
    db: AsyncSession, database: flash_db.Database
) -> None:
    users = [User(name=f"u{i}", email=f"u{i}@x") for i in range(10_000)]
    async with assert_num_queries(db, 10) as captured:
        created = await User.objects.bulk_create(db, users, batch_size=1000)
    assert len(_inserts(captured.statements)) == 10
    assert created is not users
    assert created == users
    pks = [user.pk for user in created]
    assert None not in pks
    assert len(set(pks)) == 10_000
    async with database.session() as fresh:
        assert await User.objects.count(fresh) == 10_000
        stored = await User.objects.in_bulk(fresh, pks[:50] + pks[-50:])
    for user in created[:50] + created[-50:]:
        assert stored[user.pk].email == user.email  # each object got its own row's key


async def test_bulk_create_sets_defaults_and_timestamps(db: AsyncSession) -> None:
    author = await User.objects.create(db, name="a", email="a@x")
    posts = await Post.objects.bulk_create(
        db, [Post(title="one", author_id=author.pk), {"title": "two", "author": author}]
    )
    for post in posts:
        assert isinstance(post.created_at, datetime)
        assert post.created_at.tzinfo is not None
        assert post.updated_at is not None
        assert (post.views, post.body, post.published) == (0, "", False)
        assert post.author_id == author.pk


async def test_bulk_create_accepts_dicts_and_string_primary_keys(
    db: AsyncSession, database: flash_db.Database
) -> None:
    products = await Product.objects.bulk_create(
        db, [{"code": "A", "price": Decimal("1.50")}, {"pk": "B", "price": Decimal("2")}]
    )
    assert [p.pk for p in products] == ["A", "B"]
    async with database.session() as fresh:
        assert await Product.objects.count(fresh) == 2


async def test_bulk_created_objects_can_be_saved_and_deleted(
    db: AsyncSession, database: flash_db.Database
) -> None:
    first, second = await User.objects.bulk_create(
        db, [User(name="a", email="a@x"), User(name="b", email="b@x")]
    )
    first.name = "renamed"
    async with assert_num_queries(db, 1):
        await first.save(db)
    await second.delete(db)
    async with database.session() as fresh:
        assert await User.objects.values_list("name", flat=True).fetch(fresh) == ["renamed"]


async def test_bulk_create_mixed_columns_is_still_one_statement(db: AsyncSession) -> None:
    async with assert_num_queries(db, 1):
        users = await User.objects.bulk_create(
            db, [User(name="a", email="a@x"), User(name="b", email="b@x", age=30)]
        )
    assert [u.age for u in users] == [None, 30]


async def test_bulk_create_ignore_conflicts_skips_rows_without_primary_keys(
    db: AsyncSession, database: flash_db.Database
) -> None:
    existing = await User.objects.create(db, name="old", email="taken@x")
    users = await User.objects.bulk_create(
        db,
        [
            User(name="n1", email="new1@x"),
            User(name="dup", email="taken@x"),
            {"name": "n2", "email": "new2@x"},
        ],
        ignore_conflicts=True,
    )
    assert users[1].pk is None
    assert users[0].pk is not None
    assert users[2].pk is not None
    assert existing.pk not in (users[0].pk, users[2].pk)
    async with database.session() as fresh:
        by_pk = await User.objects.in_bulk(fresh)
        assert {u.email for u in by_pk.values()} == {"taken@x", "new1@x", "new2@x"}
        assert by_pk[users[2].pk].email == "new2@x"
        assert by_pk[existing.pk].name == "old"


async def test_bulk_create_upsert_updates_named_fields_only(
    db: AsyncSession, database: flash_db.Database
) -> None:
    originals = await User.objects.bulk_create(
        db, [User(name="a", email="a@x", age=1), User(name="b", email="b@x", age=2)]
    )
    async with database.session() as other:
        upserted = await User.objects.bulk_create(
            other,
            [
                User(name="B!", email="b@x", age=20),
                User(name="c", email="c@x", age=3),
                User(name="A!", email="a@x", age=10),
            ],
            update_conflicts=True,
            unique_fields=["email"],
            update_fields=["age"],
        )
    assert [u.pk for u in upserted[::2]] == [originals[1].pk, originals[0].pk]
    assert upserted[1].pk not in (originals[0].pk, originals[1].pk)
    async with database.session() as fresh:
        rows = await User.objects.order_by("email").values_list("email", "name", "age").fetch(fresh)
    assert rows == [("a@x", "a", 10), ("b@x", "b", 20), ("c@x", "c", 3)]
    assert upserted[0].updated_at >= originals[1].updated_at


async def test_bulk_create_in_several_batches_is_all_or_nothing(
    db: AsyncSession, database: flash_db.Database
) -> None:
    users = [User(name=f"u{i}", email=f"u{i}@x") for i in range(5)]
    users.append(User(name="dup", email="u0@x"))
    with pytest.raises(IntegrityError):
        await User.objects.bulk_create(db, users, batch_size=2)
    async with database.session() as fresh:
        assert await User.objects.count(fresh) == 0
    assert await User.objects.count(db) == 0  # the session is still usable


async def test_bulk_create_rejects_bad_arguments(db: AsyncSession) -> None:
    with pytest.raises(FieldError, match="'nmae'"):
        await User.objects.bulk_create(db, [{"nmae": "x", "email": "e"}])
    with pytest.raises(FieldError, match="'emial'"):
        await User.objects.bulk_create(
            db,
            [User(name="a", email="a@x")],
            update_conflicts=True,
            unique_fields=["emial"],
            update_fields=["name"],
        )
    with pytest.raises(ValueError, match="unique_fields"):
        await User.objects.bulk_create(
            db, [User(name="a", email="a@x")], update_conflicts=True, update_fields=["name"]
        )
    stored = await User.objects.create(db, name="s", email="s@x")
    with pytest.raises(ValueError, match="new objects"):
        await User.objects.bulk_create(db, [stored])
    assert await User.objects.bulk_create(db, []) == []


async def test_bulk_update_2000_objects_in_batches_of_500_sends_4_statements(
    db: AsyncSession, database: flash_db.Database
) -> None:
    users = await User.objects.bulk_create(
        db, [User(name=f"u{i}", email=f"u{i}@x", age=i) for i in range(2000)]
    )
    before = users[0].updated_at
    for user in users:
        user.name = user.name.upper()
        user.age = (user.age or 0) + 1
    async with assert_num_queries(db, 4):
        count = await User.objects.bulk_update(db, users, ["name", "age"], batch_size=500)
    assert count == 2000
    assert users[0].updated_at > before
    async with database.session() as fresh:
        rows = await User.objects.order_by("age").values_list("name", "age").fetch(fresh)
        stored = await User.objects.get(fresh, pk=users[0].pk)
    assert rows[0] == ("U0", 1)
    assert rows[-1] == ("U1999", 2000)
    assert stored.updated_at == users[0].updated_at


async def test_bulk_update_leaves_other_fields_and_objects_clean(
    db: AsyncSession, database: flash_db.Database
) -> None:
    company = await Company.objects.create(db, name="c")
    tags = await Tag.objects.bulk_create(db, [Tag(name="a"), Tag(name="b")])
    tags[0].name, tags[1].name = "x", "y"
    assert await Tag.objects.bulk_update(db, tags, ["name"]) == 2
    async with assert_num_queries(db, 0):
        await tags[0].save(db)  # nothing left to write
    company.name = "changed"
    assert await Company.objects.bulk_update(db, [company], ["name"]) == 1
    async with database.session() as fresh:
        assert sorted(await Tag.objects.values_list("name", flat=True).fetch(fresh)) == ["x", "y"]


async def test_bulk_update_sends_the_rows_once(
    db: AsyncSession, database: flash_db.Database
) -> None:
    await Tag.objects.bulk_create(db, [Tag(name=f"t{i}") for i in range(3)])
    tags = await Tag.objects.order_by("name").fetch(db)  # loaded: in the session
    for tag in tags:
        tag.name = tag.name.upper()
    async with capture_queries(db) as captured:
        assert await Tag.objects.bulk_update(db, tags, ["name"]) == 3
    # One UPDATE for all rows; the ORM's flush does not write them again one by one.
    updates = [sql for sql in captured.statements if sql.lstrip().upper().startswith("UPDATE")]
    assert len(updates) == 1
    async with database.session() as fresh:
        assert sorted(await Tag.objects.values_list("name", flat=True).fetch(fresh)) == [
            "T0",
            "T1",
            "T2",
        ]


async def test_bulk_update_validates_fields(db: AsyncSession) -> None:
    user = await User.objects.create(db, name="a", email="a@x")
    with pytest.raises(FieldError, match=r"'nmae'.*Choices are"):
        await User.objects.bulk_update(db, [user], ["nmae"])
    with pytest.raises(ValueError, match="primary key"):
        await User.objects.bulk_update(db, [user], ["id"])
    with pytest.raises(ValueError, match="at least one"):
        await User.objects.bulk_update(db, [user], [])
    with pytest.raises(ValueError, match="no primary key"):
        await User.objects.bulk_update(db, [User(name="n", email="n@x")], ["name"])
    assert await User.objects.bulk_update(db, [], ["name"]) == 0


async def test_bulk_update_inside_atomic_rolls_back_with_the_block(
    db: AsyncSession, database: flash_db.Database
) -> None:
    notes = await Note.objects.bulk_create(db, [Note(text="a"), Note(text="b")])
    for note in notes:
        note.text = "changed"
    with pytest.raises(RuntimeError):
        async with atomic(db):
            await Note.objects.bulk_update(db, notes, ["text"])
            raise RuntimeError("boom")
    async with database.session() as fresh:
        assert await Note.objects.values_list("text", flat=True).order_by("text").fetch(fresh) == [
            "a",
            "b",
        ]


async def test_bulk_create_sends_one_insert_per_batch_with_returning(db: AsyncSession) -> None:
    async with capture_queries(db) as captured:
        await Tag.objects.bulk_create(db, [Tag(name=f"t{i}") for i in range(5)], batch_size=2)
    inserts = _inserts(captured.statements)
    assert len(inserts) == 3
    assert all("RETURNING" in sql.upper() for sql in inserts)


async def test_bulk_update_enums_decimals_and_string_keys(
    db: AsyncSession, database: flash_db.Database
) -> None:
    author = await User.objects.create(db, name="a", email="a@x")
    posts = await Post.objects.bulk_create(
        db, [Post(title=f"p{i}", author_id=author.pk) for i in range(3)]
    )
    products = await Product.objects.bulk_create(
        db, [Product(code="A", price=Decimal("1")), Product(code="B", price=Decimal("2"))]
    )
    for post in posts:
        post.status = Status.PUBLISHED
        post.published = True
    for product in products:
        product.price = product.price * 10
    assert await Post.objects.bulk_update(db, posts, ["status", "published"]) == 3
    assert await Product.objects.bulk_update(db, products, ["price"]) == 2
    async with database.session() as fresh:
        assert await Post.objects.filter(status=Status.PUBLISHED, published=True).count(fresh) == 3
        prices = await Product.objects.order_by("code").values_list("price", flat=True).fetch(fresh)
    assert prices == [Decimal("10"), Decimal("20")]


async def test_bulk_create_upsert_on_the_primary_key(
    db: AsyncSession, database: flash_db.Database
) -> None:
    await Product.objects.bulk_create(db, [Product(code="A", price=Decimal("1"))])
    products = await Product.objects.bulk_create(
        db,
        [{"code": "A", "price": Decimal("5")}, {"code": "Z", "price": Decimal("9")}],
        update_conflicts=True,
        unique_fields=["pk"],
        update_fields=["price"],
    )
    assert [(p.pk, p.price) for p in products] == [("A", Decimal("5")), ("Z", Decimal("9"))]
    async with database.session() as fresh:
        stored = await Product.objects.order_by("code").values_list("code", "price").fetch(fresh)
    assert stored == [("A", Decimal("5")), ("Z", Decimal("9"))]


async def test_bulk_create_of_many_column_types_stores_what_was_given(
    db: AsyncSession, database: flash_db.Database
) -> None:
    author = await User.objects.create(db, name="a", email="a@x")
    async with capture_queries(db) as captured:
        posts = await Post.objects.bulk_create(
            db,
            [
                {"title": "t1", "author_id": author.id, "status": Status.PUBLISHED},
                {"title": "t2", "author_id": author.id, "published": True, "views": 7},
            ],
        )
        gadgets = await Gadget.objects.bulk_create(db, [Gadget(label=f"g{i}") for i in range(3)])
        products = await Product.objects.bulk_create(
            db, [Product(code="p1", price=Decimal("1.50")), {"code": "p2", "price": Decimal("2")}]
        )
    if database.backend == "postgresql":
        # One INSERT ... SELECT FROM unnest(arrays) per call: the rows travel as arrays.
        assert all("unnest(" in sql for sql in captured.statements)
    assert len(captured) == 3
    async with database.session() as fresh:
        stored = await Post.objects.order_by("title").fetch(fresh)
        assert [(p.title, p.status, p.published, p.views, p.body) for p in stored] == [
            ("t1", Status.PUBLISHED, False, 0, ""),
            ("t2", Status.DRAFT, True, 7, ""),
        ]
        assert [p.id for p in posts] == [p.id for p in stored]
        assert stored[0].created_at.tzinfo is not None  # the Python default, per row
        ids = await Gadget.objects.values_list("id", flat=True).fetch(fresh)
        assert sorted(ids) == sorted(g.id for g in gadgets)
        assert len(set(ids)) == 3  # uuid4 computed for each row, not once
        assert await Product.objects.order_by("code").values_list("price", flat=True).fetch(
            fresh
        ) == [Decimal("1.50"), Decimal("2.00")]
    assert [p.code for p in products] == ["p1", "p2"]
