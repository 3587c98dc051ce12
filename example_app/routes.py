"""Hand-written routes of the blog: sign-up, writing as the signed-in user, search, popularity,
details, publishing, likes, tags, stats and a user's own notifications.

Each shows one part of Flash DB's public API: lookups and ``Q`` (search),
``annotate``/``Count`` (popular), ``select_related``/``prefetch_related``
(details), ``atomic`` and ``on_commit`` (publish), ``F`` (like),
``get_or_create`` inside ``atomic`` (tags) and ``aggregate`` (stats). Writes
act as the user of the request's token (``example_app.auth``): the author of a
post or comment is that user, never a field the client sends.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query

from example_app.auth import USER_RESPONSES, CurrentUser, token_for
from example_app.models import BlogComment, BlogPost, BlogTag, BlogUser, Notification, PostStatus
from example_app.schemas import (
    CommentCreate,
    CommentRead,
    Likes,
    NotificationPage,
    NotificationRead,
    PostCreate,
    PostDetail,
    PostPopularity,
    PostRead,
    PostSummary,
    Published,
    TagNames,
    UserAccount,
    UserSignedUp,
    UserSignup,
    UserStats,
)
from flash_db import Count, F, Prefetch, Q, Sum, atomic, on_commit
from flash_db_fastapi import Session
from flash_db_fastapi.errors import ErrorMessage
from flash_db_fastapi.schemas import NO_NUL

__all__ = [
    "OUTBOX",
    "require_comment_author",
    "require_post_author",
    "require_self",
    "router",
]

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
_CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorMessage, "description": "The email address is taken."}
}
RowId = Annotated[int, Path(ge=1, le=_MAX_ID, description="The row's id.")]


# -- who may write what ------------------------------------------------------------


def require_self(id: RowId, user: CurrentUser) -> None:  # `id`: the router's path name
    """Allow a change to the user ``id`` only to that user (403 otherwise)."""
    if id != user.id:
        raise HTTPException(403, "You can change only your own account.")


async def require_post_author(id: RowId, user: CurrentUser, db: Session) -> None:
    """Allow a change to post ``id`` only to its author (404 when missing, 403 otherwise)."""
    author_id = await BlogPost.objects.filter(pk=id).values_list("author_id", flat=True).first(db)
    if author_id is None:
        raise HTTPException(404, "BlogPost not found.")
    if author_id != user.id:
        raise HTTPException(403, "Only the post's author can change it.")


async def require_comment_author(id: RowId, user: CurrentUser, db: Session) -> None:
    """Allow a change to comment ``id`` only to its author (404 when missing, 403 otherwise)."""
    found = await BlogComment.objects.filter(pk=id).values_list("author_id", flat=True).fetch(db)
    if not found:
        raise HTTPException(404, "BlogComment not found.")
    if found[0] != user.id:
        raise HTTPException(403, "Only the comment's author can change it.")


# -- accounts ------------------------------------------------------------------------


@router.post(
    "/users", status_code=201, response_model=UserSignedUp, tags=["users"], responses=_CONFLICT
)
async def sign_up(body: UserSignup, db: Session) -> Any:
    """Create a user; the answer holds the user's bearer token (shown once)."""
    user = await BlogUser.objects.create(db, **body.model_dump())
    return UserSignedUp(**UserAccount.model_validate(user).model_dump(), token=token_for(user.id))


@router.get("/users/me", response_model=UserAccount, tags=["users"], responses=USER_RESPONSES)
async def me(user: CurrentUser) -> Any:
    """Return the signed-in user, email address included."""
    return user


@router.get(
    "/notifications",
    response_model=NotificationPage,
    tags=["notifications"],
    responses=USER_RESPONSES,
)
async def my_notifications(
    user: CurrentUser,
    db: Session,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=_MAX_ID)] = 0,
) -> Any:
    """List the signed-in user's notifications, newest first (nobody else's)."""
    mine = Notification.objects.filter(user_id=user.id)
    async with atomic(db):  # the count and the page from one snapshot
        total = await mine.count(db)
        items = await mine.order_by("-created_at", "-id")[offset : offset + limit].fetch(db)
    return NotificationPage(
        items=[NotificationRead.model_validate(item) for item in items],
        total=total,
        limit=limit,
        offset=offset,
    )


@router.get(
    "/notifications/{notification_id}",
    response_model=NotificationRead,
    tags=["notifications"],
    responses={**USER_RESPONSES, **_NOT_FOUND},
)
async def my_notification(
    notification_id: Annotated[int, Path(ge=1, le=_MAX_ID)], user: CurrentUser, db: Session
) -> Any:
    """Return one of the signed-in user's notifications (404 for anyone else's)."""
    return await Notification.objects.get(db, id=notification_id, user_id=user.id)


# -- writing as the signed-in user -----------------------------------------------------


@router.post(
    "/posts", status_code=201, response_model=PostRead, tags=["posts"], responses=USER_RESPONSES
)
async def create_post(body: PostCreate, user: CurrentUser, db: Session) -> Any:
    """Write a draft post as the signed-in user."""
    return await BlogPost.objects.create(db, author_id=user.id, **body.model_dump())


@router.post(
    "/comments",
    status_code=201,
    response_model=CommentRead,
    tags=["comments"],
    responses={**USER_RESPONSES, 409: {"model": ErrorMessage, "description": "No such post."}},
)
async def create_comment(body: CommentCreate, user: CurrentUser, db: Session) -> Any:
    """Comment on a post as the signed-in user (its author is notified)."""
    return await BlogComment.objects.create(db, author_id=user.id, **body.model_dump())


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
    responses={
        **USER_RESPONSES,
        **_NOT_FOUND,
        409: {"model": ErrorMessage, "description": "Already published."},
    },
)
async def publish_post(post_id: PostId, user: CurrentUser, db: Session) -> Published:
    """Publish your draft; the announcement goes out only once the transaction has committed."""
    async with atomic(db):
        post = await BlogPost.objects.select_for_update().get(db, id=post_id)
        if post.author_id != user.id:
            raise HTTPException(403, "Only the post's author can publish it.")
        if post.status is PostStatus.PUBLISHED:
            raise HTTPException(409, "This post is already published.")
        post.publish()
        await post.save(db)  # BlogPost.clean(): a published post needs a body (else 422)
        on_commit(db, lambda: announce(post.title))
    return Published.model_validate(post)


@router.post("/posts/{post_id}/like", responses={**USER_RESPONSES, **_NOT_FOUND})
async def like_post(post_id: PostId, user: CurrentUser, db: Session) -> Likes:
    """Add a like with ``UPDATE ... SET likes = likes + 1``: no lost update under concurrency."""
    if not await BlogPost.objects.filter(id=post_id).update(db, likes=F("likes") + 1):
        raise BlogPost.DoesNotExist(f"Post {post_id} does not exist.")
    likes = await BlogPost.objects.values_list("likes", flat=True).get(db, id=post_id)
    return Likes(id=post_id, likes=likes)


@router.put("/posts/{post_id}/tags", responses={**USER_RESPONSES, **_NOT_FOUND})
async def set_post_tags(
    post_id: PostId, body: TagNames, user: CurrentUser, db: Session
) -> TagNames:
    """Replace your post's tags by name, creating the tags that do not exist yet."""
    names = sorted({name.strip().lower() for name in body.names if name.strip()})
    async with atomic(db):
        post = await BlogPost.objects.get(db, id=post_id)
        if post.author_id != user.id:
            raise HTTPException(403, "Only the post's author can tag it.")
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
