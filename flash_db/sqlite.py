"""The Python functions Flash DB registers on every SQLite connection.

SQLite's own ``lower()``, ``upper()`` and ``LIKE`` fold only ASCII letters,
SQLite has no regular expressions and its ``strftime()`` knows no ISO-8601 week
or year; the lookups and functions compile to these functions on SQLite (see
``flash_db.constructs``) so that ``iexact``, ``icontains``, ``contains``,
``regex``, ``Upper``, ``week``, ``iso_year``, ``Trunc`` and the JSON
``contains``/``contained_by`` answer as on PostgreSQL.
:func:`flash_db.database.Database` registers :data:`FUNCTIONS` on each new
connection.

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
import json
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
def _json_scalar_equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b  # JSON true is not the number 1
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b  # 1 and 1.0 are one JSON number
    return type(a) is type(b) and not isinstance(a, dict | list) and a == b


def _json_within(doc: Any, value: Any, top: bool) -> bool:
    """Return whether ``doc`` contains ``value`` by PostgreSQL's ``jsonb @>`` rules."""
    if isinstance(value, dict):
        return isinstance(doc, dict) and all(
            key in doc and _json_within(doc[key], item, False) for key, item in value.items()
        )
    if isinstance(value, list):
        # Each element is in some element of the array: order and repeats do not count.
        return isinstance(doc, list) and all(
            any(_json_within(element, item, False) for element in doc) for item in value
        )
    if isinstance(doc, list) and top:
        # PostgreSQL's one exception: a top-level array contains a scalar it holds.
        return any(_json_scalar_equal(element, value) for element in doc)
    return _json_scalar_equal(doc, value)


def _sqlite_json_contains(doc: Any, value: Any) -> int | None:
    """``doc @> value`` of two JSON texts, as PostgreSQL's ``jsonb`` (NULL for SQL NULL)."""
    if doc is None or value is None:
        return None

    def parsed(text: Any) -> Any:
        # A JSON column has NUMERIC affinity on SQLite: a stored "1" comes back as 1.
        return text if isinstance(text, int | float) else json.loads(text)

    try:
        return int(_json_within(parsed(doc), parsed(value), True))
    except (TypeError, ValueError):
        return None  # not JSON text: no answer, as a failed cast


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
    "flash_json_contains": (2, _sqlite_json_contains),
}
