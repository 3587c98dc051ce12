"""The blog's API schemas: generated from the models where possible, hand-written otherwise."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from example_app.models import BlogComment, BlogPost, BlogTag, Notification, PostStatus
from flash_db_fastapi import ModelSchema
from flash_db_fastapi.schemas import NO_NUL

__all__ = [
    "CommentCreate",
    "CommentRead",
    "CommentUpdate",
    "Likes",
    "NotificationPage",
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
    "UserAccount",
    "UserRead",
    "UserSignedUp",
    "UserSignup",
    "UserStats",
    "UserUpdate",
]

# Sizes a client may send: Text columns have no length of their own, and an
# unbounded body would let one request store megabytes.
MAX_BIO = 2000
MAX_POST_BODY = 20_000
MAX_COMMENT = 2000
_MAX_ID = 2**31 - 1

Name = Annotated[str, Field(min_length=1, max_length=100), NO_NUL]
Email = Annotated[str, Field(min_length=3, max_length=200), NO_NUL]
Bio = Annotated[str, Field(max_length=MAX_BIO), NO_NUL]
Title = Annotated[str, Field(min_length=1, max_length=200), NO_NUL]
PostBody = Annotated[str, Field(max_length=MAX_POST_BODY), NO_NUL]
CommentText = Annotated[str, Field(min_length=1, max_length=MAX_COMMENT), NO_NUL]
_WRITE = ConfigDict(extra="forbid")


class UserRead(BaseModel):
    """A user as anyone may see them: no email address."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    bio: str
    created_at: datetime
    updated_at: datetime


class UserAccount(UserRead):
    """A user as they see themselves (``GET /users/me``): with their email address."""

    email: str


class UserSignedUp(UserAccount):
    """A new user and their bearer token (shown once: keep it)."""

    token: str


class UserSignup(BaseModel):
    """Sign-up: who you are. The answer holds your token."""

    model_config = _WRITE

    name: Name
    email: Email
    bio: Bio = ""


class UserUpdate(BaseModel):
    """Change your own name, email or bio (only the fields sent)."""

    model_config = _WRITE

    name: Name | None = None
    email: Email | None = None
    bio: Bio | None = None


class PostCreate(BaseModel):
    """A new post, written as the signed-in user (a draft until published)."""

    model_config = _WRITE

    title: Title
    body: PostBody = ""


class PostUpdate(BaseModel):
    """Change your post's title or body (the author, status and counts are not writable)."""

    model_config = _WRITE

    title: Title | None = None
    body: PostBody | None = None


class CommentCreate(BaseModel):
    """A comment on a post, written as the signed-in user."""

    model_config = _WRITE

    post_id: int = Field(ge=1, le=_MAX_ID)
    text: CommentText


class CommentUpdate(BaseModel):
    """Change your comment's text."""

    model_config = _WRITE

    text: CommentText | None = None


# The classes are BlogUser, BlogPost, ... (unique names in the shared registry);
# the API calls them users, posts, tags and comments, and so do the schema names.
# Each is an ordinary Pydantic class (a type for mypy and pyright); the fields not
# written out are filled in from the model.


class PostRead(ModelSchema, model=BlogPost):
    id: int
    title: str
    author_id: int


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


class NotificationRead(ModelSchema, model=Notification):
    id: int


class NotificationPage(BaseModel):
    """The signed-in user's notifications, newest first."""

    items: list[NotificationRead]
    total: int
    limit: int
    offset: int


class PostSummary(
    ModelSchema,
    model=BlogPost,
    include=["id", "title", "status", "published_at", "author_id", "views", "likes"],
):
    id: int
    title: str


class PostDetail(BaseModel):
    """A post with its author (no email), tags and comments."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    title: str
    body: str
    status: PostStatus
    published_at: datetime | None
    views: int
    likes: int
    created_at: datetime
    author: UserRead
    tags: list[TagRead]
    comments: list[CommentRead]


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

    names: list[Annotated[str, Field(max_length=50), NO_NUL]] = Field(max_length=10)


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
