"""The blog's API schemas: generated from the models where possible, hand-written otherwise."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from example_app.models import Comment, Post, Tag, User
from flash_db_fastapi import model_schema

__all__ = [
    "CommentRead",
    "Likes",
    "PostCreate",
    "PostDetail",
    "PostPopularity",
    "PostRead",
    "PostSummary",
    "PostUpdate",
    "Published",
    "TagNames",
    "TagRead",
    "UserRead",
    "UserStats",
]

# Only POST /posts/{id}/publish publishes, and views/likes have routes of their own:
# the generic create/update schemas leave those fields out (sending them is a 422).
_SERVER_SIDE = ["status", "published_at", "views", "likes"]

UserRead = model_schema(User, "read")
PostRead = model_schema(Post, "read")
PostCreate = model_schema(Post, "create", exclude=_SERVER_SIDE, name="PostCreate")
PostUpdate = model_schema(Post, "update", exclude=_SERVER_SIDE, name="PostUpdate")
TagRead = model_schema(Tag, "read")
CommentRead = model_schema(Comment, "read")
PostSummary = model_schema(
    Post,
    "read",
    include=["id", "title", "status", "published_at", "author_id", "views", "likes"],
    name="PostSummary",
)
PostDetail = model_schema(
    Post,
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

    names: list[str] = Field(max_length=10)


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
