"""The blog's API schemas: generated from the models where possible, hand-written otherwise."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from example_app.models import BlogComment, BlogPost, BlogTag, BlogUser, Notification
from flash_db_fastapi import model_schema
from flash_db_fastapi.schemas import NO_NUL

__all__ = [
    "CommentCreate",
    "CommentRead",
    "CommentUpdate",
    "Likes",
    "NotificationRead",
    "PostCreate",
    "PostDetail",
    "PostPopularity",
    "PostRead",
    "PostSummary",
    "PostUpdate",
    "Published",
    "TagCreate",
    "TagNames",
    "TagRead",
    "TagUpdate",
    "UserCreate",
    "UserRead",
    "UserStats",
    "UserUpdate",
]

# Only POST /posts/{id}/publish publishes, and views/likes have routes of their own:
# the generic create/update schemas leave those fields out (sending them is a 422).
_SERVER_SIDE = ["status", "published_at", "views", "likes"]

# The classes are BlogUser, BlogPost, ... (unique names in the shared registry);
# the API calls them users, posts, tags and comments, and so do the schema names.
UserRead = model_schema(BlogUser, "read", name="UserRead")
UserCreate = model_schema(BlogUser, "create", name="UserCreate")
UserUpdate = model_schema(BlogUser, "update", name="UserUpdate")
PostRead = model_schema(BlogPost, "read", name="PostRead")
PostCreate = model_schema(BlogPost, "create", exclude=_SERVER_SIDE, name="PostCreate")
PostUpdate = model_schema(BlogPost, "update", exclude=_SERVER_SIDE, name="PostUpdate")
TagRead = model_schema(BlogTag, "read", name="TagRead")
TagCreate = model_schema(BlogTag, "create", name="TagCreate")
TagUpdate = model_schema(BlogTag, "update", name="TagUpdate")
CommentRead = model_schema(BlogComment, "read", name="CommentRead")
CommentCreate = model_schema(BlogComment, "create", name="CommentCreate")
CommentUpdate = model_schema(BlogComment, "update", name="CommentUpdate")
NotificationRead = model_schema(Notification, "read", name="NotificationRead")
PostSummary = model_schema(
    BlogPost,
    "read",
    include=["id", "title", "status", "published_at", "author_id", "views", "likes"],
    name="PostSummary",
)
PostDetail = model_schema(
    BlogPost,
    "read",
    include=[
        "id",
        "title",
        "body",
        "status",
        "published_at",
        "views",
        "likes",
        "created_at",
        "author",
        "tags",
        "comments",
    ],
    name="PostDetail",
)


class PostPopularity(BaseModel):
    """A post and how many comments it has (``annotate(comment_count=Count("comments"))``)."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    title: str
    comment_count: int


class UserStats(BaseModel):
    """What a user wrote, from one aggregate query."""

    user_id: int
    posts: int
    published: int
    total_views: int
    total_likes: int


class TagNames(BaseModel):
    """The tags of a post, by name."""

    names: list[Annotated[str, NO_NUL]] = Field(max_length=10)


class Likes(BaseModel):
    """A post's like count after a like."""

    id: int
    likes: int


class Published(BaseModel):
    """The result of publishing a post."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    title: str
    status: str
    published_at: datetime | None
