"""Django, configured in code, with unmanaged models on the oracle's tables.

Django is a test-only dependency: nothing in ``flash_db`` imports it. Settings
are made here (no project files); each database URL gets a Django connection
alias of its own, so one process can ask SQLite and PostgreSQL.
"""

from __future__ import annotations

from typing import Any

import django
from django.conf import settings
from sqlalchemy.engine import make_url

if not settings.configured:
    settings.configure(
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        INSTALLED_APPS=["tests.oracle"],  # app label "oracle": reverse relations need it
        USE_TZ=True,
        TIME_ZONE="UTC",
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
    )
    django.setup()

from django.db import connections, models
from django.db.models import (
    Avg,
    Count,
    Exists,
    F,
    Max,
    Min,
    OuterRef,
    Q,
    Sum,
)

# Django's models are untyped to mypy (no stubs): the subclasses are Any-based.


class Publisher(models.Model):  # type: ignore[misc]  # Django ships no type information
    name = models.CharField(max_length=100)
    city = models.CharField(max_length=100, null=True)
    founded = models.DateField()

    class Meta:
        app_label = "oracle"
        managed = False
        db_table = "oracle_publishers"


class Author(models.Model):  # type: ignore[misc]  # Django ships no type information
    name = models.CharField(max_length=100)
    age = models.IntegerField(null=True)
    rating = models.FloatField(null=True)
    joined = models.DateTimeField()
    born = models.DateField(null=True)
    bio = models.TextField(null=True)
    active = models.BooleanField()

    class Meta:
        app_label = "oracle"
        managed = False
        db_table = "oracle_authors"


class Tag(models.Model):  # type: ignore[misc]  # Django ships no type information
    name = models.CharField(max_length=50)

    class Meta:
        app_label = "oracle"
        managed = False
        db_table = "oracle_tags"


class Book(models.Model):  # type: ignore[misc]  # Django ships no type information
    title = models.CharField(max_length=200)
    pages = models.IntegerField()
    other_num = models.IntegerField(null=True)
    another_num = models.IntegerField(null=True)
    price = models.DecimalField(max_digits=8, decimal_places=2)
    rating = models.FloatField()
    published = models.DateField()
    created = models.DateTimeField()
    in_print = models.BooleanField()
    extra = models.JSONField(null=True)
    author = models.ForeignKey(Author, models.DO_NOTHING, related_name="books")
    publisher = models.ForeignKey(Publisher, models.DO_NOTHING, null=True, related_name="books")
    tags = models.ManyToManyField(Tag, through="BookTag", related_name="books")

    class Meta:
        app_label = "oracle"
        managed = False
        db_table = "oracle_books"


class BookTag(models.Model):  # type: ignore[misc]  # Django ships no type information
    # The table Django would create for the ManyToManyField: an ``id`` key.
    book = models.ForeignKey(Book, models.DO_NOTHING)
    tag = models.ForeignKey(Tag, models.DO_NOTHING)

    class Meta:
        app_label = "oracle"
        managed = False
        db_table = "oracle_book_tags"
        unique_together = (("book", "tag"),)


class Review(models.Model):  # type: ignore[misc]  # Django ships no type information
    stars = models.IntegerField()
    body = models.TextField(null=True)
    posted = models.DateTimeField()
    book = models.ForeignKey(Book, models.DO_NOTHING, related_name="reviews")

    class Meta:
        app_label = "oracle"
        managed = False
        db_table = "oracle_reviews"


MODELS: dict[str, Any] = {
    "Publisher": Publisher,
    "Author": Author,
    "Book": Book,
    "Review": Review,
    "Tag": Tag,
}

_aliases: dict[str, str] = {}


def alias_for(url: str, variant: str = "") -> str:
    """Return the Django connection alias of a Flash DB (SQLAlchemy) URL, adding it once.

    ``variant`` names a second connection to the same database (``"fold"``: see
    ``fold_case``).
    """
    key = f"{variant}:{url}"
    if key in _aliases:
        return _aliases[key]
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        config: dict[str, Any] = {"ENGINE": "django.db.backends.sqlite3", "NAME": parsed.database}
    else:
        config = {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": parsed.database,
            "USER": parsed.username or "",
            "PASSWORD": parsed.password or "",
            "HOST": parsed.host or "",
            "PORT": str(parsed.port or ""),
        }
    alias = f"oracle{len(_aliases)}"
    # configure_settings fills Django's defaults (it wants a "default" entry).
    connections.settings[alias] = connections.configure_settings({"default": config})["default"]
    _aliases[key] = alias
    return alias


def fold_case(alias: str) -> None:
    """Give this SQLite connection Flash DB's text rules: Unicode LOWER/UPPER, exact LIKE.

    SQLite's own LOWER/UPPER fold only ASCII and its LIKE ignores ASCII case. This
    is Django spelling Flash DB's SQLite rule, used to prove the documented
    difference, never for the answers compared.
    """
    connection = connections[alias]
    connection.ensure_connection()
    raw = connection.connection
    raw.create_function("LOWER", 1, _lower, deterministic=True)
    raw.create_function("UPPER", 1, _upper, deterministic=True)
    raw.execute("PRAGMA case_sensitive_like = ON")  # contains/startswith/endswith


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def _upper(value: Any) -> Any:
    # One character to one, as PostgreSQL (and Flash DB on SQLite): "ß" stays "ß".
    if not isinstance(value, str):
        return value
    return "".join(u if len(u := c.upper()) == 1 else c for c in value)


class _Bound:
    """A model name in generated code, bound to one connection: ``Book.objects`` uses it."""

    def __init__(self, model: Any, alias: str) -> None:
        self.objects = model.objects.db_manager(alias)


def namespace(alias: str) -> dict[str, Any]:
    """Return the names the generated Django code runs with, on connection ``alias``."""
    names: dict[str, Any] = {name: _Bound(model, alias) for name, model in MODELS.items()}
    names.update(Q=Q, F=F, Count=Count, Sum=Sum, Avg=Avg, Min=Min, Max=Max)
    names.update(Exists=Exists, OuterRef=OuterRef)
    extra = _optional_names()
    names.update(extra)
    return names


def _optional_names() -> dict[str, Any]:
    """Django's names for the expressions the generator uses only where Flash DB has them."""
    from django.db.models import Case, Value, When, functions
    from django.db.models.lookups import Contains, EndsWith, Exact, StartsWith

    from tests.oracle.classes import OPTIONAL_NAMES

    names: dict[str, Any] = {"Case": Case, "When": When, "Value": Value}
    # Cast()'s targets, spelled as the SQLAlchemy types Flash DB takes.
    names.update(
        Integer=models.IntegerField,
        Float=models.FloatField,
        Text=models.TextField,
        Date=models.DateField,
        Numeric=lambda digits, places: models.DecimalField(
            max_digits=digits, decimal_places=places
        ),
    )
    # For the SQLite proof of case-insensitive lookups against F(): Exact(Upper(..), ..).
    names.update(Exact=Exact, Contains=Contains, StartsWith=StartsWith, EndsWith=EndsWith)
    # The functions among the names the generator uses where Flash DB has them.
    for name in OPTIONAL_NAMES:
        if name in names:
            continue
        names[name] = getattr(functions, name)
    return names


def close(alias: str) -> None:
    """Close this thread's Django connection on ``alias``."""
    connections[alias].close()
