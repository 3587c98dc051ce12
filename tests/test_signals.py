"""Signals: order and arguments, sender filters, sync/async receivers, and their transaction."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

import flash_db
from flash_db import ValidationError, atomic, on_commit
from flash_db.signals import Signal, post_delete, post_save, pre_delete, pre_save
from flash_db.testing import assert_num_queries, capture_queries
from tests.models import Note, Post, Tag, User

Log = list[tuple[Any, ...]]


@pytest.fixture
def log() -> Iterator[Log]:
    """Connect recording receivers (sync and async) to the four signals; disconnect after."""
    calls: Log = []

    def sync_pre_save(sender: type[Any], instance: Any, **kwargs: Any) -> None:
        calls.append(("pre_save", sender.__name__, kwargs["created"], kwargs["update_fields"]))

    async def async_post_save(sender: type[Any], instance: Any, **kwargs: Any) -> None:
        calls.append(("post_save", sender.__name__, kwargs["created"], kwargs["update_fields"]))

    async def async_pre_delete(sender: type[Any], instance: Any, db: AsyncSession) -> None:
        calls.append(("pre_delete", sender.__name__, instance.pk))

    def sync_post_delete(sender: type[Any], instance: Any, db: AsyncSession) -> None:
        calls.append(("post_delete", sender.__name__, instance.pk))

    pairs: list[tuple[Signal, Any]] = [
        (pre_save, sync_pre_save),
        (post_save, async_post_save),
        (pre_delete, async_pre_delete),
        (post_delete, sync_post_delete),
    ]
    for signal, receiver in pairs:
        signal.connect(receiver)
    try:
        yield calls
    finally:
        for signal, receiver in pairs:
            assert signal.disconnect(receiver)


async def test_save_signals_order_and_arguments(db: AsyncSession, log: Log) -> None:
    user = await User.objects.create(db, name="a", email="a@x")
    user.name = "b"
    await user.save(db)
    await user.save(db, update_fields=["name"])
    assert log == [
        ("pre_save", "User", True, None),
        ("post_save", "User", True, None),
        ("pre_save", "User", False, None),
        ("post_save", "User", False, None),
        ("pre_save", "User", False, frozenset({"name"})),
        ("post_save", "User", False, frozenset({"name"})),
    ]


async def test_receivers_get_instance_and_session_as_keywords(db: AsyncSession) -> None:
    seen: list[dict[str, Any]] = []

    @post_save.connect(Tag)
    async def record(**kwargs: Any) -> None:
        seen.append(kwargs)

    try:
        tag = await Tag.objects.create(db, name="t")
    finally:
        post_save.disconnect(record, sender=Tag)
    assert seen == [
        {"sender": Tag, "instance": tag, "db": db, "created": True, "update_fields": None}
    ]
    assert tag.pk is not None  # post_save sees the row's primary key


async def test_sender_filter_and_disconnect(db: AsyncSession) -> None:
    tags: list[str] = []

    def only_tags(sender: type[Any], instance: Any, **kwargs: Any) -> None:
        tags.append(instance.name)

    assert post_save.connect(only_tags, sender=Tag) is only_tags
    try:
        await User.objects.create(db, name="u", email="u@x")
        await Tag.objects.create(db, name="t1")
    finally:
        assert post_save.disconnect(only_tags, sender=Tag) is True
    assert post_save.disconnect(only_tags, sender=Tag) is False
    await Tag.objects.create(db, name="t2")
    assert tags == ["t1"]


async def test_no_save_signal_for_validate_failed_writes(db: AsyncSession, log: Log) -> None:
    with pytest.raises(ValidationError):
        await User.objects.create(db, name="x" * 101, email="a@x")
    with pytest.raises(ValidationError):
        await User.objects.get_or_create(db, email="b@x", defaults={"name": "x" * 101})
    assert log == []


async def test_get_or_create_and_update_or_create_send_save_signals(
    db: AsyncSession, log: Log
) -> None:
    await User.objects.get_or_create(db, email="a@x", defaults={"name": "a"})
    await User.objects.get_or_create(db, email="a@x")  # found: no write, no signal
    await User.objects.update_or_create(db, email="a@x", defaults={"age": 3})
    assert log == [
        ("pre_save", "User", True, None),
        ("post_save", "User", True, None),
        ("pre_save", "User", False, frozenset({"age"})),
        ("post_save", "User", False, frozenset({"age"})),
    ]


async def test_pre_save_receiver_can_reject_with_validation_error(
    db: AsyncSession, database: flash_db.Database
) -> None:
    @pre_save.connect(Tag)
    async def unique_ignoring_case(
        sender: type[Tag], instance: Tag, db: AsyncSession, **_: Any
    ) -> None:
        if await Tag.objects.filter(name__iexact=instance.name).exists(db):
            raise ValidationError({"name": f"{instance.name!r} exists."})

    try:
        await Tag.objects.create(db, name="Python")
        with pytest.raises(ValidationError) as info:
            await Tag.objects.create(db, name="PYTHON")
    finally:
        pre_save.disconnect(unique_ignoring_case, sender=Tag)
    assert info.value.errors == {"name": ["'PYTHON' exists."]}
    async with database.session() as fresh:
        assert await Tag.objects.values_list("name", flat=True).fetch(fresh) == ["Python"]


async def test_post_save_exception_rolls_the_write_back(
    db: AsyncSession, database: flash_db.Database
) -> None:
    def fail(**kwargs: Any) -> None:
        raise RuntimeError("receiver failed")

    post_save.connect(fail, sender=Tag)
    try:
        with pytest.raises(RuntimeError, match="receiver failed"):
            await Tag.objects.create(db, name="outside atomic")
        with pytest.raises(RuntimeError):
            async with atomic(db):
                await Tag.objects.create(db, name="inside atomic")
    finally:
        post_save.disconnect(fail, sender=Tag)
    async with database.session() as fresh:
        assert await Tag.objects.count(fresh) == 0
    assert (await Tag.objects.create(db, name="usable")).pk is not None


async def test_receiver_writes_join_the_saves_transaction(
    db: AsyncSession, database: flash_db.Database
) -> None:
    async def add_tag_and_fail(
        sender: type[User], instance: User, db: AsyncSession, **_: Any
    ) -> None:
        await Tag.objects.create(db, name=f"welcome-{instance.name}")
        if instance.name == "bad":
            raise RuntimeError("after writing")

    post_save.connect(add_tag_and_fail, sender=User)
    try:
        await User.objects.create(db, name="good", email="g@x")
        with pytest.raises(RuntimeError):
            await User.objects.create(db, name="bad", email="b@x")
    finally:
        post_save.disconnect(add_tag_and_fail, sender=User)
    async with database.session() as fresh:
        assert await User.objects.values_list("name", flat=True).fetch(fresh) == ["good"]
        assert await Tag.objects.values_list("name", flat=True).fetch(fresh) == ["welcome-good"]


async def test_instance_delete_signals(db: AsyncSession, log: Log) -> None:
    tag = await Tag.objects.create(db, name="t")
    pk = tag.pk
    log.clear()
    await tag.delete(db)
    assert log == [("pre_delete", "Tag", pk), ("post_delete", "Tag", pk)]


async def test_queryset_delete_without_receivers_sends_one_delete(db: AsyncSession) -> None:
    await Tag.objects.bulk_create(db, [Tag(name=f"t{i}") for i in range(5)])
    async with assert_num_queries(db, 1) as captured:
        assert await Tag.objects.filter(name__in=["t1", "t2", "t3"]).delete(db) == 3
    assert captured.statements[0].lstrip().upper().startswith("DELETE")


async def test_queryset_delete_with_receivers_sends_per_row_signals(
    db: AsyncSession, database: flash_db.Database, log: Log
) -> None:
    tags = await Tag.objects.bulk_create(db, [Tag(name=f"t{i}") for i in range(4)])
    async with capture_queries(db) as captured:
        assert await Tag.objects.filter(name__in=["t0", "t2"]).delete(db) == 2
    assert [sql.lstrip().split()[0].upper() for sql in captured.statements] == ["SELECT", "DELETE"]
    pks = [tags[0].pk, tags[2].pk]
    assert log == [
        ("pre_delete", "Tag", pks[0]),
        ("pre_delete", "Tag", pks[1]),
        ("post_delete", "Tag", pks[0]),
        ("post_delete", "Tag", pks[1]),
    ]
    async with database.session() as fresh:
        assert sorted(await Tag.objects.values_list("name", flat=True).fetch(fresh)) == ["t1", "t3"]


async def test_queryset_delete_receiver_exception_deletes_nothing(
    db: AsyncSession, database: flash_db.Database
) -> None:
    await Tag.objects.bulk_create(db, [Tag(name="keep"), Tag(name="protected")])

    def protect(sender: type[Tag], instance: Tag, **_: Any) -> None:
        if instance.name == "protected":
            raise PermissionError("protected")

    post_delete.connect(protect, sender=Tag)
    try:
        with pytest.raises(PermissionError):
            await Tag.objects.all().delete(db)
    finally:
        post_delete.disconnect(protect, sender=Tag)
    async with database.session() as fresh:
        assert await Tag.objects.count(fresh) == 2


async def test_receiver_for_another_model_does_not_load_rows(db: AsyncSession) -> None:
    post_delete.connect(print, sender=Post)
    try:
        await Tag.objects.create(db, name="t")
        async with assert_num_queries(db, 1):
            await Tag.objects.all().delete(db)
    finally:
        post_delete.disconnect(print, sender=Post)


async def test_soft_delete_sends_delete_signals(db: AsyncSession, log: Log) -> None:
    note = await Note.objects.create(db, text="n")
    other = await Note.objects.create(db, text="m")
    log.clear()
    await note.delete(db)
    assert await Note.objects.filter(pk=other.pk).delete(db) == 1
    assert log == [
        ("pre_delete", "Note", note.pk),
        ("post_delete", "Note", note.pk),
        ("pre_delete", "Note", other.pk),
        ("post_delete", "Note", other.pk),
    ]
    assert note.deleted_at is not None


def test_connect_forms_and_errors() -> None:
    signal = Signal("custom")

    @signal.connect
    def a(**kwargs: Any) -> None: ...

    @signal.connect()
    def b(**kwargs: Any) -> None: ...

    @signal.connect(User)
    def c(**kwargs: Any) -> None: ...

    signal.connect(a)  # connecting twice keeps one entry
    assert signal.receivers_for(User) == [a, b, c]
    assert signal.receivers_for(Tag) == [a, b]
    assert signal.has_receivers(Tag)
    with pytest.raises(TypeError, match="callable"):
        signal.connect(42)  # type: ignore[call-overload]  # the error under test
    with pytest.raises(TypeError, match="model class"):
        signal.connect(a, sender="User")  # type: ignore[call-overload]  # the error under test


async def test_on_commit_in_a_receiver_runs_after_the_commit(
    db: AsyncSession, database: flash_db.Database
) -> None:
    seen: list[int] = []

    async def after_commit_count() -> None:
        async with database.session() as fresh:
            seen.append(await Tag.objects.count(fresh))

    def schedule(sender: type[Tag], instance: Tag, db: AsyncSession, **_: Any) -> None:
        on_commit(db, after_commit_count)

    post_save.connect(schedule, sender=Tag)
    try:
        await Tag.objects.create(db, name="t")
    finally:
        post_save.disconnect(schedule, sender=Tag)
    assert seen == [1]  # ran once the row was committed, before create() returned


async def test_save_with_empty_update_fields_does_nothing(db: AsyncSession, log: Log) -> None:
    tag = await Tag.objects.create(db, name="t")
    log.clear()
    async with assert_num_queries(db, 0):
        await tag.save(db, update_fields=[])
    assert log == []
