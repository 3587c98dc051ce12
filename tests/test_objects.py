"""Objects behave as in Django (SPEC 2.1): new instances per query, writes only by save().

Every test asserts what a user relies on: the rows in the database (read back
through a fresh session), the SQL that was or was not sent, and the values the
objects hold.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

import flash_db
from flash_db import Count, Q, RelationNotLoaded, atomic
from flash_db.testing import assert_num_queries, capture_queries
from tests.models import Comment, Company, Gauge, Post, Tag, User


def first_words(statements: list[str]) -> list[str]:
    """Return the leading keyword of each statement (``SELECT``, ``UPDATE``, ...)."""
    return [sql.split(None, 1)[0].upper() for sql in statements]


def set_columns(sql: str) -> set[str]:
    """Return the columns the SET clause of an UPDATE statement writes."""
    match = re.search(r"\bSET\s+(.*?)\s+(?:FROM|WHERE)\b", sql, re.IGNORECASE | re.DOTALL)
    assert match is not None, f"not an UPDATE with SET ... WHERE/FROM: {sql}"
    return set(re.findall(r'(?:^|,)\s*"?(\w+)"?\s*=', match.group(1)))


def annotation(obj: object, name: str) -> Any:
    """Return an annotated value (not an attribute the model declares)."""
    return getattr(obj, name)


async def stored_user(database: flash_db.Database, pk: int) -> tuple[str, int | None]:
    """Return ``(name, age)`` of a user row, read through a fresh session."""
    async with database.session() as fresh:
        user = await User.objects.get(fresh, pk=pk)
        return user.name, user.age


# -- every terminal returns new instances holding the row as it is now ---------------


async def test_every_terminal_returns_new_instances(db: AsyncSession) -> None:
    created = await User.objects.create(db, name="a", email="a@x", age=1)
    first = await User.objects.first(db)
    last = await User.objects.last(db)
    assert first is not None
    assert last is not None
    got: list[User] = [
        await User.objects.get(db, pk=created.pk),
        await User.objects.get(db, pk=created.pk),
        *(await User.objects.fetch(db)),
        first,
        last,
        (await User.objects.in_bulk(db))[created.pk],
        await User.objects.latest(db),
        await User.objects.earliest(db),
        (await User.objects.get_or_create(db, email="a@x"))[0],
        *[user async for user in User.objects.iterator(db)],
        *[user async for user in User.objects.stream(db)],
    ]
    assert len({id(obj) for obj in [created, *got]}) == len(got) + 1
    assert all((obj.pk, obj.name, obj.age) == (created.pk, "a", 1) for obj in got)


async def test_get_after_another_session_committed_returns_a_new_object_with_the_new_values(
    db: AsyncSession, database: flash_db.Database
) -> None:
    user = await User.objects.create(db, name="a", email="a@x", age=1)
    a = await User.objects.get(db, pk=user.pk)
    async with database.session() as other:
        theirs = await User.objects.get(other, pk=user.pk)
        theirs.age = 2
        theirs.name = "renamed"
        await theirs.save(other)
    b = await User.objects.get(db, pk=user.pk)
    assert a is not b
    assert (b.name, b.age) == ("renamed", 2)
    assert (a.name, a.age) == ("a", 1)  # the old object keeps its values
    (listed,) = await User.objects.fetch(db)
    assert (listed.name, listed.age) == ("renamed", 2)


async def test_get_after_a_queryset_update_returns_the_new_values(db: AsyncSession) -> None:
    user = await User.objects.create(db, name="a", email="a@x", age=1)
    a = await User.objects.get(db, pk=user.pk)
    assert await User.objects.filter(pk=user.pk).update(db, age=5) == 1
    b = await User.objects.get(db, pk=user.pk)
    assert (a.age, b.age) == (1, 5)


async def test_get_inside_atomic_sees_a_commit_made_before_the_block(
    db: AsyncSession, database: flash_db.Database
) -> None:
    user = await User.objects.create(db, name="a", email="a@x", age=1)
    a = await User.objects.get(db, pk=user.pk)
    async with database.session() as other:
        await User.objects.filter(pk=user.pk).update(other, age=3)
    async with atomic(db):
        b = await User.objects.get(db, pk=user.pk)
    assert (a.age, b.age) == (1, 3)


async def test_select_for_update_returns_the_row_as_it_is_when_locked(
    db: AsyncSession, database: flash_db.Database
) -> None:
    user = await User.objects.create(db, name="a", email="a@x", age=1)
    before = await User.objects.get(db, pk=user.pk)
    async with database.session() as other:
        await User.objects.filter(pk=user.pk).update(other, age=7)
    async with atomic(db):
        locked = await User.objects.select_for_update().get(db, pk=user.pk)
        (listed,) = await User.objects.select_for_update().filter(pk=user.pk).fetch(db)
    assert locked is not before
    assert listed is not locked
    assert (locked.age, listed.age) == (7, 7)
    assert before.age == 1


async def test_select_for_update_in_two_sessions_loses_no_update(
    database: flash_db.Database,
) -> None:
    """Issue 12: two requests increment one counter; the second's locked read waits."""
    if database.backend != "postgresql":
        pytest.skip(
            "select_for_update() locks rows on PostgreSQL only (SPEC 5); on SQLite it is "
            "accepted with no effect, so there is no lock for the second session to wait on"
        )
    async with database.session() as db:
        counter = await User.objects.create(db, name="counter", email="c@x", age=0)
    loaded = asyncio.Barrier(2)
    first_locked = asyncio.Event()
    events: list[str] = []
    locked_values: dict[str, int | None] = {}

    async def increment(name: str) -> None:
        async with database.session() as db:
            checked = await User.objects.get(db, pk=counter.pk)  # the request's 404 check
            assert checked.age == 0
            await loaded.wait()
            if name == "second":
                await first_locked.wait()
            async with atomic(db):
                row = await User.objects.select_for_update().get(db, pk=counter.pk)
                locked_values[name] = row.age
                events.append(f"{name} locked")
                if name == "first":
                    first_locked.set()
                    # The second session's SELECT ... FOR UPDATE reaches the server and waits.
                    await asyncio.sleep(0.3)
                assert row.age is not None
                row.age += 1
                await row.save(db)
                events.append(f"{name} saved")
            assert checked.age == 0  # the object of the 404 check is another object

    async with asyncio.timeout(30):
        await asyncio.gather(increment("first"), increment("second"))
    assert locked_values == {"first": 0, "second": 1}  # the second read the first's commit
    assert events == ["first locked", "first saved", "second locked", "second saved"]
    assert (await stored_user(database, counter.pk))[1] == 2


# -- assigning changes only the Python object: nothing writes it but save() ----------


async def test_unsaved_changes_are_never_written(database: flash_db.Database) -> None:
    """Issue 12: a negative value set and not saved is never seen by the database."""
    async with database.session() as db:
        await User.objects.create(db, name="a", email="a@x", age=5)
    async with database.session() as db:
        a = await User.objects.get(db, name="a")
        same_row = await User.objects.get(db, name="a")
        a.age = -1
        assert same_row.age == 5  # only that Python object changed
        async with capture_queries(db) as captured:
            assert await User.objects.filter(age__lt=0).count(db) == 0
        assert first_words(captured.statements) == ["SELECT"]
        async with atomic(db):
            async with capture_queries(db) as captured:
                assert await User.objects.filter(age__lt=0).count(db) == 0
                await User.objects.create(db, name="b", email="b@x")
            assert first_words(captured.statements) == ["SELECT", "INSERT"]
        async with capture_queries(db) as captured:
            assert await User.objects.filter(age__lt=0).count(db) == 0  # after the COMMIT
            await db.commit()
        assert first_words(captured.statements) == ["SELECT"]
        assert a.age == -1
    # The session is closed: the row still holds the old value.
    async with database.session() as fresh:
        assert await User.objects.filter(age__lt=0).count(fresh) == 0
        assert (await User.objects.get(fresh, name="a")).age == 5
        await a.save(fresh)  # the change was there all along: save() writes it
        assert await User.objects.filter(age__lt=0).count(fresh) == 1


# -- save() writes the fields changed since load; update_fields exactly those --------


async def test_save_sends_one_update_of_the_changed_fields(
    db: AsyncSession, database: flash_db.Database
) -> None:
    user = await User.objects.create(db, name="a", email="a@x", age=1)
    loaded = await User.objects.get(db, pk=user.pk)
    loaded.name = "renamed"
    async with assert_num_queries(db, 1) as captured:
        await loaded.save(db)
    (sql,) = captured.statements
    assert first_words([sql]) == ["UPDATE"]
    columns = set_columns(sql)
    assert "name" in columns
    assert not columns & {"age", "email", "company_id", "created_at", "id"}
    assert await stored_user(database, user.pk) == ("renamed", 1)
    loaded.age = 2  # changed since last saved: written next, alone
    async with assert_num_queries(db, 1) as captured:
        await loaded.save(db)
    assert "age" in set_columns(captured.statements[0])
    assert "name" not in set_columns(captured.statements[0])
    assert await stored_user(database, user.pk) == ("renamed", 2)


async def test_save_with_nothing_changed_sends_no_statement(db: AsyncSession) -> None:
    created = await User.objects.create(db, name="a", email="a@x", age=1)
    loaded = await User.objects.get(db, pk=created.pk)
    (bulk,) = await Gauge.objects.bulk_create(db, [Gauge(small=1)])
    async with assert_num_queries(db, 0):
        await created.save(db)
        await loaded.save(db)
        await bulk.save(db)
        loaded.age = 1  # the value it had
        loaded.name = "a"
        await loaded.save(db)
    loaded.age = 2
    async with assert_num_queries(db, 1):
        await loaded.save(db)
    async with assert_num_queries(db, 0):
        await loaded.save(db)  # saved: nothing changed since


async def test_save_does_not_overwrite_a_concurrent_change_to_another_field(
    db: AsyncSession, database: flash_db.Database
) -> None:
    user = await User.objects.create(db, name="a", email="a@x", age=1)
    mine = await User.objects.get(db, pk=user.pk)
    async with database.session() as other:
        theirs = await User.objects.get(other, pk=user.pk)
        theirs.age = 9
        await theirs.save(other)
    mine.name = "renamed"
    await mine.save(db)
    assert await stored_user(database, user.pk) == ("renamed", 9)
    assert mine.age == 1  # Django: the object is not refreshed by save()


async def test_save_update_fields_writes_exactly_those_fields_changed_or_not(
    db: AsyncSession, database: flash_db.Database
) -> None:
    (gauge,) = await Gauge.objects.bulk_create(db, [Gauge(small=1, big=10)])
    mine = await Gauge.objects.get(db, pk=gauge.pk)
    async with database.session() as other:
        await Gauge.objects.filter(pk=gauge.pk).update(other, small=50)
    mine.big = 11  # changed, not named below: stays changed and unsaved
    async with assert_num_queries(db, 1) as captured:
        await mine.save(db, update_fields=["small"])  # small is not changed: written anyway
    assert first_words(captured.statements) == ["UPDATE"]
    assert set_columns(captured.statements[0]) == {"small"}
    async with database.session() as fresh:
        stored = await Gauge.objects.values_list("small", "big").fetch(fresh)
    assert stored == [(1, 10)]
    async with assert_num_queries(db, 1) as captured:
        await mine.save(db)  # the other change is still unsaved: a plain save() writes it
    assert set_columns(captured.statements[0]) == {"big"}
    async with database.session() as fresh:
        assert await Gauge.objects.values_list("small", "big").fetch(fresh) == [(1, 11)]
    async with assert_num_queries(db, 0):
        await mine.save(db)


async def test_update_fields_leaves_other_changes_of_a_user_unsaved(
    db: AsyncSession, database: flash_db.Database
) -> None:
    user = await User.objects.create(db, name="a", email="a@x", age=1)
    user.name = "renamed"
    user.age = 2
    async with assert_num_queries(db, 1) as captured:
        await user.save(db, update_fields=["age"])
    assert "age" in set_columns(captured.statements[0])
    assert "name" not in set_columns(captured.statements[0])
    assert await stored_user(database, user.pk) == ("a", 2)
    await user.save(db)
    assert await stored_user(database, user.pk) == ("renamed", 2)


async def test_bulk_update_writes_exactly_the_named_field(
    db: AsyncSession, database: flash_db.Database
) -> None:
    """Issue 12: bulk_update(db, objs, ["small"]) writes small, never another changed field."""
    await Gauge.objects.bulk_create(db, [Gauge(small=1, big=10), Gauge(small=2, big=20)])
    gauges = await Gauge.objects.order_by("small").fetch(db)
    for gauge in gauges:
        assert gauge.small is not None
        assert gauge.big is not None
        gauge.small += 100
        gauge.big += 100
    async with assert_num_queries(db, 1) as captured:
        assert await Gauge.objects.bulk_update(db, gauges, ["small"]) == 2
    assert first_words(captured.statements) == ["UPDATE"]
    assert set_columns(captured.statements[0]) == {"small"}
    async with database.session() as fresh:
        stored = await Gauge.objects.order_by("small").values_list("small", "big").fetch(fresh)
    assert stored == [(101, 10), (102, 20)]
    async with assert_num_queries(db, 2) as captured:
        for gauge in gauges:
            await gauge.save(db)  # big is still changed and unsaved
    assert [set_columns(sql) for sql in captured.statements] == [{"big"}, {"big"}]
    async with database.session() as fresh:
        stored = await Gauge.objects.order_by("small").values_list("small", "big").fetch(fresh)
    assert stored == [(101, 110), (102, 120)]


async def test_bulk_update_of_users_leaves_the_field_not_named(
    db: AsyncSession, database: flash_db.Database
) -> None:
    user = await User.objects.create(db, name="a", email="a@x", age=1)
    loaded = await User.objects.get(db, pk=user.pk)
    loaded.name = "renamed"
    loaded.age = 2
    async with assert_num_queries(db, 1) as captured:
        await User.objects.bulk_update(db, [loaded], ["age"])
    assert "age" in set_columns(captured.statements[0])
    assert "name" not in set_columns(captured.statements[0])
    assert await stored_user(database, user.pk) == ("a", 2)


# -- an instance is not tied to the session that loaded it ---------------------------


async def test_an_instance_loaded_in_one_session_is_saved_and_deleted_with_another(
    database: flash_db.Database,
) -> None:
    async with database.session() as first:
        created = await User.objects.create(first, name="a", email="a@x", age=1)
        user = await User.objects.get(first, pk=created.pk)
    # ``first`` is closed.
    user.age = 2
    async with database.session() as second, assert_num_queries(second, 1):
        await user.save(second)
    assert await stored_user(database, user.pk) == ("a", 2)
    user.name = "renamed"
    async with database.session() as third, atomic(third):
        await user.save(third)
    assert await stored_user(database, user.pk) == ("renamed", 2)
    async with database.session() as fourth, assert_num_queries(fourth, 1):
        await user.delete(fourth)
    async with database.session() as fresh:
        assert await User.objects.filter(pk=created.pk).count(fresh) == 0


# -- annotations are attributes of the instances of one query ------------------------


async def test_annotations_belong_to_the_instances_of_one_query(db: AsyncSession) -> None:
    """Issue 12: a later annotate query with another value leaves ``a.n`` as it was."""
    user = await User.objects.create(db, name="a", email="a@x")
    for title in ("p0", "p1"):
        await Post.objects.create(db, title=title, author_id=user.pk)
    qs = User.objects.annotate(n=Count("posts"))
    a = await qs.get(db, pk=user.pk)
    assert annotation(a, "n") == 2
    await Post.objects.create(db, title="p2", author_id=user.pk)
    b = await qs.get(db, pk=user.pk)
    c = await User.objects.annotate(n=Count("posts", filter=Q(posts__title="p0"))).get(
        db, pk=user.pk
    )
    assert (annotation(a, "n"), annotation(b, "n"), annotation(c, "n")) == (2, 3, 1)
    assert a is not b
    plain = await User.objects.get(db, pk=user.pk)
    assert not hasattr(plain, "n")


# -- relation attributes --------------------------------------------------------------


async def test_assigning_a_to_one_relation_sets_the_foreign_key_at_once(
    db: AsyncSession, database: flash_db.Database
) -> None:
    ann = await User.objects.create(db, name="ann", email="ann@x")
    bob = await User.objects.create(db, name="bob", email="bob@x")
    created = await Post.objects.create(db, title="p", author_id=ann.pk)
    post = await Post.objects.get(db, pk=created.pk)
    async with assert_num_queries(db, 0):
        post.author = bob
        assert post.author_id == bob.pk
        assert post.author is bob
    await post.save(db)
    async with database.session() as fresh:
        assert (await Post.objects.get(fresh, pk=post.pk)).author_id == bob.pk
    comment = await Comment.objects.create(db, text="c", post_id=post.pk, author_id=ann.pk)
    async with assert_num_queries(db, 0):
        comment.author = None
        assert comment.author_id is None
        assert comment.author is None
    await comment.save(db)
    async with database.session() as fresh:
        assert (await Comment.objects.get(fresh, pk=comment.pk)).author_id is None


async def test_relations_hold_what_was_loaded_or_assigned(db: AsyncSession) -> None:
    acme = await Company.objects.create(db, name="Acme")
    ann = await User.objects.create(db, name="ann", email="ann@x", company_id=acme.pk)
    created = await Post.objects.create(db, title="p", author_id=ann.pk)
    red = await Tag.objects.create(db, name="red")
    await created.related("tags").add(db, red)
    post = await Post.objects.select_related("author__company").prefetch_related("tags").get(db)
    user = await User.objects.get(db, pk=ann.pk)
    await user.fetch_related(db, "posts")
    async with assert_num_queries(db, 0):
        assert post.author.name == "ann"
        assert post.author.company is not None
        assert post.author.company.name == "Acme"
        assert [tag.name for tag in post.tags] == ["red"]
        assert [p.title for p in user.posts] == ["p"]
        bob = User(name="bob", email="bob@x")
        post.author = bob
        assert post.author is bob
        post.tags = []
        assert post.tags == []


async def test_a_to_one_relation_whose_foreign_key_is_null_reads_none(db: AsyncSession) -> None:
    ann = await User.objects.create(db, name="ann", email="ann@x")
    post = await Post.objects.create(db, title="p", author_id=ann.pk)
    created = await Comment.objects.create(db, text="c", post_id=post.pk)
    (bulk,) = await User.objects.bulk_create(db, [User(name="bob", email="bob@x")])
    loaded = await Comment.objects.get(db, pk=created.pk)
    loaded_user = await User.objects.get(db, pk=ann.pk)
    async with assert_num_queries(db, 0):
        assert created.author is None
        assert loaded.author is None
        assert ann.company is None
        assert bulk.company is None
        assert loaded_user.company is None
        assert User(name="new", email="new@x").company is None


async def _post_from(origin: str, db: AsyncSession, author: User) -> Post:
    if origin == "query":
        created = await Post.objects.create(db, title="p", author_id=author.pk)
        return await Post.objects.get(db, pk=created.pk)
    if origin == "create":
        return await Post.objects.create(db, title="p", author_id=author.pk)
    if origin == "bulk_create":
        (post,) = await Post.objects.bulk_create(db, [Post(title="p", author_id=author.pk)])
        return post
    if origin == "get_or_create":
        made, was_created = await Post.objects.get_or_create(db, title="p", author_id=author.pk)
        assert was_created
        return made
    if origin == "iterator":
        await Post.objects.create(db, title="p", author_id=author.pk)
        (post,) = [p async for p in Post.objects.iterator(db)]
        return post
    post = Post(title="p", author_id=author.pk)
    if origin == "saved constructor":
        await post.save(db)
    return post


@pytest.mark.parametrize(
    "origin",
    [
        "query",
        "iterator",
        "create",
        "get_or_create",
        "bulk_create",
        "constructor",
        "saved constructor",
    ],
)
async def test_relations_that_hold_nothing_raise_relation_not_loaded(
    db: AsyncSession, origin: str
) -> None:
    author = await User.objects.create(db, name="ann", email="ann@x")
    post = await _post_from(origin, db, author)
    async with assert_num_queries(db, 0):
        with pytest.raises(RelationNotLoaded) as info:
            _ = post.author  # its foreign key is set: there is a row, not loaded
        assert (info.value.model, info.value.attribute) == (Post, "author")
        with pytest.raises(RelationNotLoaded, match=r"Post\.tags"):
            _ = post.tags
        with pytest.raises(RelationNotLoaded, match=r"Post\.comments"):
            _ = post.comments
        with pytest.raises(RelationNotLoaded, match=r"User\.posts"):
            _ = author.posts
    assert post.author_id == author.pk


async def test_relations_of_related_objects_that_hold_nothing_raise(db: AsyncSession) -> None:
    ann = await User.objects.create(db, name="ann", email="ann@x")
    await Post.objects.create(db, title="p", author_id=ann.pk)
    post = await Post.objects.select_related("author").get(db)
    async with assert_num_queries(db, 0):
        assert post.author.name == "ann"
        assert post.author.company is None  # company_id is NULL
        with pytest.raises(RelationNotLoaded, match=r"User\.posts"):
            _ = post.author.posts
