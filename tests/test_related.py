"""Related managers (SPEC 6, "Related objects"): ``obj.related("tags")`` reads and writes.

Many-to-many through a link table with a composite primary key (``Post.tags``,
``post_tags``) and through a mapped association model's table without a
constraint over its links (``Board.watchers``, ``BoardWatch``); one-to-many with
a nullable foreign key (``Company.users``) and a non-nullable one
(``User.posts``). Statement counts are exact where the SPEC gives a number, and
each write is checked in the rows, read back through a fresh session.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, assert_type

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

import flash_db
from flash_db import Count, FieldError, RelatedManager, RelationNotLoaded
from flash_db.testing import assert_num_queries, capture_queries
from tests.models import Board, BoardWatch, Company, Pin, Post, Tag, User, post_tags

TASKS = 30


def first_words(statements: list[str]) -> list[str]:
    """Return the leading keyword of each statement (``SELECT``, ``INSERT``, ...)."""
    return [sql.split(None, 1)[0].upper() for sql in statements]


async def links(database: flash_db.Database) -> list[tuple[int, int]]:
    """Return every ``(post_id, tag_id)`` row of the link table, sorted, duplicates kept."""
    async with database.session() as fresh:
        result = await fresh.execute(select(post_tags.c.post_id, post_tags.c.tag_id))
        return sorted((row.post_id, row.tag_id) for row in result)


async def watches(database: flash_db.Database) -> list[tuple[int, int]]:
    """Return every ``(board_id, user_id)`` row of the association model, sorted."""
    async with database.session() as fresh:
        rows = await BoardWatch.objects.values_list("board_id", "user_id").fetch(fresh)
        return sorted((board_id, user_id) for board_id, user_id in rows)


async def companies(database: flash_db.Database) -> dict[str, int | None]:
    """Return each user's ``company_id`` by name, read through a fresh session."""
    async with database.session() as fresh:
        rows = await User.objects.values_list("name", "company_id").fetch(fresh)
        return dict(rows)


async def blog(db: AsyncSession) -> tuple[Post, Post, Tag, Tag, Tag]:
    """Create two posts by one author and three tags (no links)."""
    ann = await User.objects.create(db, name="ann", email="ann@x")
    first = await Post.objects.create(db, title="first", author_id=ann.pk)
    second = await Post.objects.create(db, title="second", author_id=ann.pk)
    red, green, blue = [
        await Tag.objects.create(db, name=name) for name in ("red", "green", "blue")
    ]
    return first, second, red, green, blue


async def staff(db: AsyncSession) -> tuple[Company, Company, User, User, User]:
    """Create Acme (amy), Globex (cid) and bob, who works for neither."""
    acme = await Company.objects.create(db, name="Acme")
    globex = await Company.objects.create(db, name="Globex")
    amy = await User.objects.create(db, name="amy", email="amy@acme", company_id=acme.pk)
    bob = await User.objects.create(db, name="bob", email="bob@home")
    cid = await User.objects.create(db, name="cid", email="cid@globex", company_id=globex.pk)
    return acme, globex, amy, bob, cid


# -- related(): by name or attribute, typed, every builder and terminal scoped ---------


async def test_related_by_name_and_by_attribute_give_the_same_rows(db: AsyncSession) -> None:
    first, second, red, green, blue = await blog(db)
    await first.related("tags").add(db, red, green)
    await second.related("tags").add(db, blue)
    by_name = await first.related("tags").order_by("name").values_list("name", flat=True).fetch(db)
    by_attribute = (
        await first.related(Post.tags).order_by("name").values_list("name", flat=True).fetch(db)
    )
    assert by_name == by_attribute == ["green", "red"]
    acme, _, amy, _, _ = await staff(db)
    assert [u.pk for u in await acme.related("users").fetch(db)] == [amy.pk]
    assert [u.pk for u in await acme.related(Company.users).fetch(db)] == [amy.pk]
    assert isinstance(first.related("tags"), RelatedManager)


async def test_related_through_an_attribute_is_typed_related_manager_of_the_model(
    db: AsyncSession,
) -> None:
    first, _, red, _, _ = await blog(db)
    tags: RelatedManager[Tag] = first.related(Post.tags)
    assert_type(first.related(Post.tags), RelatedManager[Tag])
    ann = await User.objects.get(db, pk=first.author_id)
    assert_type(ann.related(User.posts), RelatedManager[Post])
    assert_type(first.related("tags"), RelatedManager[Any])
    await tags.add(db, red)
    fetched = await tags.fetch(db)
    assert_type(fetched, list[Tag])
    found = await tags.first(db)
    assert_type(found, Tag | None)
    assert found is not None
    assert (tags.model, found.name, [t.pk for t in fetched]) == (Tag, "red", [red.pk])


async def test_many_to_many_related_scopes_every_builder_and_terminal(db: AsyncSession) -> None:
    first, second, red, green, blue = await blog(db)
    await first.related("tags").add(db, red, green)
    await second.related("tags").add(db, green, blue)
    tags = first.related("tags")
    assert [t.name for t in await tags.order_by("name").fetch(db)] == ["green", "red"]
    assert [t.name for t in await tags.all().order_by("-name").fetch(db)] == ["red", "green"]
    assert await tags.count(db) == 2
    assert await tags.exists(db) is True
    assert await tags.filter(name="blue").exists(db) is False
    assert await tags.filter(name__startswith="g").count(db) == 1
    assert await tags.exclude(name="red").values_list("name", flat=True).fetch(db) == ["green"]
    assert await tags.order_by("-name").values("name").fetch(db) == [
        {"name": "red"},
        {"name": "green"},
    ]
    assert await tags.aggregate(db, n=Count("id")) == {"n": 2}
    assert set(await tags.in_bulk(db)) == {red.pk, green.pk}
    assert [t.name async for t in tags.order_by("name").iterator(db)] == ["green", "red"]
    last = await tags.order_by("name").last(db)
    assert last is not None
    assert last.name == "red"
    assert (await tags.get(db, name="green")).pk == green.pk
    with pytest.raises(Tag.DoesNotExist):
        await tags.get(db, name="blue")  # a tag of the other post
    assert await tags.order_by("name")[1:].values_list("name", flat=True).fetch(db) == ["red"]
    # The other side of the relation, by name and by attribute.
    assert [p.title for p in await green.related("posts").order_by("title").fetch(db)] == [
        "first",
        "second",
    ]
    assert [p.title for p in await blue.related(Tag.posts).fetch(db)] == ["second"]
    # Writes through a queryset of the relation touch its rows only.
    assert await second.related("tags").exclude(name="green").delete(db) == 1
    assert sorted(await Tag.objects.values_list("name", flat=True).fetch(db)) == ["green", "red"]


async def test_one_to_many_related_scopes_every_builder_and_terminal(
    db: AsyncSession, database: flash_db.Database
) -> None:
    first, _, _, _, _ = await blog(db)
    ann = await User.objects.get(db, pk=first.author_id)
    bob = await User.objects.create(db, name="bob", email="bob@x")
    await Post.objects.create(db, title="bob's", author_id=bob.pk)
    posts = ann.related("posts")
    assert [p.title for p in await posts.order_by("title").fetch(db)] == ["first", "second"]
    assert await posts.count(db) == 2
    assert await posts.filter(title__startswith="f").count(db) == 1
    assert await posts.filter(title="bob's").exists(db) is False
    assert await posts.values_list("title", flat=True).order_by("-title").fetch(db) == [
        "second",
        "first",
    ]
    assert await posts.update(db, views=5) == 2
    assert await bob.related(User.posts).delete(db) == 1
    async with database.session() as fresh:
        rows = await Post.objects.order_by("title").values_list("title", "views").fetch(fresh)
    assert rows == [("first", 5), ("second", 5)]


async def test_related_hides_soft_deleted_rows_as_objects_does(db: AsyncSession) -> None:
    board = await Board.objects.create(db, name="b")
    other = await Board.objects.create(db, name="o")
    kept = await Pin.objects.create(db, text="kept", board_id=board.pk)
    gone = await Pin.objects.create(db, text="gone", board_id=board.pk)
    await Pin.objects.create(db, text="elsewhere", board_id=other.pk)
    await gone.delete(db)  # soft: deleted_at is set
    pins = board.related("pins")
    assert [p.pk for p in await pins.fetch(db)] == [kept.pk]
    assert await pins.count(db) == 1
    assert await pins.filter(text="gone").exists(db) is False
    assert await Pin.all_objects.filter(board_id=board.pk).count(db) == 2


async def test_related_of_an_unknown_or_to_one_relation_raises_field_error(
    db: AsyncSession,
) -> None:
    first, _, _, _, _ = await blog(db)
    ann = await User.objects.get(db, pk=first.author_id)
    async with assert_num_queries(db, 0):
        with pytest.raises(FieldError, match=r"'nope'") as info:
            first.related("nope")
        assert (info.value.model, info.value.field) == (Post, "nope")
        assert info.value.choices == ["comments", "tags"]
        with pytest.raises(FieldError, match=r"'author'.*Choices are: comments, tags"):
            first.related("author")
        with pytest.raises(FieldError, match=r"'author'"):
            # A to-one attribute: refused by the type checker too, and at run time.
            first.related(Post.author)  # type: ignore[arg-type]
        with pytest.raises(FieldError, match=r"'company'.*Choices are: posts"):
            ann.related("company")


async def test_related_of_an_unsaved_object_raises_value_error(db: AsyncSession) -> None:
    async with assert_num_queries(db, 0):
        with pytest.raises(ValueError, match=r"saved"):
            Post(title="new", author_id=1).related("tags")


# -- many-to-many writes --------------------------------------------------------------


async def test_many_to_many_add_is_one_insert_and_an_existing_link_is_no_error(
    db: AsyncSession, database: flash_db.Database
) -> None:
    first, second, red, green, blue = await blog(db)
    tags = first.related("tags")
    async with assert_num_queries(db, 1) as captured:
        await tags.add(db, red, green)
    assert first_words(captured.statements) == ["INSERT"]
    assert await links(database) == [(first.pk, red.pk), (first.pk, green.pk)]
    async with assert_num_queries(db, 1):
        await tags.add(db, red, blue)  # red is linked already
    async with assert_num_queries(db, 1):
        await tags.add(db, red)
    green_again = await Tag.objects.get(db, pk=green.pk)
    async with assert_num_queries(db, 1):
        await tags.add(db, green, green_again)  # one row as two objects (no identity map)
    assert await links(database) == [(first.pk, red.pk), (first.pk, green.pk), (first.pk, blue.pk)]
    async with assert_num_queries(db, 1):
        await red.related("posts").add(db, first, second)  # from the other side
    assert await links(database) == [
        (first.pk, red.pk),
        (first.pk, green.pk),
        (first.pk, blue.pk),
        (second.pk, red.pk),
    ]


async def test_many_to_many_add_of_many_objects_is_still_one_insert(
    db: AsyncSession, database: flash_db.Database
) -> None:
    first, _, _, _, _ = await blog(db)
    many = await Tag.objects.bulk_create(db, [Tag(name=f"t{i}") for i in range(50)])
    async with assert_num_queries(db, 1):
        await first.related("tags").add(db, *many)
    assert len(await links(database)) == 50


async def test_many_to_many_remove_is_one_delete_and_a_missing_link_is_no_error(
    db: AsyncSession, database: flash_db.Database
) -> None:
    first, second, red, green, blue = await blog(db)
    await first.related("tags").add(db, red, green)
    await second.related("tags").add(db, red)
    async with assert_num_queries(db, 1) as captured:
        await first.related("tags").remove(db, red, blue)  # blue was never linked
    assert first_words(captured.statements) == ["DELETE"]
    assert await links(database) == [(first.pk, green.pk), (second.pk, red.pk)]
    async with assert_num_queries(db, 1):
        await first.related("tags").remove(db, red)  # removed already
    assert await links(database) == [(first.pk, green.pk), (second.pk, red.pk)]
    assert await Tag.objects.count(db) == 3  # the tags themselves stay


async def test_many_to_many_clear_is_one_delete_of_this_objects_links(
    db: AsyncSession, database: flash_db.Database
) -> None:
    first, second, red, green, blue = await blog(db)
    await first.related("tags").add(db, red, green, blue)
    await second.related("tags").add(db, green)
    async with assert_num_queries(db, 1) as captured:
        await first.related("tags").clear(db)
    assert first_words(captured.statements) == ["DELETE"]
    assert await links(database) == [(second.pk, green.pk)]
    async with assert_num_queries(db, 1):
        await first.related("tags").clear(db)  # nothing left: no error
    assert await Tag.objects.count(db) == 3


async def test_many_to_many_set_makes_the_links_exactly_these_in_at_most_3_statements(
    db: AsyncSession, database: flash_db.Database
) -> None:
    first, second, red, green, blue = await blog(db)
    await first.related("tags").add(db, red, green)
    await second.related("tags").add(db, red)
    async with capture_queries(db) as captured:
        await first.related("tags").set(db, [green, blue])
    assert 1 <= len(captured) <= 3
    assert first_words(captured.statements).count("INSERT") == 1
    assert await links(database) == [(first.pk, green.pk), (first.pk, blue.pk), (second.pk, red.pk)]
    many = await Tag.objects.bulk_create(db, [Tag(name=f"t{i}") for i in range(20)])
    async with capture_queries(db) as captured:
        await first.related("tags").set(db, [*many, blue])
    assert len(captured) <= 3
    assert {tag_id for post_id, tag_id in await links(database) if post_id == first.pk} == {
        blue.pk,
        *(tag.pk for tag in many),
    }
    async with capture_queries(db) as captured:
        await first.related("tags").set(db, [])
    assert len(captured) <= 3
    assert await links(database) == [(second.pk, red.pk)]


async def test_many_to_many_create_creates_the_object_and_its_link(
    db: AsyncSession, database: flash_db.Database
) -> None:
    first, second, _, _, _ = await blog(db)
    tag = await first.related("tags").create(db, name="new")
    assert (tag.name, tag.pk is not None) == ("new", True)
    assert await links(database) == [(first.pk, tag.pk)]
    async with database.session() as fresh:
        assert (await Tag.objects.get(fresh, name="new")).pk == tag.pk
    assert await second.related("tags").count(db) == 0


async def test_many_to_many_through_an_association_model_without_a_constraint(
    db: AsyncSession, database: flash_db.Database
) -> None:
    board = await Board.objects.create(db, name="b")
    other = await Board.objects.create(db, name="o")
    ann = await User.objects.create(db, name="ann", email="ann@x")
    bob = await User.objects.create(db, name="bob", email="bob@x")
    cid = await User.objects.create(db, name="cid", email="cid@x")
    await other.related("watchers").add(db, ann)
    watchers = board.related(Board.watchers)
    async with capture_queries(db) as captured:
        await watchers.add(db, ann, bob)
    assert len(captured) <= 2
    assert first_words(captured.statements).count("INSERT") == 1
    ann_again = await User.objects.get(db, pk=ann.pk)
    async with capture_queries(db) as captured:
        # ann is linked already (and comes twice, as two objects): no error, no second row.
        await watchers.add(db, ann, ann_again, cid)
    assert len(captured) <= 2
    assert await watches(database) == sorted(
        [(board.pk, ann.pk), (board.pk, bob.pk), (board.pk, cid.pk), (other.pk, ann.pk)]
    )
    assert [u.name for u in await watchers.order_by("name").fetch(db)] == ["ann", "bob", "cid"]
    async with assert_num_queries(db, 1):
        await watchers.remove(db, bob)
    async with capture_queries(db) as captured:
        await watchers.set(db, [cid, bob])
    assert len(captured) <= 3
    assert await watches(database) == sorted(
        [(board.pk, bob.pk), (board.pk, cid.pk), (other.pk, ann.pk)]
    )
    async with assert_num_queries(db, 1):
        await watchers.clear(db)
    assert await watches(database) == [(other.pk, ann.pk)]


async def test_many_to_many_add_of_one_new_row_given_as_two_objects_makes_one_link(
    db: AsyncSession, database: flash_db.Database
) -> None:
    """Without an identity map one row is often two objects; each link is made once."""
    first, _, red, _, _ = await blog(db)
    red_again = await Tag.objects.get(db, pk=red.pk)
    await first.related("tags").add(db, red, red_again)
    assert await links(database) == [(first.pk, red.pk)]
    board = await Board.objects.create(db, name="b")
    ann = await User.objects.get(db, pk=first.author_id)
    ann_again = await User.objects.get(db, pk=first.author_id)
    async with capture_queries(db) as captured:
        await board.related("watchers").add(db, ann, ann_again)
    assert first_words(captured.statements).count("INSERT") == 1
    assert await watches(database) == [(board.pk, ann.pk)]


async def test_many_to_many_add_of_one_link_from_30_sessions_at_once_makes_one_row(
    database: flash_db.Database, wide_database: flash_db.Database
) -> None:
    async with database.session() as db:
        first, _, red, _, _ = await blog(db)
    started = asyncio.Barrier(TASKS)

    async def add_the_link() -> None:
        async with wide_database.session() as db:
            post = await Post.objects.get(db, pk=first.pk)
            tag = await Tag.objects.get(db, pk=red.pk)
            await started.wait()  # every session loaded its objects: go together
            await post.related("tags").add(db, tag)

    async with asyncio.timeout(120):
        results = await asyncio.gather(
            *(add_the_link() for _ in range(TASKS)), return_exceptions=True
        )
    assert [r for r in results if r is not None] == []
    assert await links(database) == [(first.pk, red.pk)]


@pytest.fixture
async def wide_database(
    backend_url: str, database: flash_db.Database
) -> AsyncIterator[flash_db.Database]:
    """A second Database on the backend whose pool holds a connection per task."""
    extra: dict[str, Any] = {}
    if database.backend == "sqlite":
        extra["connect_args"] = {"timeout": 60}  # 30 writers queue for SQLite's one lock
    wide = flash_db.Database(backend_url, pool_size=TASKS, max_overflow=0, **extra)
    try:
        yield wide
    finally:
        await wide.close()


# -- one-to-many writes ---------------------------------------------------------------


async def test_one_to_many_add_sets_the_foreign_key_in_one_update(
    db: AsyncSession, database: flash_db.Database
) -> None:
    acme, globex, amy, bob, cid = await staff(db)
    users = acme.related("users")
    async with assert_num_queries(db, 1) as captured:
        await users.add(db, bob, cid)  # cid moves from Globex
    assert first_words(captured.statements) == ["UPDATE"]
    assert (bob.company_id, cid.company_id) == (acme.pk, acme.pk)
    assert await companies(database) == {"amy": acme.pk, "bob": acme.pk, "cid": acme.pk}
    async with assert_num_queries(db, 1):
        await users.add(db, amy)  # related already: no error
    assert await companies(database) == {"amy": acme.pk, "bob": acme.pk, "cid": acme.pk}
    async with assert_num_queries(db, 0):
        await bob.save(db)  # the object holds what was written: nothing left to save
    assert await globex.related("users").count(db) == 0


async def test_one_to_many_add_on_a_non_nullable_foreign_key_moves_the_rows(
    db: AsyncSession, database: flash_db.Database
) -> None:
    first, second, _, _, _ = await blog(db)
    bob = await User.objects.create(db, name="bob", email="bob@x")
    async with assert_num_queries(db, 1):
        await bob.related("posts").add(db, first, second)
    assert first.author_id == bob.pk
    async with database.session() as fresh:
        assert set(await Post.objects.values_list("author_id", flat=True).fetch(fresh)) == {bob.pk}


async def test_one_to_many_remove_sets_null_in_one_update(
    db: AsyncSession, database: flash_db.Database
) -> None:
    acme, globex, amy, bob, _ = await staff(db)
    await acme.related("users").add(db, bob)
    async with assert_num_queries(db, 1) as captured:
        await acme.related("users").remove(db, amy)
    assert first_words(captured.statements) == ["UPDATE"]
    assert amy.company_id is None
    assert await companies(database) == {"amy": None, "bob": acme.pk, "cid": globex.pk}
    async with assert_num_queries(db, 1):
        await acme.related("users").remove(db, amy)  # removed already: no error
    assert await companies(database) == {"amy": None, "bob": acme.pk, "cid": globex.pk}


async def test_one_to_many_remove_of_another_parents_row_changes_nothing(
    db: AsyncSession, database: flash_db.Database
) -> None:
    acme, globex, _, _, cid = await staff(db)
    await acme.related("users").remove(db, cid)  # cid works for Globex: not a link of Acme
    assert await companies(database) == {"amy": acme.pk, "bob": None, "cid": globex.pk}
    assert cid.company_id == globex.pk  # the object still holds its row's value


async def test_one_to_many_clear_sets_null_in_one_update_of_this_objects_rows(
    db: AsyncSession, database: flash_db.Database
) -> None:
    acme, globex, _, bob, _ = await staff(db)
    await acme.related("users").add(db, bob)
    async with assert_num_queries(db, 1) as captured:
        await acme.related("users").clear(db)
    assert first_words(captured.statements) == ["UPDATE"]
    assert await companies(database) == {"amy": None, "bob": None, "cid": globex.pk}


async def test_one_to_many_set_makes_the_rows_exactly_these(
    db: AsyncSession, database: flash_db.Database
) -> None:
    acme, globex, _, bob, cid = await staff(db)
    async with capture_queries(db) as captured:
        await acme.related("users").set(db, [bob, cid])
    assert len(captured) <= 3
    assert await companies(database) == {"amy": None, "bob": acme.pk, "cid": acme.pk}
    async with capture_queries(db) as captured:
        await acme.related("users").set(db, [])
    assert len(captured) <= 3
    assert await companies(database) == {"amy": None, "bob": None, "cid": None}
    assert await globex.related("users").count(db) == 0


async def test_one_to_many_create_sets_the_foreign_key(
    db: AsyncSession, database: flash_db.Database
) -> None:
    acme, _, _, _, _ = await staff(db)
    async with assert_num_queries(db, 1) as captured:
        dan = await acme.related("users").create(db, name="dan", email="dan@x")
    assert first_words(captured.statements) == ["INSERT"]
    assert dan.company_id == acme.pk
    amy = await User.objects.get(db, name="amy")
    post = await amy.related(User.posts).create(db, title="x")
    assert post.author_id == amy.pk
    assert (await companies(database))["dan"] == acme.pk
    assert await amy.related("posts").filter(title__startswith="x").count(db) == 1


@pytest.mark.parametrize("method", ["remove", "clear"])
async def test_one_to_many_unlink_on_a_non_nullable_foreign_key_raises_before_any_sql(
    db: AsyncSession, database: flash_db.Database, method: str
) -> None:
    first, _, _, _, _ = await blog(db)
    ann = await User.objects.get(db, pk=first.author_id)
    posts = ann.related("posts")
    async with assert_num_queries(db, 0):
        with pytest.raises(ValueError, match=r"author_id") as info:
            if method == "remove":
                await posts.remove(db, first)
            else:
                await posts.clear(db)
    assert "Post.author_id" in str(info.value)
    assert first.author_id == ann.pk
    async with database.session() as fresh:
        assert set(await Post.objects.values_list("author_id", flat=True).fetch(fresh)) == {ann.pk}


# -- objects passed must be saved; the loaded relation is dropped ----------------------


@pytest.mark.parametrize("method", ["add", "remove", "set"])
async def test_writes_take_saved_objects_only(
    db: AsyncSession, database: flash_db.Database, method: str
) -> None:
    first, _, red, _, _ = await blog(db)
    acme, _, _, _, _ = await staff(db)
    calls: list[Callable[[], Awaitable[None]]] = []
    unsaved_tag = Tag(name="unsaved")
    unsaved_user = User(name="unsaved", email="unsaved@x")
    if method == "add":
        calls = [
            lambda: first.related("tags").add(db, red, unsaved_tag),
            lambda: acme.related("users").add(db, unsaved_user),
        ]
    elif method == "remove":
        calls = [
            lambda: first.related("tags").remove(db, unsaved_tag),
            lambda: acme.related("users").remove(db, unsaved_user),
        ]
    else:
        calls = [
            lambda: first.related("tags").set(db, [red, unsaved_tag]),
            lambda: acme.related("users").set(db, [unsaved_user]),
        ]
    for call in calls:
        async with assert_num_queries(db, 0):
            with pytest.raises(ValueError, match=r"saved"):
                await call()
    assert await links(database) == []
    assert (await companies(database))["amy"] == acme.pk
    assert await Tag.objects.filter(name="unsaved").count(db) == 0


@pytest.mark.parametrize("method", ["add", "remove", "set", "clear", "create"])
async def test_many_to_many_write_drops_the_loaded_relation(db: AsyncSession, method: str) -> None:
    first, _, red, green, _ = await blog(db)
    await first.related("tags").add(db, red)
    post = await Post.objects.prefetch_related("tags").get(db, pk=first.pk)
    assert [t.name for t in post.tags] == ["red"]
    tags = post.related("tags")
    if method == "add":
        await tags.add(db, green)
    elif method == "remove":
        await tags.remove(db, red)
    elif method == "set":
        await tags.set(db, [green])
    elif method == "clear":
        await tags.clear(db)
    else:
        await tags.create(db, name="new")
    with pytest.raises(RelationNotLoaded, match=r"Post\.tags"):
        _ = post.tags
    await post.fetch_related(db, "tags")
    expected = {
        "add": ["green", "red"],
        "remove": [],
        "set": ["green"],
        "clear": [],
        "create": ["new", "red"],
    }
    assert sorted(t.name for t in post.tags) == expected[method]


@pytest.mark.parametrize("method", ["add", "remove", "set", "clear", "create"])
async def test_one_to_many_write_drops_the_loaded_relation(db: AsyncSession, method: str) -> None:
    acme, _, amy, bob, _ = await staff(db)
    company = await Company.objects.prefetch_related("users").get(db, pk=acme.pk)
    assert [u.name for u in company.users] == ["amy"]
    users = company.related("users")
    if method == "add":
        await users.add(db, bob)
    elif method == "remove":
        await users.remove(db, amy)
    elif method == "set":
        await users.set(db, [bob])
    elif method == "clear":
        await users.clear(db)
    else:
        await users.create(db, name="dan", email="dan@x")
    with pytest.raises(RelationNotLoaded, match=r"Company\.users"):
        _ = company.users
    await company.fetch_related(db, "users")
    expected = {
        "add": ["amy", "bob"],
        "remove": [],
        "set": ["bob"],
        "clear": [],
        "create": ["amy", "dan"],
    }
    assert sorted(u.name for u in company.users) == expected[method]


async def test_get_or_create_and_bulk_create_through_a_related_manager_are_scoped(
    db: AsyncSession,
) -> None:
    ann = await User.objects.create(db, name="Ann", email="ann@x.io")
    bob = await User.objects.create(db, name="Bob", email="bob@x.io")
    await Post.objects.create(db, title="shared", author_id=bob.id)
    post, created = await ann.related("posts").get_or_create(db, title="shared")
    assert created  # Bob's post of that title is not one of Ann's
    assert post.author_id == ann.id
    again, created = await ann.related("posts").get_or_create(db, title="shared")
    assert (again.id, created) == (post.id, False)
    updated, created = await ann.related("posts").update_or_create(
        db, title="shared", defaults={"views": 3}
    )
    assert (updated.id, updated.views, created) == (post.id, 3, False)
    made = await ann.related("posts").bulk_create(db, [Post(title="b1"), {"title": "b2"}])
    assert [p.author_id for p in made] == [ann.id, ann.id]
    assert await ann.related("posts").count(db) == 3
    assert await bob.related("posts").count(db) == 1
    tag, created = await post.related("tags").get_or_create(db, name="new")
    assert created
    assert tag.name == "new"
    assert [t.name for t in await post.related("tags").fetch(db)] == ["new"]
    with pytest.raises(TypeError, match="one-to-many"):
        await post.related("tags").bulk_create(db, [Tag(name="x")])
