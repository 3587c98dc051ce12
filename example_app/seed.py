"""Demo data for the blog, written on the first start (when there are no users yet)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from example_app.models import BlogComment, BlogPost, BlogTag, BlogUser
from flash_db import atomic

__all__ = ["seed"]

_USERS = [
    ("Ada Lovelace", "ada@example.com", "Writes about engines."),
    ("Grace Hopper", "grace@example.com", "Compilers and nanoseconds."),
    ("Linus Torvalds", "linus@example.com", ""),
]
_POSTS = [
    (0, "Notes on the Analytical Engine", "The engine weaves algebraic patterns.", True),
    (0, "A first program", "Computing Bernoulli numbers, step by step.", True),
    (1, "What is a nanosecond?", "About thirty centimetres of wire.", True),
    (1, "Draft: debugging moths", "", False),
    (2, "Just a hobby", "Won't be big and professional.", True),
]
_TAGS = {0: ["history", "math"], 1: ["math"], 2: ["hardware"], 4: ["os"]}
_COMMENTS = [(0, 1, "Lovely."), (0, 2, "Still relevant."), (2, 0, "Great demo."), (4, None, "+1")]


async def seed(db: AsyncSession) -> bool:
    """Write the demo data unless users exist; return whether it was written."""
    if await BlogUser.objects.exists(db):
        return False
    async with atomic(db):
        users = [
            await BlogUser.objects.create(db, name=name, email=email, bio=bio)
            for name, email, bio in _USERS
        ]
        tags = {
            name: await BlogTag.objects.create(db, name=name)
            for name in ("history", "math", "hardware", "os")
        }
        posts: list[BlogPost] = []
        for author, title, body, published in _POSTS:
            post = BlogPost(title=title, body=body, author_id=users[author].id)
            if published:
                post.publish()
            await post.save(db)
            await post.related(BlogPost.tags).add(db, *(tags[n] for n in _TAGS.get(len(posts), [])))
            posts.append(post)
        for post_index, user_index, text in _COMMENTS:
            await BlogComment.objects.create(
                db,
                post_id=posts[post_index].id,
                author_id=None if user_index is None else users[user_index].id,
                text=text,
            )
    return True
