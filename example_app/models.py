"""The blog's models: users write posts, posts have tags (many-to-many) and comments.

Tables are prefixed ``blog_`` and classes ``Blog`` so the app can share a
database, and SQLAlchemy's class registry (relationships name classes by
string), with other Flash DB models in one process -- the test suite's
``User``/``Post`` for one.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime

from sqlalchemy import Column, Enum, ForeignKey, String, Table, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from flash_db import AwareDateTime, Model, TimestampMixin, ValidationError

__all__ = [
    "BlogComment",
    "BlogPost",
    "BlogTag",
    "BlogUser",
    "Notification",
    "PostStatus",
    "post_tags",
]


class BlogUser(Model, TimestampMixin):
    """A blog author (and commenter)."""

    __tablename__ = "blog_users"
    name: Mapped[str] = mapped_column(String(100))
    email: Mapped[str] = mapped_column(String(200), unique=True)
    bio: Mapped[str] = mapped_column(Text, default="")
    # passive_deletes="all": deleting a user with posts is refused by the foreign
    # key (a 409 over HTTP) instead of SQLAlchemy loading and orphaning the posts.
    posts: Mapped[list[BlogPost]] = relationship(back_populates="author", passive_deletes="all")

    def clean(self) -> None:
        """An email address has one ``@`` with something on both sides."""
        local, at, domain = (self.email or "").partition("@")
        if not (local and at and domain) or "@" in domain:
            raise ValidationError({"email": "Enter a valid email address."})


post_tags = Table(
    "blog_post_tags",
    Model.metadata,
    Column("post_id", ForeignKey("blog_posts.id", ondelete="CASCADE"), primary_key=True),
    Column("tag_id", ForeignKey("blog_tags.id", ondelete="CASCADE"), primary_key=True),
)


class PostStatus(enum.Enum):
    """Where a post is in its life."""

    DRAFT = "draft"
    PUBLISHED = "published"


class BlogPost(Model, TimestampMixin):
    """A blog post; only ``POST /posts/{id}/publish`` publishes it."""

    __tablename__ = "blog_posts"
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[PostStatus] = mapped_column(
        Enum(PostStatus, name="blog_post_status"), default=PostStatus.DRAFT
    )
    published_at: Mapped[datetime | None] = mapped_column(AwareDateTime(), default=None)
    views: Mapped[int] = mapped_column(default=0)
    likes: Mapped[int] = mapped_column(default=0)
    author_id: Mapped[int] = mapped_column(ForeignKey("blog_users.id"))
    author: Mapped[BlogUser] = relationship(back_populates="posts")
    # The link rows go with ON DELETE CASCADE; passive_deletes spares loading them.
    tags: Mapped[list[BlogTag]] = relationship(
        secondary=post_tags, back_populates="posts", passive_deletes=True
    )
    comments: Mapped[list[BlogComment]] = relationship(
        back_populates="post", cascade="all, delete-orphan", passive_deletes=True
    )

    def clean(self) -> None:
        """A title is not blank, and a published post has a body."""
        errors: dict[str, str] = {}
        if not (self.title or "").strip():
            errors["title"] = "The title may not be blank."
        if self.status is PostStatus.PUBLISHED and not (self.body or "").strip():
            errors["body"] = "A published post needs a body."
        if errors:
            raise ValidationError(errors)

    def publish(self) -> None:
        """Mark the post published now (saving it is the caller's job)."""
        self.status = PostStatus.PUBLISHED
        self.published_at = datetime.now(UTC)


class BlogTag(Model):
    """A tag; posts and tags are many-to-many."""

    __tablename__ = "blog_tags"
    name: Mapped[str] = mapped_column(String(50), unique=True)
    posts: Mapped[list[BlogPost]] = relationship(
        secondary=post_tags, back_populates="tags", passive_deletes=True
    )


class BlogComment(Model, TimestampMixin):
    """A comment on a post, by a user or anonymous."""

    __tablename__ = "blog_comments"
    text: Mapped[str] = mapped_column(Text)
    post_id: Mapped[int] = mapped_column(ForeignKey("blog_posts.id", ondelete="CASCADE"))
    post: Mapped[BlogPost] = relationship(back_populates="comments")
    author_id: Mapped[int | None] = mapped_column(ForeignKey("blog_users.id"), default=None)
    author: Mapped[BlogUser | None] = relationship()

    def clean(self) -> None:
        """A comment says something."""
        if not (self.text or "").strip():
            raise ValidationError({"text": "A comment may not be empty."})


class Notification(Model, TimestampMixin):
    """A message for a user, written by the comment signal (see ``example_app.signals``)."""

    __tablename__ = "blog_notifications"
    user_id: Mapped[int] = mapped_column(ForeignKey("blog_users.id", ondelete="CASCADE"))
    message: Mapped[str] = mapped_column(String(300))
