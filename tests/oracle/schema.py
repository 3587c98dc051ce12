"""The oracle's Flash DB models: publishers, authors, books, reviews and tags.

One column of every common type (a JSON one too: ``jsonb`` on PostgreSQL, as
Django's ``JSONField``; a Python ``None`` is SQL NULL, as in Django), a nullable
and a non-null foreign key, reverse to-many relations and a many-to-many through
a plain table (with an ``id`` key, as Django's). The Django models in
``tests.oracle.django_side`` map onto the same tables. The tag model is named
``OracleTag`` in Python (``tests.models`` already has a ``Tag``); the generated
queries call it ``Tag``.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    Date,
    Float,
    ForeignKey,
    Integer,
    Numeric,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from flash_db import AwareDateTime, Model

#: The many-to-many table as Django creates one for a ``ManyToManyField``: its own
#: ``id`` key and a unique (book, tag) pair. (With a composite key Django's
#: ``split_exclude`` cannot tie a negated lookup to the row its call joined, and
#: raises where Django users, whose tables have the ``id``, get an answer.)
book_tags = Table(
    "oracle_book_tags",
    Model.metadata,
    Column("id", Integer, primary_key=True),
    Column("book_id", ForeignKey("oracle_books.id"), nullable=False),
    Column("tag_id", ForeignKey("oracle_tags.id"), nullable=False),
    UniqueConstraint("book_id", "tag_id"),
)


class Publisher(Model):
    __tablename__ = "oracle_publishers"
    name: Mapped[str] = mapped_column(String(100))
    city: Mapped[str | None] = mapped_column(String(100), default=None)
    founded: Mapped[dt.date] = mapped_column(Date)
    books: Mapped[list[Book]] = relationship(back_populates="publisher")


class Author(Model):
    __tablename__ = "oracle_authors"
    name: Mapped[str] = mapped_column(String(100))
    age: Mapped[int | None] = mapped_column(default=None)
    rating: Mapped[float | None] = mapped_column(Float, default=None)
    joined: Mapped[dt.datetime] = mapped_column(AwareDateTime())
    born: Mapped[dt.date | None] = mapped_column(Date, default=None)
    bio: Mapped[str | None] = mapped_column(Text, default=None)
    active: Mapped[bool] = mapped_column(default=True)
    books: Mapped[list[Book]] = relationship(back_populates="author")


class Book(Model):
    __tablename__ = "oracle_books"
    title: Mapped[str] = mapped_column(String(200))
    pages: Mapped[int]
    other_num: Mapped[int | None] = mapped_column(default=None)
    another_num: Mapped[int | None] = mapped_column(default=None)
    price: Mapped[Decimal] = mapped_column(Numeric(8, 2))
    rating: Mapped[float] = mapped_column(Float)
    published: Mapped[dt.date] = mapped_column(Date)
    created: Mapped[dt.datetime] = mapped_column(AwareDateTime())
    in_print: Mapped[bool]
    extra: Mapped[Any] = mapped_column(
        JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql"),
        nullable=True,
        default=None,
    )
    author_id: Mapped[int] = mapped_column(ForeignKey("oracle_authors.id"))
    author: Mapped[Author] = relationship(back_populates="books")
    publisher_id: Mapped[int | None] = mapped_column(
        ForeignKey("oracle_publishers.id"), default=None
    )
    publisher: Mapped[Publisher | None] = relationship(back_populates="books")
    reviews: Mapped[list[Review]] = relationship(back_populates="book")
    tags: Mapped[list[OracleTag]] = relationship(secondary=book_tags, back_populates="books")


class Review(Model):
    __tablename__ = "oracle_reviews"
    stars: Mapped[int]
    body: Mapped[str | None] = mapped_column(Text, default=None)
    posted: Mapped[dt.datetime] = mapped_column(AwareDateTime())
    book_id: Mapped[int] = mapped_column(ForeignKey("oracle_books.id"))
    book: Mapped[Book] = relationship(back_populates="reviews")


class OracleTag(Model):
    __tablename__ = "oracle_tags"
    name: Mapped[str] = mapped_column(String(50))
    books: Mapped[list[Book]] = relationship(secondary=book_tags, back_populates="tags")


#: The models by the names the generated queries use.
MODELS: dict[str, type[Model]] = {
    "Publisher": Publisher,
    "Author": Author,
    "Book": Book,
    "Review": Review,
    "Tag": OracleTag,
}
