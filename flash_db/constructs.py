"""SQL constructs that compile differently on SQLite and PostgreSQL.

Each is a ``FunctionElement``, so SQLAlchemy's statement cache and parameter
binding work unchanged; the ``@compiles`` hooks pick the SQL per dialect.
Case-insensitive matching, LIKE and regular expressions use the functions of
:mod:`flash_db.sqlite` on SQLite, so they answer as on PostgreSQL.
"""

from __future__ import annotations

from typing import Any, ClassVar

from sqlalchemy import Boolean, Date, Enum, Integer, String
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

__all__ = [
    "DateOf",
    "DatePart",
    "Day",
    "Fold",
    "Hour",
    "ILike",
    "IRegex",
    "Like",
    "Month",
    "OnSQLite",
    "Regex",
    "WeekDay",
    "Year",
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


class DateOf(FunctionElement[Any]):
    """The date of a datetime (UTC for timezone-aware columns)."""

    type = Date()
    name = "date"
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
    return (
        f"(CASE WHEN {value} LIKE {pattern} ESCAPE '\\' THEN flash_like({value}, {pattern}) "
        f"WHEN {value} IS NULL THEN NULL ELSE 0 END)"
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
    sql = f"CAST(EXTRACT({element.part} FROM {_pg_utc(element, compiler, **kw)}) AS INTEGER)"
    return f"({sql} + 1)" if element.part == "DOW" else sql


@compiles(DatePart, "sqlite")
def _date_part_sqlite(element: DatePart, compiler: SQLCompiler, **kw: Any) -> str:
    (arg,) = _args(element, compiler, **kw)
    sql = f"CAST(strftime('{element.sqlite_format}', {arg}) AS INTEGER)"
    return f"({sql} + 1)" if element.part == "DOW" else sql


@compiles(DateOf)
def _date_of_default(element: DateOf, compiler: SQLCompiler, **kw: Any) -> str:
    return f"CAST({_pg_utc(element, compiler, **kw)} AS DATE)"


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
