"""SQL constructs that compile differently on SQLite and PostgreSQL.

Each is a ``FunctionElement``, so SQLAlchemy's statement cache and parameter
binding work unchanged; the ``@compiles`` hooks pick the SQL per dialect.
Case-insensitive matching, LIKE and regular expressions use the functions of
:mod:`flash_db.sqlite` on SQLite, so they answer as on PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, ClassVar

from sqlalchemy import (
    Boolean,
    ClauseElement,
    ColumnElement,
    Date,
    DateTime,
    Enum,
    Executable,
    False_,
    Float,
    Integer,
    String,
    Time,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import Label, UnaryExpression
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import NullType, TypeDecorator

__all__ = [
    "DATE_PARTS",
    "TRUNC_KINDS",
    "Concat",
    "DateOf",
    "DatePart",
    "Day",
    "EmptyResult",
    "Explain",
    "Fold",
    "ForSQLite",
    "Greatest",
    "Hour",
    "ILike",
    "IRegex",
    "IsoWeekDay",
    "IsoYear",
    "JsonKeyValue",
    "Least",
    "Like",
    "Lower",
    "Minute",
    "Mod",
    "Month",
    "Now",
    "OnSQLite",
    "Power",
    "Quarter",
    "Regex",
    "Second",
    "TimeOf",
    "Truncated",
    "UTCResult",
    "Upper",
    "Week",
    "WeekDay",
    "Year",
    "is_empty",
    "is_false",
]

#
# Each is a FunctionElement so SQLAlchemy's statement cache and parameter
# binding work unchanged; the @compiles hooks pick the SQL per dialect.


class Fold(FunctionElement[str]):
    """``upper(x)``, as Django's case-insensitive lookups on PostgreSQL; on SQLite a
    Unicode-aware Python ``upper`` (one character for one, as PostgreSQL's)."""

    type = String()
    name = "upper"
    inherit_cache = True


class Like(FunctionElement[bool]):
    """``value LIKE pattern ESCAPE '\\'``, case-sensitive on every backend."""

    type = Boolean()
    name = "flash_like"
    inherit_cache = True
    case_insensitive: ClassVar[bool] = False


class ILike(Like):
    """``upper(value) LIKE upper(pattern) ESCAPE '\\'`` (Unicode case folding on SQLite too)."""

    name = "flash_ilike"
    inherit_cache = True
    case_insensitive = True


class Regex(FunctionElement[bool]):
    """A regular-expression match (``~`` on PostgreSQL)."""

    type = Boolean()
    name = "flash_regexp"
    inherit_cache = True
    case_insensitive: ClassVar[bool] = False


class IRegex(Regex):
    """A case-insensitive regular-expression match (``~*`` on PostgreSQL)."""

    name = "flash_iregexp"
    inherit_cache = True
    case_insensitive = True


class DatePart(FunctionElement[int]):
    """An integer part of a date/datetime, in UTC for timezone-aware columns."""

    type = Integer()
    name = "date_part"
    inherit_cache = True
    part: ClassVar[str] = ""
    sqlite_format: ClassVar[str] = ""


class Year(DatePart):
    inherit_cache = True
    part = "YEAR"
    sqlite_format = "%Y"


class Month(DatePart):
    inherit_cache = True
    part = "MONTH"
    sqlite_format = "%m"


class Day(DatePart):
    inherit_cache = True
    part = "DAY"
    sqlite_format = "%d"


class Hour(DatePart):
    inherit_cache = True
    part = "HOUR"
    sqlite_format = "%H"


class WeekDay(DatePart):
    """Django's week day: 1 = Sunday ... 7 = Saturday."""

    inherit_cache = True
    part = "DOW"
    sqlite_format = "%w"


class Minute(DatePart):
    inherit_cache = True
    part = "MINUTE"
    sqlite_format = "%M"


class Second(DatePart):
    """Whole seconds (PostgreSQL's EXTRACT has the fraction: it is floored, as in Django)."""

    inherit_cache = True
    part = "SECOND"
    sqlite_format = "%S"


class Quarter(DatePart):
    """1 to 4."""

    inherit_cache = True
    part = "QUARTER"


class Week(DatePart):
    """The ISO-8601 week number (weeks start on Monday; week 1 holds the year's first Thursday)."""

    inherit_cache = True
    part = "WEEK"


class IsoYear(DatePart):
    """The ISO-8601 week-numbering year."""

    inherit_cache = True
    part = "ISOYEAR"


class IsoWeekDay(DatePart):
    """The ISO-8601 week day: 1 = Monday ... 7 = Sunday."""

    inherit_cache = True
    part = "ISODOW"


#: Date parts by Django's lookup name (``Extract(field, "quarter")``, ``created_at__week``).
DATE_PARTS: dict[str, type[DatePart]] = {
    "year": Year,
    "iso_year": IsoYear,
    "quarter": Quarter,
    "month": Month,
    "week": Week,
    "day": Day,
    "week_day": WeekDay,
    "iso_week_day": IsoWeekDay,
    "hour": Hour,
    "minute": Minute,
    "second": Second,
}

# The ISO parts SQLite's strftime() lacks: a Python function (flash_db.sqlite) computes them.
_SQLITE_PYTHON_PARTS = {"WEEK": "week", "ISOYEAR": "iso_year", "ISODOW": "iso_week_day"}


class TimeOf(FunctionElement[Any]):
    """The time of a datetime (UTC for timezone-aware columns)."""

    type = Time()
    name = "time_of"
    inherit_cache = True


class Truncated(FunctionElement[Any]):
    """A date, datetime or time truncated to :attr:`kind`; one subclass per kind (cache keys)."""

    name = "flash_trunc"
    inherit_cache = True
    kind: ClassVar[str] = ""


#: Truncation kinds, in Django's names; the SQL only ever holds these constants.
TRUNC_KINDS: dict[str, type[Truncated]] = {
    kind: type(f"Trunc_{kind}", (Truncated,), {"kind": kind, "inherit_cache": True})
    for kind in ("year", "quarter", "month", "week", "day", "hour", "minute", "second")
}


class Lower(FunctionElement[str]):
    """``lower(x)``; on SQLite a Unicode-aware Python ``lower``."""

    type = String()
    name = "lower"
    inherit_cache = True


class Upper(FunctionElement[str]):
    """``upper(x)``; on SQLite a Unicode-aware Python ``upper``."""

    type = String()
    name = "upper"
    inherit_cache = True


class Concat(FunctionElement[str]):
    """Text concatenation where NULL counts as the empty string (Django's ``Concat``)."""

    type = String()
    name = "flash_concat"
    inherit_cache = True


class Greatest(FunctionElement[Any]):
    """``GREATEST(...)``; ``max(...)`` on SQLite (NULL when any argument is NULL, as in Django)."""

    name = "greatest"
    inherit_cache = True


class Least(FunctionElement[Any]):
    """``LEAST(...)``; ``min(...)`` on SQLite (NULL when any argument is NULL, as in Django)."""

    name = "least"
    inherit_cache = True


class Power(FunctionElement[float]):
    """``power(a, b)`` (a Python function on SQLite builds without math functions)."""

    type = Float()
    name = "power"
    inherit_cache = True


class Mod(FunctionElement[Any]):
    """``a % b``: the remainder with the dividend's sign, as SQL's ``%`` (Django's ``F() % n``).

    PostgreSQL has ``%`` for integers and numerics only: a float operand is taken
    as a numeric and the remainder made a float again. SQLite's ``%`` takes any
    number (it works on their integer parts, and Django's answer there is that).
    """

    name = "flash_mod"
    inherit_cache = True


class EmptyResult(FunctionElement[Any]):
    """An expression over no rows: an aggregate whose ``filter=`` is provably false.

    Its SQL is the expression's own (``max(x) FILTER (WHERE false)`` is NULL,
    ``count(...)`` 0, as Django selects them), but a lookup on it is FALSE, as
    Django's (its ``EmptyResultSet`` reaches the lookup): ``filter(m__gte=0)``
    matches nothing and ``exclude(m__gte=0)`` everything. Arithmetic on it and
    transforms of it are empty too; functions of it (``Coalesce``) are not.
    """

    name = "flash_empty"
    inherit_cache = True

    def __init__(self, expression: ColumnElement[Any]) -> None:
        super().__init__(expression)
        self.type = expression.type


def is_empty(element: Any) -> bool:
    """Return whether ``element`` is an :class:`EmptyResult` (under labels)."""
    while isinstance(element, Label):
        element = element.element
    return isinstance(element, EmptyResult)


def is_false(condition: Any) -> bool:
    """Return whether a condition is the constant FALSE (``false()``, or an AND it folded).

    ``and_(false(), x)`` folds to FALSE under a boolean wrapper (negating it gives
    TRUE itself).
    """
    if isinstance(condition, UnaryExpression):
        condition = condition.element
    return isinstance(condition, False_)


class UTCResult(TypeDecorator[dt.datetime]):
    """A datetime result, aware in UTC on every backend (SQLite's text has no offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        """Return ``value`` with UTC as its time zone when the database gave none."""
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value


class Now(FunctionElement[Any]):
    """The current date and time: the statement's start on PostgreSQL, UTC text on SQLite."""

    type = UTCResult()
    name = "now"
    inherit_cache = True


class DateOf(FunctionElement[Any]):
    """The date of a datetime (UTC for timezone-aware columns)."""

    type = Date()
    name = "date"
    inherit_cache = True


class ForSQLite(FunctionElement[Any]):
    """``(portable, sqlite)``: the first expression, or the second on SQLite (any type)."""

    name = "flash_for_sqlite"
    inherit_cache = True


class OnSQLite(FunctionElement[bool]):
    """``(portable, sqlite)``: the first condition, or the second on SQLite.

    Used where an integer is outside its column's declared range but within 64
    bits: PostgreSQL cannot hold it (the condition is settled), SQLite can.
    """

    type = Boolean()
    name = "flash_on_sqlite"
    inherit_cache = True


def _args(element: FunctionElement[Any], compiler: SQLCompiler, **kw: Any) -> list[str]:
    return [compiler.process(arg, **kw) for arg in element.clauses]


def _text_args(element: FunctionElement[Any], compiler: SQLCompiler, **kw: Any) -> list[str]:
    """Compile the arguments, casting those that are not plain text (enums, numbers) to TEXT.

    PostgreSQL has no LIKE, ``~`` or ``lower()`` for enum or integer columns.
    """
    result = []
    for arg in element.clauses:
        sql = compiler.process(arg, **kw)
        kind = getattr(arg.type, "impl", arg.type)
        if not isinstance(kind, String) or isinstance(kind, Enum):
            sql = f"CAST({sql} AS TEXT)"
        result.append(sql)
    return result


def _is_aware(element: FunctionElement[Any]) -> bool:
    (arg,) = element.clauses
    kind = arg.type
    impl = getattr(kind, "impl", kind)  # TypeDecorator (AwareDateTime) or the type itself
    return bool(getattr(impl, "timezone", False))


@compiles(Fold)
def _fold_default(element: Fold, compiler: SQLCompiler, **kw: Any) -> str:
    return f"upper({_text_args(element, compiler, **kw)[0]})"


@compiles(Fold, "sqlite")
def _fold_sqlite(element: Fold, compiler: SQLCompiler, **kw: Any) -> str:
    return f"flash_upper({_args(element, compiler, **kw)[0]})"


@compiles(Like)
def _like_default(element: Like, compiler: SQLCompiler, **kw: Any) -> str:
    value, pattern = _text_args(element, compiler, **kw)
    if element.case_insensitive:
        # As Django: upper() on both sides (ILIKE folds to lower case, so the final
        # sigma 'ς' would not match 'Σ').
        return f"(upper({value}) LIKE upper({pattern}) ESCAPE '\\')"
    return f"({value} LIKE {pattern} ESCAPE '\\')"


@compiles(Like, "sqlite")
def _like_sqlite(element: Like, compiler: SQLCompiler, **kw: Any) -> str:
    value, pattern = _args(element, compiler, **kw)
    if element.case_insensitive:
        # Both sides folded in Python, so SQLite's ASCII-only LIKE folding is moot.
        return f"(flash_upper({value}) LIKE flash_upper({pattern}) ESCAPE '\\')"
    # SQLite's LIKE ignores ASCII case; a Python LIKE keeps it, as PostgreSQL does.
    # The native LIKE (a superset of the matches) runs first, so SQLite calls the
    # Python function only for its candidates (CASE is lazy where AND, compared
    # with 1 as SQLAlchemy does for booleans on SQLite, is not): near-native speed.
    # NULL (not false) when either side is NULL, as LIKE: NOT (x LIKE NULL) is NULL too.
    return (
        f"(CASE WHEN {value} LIKE {pattern} ESCAPE '\\' THEN flash_like({value}, {pattern}) "
        f"WHEN {value} IS NULL OR {pattern} IS NULL THEN NULL ELSE 0 END)"
    )


@compiles(Regex)
def _regex_default(element: Regex, compiler: SQLCompiler, **kw: Any) -> str:
    value, pattern = _text_args(element, compiler, **kw)
    return f"({value} {'~*' if element.case_insensitive else '~'} {pattern})"


@compiles(Regex, "sqlite")
def _regex_sqlite(element: Regex, compiler: SQLCompiler, **kw: Any) -> str:
    value, pattern = _args(element, compiler, **kw)
    return f"{element.name}({value}, {pattern})"


def _pg_utc(element: FunctionElement[Any], compiler: SQLCompiler, **kw: Any) -> str:
    (arg,) = _args(element, compiler, **kw)
    # A timestamptz's parts depend on the session time zone; Flash DB stores and
    # compares aware datetimes in UTC (SQLite keeps the UTC text).
    return f"timezone('UTC', {arg})" if _is_aware(element) else arg


@compiles(DatePart)
def _date_part_default(element: DatePart, compiler: SQLCompiler, **kw: Any) -> str:
    extract = f"EXTRACT({element.part} FROM {_pg_utc(element, compiler, **kw)})"
    if element.part == "SECOND":
        extract = f"FLOOR({extract})"  # EXTRACT(SECOND ...) has the fraction
    sql = f"CAST({extract} AS INTEGER)"
    return f"({sql} + 1)" if element.part == "DOW" else sql


@compiles(DatePart, "sqlite")
def _date_part_sqlite(element: DatePart, compiler: SQLCompiler, **kw: Any) -> str:
    (arg,) = _args(element, compiler, **kw)
    python = _SQLITE_PYTHON_PARTS.get(element.part)
    if python is not None:
        return f"flash_date_part('{python}', {arg})"
    if element.part == "QUARTER":
        return f"((CAST(strftime('%m', {arg}) AS INTEGER) + 2) / 3)"
    sql = f"CAST(strftime('{element.sqlite_format}', {arg}) AS INTEGER)"
    return f"({sql} + 1)" if element.part == "DOW" else sql


@compiles(TimeOf)
def _time_of_default(element: TimeOf, compiler: SQLCompiler, **kw: Any) -> str:
    return f"CAST({_pg_utc(element, compiler, **kw)} AS TIME)"


@compiles(TimeOf, "sqlite")
def _time_of_sqlite(element: TimeOf, compiler: SQLCompiler, **kw: Any) -> str:
    return f"flash_time({_args(element, compiler, **kw)[0]})"


def _temporal(element: FunctionElement[Any]) -> Any:
    (arg,) = element.clauses
    kind = arg.type
    return getattr(kind, "impl", kind)


@compiles(Truncated)
def _truncated_default(element: Truncated, compiler: SQLCompiler, **kw: Any) -> str:
    (arg,) = _args(element, compiler, **kw)
    kind = _temporal(element)
    if isinstance(kind, Time):
        return f"CAST(date_trunc('{element.kind}', CAST({arg} AS INTERVAL)) AS TIME)"
    if isinstance(kind, DateTime):
        if _is_aware(element):
            # Truncate the UTC wall time, then make it a UTC timestamptz again.
            return f"timezone('UTC', date_trunc('{element.kind}', timezone('UTC', {arg})))"
        return f"date_trunc('{element.kind}', {arg})"
    return f"CAST(date_trunc('{element.kind}', CAST({arg} AS TIMESTAMP)) AS DATE)"


@compiles(Truncated, "sqlite")
def _truncated_sqlite(element: Truncated, compiler: SQLCompiler, **kw: Any) -> str:
    return f"flash_trunc('{element.kind}', {_args(element, compiler, **kw)[0]})"


@compiles(Lower)
def _lower_default(element: Lower, compiler: SQLCompiler, **kw: Any) -> str:
    return f"lower({_text_args(element, compiler, **kw)[0]})"


@compiles(Lower, "sqlite")
def _lower_sqlite(element: Lower, compiler: SQLCompiler, **kw: Any) -> str:
    return f"flash_lower({_args(element, compiler, **kw)[0]})"


@compiles(Upper)
def _upper_default(element: Upper, compiler: SQLCompiler, **kw: Any) -> str:
    return f"upper({_text_args(element, compiler, **kw)[0]})"


@compiles(Upper, "sqlite")
def _upper_sqlite(element: Upper, compiler: SQLCompiler, **kw: Any) -> str:
    return f"flash_upper({_args(element, compiler, **kw)[0]})"


@compiles(Concat)
def _concat_default(element: Concat, compiler: SQLCompiler, **kw: Any) -> str:
    parts = [f"COALESCE({sql}, '')" for sql in _text_args(element, compiler, **kw)]
    return f"({' || '.join(parts)})"


@compiles(Greatest)
@compiles(Least)
@compiles(Power)
def _function_default(element: FunctionElement[Any], compiler: SQLCompiler, **kw: Any) -> str:
    return f"{element.name}({', '.join(_args(element, compiler, **kw))})"


@compiles(Greatest, "sqlite")
def _greatest_sqlite(element: Greatest, compiler: SQLCompiler, **kw: Any) -> str:
    return f"max({', '.join(_args(element, compiler, **kw))})"


@compiles(Least, "sqlite")
def _least_sqlite(element: Least, compiler: SQLCompiler, **kw: Any) -> str:
    return f"min({', '.join(_args(element, compiler, **kw))})"


@compiles(Power, "sqlite")
def _power_sqlite(element: Power, compiler: SQLCompiler, **kw: Any) -> str:
    return f"flash_power({', '.join(_args(element, compiler, **kw))})"


@compiles(Mod)
def _mod_default(element: Mod, compiler: SQLCompiler, **kw: Any) -> str:
    parts = []
    floats = False
    for arg in element.clauses:
        sql = f"({compiler.process(arg, **kw)})"
        if isinstance(getattr(arg.type, "impl", arg.type), Float):
            sql = f"CAST({sql} AS NUMERIC)"
            floats = True
        parts.append(sql)
    remainder = f"({parts[0]} % {parts[1]})"
    return f"CAST({remainder} AS DOUBLE PRECISION)" if floats else remainder


@compiles(Mod, "sqlite")
def _mod_sqlite(element: Mod, compiler: SQLCompiler, **kw: Any) -> str:
    dividend, divisor = _args(element, compiler, **kw)
    return f"(({dividend}) % ({divisor}))"


@compiles(EmptyResult)
def _empty_result(element: EmptyResult, compiler: SQLCompiler, **kw: Any) -> str:
    return f"({_args(element, compiler, **kw)[0]})"


@compiles(Now)
def _now_default(element: Now, compiler: SQLCompiler, **kw: Any) -> str:
    return "statement_timestamp()"


@compiles(Now, "sqlite")
def _now_sqlite(element: Now, compiler: SQLCompiler, **kw: Any) -> str:
    return "strftime('%Y-%m-%d %H:%M:%f', 'now')"


@compiles(DateOf)
def _date_of_default(element: DateOf, compiler: SQLCompiler, **kw: Any) -> str:
    return f"CAST({_pg_utc(element, compiler, **kw)} AS DATE)"


@compiles(ForSQLite)
def _for_sqlite_default(element: ForSQLite, compiler: SQLCompiler, **kw: Any) -> str:
    portable, _ = element.clauses
    return str(compiler.process(portable, **kw))


@compiles(ForSQLite, "sqlite")
def _for_sqlite_sqlite(element: ForSQLite, compiler: SQLCompiler, **kw: Any) -> str:
    _, sqlite = element.clauses
    return str(compiler.process(sqlite, **kw))


class _JsonKeyType(TypeDecorator[Any]):
    """The value at a JSON key, as Django's ``JSONField.from_db_value`` reads a key.

    PostgreSQL sends ``jsonb`` (decoded by its JSON type); SQLite's
    ``json_extract()`` sends numbers as numbers, a string without its quotes and
    an object or array as JSON text (decoded here; a string that is no JSON
    stays a string).
    """

    impl = String
    cache_ok = True

    def load_dialect_impl(self, dialect: Any) -> Any:
        """Return ``jsonb`` on PostgreSQL, the raw value elsewhere."""
        if dialect.name == "postgresql":
            return dialect.type_descriptor(JSONB())
        return dialect.type_descriptor(NullType())

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        """Decode SQLite's JSON text; leave other values as the driver gave them."""
        if dialect.name == "postgresql" or not isinstance(value, str):
            return value
        try:
            return json.loads(value)
        except ValueError:
            return value


class JsonKeyValue(OnSQLite):
    """``(postgresql, sqlite)``: the value at a JSON key, compiled as :class:`OnSQLite`."""

    type = _JsonKeyType()  # type: ignore[assignment]  # a value, not a condition
    name = "flash_json_key"
    inherit_cache = True


@compiles(OnSQLite)
def _on_sqlite_default(element: OnSQLite, compiler: SQLCompiler, **kw: Any) -> str:
    portable, _ = element.clauses
    return f"({compiler.process(portable, **kw)})"


@compiles(OnSQLite, "sqlite")
def _on_sqlite_sqlite(element: OnSQLite, compiler: SQLCompiler, **kw: Any) -> str:
    _, sqlite = element.clauses
    return f"({compiler.process(sqlite, **kw)})"


@compiles(DateOf, "sqlite")
def _date_of_sqlite(element: DateOf, compiler: SQLCompiler, **kw: Any) -> str:
    return f"date({_args(element, compiler, **kw)[0]})"


class Explain(Executable, ClauseElement):
    """``EXPLAIN [ANALYZE] statement`` (``EXPLAIN QUERY PLAN`` on SQLite), with its parameters."""

    inherit_cache = False  # made for one call: nothing to cache

    def __init__(self, statement: ClauseElement, *, analyze: bool = False) -> None:
        self.statement = statement
        self.analyze = analyze


@compiles(Explain)
def _explain_default(element: Explain, compiler: SQLCompiler, **kw: Any) -> str:
    verb = "EXPLAIN ANALYZE" if element.analyze else "EXPLAIN"
    return f"{verb} {compiler.process(element.statement, **kw)}"


@compiles(Explain, "sqlite")
def _explain_sqlite(element: Explain, compiler: SQLCompiler, **kw: Any) -> str:
    return f"EXPLAIN QUERY PLAN {compiler.process(element.statement, **kw)}"
