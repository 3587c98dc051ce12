"""The Flash DB error tree.

::

    FlashDBError
    ├── DoesNotExist (also ValueError)          Model.DoesNotExist subclasses it
    ├── MultipleObjectsReturned (also ValueError) Model.MultipleObjectsReturned subclasses it
    ├── ValidationError (also ValueError)
    ├── FieldError
    ├── InvalidValue (also ValueError)
    ├── RelationNotLoaded
    ├── SessionBusy
    ├── TransactionError
    └── DatabaseUnavailable

Database errors (``sqlalchemy.exc.IntegrityError`` and friends) are not wrapped:
they pass through unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "DatabaseUnavailable",
    "DoesNotExist",
    "FieldError",
    "FlashDBError",
    "InvalidValue",
    "MultipleObjectsReturned",
    "RelationNotLoaded",
    "SessionBusy",
    "TransactionError",
    "ValidationError",
]


class FlashDBError(Exception):
    """Base class of every error Flash DB raises itself."""


class DoesNotExist(FlashDBError, ValueError):
    """A query that must return one row returned none."""


class MultipleObjectsReturned(FlashDBError, ValueError):
    """A query that must return one row returned several."""


class TransactionError(FlashDBError):
    """The transaction API was misused (for example ``db.commit()`` inside ``atomic``)."""


class SessionBusy(FlashDBError):
    """Two tasks used one ``AsyncSession`` at the same time."""

    def __init__(self, operation: str = "query") -> None:
        self.operation = operation
        super().__init__(
            f"This AsyncSession is already running a {operation} in another task. "
            "An AsyncSession serves one task at a time: open one session per task "
            "(async with flash_db.session() as db: ...) instead of sharing one "
            "across asyncio.gather()."
        )


class FieldError(FlashDBError):
    """An unknown field, relation or lookup name was used in a string-based API."""

    def __init__(
        self,
        model: type[Any],
        name: str,
        choices: Iterable[str],
        *,
        kind: str = "field",
        context: str = "",
    ) -> None:
        self.model = model
        self.field = name
        self.name = name
        self.kind = kind
        self.choices = sorted(set(choices))
        where = f" in {context}" if context else ""
        if kind == "lookup":
            message = (
                f"Unsupported lookup {name!r}{where} on {model.__name__}. "
                f"Choices are: {', '.join(self.choices)}."
            )
        else:
            message = (
                f"Cannot resolve keyword {name!r} into {kind}{where} on {model.__name__}. "
                f"Choices are: {', '.join(self.choices)}."
            )
        super().__init__(message)


class InvalidValue(FlashDBError, ValueError):
    """A value no column of the field's type could hold (``filter(age="abc")`` on an integer).

    Raised before any SQL is sent; names the model, the field and what it takes.
    """

    def __init__(self, model: type[Any], field: str, value: Any, expected: str) -> None:
        self.model = model
        self.field = field
        self.value = value
        self.expected = expected
        shown = repr(value)
        if len(shown) > 60:
            shown = shown[:57] + "..."
        super().__init__(f"Field {model.__name__}.{field} expected {expected}, got {shown}.")


class DatabaseUnavailable(FlashDBError):
    """No connection could be had: the server is down, the pool timed out, SQLite stayed busy.

    ``retry_after`` is a hint in seconds (the HTTP layer sends it as ``Retry-After``).
    """

    def __init__(self, message: str, *, retry_after: int = 1) -> None:
        self.retry_after = retry_after
        super().__init__(message)


class RelationNotLoaded(FlashDBError):
    """An unloaded relation or deferred column was touched in async code."""

    def __init__(
        self, model: type[Any], attribute: str, *, column: bool = False, to_many: bool = False
    ) -> None:
        self.model = model
        self.attribute = attribute
        self.column = column
        name = model.__name__
        if column:
            fix = (
                f"load it with the query (drop it from defer()/add it to only()), or "
                f"await obj.refresh_from_db(db, fields=[{attribute!r}])"
            )
            what = "Deferred column"
        elif to_many:
            fix = (
                f"load it with the query (.prefetch_related({attribute!r})), "
                f"or await obj.fetch_related(db, {attribute!r})"
            )
            what = "Relation"
        else:
            fix = (
                f"load it with the query (.select_related({attribute!r}) or "
                f".prefetch_related({attribute!r})), or await obj.fetch_related(db, {attribute!r})"
            )
            what = "Relation"
        super().__init__(
            f"{what} {name}.{attribute} is not loaded, and async code cannot load it "
            f"implicitly. To use it, {fix}."
        )


class ValidationError(FlashDBError, ValueError):
    """Model validation failed; ``errors`` maps field names (or ``"__all__"``) to messages."""

    def __init__(
        self,
        errors: str | Sequence[str] | Mapping[str, str | Sequence[str]],
    ) -> None:
        self.errors: dict[str, list[str]] = {}
        if isinstance(errors, str):
            self.errors["__all__"] = [errors]
        elif isinstance(errors, Mapping):
            for field, messages in errors.items():
                if isinstance(messages, str):
                    self.errors[field] = [messages]
                else:
                    self.errors[field] = list(messages)
        else:
            self.errors["__all__"] = list(errors)
        super().__init__(str(self))

    def merge(self, other: ValidationError) -> None:
        """Add the messages of ``other`` to this error."""
        for field, messages in other.errors.items():
            self.errors.setdefault(field, []).extend(messages)
        self.args = (str(self),)

    def __str__(self) -> str:
        parts = []
        for field, messages in self.errors.items():
            parts.append(f"{field}: {'; '.join(messages)}")
        return "; ".join(parts) if parts else "Validation failed."
