"""The Python functions Flash DB registers on every SQLite connection.

SQLite's own ``lower()``, ``upper()`` and ``LIKE`` fold only ASCII letters,
SQLite has no regular expressions and its ``strftime()`` knows no ISO-8601 week
or year; the lookups and functions compile to these functions on SQLite (see
``flash_db.constructs``) so that ``iexact``, ``icontains``, ``contains``,
``regex``, ``Upper``, ``week``, ``iso_year`` and ``Trunc`` answer as on
PostgreSQL. :func:`flash_db.database.Database` registers :data:`FUNCTIONS` on
each new connection.

Regular expressions run on RE2 (``google-re2``), whose matching time is linear
in the text: a pattern such as ``^(a+)+$``, which makes a backtracking engine
(Python's ``re``) take seconds per row while holding the GIL in the driver's
thread and freezing the event loop, is as cheap as any other there. RE2 has no
backreferences and no lookaround; the lookups refuse such patterns up front
(``flash_db.lookups``).
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import re
from collections.abc import Callable
from typing import Any

import re2  # type: ignore[import-untyped]  # google-re2 ships no type information

__all__ = ["FUNCTIONS", "PatternError", "compile_pattern"]

#: The error RE2 raises for a pattern it cannot compile.
PatternError: type[Exception] = re2.error

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # an invalid pattern is the caller's error, not a log line


@functools.lru_cache(maxsize=256)
def compile_pattern(pattern: str, ignore_case: bool = False) -> Any:
    """Return ``pattern`` compiled by RE2 (cached); raise :data:`PatternError` if it cannot be."""
    return re2.compile(f"(?i){pattern}" if ignore_case else pattern, _OPTIONS)


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
    return compile_pattern(str(pattern)).search(str(value)) is not None


def _sqlite_iregexp(value: Any, pattern: Any) -> bool | None:
    if value is None or pattern is None:
        return None
    return compile_pattern(str(pattern), True).search(str(value)) is not None


def _parse(value: Any) -> dt.datetime | dt.date | dt.time | None:
    """Return the date, datetime or time SQLAlchemy stored as text (None for NULL or junk)."""
    if value is None:
        return None
    text = str(value)
    try:
        if "-" not in text[:5]:
            return dt.time.fromisoformat(text)
        if len(text) <= 10:
            return dt.date.fromisoformat(text)
        return dt.datetime.fromisoformat(text)
    except ValueError:
        return None


def _sqlite_date_part(kind: str, value: Any) -> int | None:
    """Return the ISO-8601 part ``kind`` of a stored date or datetime."""
    parsed = _parse(value)
    if parsed is None or isinstance(parsed, dt.time):
        return None
    year, week, weekday = parsed.isocalendar()
    return {"week": week, "iso_year": year, "iso_week_day": weekday}.get(kind)


def _format(value: dt.datetime | dt.date | dt.time) -> str:
    """Return ``value`` as SQLAlchemy stores it on SQLite."""
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, dt.date):
        return value.isoformat()
    return value.strftime("%H:%M:%S.%f")


def _sqlite_trunc(kind: str, value: Any) -> str | None:
    """Return a stored date, datetime or time truncated to ``kind``, as stored text."""
    parsed = _parse(value)
    if parsed is None:
        return None
    if isinstance(parsed, dt.time):
        hour, minute, second = parsed.hour, parsed.minute, parsed.second
        if kind == "hour":
            minute = second = 0
        elif kind == "minute":
            second = 0
        return _format(dt.time(hour, minute, second))
    day: dt.date = parsed.date() if isinstance(parsed, dt.datetime) else parsed
    if kind == "year":
        day = day.replace(month=1, day=1)
    elif kind == "quarter":
        day = day.replace(month=(day.month - 1) // 3 * 3 + 1, day=1)
    elif kind == "month":
        day = day.replace(day=1)
    elif kind == "week":
        day = day - dt.timedelta(days=day.weekday())
    if not isinstance(parsed, dt.datetime):
        return _format(day)
    moment = dt.datetime.combine(day, dt.time())
    if kind in ("hour", "minute", "second"):
        moment = moment.replace(hour=parsed.hour)
    if kind in ("minute", "second"):
        moment = moment.replace(minute=parsed.minute)
    if kind == "second":
        moment = moment.replace(second=parsed.second)
    return _format(moment)


def _sqlite_time(value: Any) -> str | None:
    """Return the time of a stored datetime (or time) as SQLAlchemy stores times."""
    parsed = _parse(value)
    if isinstance(parsed, dt.datetime):
        return _format(parsed.time())
    return _format(parsed) if isinstance(parsed, dt.time) else None


def _sqlite_power(base: Any, exponent: Any) -> float | None:
    if base is None or exponent is None:
        return None
    try:
        return math.pow(base, exponent)
    except (OverflowError, ValueError):
        return None


#: Functions registered on every SQLite connection: name -> (number of arguments, function).
FUNCTIONS: dict[str, tuple[int, Callable[..., Any]]] = {
    "flash_lower": (1, _sqlite_lower),
    "flash_upper": (1, _sqlite_upper),
    "flash_like": (2, _sqlite_like),
    "flash_regexp": (2, _sqlite_regexp),
    "flash_iregexp": (2, _sqlite_iregexp),
    "flash_date_part": (2, _sqlite_date_part),
    "flash_trunc": (2, _sqlite_trunc),
    "flash_time": (1, _sqlite_time),
    "flash_power": (2, _sqlite_power),
}
