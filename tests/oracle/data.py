"""The oracle's rows: a deterministic data set with NULLs, duplicates, unicode and edge values.

The same rows go into SQLite and PostgreSQL (``seed(engine)``), so Django and
Flash DB read identical tables. ``TEXTS`` and friends are also the pools the
query generator draws its literal values from, so lookups hit rows.
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, delete, insert
from sqlalchemy.ext.asyncio import AsyncEngine

from flash_db import Model
from tests.oracle import schema  # noqa: F401  (registers the tables)

#: Text values: case variants, Greek with a final sigma, German sharp s, LIKE
#: wildcards, quotes, an empty string and duplicates.
TEXTS = [
    "alpha",
    "Alpha",
    "ALPHA",
    "alpha beta",
    "Beta Gamma",
    "gamma_delta",
    "100% pure",
    "ΟΔΟΣ Books",
    "Οδός books",
    "οδος",
    "Σίσυφος",
    "Straße",
    "STRASSE",
    "Émile Zola",
    "émile",
    "O'Brien",
    "back\\slash",
    "",
    "x",
    "The Left Hand of Darkness",
    "the left hand",
    "Kindred",
    "kindred",
    "Über",
    "über alles",
]
NAMES = ["Ursula", "Octavia", "Émile", "Σωκράτης", "ursula", "Anon", "Zoë", "Li", "", "O'Hara"]
CITIES = ["Athens", "ATHENS", "Berlin", "Zürich", "São Paulo", None, "athens"]
TAG_NAMES = ["sf", "SF", "fantasy", "Fantasy", "λόγος", "ΛΌΓΟΣ", "ß", "a_b", "a%b", "classic"]

#: JSON values: objects (nested, with lists), arrays, scalars, empty ones, JSON
#: null (``JSON.NULL``) and SQL NULL (``None``). No top-level numbers: SQLAlchemy's
#: JSON column on SQLite has NUMERIC affinity (its type is "JSON"), which stores
#: the text "1" as the integer 1, and neither ORM can read that back as JSON.
JSON_VALUES: list[Any] = [
    None,
    None,
    JSON.NULL,
    {"a": 1, "b": "x"},
    {"a": 2, "b": "y", "tags": ["sf", "x"]},
    {"a": 1, "nested": {"k": 1.5, "deep": {"z": None}}},
    {"b": None},
    {"a": "1"},
    {},
    [],
    [1, 2, 3],
    ["sf", "fantasy"],
    "alpha",
    "1",
    True,
    False,
]

BASE_DAY = date(2020, 1, 1)
BASE_TIME = datetime(2023, 12, 31, 22, 30, 15, 123456, tzinfo=UTC)


def _datetime(rng: random.Random) -> datetime:
    # Nonzero microseconds: SQLAlchemy and Django then write the same text on SQLite.
    return BASE_TIME + timedelta(
        days=rng.randrange(-400, 400),
        seconds=rng.randrange(0, 86400),
        microseconds=rng.randrange(1, 999999),
    )


def rows() -> dict[str, list[dict[str, Any]]]:
    """Return every table's rows, by table name (the same on every call)."""
    rng = random.Random(20261205)
    publishers = [
        {
            "id": i,
            "name": rng.choice(TEXTS[:12] + NAMES),
            "city": rng.choice(CITIES),
            "founded": BASE_DAY + timedelta(days=rng.randrange(-3000, 3000)),
        }
        for i in range(1, 9)
    ]
    authors = [
        {
            "id": i,
            "name": rng.choice(NAMES + TEXTS),
            "age": rng.choice([None, 0, 18, 25, 30, 30, 41, 62, 88, 120]),
            "rating": rng.choice([None, 0.0, 1.5, 2.25, 3.0, 4.75, 5.0, -1.0]),
            "joined": _datetime(rng),
            "born": rng.choice([None, None, BASE_DAY - timedelta(days=rng.randrange(5000, 30000))]),
            "bio": rng.choice([None, *TEXTS]),
            "active": rng.random() < 0.7,
        }
        for i in range(1, 31)
    ]
    books = []
    for i in range(1, 91):
        # 500_000_000: large, yet F() arithmetic (* 3) stays inside PostgreSQL's integer.
        pages = rng.choice([0, 1, 99, 100, 183, 264, 304, 345, 387, 1000, 500_000_000])
        books.append(
            {
                "id": i,
                "title": rng.choice(TEXTS),
                "pages": pages,
                "other_num": rng.choice([None, 0, 1, 5, 7, 13, -3]),
                "another_num": rng.choice([None, 0, 1, 5, 7, 13]),
                "price": Decimal(rng.choice(["0.00", "9.99", "12.50", "15.00", "99.95", "0.01"])),
                "rating": rng.choice([0.0, 0.5, 2.5, 3.3, 4.0, 4.9, 5.0]),
                "published": BASE_DAY + timedelta(days=rng.randrange(-800, 800)),
                "created": _datetime(rng),
                "in_print": rng.random() < 0.6,
                "author_id": rng.randrange(1, 26),  # authors 26..30 have no books
                "publisher_id": rng.choice([None, *range(1, 8)]),  # publisher 8 has none
            }
        )
    reviews = [
        {
            "id": i,
            "stars": rng.choice([1, 2, 3, 3, 4, 5]),
            "body": rng.choice([None, *TEXTS]),
            "posted": _datetime(rng),
            "book_id": rng.randrange(1, 71),  # books 71..90 have no review
        }
        for i in range(1, 161)
    ]
    # A generator of its own, so that the other columns keep the values they had.
    json_rng = random.Random(14)
    for book in books:
        book["extra"] = json_rng.choice(JSON_VALUES)
    tags = [{"id": i, "name": name} for i, name in enumerate(TAG_NAMES, start=1)]
    pairs = sorted({(rng.randrange(1, 81), rng.randrange(1, len(TAG_NAMES))) for _ in range(170)})
    links = [{"id": i, "book_id": b, "tag_id": t} for i, (b, t) in enumerate(pairs, 1)]
    return {
        "oracle_publishers": publishers,
        "oracle_authors": authors,
        "oracle_books": books,
        "oracle_reviews": reviews,
        "oracle_tags": tags,
        "oracle_book_tags": links,
    }


#: The oracle's tables, parents first.
TABLES = [
    Model.metadata.tables[name]
    for name in (
        "oracle_publishers",
        "oracle_authors",
        "oracle_books",
        "oracle_reviews",
        "oracle_tags",
        "oracle_book_tags",
    )
]


async def seed(engine: AsyncEngine) -> None:
    """Replace the oracle tables' rows with the data set (the tables must exist)."""
    data = rows()
    async with engine.begin() as conn:
        for table in reversed(TABLES):
            await conn.execute(delete(table))
        for table in TABLES:
            await conn.execute(insert(table), data[table.name])
