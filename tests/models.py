"""The small shared domain every test uses: users, posts, tags, comments, and odd primary keys."""

from __future__ import annotations

import asyncio
import datetime as dt
import enum
import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Date,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    Numeric,
    SmallInteger,
    String,
    Table,
    Text,
    Time,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from flash_db import Model, SoftDeleteMixin, TimestampMixin, ValidationError


class Company(Model):
    __tablename__ = "companies"
    name: Mapped[str] = mapped_column(String(100))
    users: Mapped[list[User]] = relationship(back_populates="company")


class User(Model, TimestampMixin):
    __tablename__ = "users"
    name: Mapped[str] = mapped_column(String(100))
    email: Mapped[str] = mapped_column(String(200), unique=True)
    age: Mapped[int | None] = mapped_column(default=None)
    company_id: Mapped[int | None] = mapped_column(ForeignKey("companies.id"), default=None)
    company: Mapped[Company | None] = relationship(back_populates="users")
    posts: Mapped[list[Post]] = relationship(back_populates="author")


post_tags = Table(
    "post_tags",
    Model.metadata,
    Column("post_id", ForeignKey("posts.id", ondelete="CASCADE"), primary_key=True),
    Column("tag_id", ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True),
)


class Status(enum.Enum):
    DRAFT = "draft"
    PUBLISHED = "published"


class Post(Model, TimestampMixin):
    __tablename__ = "posts"
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text, default="")
    views: Mapped[int] = mapped_column(default=0)
    published: Mapped[bool] = mapped_column(default=False)
    status: Mapped[Status] = mapped_column(Enum(Status), default=Status.DRAFT)
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    author: Mapped[User] = relationship(back_populates="posts")
    tags: Mapped[list[Tag]] = relationship(secondary=post_tags, back_populates="posts")
    comments: Mapped[list[Comment]] = relationship(back_populates="post")


class Tag(Model):
    __tablename__ = "tags"
    name: Mapped[str] = mapped_column(String(50), unique=True)
    posts: Mapped[list[Post]] = relationship(secondary=post_tags, back_populates="tags")


class Comment(Model):
    __tablename__ = "comments"
    text: Mapped[str] = mapped_column(Text)
    post_id: Mapped[int] = mapped_column(ForeignKey("posts.id"))
    post: Mapped[Post] = relationship(back_populates="comments")
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), default=None)
    author: Mapped[User | None] = relationship()


class Note(Model, SoftDeleteMixin):
    __tablename__ = "notes"
    text: Mapped[str] = mapped_column(String(200))


class Product(Model[str]):
    """A model with its own string primary key (no ``id`` column is added)."""

    __tablename__ = "products"
    code: Mapped[str] = mapped_column(String(20), primary_key=True)
    price: Mapped[Decimal] = mapped_column(Numeric(10, 2))


class Gadget(Model[uuid.UUID]):
    """A model with a UUID ``id``."""

    __tablename__ = "gadgets"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    label: Mapped[str] = mapped_column(String(50))


class Event(Model):
    """A model with a synchronous ``clean()`` (validation tests)."""

    __tablename__ = "events"
    title: Mapped[str] = mapped_column(String(20))
    starts: Mapped[int]
    ends: Mapped[int]

    def clean(self) -> None:
        if self.starts is not None and self.ends is not None and self.ends < self.starts:
            raise ValidationError({"ends": "Must not be before starts."})


class Booking(Model):
    """A model with an async ``clean()`` (validation tests)."""

    __tablename__ = "bookings"
    room: Mapped[str] = mapped_column(String(10))

    async def clean(self) -> None:
        await asyncio.sleep(0)
        if self.room == "closed":
            raise ValidationError("The room is closed.")


class Shelf(Model):
    """A user's shelf: a to-many relationship with a custom join condition (viewonly)."""

    __tablename__ = "shelves"
    name: Mapped[str] = mapped_column(String(50))
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    published_posts: Mapped[list[Post]] = relationship(
        primaryjoin="and_(Shelf.owner_id == foreign(Post.author_id), Post.published.is_(True))",
        viewonly=True,
    )


class Wallet(Model):
    __tablename__ = "wallets"
    label: Mapped[str] = mapped_column(String(50))


class Entry(Model):
    """An entry whose foreign key is checked at COMMIT (DEFERRABLE INITIALLY DEFERRED)."""

    __tablename__ = "entries"
    wallet_id: Mapped[int] = mapped_column(
        ForeignKey("wallets.id", deferrable=True, initially="DEFERRED")
    )


class Level(TypeDecorator[int]):
    """An integer column type wrapped in a TypeDecorator (range checks look through it)."""

    impl = Integer
    cache_ok = True


class Gauge(Model):
    """Integer columns of every width (out-of-range lookups and validation)."""

    __tablename__ = "gauges"
    small: Mapped[int | None] = mapped_column(SmallInteger, default=None)
    big: Mapped[int | None] = mapped_column(BigInteger, default=None)
    level: Mapped[int | None] = mapped_column(Level, default=None)


class Board(Model):
    """A board: related managers over soft-deleted children and an association model's table."""

    __tablename__ = "boards"
    name: Mapped[str] = mapped_column(String(50))
    pins: Mapped[list[Pin]] = relationship(back_populates="board")
    watchers: Mapped[list[User]] = relationship(secondary="board_watches")


class Pin(Model, SoftDeleteMixin):
    """A soft-deletable child of a board (``board.related("pins")`` hides deleted pins)."""

    __tablename__ = "pins"
    text: Mapped[str] = mapped_column(String(50))
    board_id: Mapped[int] = mapped_column(ForeignKey("boards.id"))
    board: Mapped[Board] = relationship(back_populates="pins")


class BoardWatch(Model):
    """A mapped association model whose table links boards and users (``Board.watchers``).

    It has an ``id`` primary key and no unique constraint over its two link columns.
    """

    __tablename__ = "board_watches"
    board_id: Mapped[int] = mapped_column(ForeignKey("boards.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))


class Scaled(TypeDecorator[int]):
    """Stores tenths: a TypeDecorator whose Python-side conversion must run both ways."""

    impl = Integer
    cache_ok = True

    def process_bind_param(self, value: int | None, dialect: Any) -> int | None:
        return None if value is None else value * 10

    def process_result_value(self, value: int | None, dialect: Any) -> int | None:
        return None if value is None else value // 10


class Sample(Model):
    """One column of each common type (values written and read on the driver connection)."""

    __tablename__ = "samples"
    label: Mapped[str] = mapped_column(String(50))
    at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    naive: Mapped[dt.datetime | None] = mapped_column(DateTime, default=None)
    day: Mapped[dt.date | None] = mapped_column(Date, default=None)
    clock: Mapped[dt.time | None] = mapped_column(Time, default=None)
    price: Mapped[Decimal | None] = mapped_column(Numeric(10, 2), default=None)
    ratio: Mapped[float | None] = mapped_column(Float, default=None)
    flag: Mapped[bool | None] = mapped_column(default=None)
    status: Mapped[Status | None] = mapped_column(Enum(Status), default=None)
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    token: Mapped[uuid.UUID | None] = mapped_column(default=None)
    blob: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    scaled: Mapped[int | None] = mapped_column(Scaled, default=None)
    created: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), default=lambda: dt.datetime.now(dt.UTC)
    )


class Document(Model):
    """A JSON column as Django's JSONField is: jsonb on PostgreSQL, Python None is SQL NULL."""

    __tablename__ = "documents"
    name: Mapped[str] = mapped_column(String(50))
    body: Mapped[Any] = mapped_column(
        JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql"),
        nullable=True,
        default=None,
    )


class BankAccount(Model):
    """A balance moved between accounts (serializable transfers and their retries)."""

    __tablename__ = "bank_accounts"
    owner: Mapped[str] = mapped_column(String(50))
    balance: Mapped[int] = mapped_column(default=0)
