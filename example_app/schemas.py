"""The blog's API schemas: generated from the models where possible, hand-written otherwise."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from example_app.models import BlogComment, BlogPost, BlogTag, BlogUser, Notification
from flash_db_fastapi import ModelSchema
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
# Each is an ordinary Pydantic class (a type for mypy and pyright); the fields not
# written out are filled in from the model.


class UserRead(ModelSchema, model=BlogUser):
    id: int
    name: str
    email: str


class UserCreate(ModelSchema, model=BlogUser, mode="create"):
    name: str
    email: str


class UserUpdate(ModelSchema, model=BlogUser, mode="update"):
    pass


class PostRead(ModelSchema, model=BlogPost):
    id: int
    title: str
    author_id: int


class PostCreate(ModelSchema, model=BlogPost, mode="create", exclude=_SERVER_SIDE):
    title: str
    author_id: int


class PostUpdate(ModelSchema, model=BlogPost, mode="update", exclude=_SERVER_SIDE):
    pass


class TagRead(ModelSchema, model=BlogTag):
    id: int
    name: str


class TagCreate(ModelSchema, model=BlogTag, mode="create"):
    name: str


class TagUpdate(ModelSchema, model=BlogTag, mode="update"):
    pass


class CommentRead(ModelSchema, model=BlogComment):
    id: int
    text: str


class CommentCreate(ModelSchema, model=BlogComment, mode="create"):
    pass


class CommentUpdate(ModelSchema, model=BlogComment, mode="update"):
    pass


class NotificationRead(ModelSchema, model=Notification):
    id: int


class PostSummary(
    ModelSchema,
    model=BlogPost,
    include=["id", "title", "status", "published_at", "author_id", "views", "likes"],
):
    id: int
    title: str


class PostDetail(
    ModelSchema,
    model=BlogPost,
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
):
    id: int
    title: str


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
