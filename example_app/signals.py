"""The blog's signal receivers: a new comment notifies the post's author."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from example_app.models import BlogComment, BlogPost, Notification
from flash_db.signals import post_save

__all__ = ["notify_post_author"]


@post_save.connect(BlogComment)
async def notify_post_author(
    sender: type[BlogComment], instance: BlogComment, created: bool, db: AsyncSession, **kwargs: Any
) -> None:
    """Tell a post's author about a new comment (in the comment's own transaction)."""
    if not created:
        return
    author_id, title = (
        await BlogPost.objects.values_list("author_id", "title").filter(id=instance.post_id).get(db)
    )
    if author_id == instance.author_id:
        return  # no news to anyone when authors answer under their own posts
    await Notification.objects.create(db, user_id=author_id, message=f"New comment on {title!r}.")
