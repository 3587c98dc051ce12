"""RelationNotLoaded: touching what was not loaded in async code names the attribute and fix."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, select
from sqlalchemy.exc import MissingGreenlet
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

import flash_db
from flash_db import FlashDBError, Model, RelationNotLoaded
from flash_db.testing import assert_num_queries
from tests.models import Company, Post, Tag, User


async def _seed(database: flash_db.Database) -> None:
    async with database.session() as db:
        ann = User(name="Ann", email="ann@x.io", company=Company(name="Acme"))
        ann.posts = [Post(title="a1", body="text", tags=[Tag(name="red")])]
        db.add(ann)
        await db.commit()


async def test_unloaded_to_one_relation(database: flash_db.Database, db: AsyncSession) -> None:
    await _seed(database)
    post = await Post.objects.get(db, title="a1")
    async with assert_num_queries(db, 0):
        with pytest.raises(RelationNotLoaded) as info:
            _ = post.author.name
    error = info.value
    assert isinstance(error, FlashDBError)
    assert not isinstance(error, MissingGreenlet)
    assert (error.model, error.attribute) == (Post, "author")
    assert str(error) == (
        "Relation Post.author is not loaded, and async code cannot load it implicitly. "
        "To use it, load it with the query (.select_related('author') or "
        ".prefetch_related('author')), or await obj.fetch_related(db, 'author')."
    )


async def test_unloaded_to_many_relation(database: flash_db.Database, db: AsyncSession) -> None:
    await _seed(database)
    user = await User.objects.get(db, name="Ann")
    with pytest.raises(RelationNotLoaded) as info:
        _ = len(user.posts)
    assert (info.value.model, info.value.attribute) == (User, "posts")
    assert str(info.value) == (
        "Relation User.posts is not loaded, and async code cannot load it implicitly. "
        "To use it, load it with the query (.prefetch_related('posts')), "
        "or await obj.fetch_related(db, 'posts')."
    )


async def test_unloaded_many_to_many_relation(
    database: flash_db.Database, db: AsyncSession
) -> None:
    await _seed(database)
    tag = await Tag.objects.get(db, name="red")
    with pytest.raises(RelationNotLoaded, match=r"Relation Tag\.posts is not loaded"):
        list(tag.posts)


async def test_deferred_column(database: flash_db.Database, db: AsyncSession) -> None:
    await _seed(database)
    post = await Post.objects.defer("body").get(db, title="a1")
    with pytest.raises(RelationNotLoaded) as info:
        _ = post.body
    assert (info.value.model, info.value.attribute) == (Post, "body")
    assert str(info.value) == (
        "Deferred column Post.body is not loaded, and async code cannot load it implicitly. "
        "To use it, load it with the query (drop it from defer()/add it to only()), "
        "or await obj.refresh_from_db(db, fields=['body'])."
    )
    await post.refresh_from_db(db, fields=["body"])
    assert post.body == "text"


async def test_loaded_relations_just_work(database: flash_db.Database, db: AsyncSession) -> None:
    await _seed(database)
    post = await Post.objects.select_related("author__company").prefetch_related("tags").get(db)
    user = await User.objects.prefetch_related("posts").get(db)
    async with assert_num_queries(db, 0):
        assert post.author.company is not None
        assert post.author.company.name == "Acme"
        assert [t.name for t in post.tags] == ["red"]
        assert [p.title for p in user.posts] == ["a1"]
    tag = await Tag.objects.get(db, name="red")
    await tag.fetch_related(db, "posts")
    assert [p.title for p in tag.posts] == ["a1"]


async def test_objects_created_with_their_collections_just_work(db: AsyncSession) -> None:
    user = User(name="Ann", email="ann@x.io", posts=[Post(title="a1")])
    await user.save(db)
    post = user.posts[0]
    async with assert_num_queries(db, 0):
        assert [p.title for p in user.posts] == ["a1"]
        assert post.author is user  # set by back_populates when the collection was assigned


async def test_an_object_another_query_loaded_is_not_shared(
    database: flash_db.Database, db: AsyncSession
) -> None:
    await _seed(database)
    user = await User.objects.get(db, name="Ann")
    post = await Post.objects.get(db, title="a1")
    async with assert_num_queries(db, 0):
        with pytest.raises(RelationNotLoaded, match=r"Post\.author"):
            _ = post.author  # no identity map: the user loaded above is another object
    assert post.author_id == user.id


async def test_objects_outside_any_session_raise_too(db: AsyncSession) -> None:
    post = Post(title="new", author_id=7)
    with pytest.raises(RelationNotLoaded, match=r"Post\.author"):
        _ = post.author  # the key is set, the object is not loaded
    with pytest.raises(RelationNotLoaded, match=r"Post\.tags"):
        _ = post.tags
    assert Post(title="no author").author is None  # a NULL foreign key reads None


async def test_pending_changes_are_not_flushed_by_a_refused_load(
    database: flash_db.Database, db: AsyncSession
) -> None:
    await _seed(database)
    user = await User.objects.get(db, name="Ann")
    db.add(Tag(name="pending"))
    with pytest.raises(RelationNotLoaded):
        _ = user.posts
    assert len(db.new) == 1  # the refused load did not try to autoflush


async def test_objects_of_a_sqlalchemy_session_keep_its_lazy_loading(
    database: flash_db.Database, db: AsyncSession
) -> None:
    await _seed(database)
    user = (await db.execute(select(User))).scalars().one()  # SQLAlchemy's own object

    def titles(session: Session) -> list[str]:
        return [post.title for post in user.posts]  # a lazy load, in a greenlet

    assert await db.run_sync(titles) == ["a1"]
    assert "posts" not in inspect(user).unloaded
    assert [p.title for p in user.posts] == ["a1"]


def test_a_synchronous_engine_keeps_lazy_loading(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'sync.sqlite3'}")
    try:
        Model.metadata.create_all(engine)
        with Session(engine) as session:
            session.add(User(name="Ann", email="ann@x.io", posts=[Post(title="a1")]))
            session.commit()
        with Session(engine) as session:
            user = session.scalars(select(User)).one()
            assert [post.title for post in user.posts] == ["a1"]  # SQLAlchemy's lazy load
    finally:
        engine.dispose()


@pytest.mark.postgres_only
async def test_a_lazy_load_of_a_sqlalchemy_object_in_async_code_raises_relation_not_loaded(
    database: flash_db.Database, db: AsyncSession
) -> None:
    if database.backend != "postgresql":
        pytest.skip("on SQLite the refused load leaves the driver's coroutine unawaited")
    await _seed(database)
    company = (await db.execute(select(Company))).scalars().one()  # SQLAlchemy's own object
    with pytest.raises(RelationNotLoaded, match=r"Company\.users"):
        _ = company.users
