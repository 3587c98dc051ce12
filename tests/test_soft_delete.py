"""Soft delete: delete() sets deleted_at everywhere, hard_delete() removes, restore() undoes."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

import flash_db
from flash_db.testing import assert_num_queries
from tests.models import Note, Tag


async def _stored(database: flash_db.Database) -> dict[str, bool]:
    """Return ``{text: deleted}`` for every stored note, read through a fresh session."""
    async with database.session() as fresh:
        notes = await Note.all_objects.fetch(fresh)
    return {note.text: note.deleted_at is not None for note in notes}


async def test_instance_delete_is_soft(db: AsyncSession, database: flash_db.Database) -> None:
    note = await Note.objects.create(db, text="a")
    async with assert_num_queries(db, 1):
        await note.delete(db)
    assert note.deleted_at is not None
    assert await _stored(database) == {"a": True}
    assert await Note.objects.count(db) == 0
    assert await Note.all_objects.count(db) == 1


async def test_instance_hard_delete_and_restore(
    db: AsyncSession, database: flash_db.Database
) -> None:
    kept, gone = await Note.objects.bulk_create(db, [Note(text="kept"), Note(text="gone")])
    await kept.delete(db)
    await kept.restore(db)
    assert kept.deleted_at is None
    await gone.hard_delete(db)
    assert await _stored(database) == {"kept": False}


async def test_queryset_delete_is_soft_and_counts_only_live_rows(
    db: AsyncSession, database: flash_db.Database
) -> None:
    await Note.objects.bulk_create(db, [Note(text=t) for t in ("a", "b", "c")])
    assert await Note.objects.filter(text="a").delete(db) == 1
    assert await Note.all_objects.filter(text__in=["a", "b"]).delete(db) == 1  # "a" already
    assert await _stored(database) == {"a": True, "b": True, "c": False}
    assert await Note.objects.delete(db) == 1  # the manager's delete is soft too
    assert await _stored(database) == {"a": True, "b": True, "c": True}


async def test_queryset_restore_and_hard_delete(
    db: AsyncSession, database: flash_db.Database
) -> None:
    await Note.objects.bulk_create(db, [Note(text=t) for t in ("a", "b", "c")])
    await Note.objects.delete(db)
    assert await Note.objects.filter(text="a").restore(db) == 0  # objects hides deleted rows
    assert await Note.all_objects.filter(text__in=["a", "b"]).restore(db) == 2
    assert await Note.all_objects.filter(text__in=["a", "b"]).restore(db) == 0
    assert await _stored(database) == {"a": False, "b": False, "c": True}
    assert await Note.all_objects.filter(text__in=["b", "c"]).hard_delete(db) == 2
    assert await _stored(database) == {"a": False}


async def test_restore_needs_a_soft_delete_model(db: AsyncSession) -> None:
    with pytest.raises(TypeError, match="SoftDeleteMixin"):
        await Tag.objects.all().restore(db)


async def test_soft_delete_inside_atomic_rolls_back(
    db: AsyncSession, database: flash_db.Database
) -> None:
    note = await Note.objects.create(db, text="a")
    with pytest.raises(RuntimeError):
        async with flash_db.atomic(db):
            await note.delete(db)
            await Note.objects.delete(db)
            raise RuntimeError("undo")
    assert await _stored(database) == {"a": False}
