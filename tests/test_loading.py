"""Eager loading: select_related, prefetch_related and Prefetch, only/defer, fetch_related."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

import flash_db
from flash_db import FieldError, Prefetch, RelationNotLoaded, prefetch_related_objects
from flash_db.testing import assert_num_queries
from tests.models import Comment, Company, Post, Tag, User


async def _seed(database: flash_db.Database) -> None:
    """Two companies, three users, posts with tags; read back through another session."""
    async with database.session() as db:
        acme, globex = Company(name="Acme"), Company(name="Globex")
        red, blue, green = Tag(name="red"), Tag(name="blue"), Tag(name="green")
        ann = User(name="Ann", email="ann@x.io", company=acme)
        bob = User(name="Bob", email="bob@x.io", company=globex)
        cid = User(name="Cid", email="cid@x.io")  # no company, no posts
        ann.posts = [
            Post(title="a1", published=True, tags=[red, blue]),
            Post(title="a2", published=False, tags=[blue]),
            Post(title="a3", published=True, tags=[]),
        ]
        bob.posts = [Post(title="b1", published=True, tags=[green, red])]
        db.add_all([acme, globex, red, blue, green, ann, bob, cid])
        await db.commit()
        post = ann.posts[0]
        db.add(Comment(text="nice", post=post, author=bob))
        await db.commit()


# -- select_related ---------------------------------------------------------------


async def test_select_related_loads_to_one_relations_in_one_query(
    database: flash_db.Database, db: AsyncSession
) -> None:
    await _seed(database)
    async with assert_num_queries(db, 1) as captured:
        posts = await Post.objects.select_related("author").order_by("title").fetch(db)
        authors = [post.author.name for post in posts]
    assert authors == ["Ann", "Ann", "Ann", "Bob"]
    assert "JOIN users" in captured.statements[0]


async def test_select_related_follows_multi_level_paths(
    database: flash_db.Database, db: AsyncSession
) -> None:
    await _seed(database)
    async with assert_num_queries(db, 1):
        posts = await Post.objects.select_related("author__company").order_by("title").fetch(db)
        companies = [(p.title, p.author.name, p.author.company) for p in posts]
    assert [(title, name, c.name if c else None) for title, name, c in companies] == [
        ("a1", "Ann", "Acme"),
        ("a2", "Ann", "Acme"),
        ("a3", "Ann", "Acme"),
        ("b1", "Bob", "Globex"),
    ]


async def test_select_related_keeps_rows_whose_relation_is_null(
    database: flash_db.Database, db: AsyncSession
) -> None:
    await _seed(database)
    users = await User.objects.select_related("company").order_by("name").fetch(db)
    assert [(u.name, u.company.name if u.company else None) for u in users] == [
        ("Ann", "Acme"),
        ("Bob", "Globex"),
        ("Cid", None),
    ]


async def test_select_related_with_get_and_first(
    database: flash_db.Database, db: AsyncSession
) -> None:
    await _seed(database)
    async with assert_num_queries(db, 2):
        post = await Post.objects.select_related("author__company").get(db, title="b1")
        first = await Comment.objects.select_related("post__author", "author").first(db)
    assert post.author.company is not None
    assert post.author.company.name == "Globex"
    assert first is not None
    assert (first.post.title, first.post.author.name, first.author) == ("a1", "Ann", first.author)
    assert first.author is not None
    assert first.author.name == "Bob"


async def test_select_related_unknown_relation_raises_field_error_before_sql(
    database: flash_db.Database, db: AsyncSession
) -> None:
    async with assert_num_queries(db, 0):
        with pytest.raises(FieldError) as info:
            await Post.objects.select_related("auther").fetch(db)
    assert info.value.choices == ["author", "comments", "tags"]
    assert "'auther'" in str(info.value)
    assert "author, comments, tags" in str(info.value)
    with pytest.raises(FieldError, match=r"'nmae'.*on User"):
        await Post.objects.select_related("author__nmae").fetch(db)


async def test_select_related_refuses_to_many_relations(db: AsyncSession) -> None:
    async with assert_num_queries(db, 0):
        with pytest.raises(FieldError) as info:
            await User.objects.select_related("posts").fetch(db)
    message = str(info.value)
    assert "User.posts is a to-many relation" in message
    assert "prefetch_related('posts')" in message
    assert info.value.choices == ["company"]


# -- prefetch_related ---------------------------------------------------------------


async def test_prefetch_related_is_one_query_per_relation(
    database: flash_db.Database, db: AsyncSession
) -> None:
    await _seed(database)
    async with assert_num_queries(db, 2):
        users = await User.objects.prefetch_related("posts").order_by("name").fetch(db)
        titles = {u.name: sorted(p.title for p in u.posts) for u in users}
    assert titles == {"Ann": ["a1", "a2", "a3"], "Bob": ["b1"], "Cid": []}


async def test_prefetch_related_is_one_query_per_level(
    database: flash_db.Database, db: AsyncSession
) -> None:
    await _seed(database)
    async with assert_num_queries(db, 3):
        users = await User.objects.prefetch_related("posts__tags").order_by("name").fetch(db)
        tags = {u.name: {p.title: sorted(t.name for t in p.tags) for p in u.posts} for u in users}
    assert tags == {
        "Ann": {"a1": ["blue", "red"], "a2": ["blue"], "a3": []},
        "Bob": {"b1": ["green", "red"]},
        "Cid": {},
    }


async def test_prefetch_related_loads_to_one_and_many_to_many(
    database: flash_db.Database, db: AsyncSession
) -> None:
    await _seed(database)
    async with assert_num_queries(db, 1 + 2 + 1):
        posts = await Post.objects.prefetch_related("author__company", "tags").fetch(db)
        seen = sorted(
            (p.title, p.author.name, p.author.company.name if p.author.company else None)
            for p in posts
        )
    async with assert_num_queries(db, 2):
        tag_posts = await Tag.objects.prefetch_related("posts").order_by("name").fetch(db)
    assert seen == [
        ("a1", "Ann", "Acme"),
        ("a2", "Ann", "Acme"),
        ("a3", "Ann", "Acme"),
        ("b1", "Bob", "Globex"),
    ]
    assert {t.name: sorted(p.title for p in t.posts) for t in tag_posts} == {
        "blue": ["a1", "a2"],
        "green": ["b1"],
        "red": ["a1", "b1"],
    }


async def test_prefetch_with_queryset_and_to_attr(
    database: flash_db.Database, db: AsyncSession
) -> None:
    await _seed(database)
    published = Post.objects.filter(published=True).order_by("-title")
    async with assert_num_queries(db, 2):
        users = await (
            User.objects.prefetch_related(
                Prefetch("posts", queryset=published, to_attr="published_posts")
            )
            .order_by("name")
            .fetch(db)
        )
    result = {u.name: [p.title for p in u.published_posts] for u in users}  # type: ignore[attr-defined]  # set by to_attr
    assert result == {"Ann": ["a3", "a1"], "Bob": ["b1"], "Cid": []}
    with pytest.raises(RelationNotLoaded):
        _ = users[0].posts  # to_attr leaves the relation itself unloaded


async def test_prefetch_with_queryset_fills_the_relation(
    database: flash_db.Database, db: AsyncSession
) -> None:
    await _seed(database)
    published = Post.objects.filter(published=True).order_by("-title")
    async with assert_num_queries(db, 3):
        users = await (
            User.objects.prefetch_related(
                Prefetch("posts", queryset=published.prefetch_related("tags"))
            )
            .order_by("name")
            .fetch(db)
        )
        result = {
            u.name: [(p.title, sorted(t.name for t in p.tags)) for p in u.posts] for u in users
        }
    assert result == {
        "Ann": [("a3", []), ("a1", ["blue", "red"])],
        "Bob": [("b1", ["green", "red"])],
        "Cid": [],
    }


async def test_prefetch_nested_path_with_queryset_on_many_to_many(
    database: flash_db.Database, db: AsyncSession
) -> None:
    await _seed(database)
    async with assert_num_queries(db, 3):
        users = await (
            User.objects.prefetch_related(
                Prefetch(
                    "posts__tags",
                    queryset=Tag.objects.exclude(name="blue").order_by("name"),
                    to_attr="warm_tags",
                )
            )
            .filter(name="Ann")
            .fetch(db)
        )
    (ann,) = users
    warm = {p.title: [t.name for t in p.warm_tags] for p in ann.posts}  # type: ignore[attr-defined]  # set by to_attr
    assert warm == {"a1": ["red"], "a2": [], "a3": []}


async def test_prefetch_to_attr_without_queryset_and_values_ignore_prefetch(
    database: flash_db.Database, db: AsyncSession
) -> None:
    await _seed(database)
    async with assert_num_queries(db, 2):
        users = await (
            User.objects.prefetch_related(Prefetch("posts", to_attr="every_post"))
            .filter(name="Bob")
            .fetch(db)
        )
    assert [p.title for p in users[0].every_post] == ["b1"]  # type: ignore[attr-defined]  # set by to_attr
    async with assert_num_queries(db, 1):
        rows = (
            await User.objects.prefetch_related("posts").values("name").order_by("name").fetch(db)
        )
    assert rows == [{"name": "Ann"}, {"name": "Bob"}, {"name": "Cid"}]


async def test_prefetch_related_errors(db: AsyncSession) -> None:
    async with assert_num_queries(db, 0):
        with pytest.raises(FieldError) as info:
            await User.objects.prefetch_related("posts__tagz").fetch(db)
    assert info.value.choices == ["author", "comments", "tags"]
    with pytest.raises(ValueError, match="conflicts with a field on User"):
        await User.objects.prefetch_related(
            Prefetch("posts", queryset=Post.objects.all(), to_attr="name")
        ).fetch(db)
    with pytest.raises(TypeError, match="needs a queryset of Post"):
        await User.objects.prefetch_related(Prefetch("posts", queryset=Tag.objects.all())).fetch(db)
    with pytest.raises(TypeError, match="cannot be sliced"):
        Prefetch("posts", queryset=Post.objects.all()[:3])
    with pytest.raises(ValueError, match="'posts' lookup was already seen with a different"):
        await User.objects.prefetch_related(
            "posts", Prefetch("posts", queryset=Post.objects.filter(published=True))
        ).fetch(db)
    with pytest.raises(TypeError, match="relation names or Prefetch"):
        await User.objects.prefetch_related(42).fetch(db)


# -- fetch_related and the N+1 it replaces ------------------------------------------


async def test_fetch_related_loads_relations_onto_an_instance(
    database: flash_db.Database, db: AsyncSession
) -> None:
    await _seed(database)
    ann = await User.objects.get(db, name="Ann")
    async with assert_num_queries(db, 3):
        same = await ann.fetch_related(db, "posts", "posts__tags", "company")
    assert same is ann
    assert ann.company is not None
    assert ann.company.name == "Acme"
    assert sorted((p.title, sorted(t.name for t in p.tags)) for p in ann.posts) == [
        ("a1", ["blue", "red"]),
        ("a2", ["blue"]),
        ("a3", []),
    ]


async def test_loop_with_fetch_related_is_n_plus_one_and_prefetch_is_not(
    database: flash_db.Database, db: AsyncSession
) -> None:
    await _seed(database)
    async with assert_num_queries(db, 1 + 3):  # the N+1: one query per user
        users = await User.objects.order_by("name").fetch(db)
        for user in users:
            await user.fetch_related(db, "posts")
    async with assert_num_queries(db, 1 + 1):
        users = await User.objects.prefetch_related("posts").order_by("name").fetch(db)
    async with assert_num_queries(db, 1):  # the list helper: one query per level
        await prefetch_related_objects(db, users, "company")
    assert [u.company.name if u.company else None for u in users] == ["Acme", "Globex", None]


# -- only / defer ---------------------------------------------------------------------


async def test_only_loads_the_named_columns_and_the_primary_key(
    database: flash_db.Database, db: AsyncSession
) -> None:
    await _seed(database)
    async with assert_num_queries(db, 1) as captured:
        posts = await Post.objects.only("title").order_by("title").fetch(db)
    sql = captured.statements[0]
    assert "posts.title" in sql
    assert "posts.id" in sql
    assert "posts.body" not in sql
    assert (posts[0].title, isinstance(posts[0].id, int)) == ("a1", True)
    with pytest.raises(RelationNotLoaded, match=r"Post\.views"):
        _ = posts[0].views
    await posts[0].refresh_from_db(db, fields=["views"])
    assert posts[0].views == 0


async def test_defer_skips_columns_and_never_the_primary_key(
    database: flash_db.Database, db: AsyncSession
) -> None:
    await _seed(database)
    async with assert_num_queries(db, 1) as captured:
        posts = await Post.objects.defer("body", "pk").order_by("title").fetch(db)
    assert "posts.body" not in captured.statements[0]
    assert "posts.id" in captured.statements[0]
    assert posts[0].title == "a1"
    with pytest.raises(RelationNotLoaded, match=r"Post\.body"):
        _ = posts[0].body


async def test_only_and_defer_validate_names_before_sql(db: AsyncSession) -> None:
    async with assert_num_queries(db, 0):
        with pytest.raises(FieldError) as info:
            await Post.objects.only("titel").fetch(db)
        with pytest.raises(FieldError, match=r"'nope' into field in defer\(\)"):
            await Post.objects.defer("nope").fetch(db)
    assert "title" in info.value.choices
    assert "pk" in info.value.choices


async def test_only_with_select_related(database: flash_db.Database, db: AsyncSession) -> None:
    await _seed(database)
    async with assert_num_queries(db, 1):
        post = await Post.objects.only("title").select_related("author").get(db, title="b1")
        assert post.author.email == "bob@x.io"
