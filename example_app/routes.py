"""Hand-written routes of the blog: search, popularity, details, publishing, likes, tags, stats.

Each shows one part of Flash DB's public API: lookups and ``Q`` (search),
``annotate``/``Count`` (popular), ``select_related``/``prefetch_related``
(details), ``atomic`` and ``on_commit`` (publish), ``F`` (like),
``get_or_create`` inside ``atomic`` (tags) and ``aggregate`` (stats).
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query

from example_app.models import BlogComment, BlogPost, BlogTag, BlogUser, PostStatus
from example_app.schemas import (
    Likes,
    PostDetail,
    PostPopularity,
    PostSummary,
    Published,
    TagNames,
    UserStats,
)
from flash_db import Count, F, Prefetch, Q, Sum, atomic, on_commit
from flash_db_fastapi import Session
from flash_db_fastapi.errors import ErrorMessage
from flash_db_fastapi.schemas import NO_NUL

__all__ = ["OUTBOX", "router"]

logger = logging.getLogger("example_app")

OUTBOX: deque[str] = deque(maxlen=100)
"""Announcements sent after a post was published (a stand-in for e-mail)."""

router = APIRouter(tags=["blog"])

# Ids within the INTEGER column's range: a larger number is a 422, not a database error.
_MAX_ID = 2**31 - 1
PostId = Annotated[int, Path(ge=1, le=_MAX_ID, description="The post's id.")]
UserId = Annotated[int, Path(ge=1, le=_MAX_ID, description="The user's id.")]

_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorMessage, "description": "No such row."}
}


@router.get("/posts/search")
async def search_posts(
    db: Session,
    q: Annotated[
        str, Query(min_length=1, max_length=100, description="Words to look for."), NO_NUL
    ],
    tag: Annotated[
        str | None, Query(max_length=50, description="Only with this tag."), NO_NUL
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> list[PostSummary]:
    """Search published posts by title or body (case-insensitive), newest first."""
    posts = BlogPost.objects.filter(status=PostStatus.PUBLISHED).filter(
        Q(title__icontains=q) | Q(body__icontains=q)
    )
    if tag is not None:
        posts = posts.filter(tags__name=tag)
    found = await posts.order_by("-published_at", "-id").limit(limit).fetch(db)
    return [PostSummary.model_validate(post) for post in found]


@router.get("/posts/popular")
async def popular_posts(
    db: Session,
    min_comments: Annotated[int, Query(ge=0, le=_MAX_ID)] = 1,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
) -> list[PostPopularity]:
    """List posts with at least ``min_comments`` comments, the most commented first."""
    posts = (
        await BlogPost.objects.annotate(comment_count=Count("comments"))
        .filter(comment_count__gte=min_comments)
        .order_by("-comment_count", "id")
        .limit(limit)
        .fetch(db)
    )
    return [PostPopularity.model_validate(post) for post in posts]


@router.get("/posts/{post_id}/detail", responses=_NOT_FOUND)
async def post_detail(post_id: PostId, db: Session) -> PostDetail:
    """Return a post with its author, tags and comments (oldest first) in three queries."""
    post = (
        await BlogPost.objects.select_related("author")
        .prefetch_related("tags", Prefetch("comments", queryset=BlogComment.objects.order_by("id")))
        .get(db, id=post_id)
    )
    return PostDetail.model_validate(post)


async def announce(title: str) -> None:
    """Send the news of a published post (here: to the outbox and the log)."""
    OUTBOX.append(f"Published: {title}")
    logger.info("published %r", title)


@router.post(
    "/posts/{post_id}/publish",
    responses={**_NOT_FOUND, 409: {"model": ErrorMessage, "description": "Already published."}},
)
async def publish_post(post_id: PostId, db: Session) -> Published:
    """Publish a draft; the announcement goes out only once the transaction has committed."""
    async with atomic(db):
        post = await BlogPost.objects.select_for_update().get(db, id=post_id)
        if post.status is PostStatus.PUBLISHED:
            raise HTTPException(409, "This post is already published.")
        post.publish()
        await post.save(db)  # BlogPost.clean(): a published post needs a body (else 422)
        on_commit(db, lambda: announce(post.title))
    return Published.model_validate(post)


@router.post("/posts/{post_id}/like", responses=_NOT_FOUND)
async def like_post(post_id: PostId, db: Session) -> Likes:
    """Add a like with ``UPDATE ... SET likes = likes + 1``: no lost update under concurrency."""
    if not await BlogPost.objects.filter(id=post_id).update(db, likes=F("likes") + 1):
        raise BlogPost.DoesNotExist(f"Post {post_id} does not exist.")
    likes = await BlogPost.objects.values_list("likes", flat=True).get(db, id=post_id)
    return Likes(id=post_id, likes=likes)


@router.put("/posts/{post_id}/tags", responses=_NOT_FOUND)
async def set_post_tags(post_id: PostId, body: TagNames, db: Session) -> TagNames:
    """Replace a post's tags by name, creating the tags that do not exist yet."""
    names = sorted({name.strip().lower() for name in body.names if name.strip()})
    async with atomic(db):
        post = await BlogPost.objects.get(db, id=post_id)
        tags = [(await BlogTag.objects.get_or_create(db, name=name))[0] for name in names]
        await post.related(BlogPost.tags).set(db, tags)
    return TagNames(names=[tag.name for tag in tags])


@router.get("/users/{user_id}/stats", responses=_NOT_FOUND)
async def user_stats(user_id: UserId, db: Session) -> UserStats:
    """Count a user's posts and sum their views and likes in one aggregate query."""
    if not await BlogUser.objects.filter(id=user_id).exists(db):
        raise BlogUser.DoesNotExist(f"User {user_id} does not exist.")
    totals = await BlogPost.objects.filter(author_id=user_id).aggregate(
        db,
        posts=Count("id"),
        published=Count("id", filter=Q(status=PostStatus.PUBLISHED)),
        total_views=Sum("views"),
        total_likes=Sum("likes"),
    )
    return UserStats(
        user_id=user_id,
        posts=totals["posts"],
        published=totals["published"],
        total_views=totals["total_views"] or 0,
        total_likes=totals["total_likes"] or 0,
    )
