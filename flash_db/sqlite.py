"""The Python functions Flash DB registers on every SQLite connection.

SQLite's own ``lower()`` and ``LIKE`` fold only ASCII letters and SQLite has no
regular expressions; the lookups compile to these functions on SQLite (see
``flash_db.constructs``) so that ``iexact``, ``icontains``, ``contains`` and
``regex`` answer as on PostgreSQL. :func:`flash_db.database.Database` registers
:data:`FUNCTIONS` on each new connection.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

__all__ = ["FUNCTIONS"]


@functools.lru_cache(maxsize=256)
def _like_to_regex(pattern: str) -> re.Pattern[str]:
    parts: list[str] = []
    chars = iter(pattern)
    for char in chars:
        if char == "\\":
            parts.append(re.escape(next(chars, "\\")))
        elif char == "%":
            parts.append(".*")
        elif char == "_":
            parts.append(".")
        else:
            parts.append(re.escape(char))
    return re.compile("".join(parts), re.DOTALL)


def _sqlite_lower(value: Any) -> Any:
    if value is None or isinstance(value, bytes):
        return value
    # A number's text, as PostgreSQL's lower(CAST(x AS TEXT)): iexact on an integer column.
    return str(value).lower()


def _sqlite_upper(value: Any) -> Any:
    if value is None or isinstance(value, bytes):
        return value
    text = str(value)
    upper = text.upper()
    if len(upper) == len(text):
        return upper
    # PostgreSQL maps one character to one ('ß' stays 'ß'); Python's 'ß'.upper() is 'SS'.
    return "".join(c if len(u := c.upper()) != 1 else u for c in text)


def _sqlite_like(value: Any, pattern: Any) -> bool | None:
    if value is None or pattern is None:
        return None
    return _like_to_regex(str(pattern)).fullmatch(str(value)) is not None


def _sqlite_regexp(value: Any, pattern: Any) -> bool | None:
    if value is None or pattern is None:
        return None
    return re.search(str(pattern), str(value)) is not None


def _sqlite_iregexp(value: Any, pattern: Any) -> bool | None:
    if value is None or pattern is None:
        return None
    return re.search(str(pattern), str(value), re.IGNORECASE) is not None


#: Functions registered on every SQLite connection: name -> (number of arguments, function).
FUNCTIONS: dict[str, tuple[int, Callable[..., Any]]] = {
    "flash_lower": (1, _sqlite_lower),
    "flash_upper": (1, _sqlite_upper),
    "flash_like": (2, _sqlite_like),
    "flash_regexp": (2, _sqlite_regexp),
    "flash_iregexp": (2, _sqlite_iregexp),
}
