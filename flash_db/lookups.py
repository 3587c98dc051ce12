"""Resolving ``"__"`` paths (``author__name__icontains``) against a model, and the lookup table.

A :class:`Resolver` is created by a QuerySet terminal for one statement. It turns
field paths into columns, keyword lookups into conditions and ``Q`` trees into
boolean expressions, and remembers the joins it needed so the statement can add
them. Every value becomes a bound parameter; only names the model declares can
shape the SQL, and unknown names raise :class:`~flash_db.exceptions.FieldError`
before any statement exists.

Relations: a to-one hop (``author__name``) is a LEFT OUTER JOIN on an alias,
reused for the same path within one statement. A to-many hop in a filter
(``posts__title``) is a correlated ``EXISTS``, so parent rows are never
duplicated; the conditions of one ``filter()`` call on the same to-many
relation share one ``EXISTS`` (they must hold for the same related row, as in
Django). In ``order_by``/``values``/``F`` a to-many hop is a LEFT OUTER JOIN
(one result per related row, as in Django).

Case-insensitive lookups, LIKE and regular expressions compile per backend. On
SQLite, whose ``lower()`` and ``LIKE`` only know ASCII, Flash DB registers
Python functions on every connection (:data:`SQLITE_FUNCTIONS`), so ``iexact``,
``icontains`` and friends fold non-ASCII letters as PostgreSQL does, and
``contains`` is case-sensitive as on PostgreSQL (SQLite's own LIKE picks the
candidates, Python confirms them). ``regex`` uses Python's ``re`` syntax on
SQLite and POSIX regular expressions (ARE) on PostgreSQL. Pattern lookups on enum or
number columns compare their text, as in Django.

Values that no database could take are settled before any SQL exists, as in
Django: an integer outside its column's range (SmallInteger 16 bits, Integer 32,
BigInteger 64; every integer column holds 64 bits on SQLite) can never be
equal to a stored value, so ``exact``/``in`` drop it (``age=2**40`` matches no
row) and ``gt``/``gte``/``lt``/``lte``/``range`` become always false or "is not
NULL". A string with a NUL character raises ``ValueError`` (PostgreSQL cannot
store or compare one; SQLite follows for consistency), and a ``regex``/``iregex``
pattern Python's ``re`` cannot compile raises ``ValueError``. PostgreSQL's ARE
syntax is close to Python's but not equal: a pattern Python accepts may still
be read differently (or rejected) by PostgreSQL.
"""

from __future__ import annotations

import functools
import operator
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from sqlalchemy import (
    BigInteger,
    Boolean,
    ColumnElement,
    Date,
    DateTime,
    Enum,
    Integer,
    Numeric,
    Select,
    SmallInteger,
    String,
    Time,
    and_,
    false,
    literal,
    not_,
    or_,
    select,
    true,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import (
    ColumnProperty,
    Mapper,
    QueryableAttribute,
    RelationshipDirection,
    RelationshipProperty,
    aliased,
)
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import BinaryExpression, ColumnClause
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import TypeDecorator

from flash_db.exceptions import FieldError
from flash_db.expressions import Aggregate, Expression, Q

__all__ = [
    "LOOKUPS",
    "SQLITE_FUNCTIONS",
    "TRANSFORMS",
    "Resolver",
    "field_choices",
    "integer_range",
    "pk_name",
]

LookupFn = Callable[[ColumnElement[Any], Any], ColumnElement[bool]]

# -- backend-specific SQL constructs ----------------------------------------------
#
# Each is a FunctionElement so SQLAlchemy's statement cache and parameter
# binding work unchanged; the @compiles hooks pick the SQL per dialect.


class _Fold(FunctionElement[str]):
    """``lower(x)``; on SQLite a Unicode-aware Python ``lower``."""

    type = String()
    name = "lower"
    inherit_cache = True


class _Like(FunctionElement[bool]):
    """``value LIKE pattern ESCAPE '\\'``, case-sensitive on every backend."""

    type = Boolean()
    name = "flash_like"
    inherit_cache = True
    case_insensitive: ClassVar[bool] = False


class _ILike(_Like):
    """``value ILIKE pattern ESCAPE '\\'`` with Unicode case folding."""

    name = "flash_ilike"
    inherit_cache = True
    case_insensitive = True


class _Regex(FunctionElement[bool]):
    """A regular-expression match (``~`` on PostgreSQL)."""

    type = Boolean()
    name = "flash_regexp"
    inherit_cache = True
    case_insensitive: ClassVar[bool] = False


class _IRegex(_Regex):
    """A case-insensitive regular-expression match (``~*`` on PostgreSQL)."""

    name = "flash_iregexp"
    inherit_cache = True
    case_insensitive = True


class _DatePart(FunctionElement[int]):
    """An integer part of a date/datetime, in UTC for timezone-aware columns."""

    type = Integer()
    name = "date_part"
    inherit_cache = True
    part: ClassVar[str] = ""
    sqlite_format: ClassVar[str] = ""


class _Year(_DatePart):
    inherit_cache = True
    part = "YEAR"
    sqlite_format = "%Y"


class _Month(_DatePart):
    inherit_cache = True
    part = "MONTH"
    sqlite_format = "%m"


class _Day(_DatePart):
    inherit_cache = True
    part = "DAY"
    sqlite_format = "%d"


class _Hour(_DatePart):
    inherit_cache = True
    part = "HOUR"
    sqlite_format = "%H"


class _WeekDay(_DatePart):
    """Django's week day: 1 = Sunday ... 7 = Saturday."""

    inherit_cache = True
    part = "DOW"
    sqlite_format = "%w"


class _DateOf(FunctionElement[Any]):
    """The date of a datetime (UTC for timezone-aware columns)."""

    type = Date()
    name = "date"
    inherit_cache = True


class _OnSQLite(FunctionElement[bool]):
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


@compiles(_Fold)
def _fold_default(element: _Fold, compiler: SQLCompiler, **kw: Any) -> str:
    return f"lower({_text_args(element, compiler, **kw)[0]})"


@compiles(_Fold, "sqlite")
def _fold_sqlite(element: _Fold, compiler: SQLCompiler, **kw: Any) -> str:
    return f"flash_lower({_args(element, compiler, **kw)[0]})"


@compiles(_Like)
def _like_default(element: _Like, compiler: SQLCompiler, **kw: Any) -> str:
    value, pattern = _text_args(element, compiler, **kw)
    op = "ILIKE" if element.case_insensitive else "LIKE"
    return f"({value} {op} {pattern} ESCAPE '\\')"


@compiles(_Like, "sqlite")
def _like_sqlite(element: _Like, compiler: SQLCompiler, **kw: Any) -> str:
    value, pattern = _args(element, compiler, **kw)
    if element.case_insensitive:
        # Both sides folded in Python, so SQLite's ASCII-only LIKE folding is moot.
        return f"(flash_lower({value}) LIKE flash_lower({pattern}) ESCAPE '\\')"
    # SQLite's LIKE ignores ASCII case; a Python LIKE keeps it, as PostgreSQL does.
    # The native LIKE (a superset of the matches) runs first, so SQLite calls the
    # Python function only for its candidates (CASE is lazy where AND, compared
    # with 1 as SQLAlchemy does for booleans on SQLite, is not): near-native speed.
    return (
        f"(CASE WHEN {value} LIKE {pattern} ESCAPE '\\' THEN flash_like({value}, {pattern}) "
        f"WHEN {value} IS NULL THEN NULL ELSE 0 END)"
    )


@compiles(_Regex)
def _regex_default(element: _Regex, compiler: SQLCompiler, **kw: Any) -> str:
    value, pattern = _text_args(element, compiler, **kw)
    return f"({value} {'~*' if element.case_insensitive else '~'} {pattern})"


@compiles(_Regex, "sqlite")
def _regex_sqlite(element: _Regex, compiler: SQLCompiler, **kw: Any) -> str:
    value, pattern = _args(element, compiler, **kw)
    return f"{element.name}({value}, {pattern})"


def _pg_utc(element: FunctionElement[Any], compiler: SQLCompiler, **kw: Any) -> str:
    (arg,) = _args(element, compiler, **kw)
    # A timestamptz's parts depend on the session time zone; Flash DB stores and
    # compares aware datetimes in UTC (SQLite keeps the UTC text).
    return f"timezone('UTC', {arg})" if _is_aware(element) else arg


@compiles(_DatePart)
def _date_part_default(element: _DatePart, compiler: SQLCompiler, **kw: Any) -> str:
    sql = f"CAST(EXTRACT({element.part} FROM {_pg_utc(element, compiler, **kw)}) AS INTEGER)"
    return f"({sql} + 1)" if element.part == "DOW" else sql


@compiles(_DatePart, "sqlite")
def _date_part_sqlite(element: _DatePart, compiler: SQLCompiler, **kw: Any) -> str:
    (arg,) = _args(element, compiler, **kw)
    sql = f"CAST(strftime('{element.sqlite_format}', {arg}) AS INTEGER)"
    return f"({sql} + 1)" if element.part == "DOW" else sql


@compiles(_DateOf)
def _date_of_default(element: _DateOf, compiler: SQLCompiler, **kw: Any) -> str:
    return f"CAST({_pg_utc(element, compiler, **kw)} AS DATE)"


@compiles(_OnSQLite)
def _on_sqlite_default(element: _OnSQLite, compiler: SQLCompiler, **kw: Any) -> str:
    portable, _ = element.clauses
    return f"({compiler.process(portable, **kw)})"


@compiles(_OnSQLite, "sqlite")
def _on_sqlite_sqlite(element: _OnSQLite, compiler: SQLCompiler, **kw: Any) -> str:
    _, sqlite = element.clauses
    return f"({compiler.process(sqlite, **kw)})"


@compiles(_DateOf, "sqlite")
def _date_of_sqlite(element: _DateOf, compiler: SQLCompiler, **kw: Any) -> str:
    return f"date({_args(element, compiler, **kw)[0]})"


# -- the Python side of the SQLite functions ------------------------------------


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
SQLITE_FUNCTIONS: dict[str, tuple[int, Callable[..., Any]]] = {
    "flash_lower": (1, _sqlite_lower),
    "flash_like": (2, _sqlite_like),
    "flash_regexp": (2, _sqlite_regexp),
    "flash_iregexp": (2, _sqlite_iregexp),
}

# -- lookups --------------------------------------------------------------------


def _escape_like(value: Any) -> str:
    text = str(value)
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _text(value: Any) -> ColumnElement[str]:
    return literal(str(value), String())


def _like(pattern: str, *, ci: bool) -> LookupFn:
    def lookup(col: ColumnElement[Any], value: Any) -> ColumnElement[bool]:
        text = pattern.format(_escape_like(value))
        construct = _ILike if ci else _Like
        return construct(col, _text(text))

    return lookup


def _iexact(col: ColumnElement[Any], value: Any) -> ColumnElement[bool]:
    if value is None:
        return col.is_(None)
    result: ColumnElement[bool] = _Fold(col) == _Fold(_text(value))
    return result


def _bound(col: ColumnElement[Any], value: Any) -> Any:
    """Return ``value``, with True/False as bound parameters (SQLAlchemy would inline them)."""
    return literal(value, col.type) if isinstance(value, bool) else _wide(col, value)


_INT64 = (-(2**63), 2**63 - 1)


def integer_range(type_: Any) -> tuple[int, int] | None:
    """Return the ``(min, max)`` an integer column type holds on PostgreSQL; None for others."""
    while isinstance(type_, TypeDecorator):
        type_ = type_.impl_instance
    if not isinstance(type_, Integer):
        return None  # Boolean and Enum are not Integer subclasses
    bits = 16 if isinstance(type_, SmallInteger) else 64 if isinstance(type_, BigInteger) else 32
    return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1


def _column_range(col: ColumnElement[Any]) -> tuple[int, int] | None:
    """Return the range of a table column or date part; None for annotations and non-integers.

    An aggregate's declared type says little of its values (``sum()`` of an
    integer column is a bigint on PostgreSQL), so annotations are left alone.
    """
    inner = getattr(col, "expression", col)
    if not isinstance(inner, ColumnClause | _DatePart):
        return None
    return integer_range(inner.type)  # an ORM attribute's .type is a slow proxied lookup


def _wide(col: ColumnElement[Any], value: Any) -> Any:
    """Return an integer beyond ``col``'s declared type as a wider bound parameter.

    Reached for annotations (table columns settle such values first): an
    aggregate may exceed its declared type (``count()`` and ``sum()`` of
    integers are bigints on PostgreSQL), and a parameter typed like the column
    would be cast to it (``$1::INTEGER``) and fail.
    """
    bounds = integer_range(col.type)
    if bounds is None or not _outside(bounds, value):
        return value
    return literal(value, Numeric() if _outside(_INT64, value) else BigInteger())


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _outside(bounds: tuple[int, int], value: Any) -> bool:
    return _is_int(value) and not bounds[0] <= value <= bounds[1]


def _ranged(
    col: ColumnElement[Any], value: Any, op: str, compare: Callable[[], ColumnElement[bool]]
) -> ColumnElement[bool]:
    """Return ``compare()``, or its known outcome when ``value`` is outside the column's range.

    As in Django: no stored value equals such a number, and every (non-NULL)
    stored value is below a number above the range and above one below it.
    """
    bounds = _column_range(col)
    if bounds is None or not _outside(bounds, value):
        return compare()
    # Never true: equal to it, or above a number above the range (below one below it).
    never = op == "exact" or (op in ("gt", "gte")) == (value > bounds[1])
    settled: ColumnElement[bool] = false() if never else col.is_not(None)
    if bounds == _INT64 or _outside(_INT64, value):
        return settled
    return _OnSQLite(settled, compare())  # SQLite's integer columns all hold 64 bits


def _exact(col: ColumnElement[Any], value: Any) -> ColumnElement[bool]:
    if value is None:
        return col.is_(None)

    def compare() -> ColumnElement[bool]:
        result: ColumnElement[bool] = col == _bound(col, value)
        return result

    return _ranged(col, value, "exact", compare)


def _compare(op: Callable[[Any, Any], Any], name: str) -> LookupFn:
    def lookup(col: ColumnElement[Any], value: Any) -> ColumnElement[bool]:
        def compare() -> ColumnElement[bool]:
            result: ColumnElement[bool] = op(col, _bound(col, value))
            return result

        return _ranged(col, value, name, compare)

    return lookup


def _in(col: ColumnElement[Any], value: Any) -> ColumnElement[bool]:
    if isinstance(value, ColumnElement | Select):
        return col.in_(value)
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise TypeError(f"The 'in' lookup takes an iterable of values, got {value!r}.")
    items = [_plain(item) for item in value]
    bounds = _column_range(col)
    if bounds is None:
        return col.in_([_wide(col, item) for item in items])
    # A number outside the column's range equals no stored value: leave it out.
    portable = [item for item in items if not _outside(bounds, item)]
    wide = [item for item in items if not _outside(_INT64, item)]
    if bounds == _INT64 or len(wide) == len(portable):
        return col.in_(portable)
    return _OnSQLite(col.in_(portable), col.in_(wide))


def _range(col: ColumnElement[Any], value: Any) -> ColumnElement[bool]:
    try:
        low, high = value
    except (TypeError, ValueError):
        raise TypeError(f"The 'range' lookup takes a (low, high) pair, got {value!r}.") from None

    def between(bounds: tuple[int, int] | None) -> ColumnElement[bool]:
        lo, hi = low, high
        if bounds is not None:
            # Bounds beyond the column's range are clamped to it (same rows, storable numbers).
            if (_is_int(lo) and lo > bounds[1]) or (_is_int(hi) and hi < bounds[0]):
                return false()
            lo = max(lo, bounds[0]) if _is_int(lo) else lo
            hi = min(hi, bounds[1]) if _is_int(hi) else hi
        return col.between(_bound(col, lo), _bound(col, hi))

    bounds = _column_range(col)
    if bounds is None or not (_outside(bounds, low) or _outside(bounds, high)):
        return between(None)
    if bounds == _INT64:
        return between(bounds)
    return _OnSQLite(between(bounds), between(_INT64))


def _isnull(col: ColumnElement[Any], value: Any) -> ColumnElement[bool]:
    if not isinstance(value, bool):
        raise TypeError(f"The 'isnull' lookup takes True or False, got {value!r}.")
    return col.is_(None) if value else col.is_not(None)


def _pattern(value: Any, lookup: str, flags: int = 0) -> ColumnElement[str]:
    """Return a regular expression as a bound parameter, after checking Python can compile it."""
    text = str(value)
    try:
        re.compile(text, flags)
    except re.error as error:
        raise ValueError(
            f"Invalid regular expression {text!r} for the '{lookup}' lookup: {error}. "
            "(PostgreSQL reads it as a POSIX ARE, SQLite with Python's re.)"
        ) from None
    return _text(text)


def _regex(col: ColumnElement[Any], value: Any) -> ColumnElement[bool]:
    return _Regex(col, _pattern(value, "regex"))


def _iregex(col: ColumnElement[Any], value: Any) -> ColumnElement[bool]:
    return _IRegex(col, _pattern(value, "iregex", re.IGNORECASE))


LOOKUPS: dict[str, LookupFn] = {
    "exact": _exact,
    "iexact": _iexact,
    "contains": _like("%{}%", ci=False),
    "icontains": _like("%{}%", ci=True),
    "startswith": _like("{}%", ci=False),
    "istartswith": _like("{}%", ci=True),
    "endswith": _like("%{}", ci=False),
    "iendswith": _like("%{}", ci=True),
    "in": _in,
    "gt": _compare(operator.gt, "gt"),
    "gte": _compare(operator.ge, "gte"),
    "lt": _compare(operator.lt, "lt"),
    "lte": _compare(operator.le, "lte"),
    "range": _range,
    "isnull": _isnull,
    "regex": _regex,
    "iregex": _iregex,
}

#: Transforms: ``created_at__year=2024``, ``created_at__date__gte=...``.
TRANSFORMS: dict[str, Callable[[ColumnElement[Any]], ColumnElement[Any]]] = {
    "date": _DateOf,
    "year": _Year,
    "month": _Month,
    "day": _Day,
    "week_day": _WeekDay,
    "hour": _Hour,
}

_LOOKUP_CHOICES = sorted({*LOOKUPS, *TRANSFORMS})


def _plain(value: Any) -> Any:
    """Return a model instance's primary key, any other value unchanged."""
    mapper = getattr(type(value), "__mapper__", None)
    if isinstance(mapper, Mapper):
        return getattr(value, pk_name(type(value)))
    return value


def pk_name(model: type[Any]) -> str:
    """Return the attribute name of the model's (first) primary-key column."""
    mapper: Mapper[Any] = model.__mapper__
    return mapper.get_property_by_column(mapper.primary_key[0]).key


def field_choices(model: type[Any]) -> list[str]:
    """Return the names a string API accepts on ``model``: columns, relations and ``pk``."""
    mapper: Mapper[Any] = model.__mapper__
    names = [prop.key for prop in mapper.attrs if not prop.key.startswith("_")]
    return sorted({*names, "pk"})


def _is_many(rel: RelationshipProperty[Any]) -> bool:
    return bool(rel.uselist)


def _attr_name(mapper: Mapper[Any], column: Any) -> str:
    return mapper.get_property_by_column(column).key


@dataclass
class _Path:
    """A parsed ``"__"`` path: relation hops, then a field (or none), then lookup parts."""

    relations: list[RelationshipProperty[Any]]
    names: list[str]
    model: type[Any]
    field: str | None
    tail: list[str]
    annotation: bool = False

    def first_many(self) -> int | None:
        """Return the index of the first to-many hop, or None."""
        for i, rel in enumerate(self.relations):
            if _is_many(rel):
                return i
        return None


@dataclass
class _Join:
    alias: Any
    onclause: Any


@dataclass
class _Flags:
    """What resolving one expression touched (to route it to WHERE or HAVING)."""

    aggregate: bool = False


class Resolver:
    """Resolve names on one model for one statement, collecting the joins it needs.

    ``entity`` is the model or an alias of it (inside subqueries); ``outer`` is
    the resolver of the enclosing query (``OuterRef``); ``base`` resolves
    ``F()`` values inside a to-many ``EXISTS`` (they name the query's model, as
    in Django). ``grouping`` makes aggregates plain SQL aggregates (for
    ``values().annotate()`` and ``aggregate()``) instead of correlated
    subqueries.
    """

    def __init__(
        self,
        model: type[Any],
        annotations: dict[str, ColumnElement[Any]] | None = None,
        *,
        entity: Any = None,
        outer: Resolver | None = None,
        base: Resolver | None = None,
        grouping: bool = False,
    ) -> None:
        self.model = model
        self.mapper: Mapper[Any] = model.__mapper__
        self.entity: Any = model if entity is None else entity
        self.annotations = annotations if annotations is not None else {}
        self.aggregate_annotations: set[str] = set()
        self.outer = outer
        self.base: Resolver = self if base is None else base
        self.grouping = grouping
        self.joins: dict[str, _Join] = {}
        self.plain_aggregates = 0
        self.flags = _Flags()
        self.having: list[ColumnElement[bool]] = []
        # True while compiling an aggregate's filter=Q(...) over joined rows: a
        # to-many path then names the joined row, not an EXISTS.
        self.many_as_join = False
        # The filter() calls made before the annotation being resolved.
        self.prior_filters: tuple[Any, ...] = ()

    # -- names ---------------------------------------------------------------

    def choices(self, model: type[Any] | None = None) -> list[str]:
        """Return every name valid on ``model`` (default: this resolver's, with annotations)."""
        if model is None or model is self.model:
            return sorted({*field_choices(self.model), *self.annotations})
        return field_choices(model)

    def add_annotation(self, name: str, expression: ColumnElement[Any], plain: bool) -> None:
        """Make ``name`` resolvable; ``plain`` marks a SQL aggregate (filters go to HAVING)."""
        self.annotations[name] = expression
        if plain:
            self.aggregate_annotations.add(name)

    def parse(self, key: str, *, lookups: bool, context: str = "") -> _Path:
        """Split ``key`` into relation hops, a field and trailing lookup/transform names."""
        parts = key.split("__")
        if parts[0] in self.annotations:
            return self._check_tail(
                _Path([], [], self.model, parts[0], parts[1:], True), lookups, context
            )
        model = self.model
        mapper: Mapper[Any] = self.mapper
        relations: list[RelationshipProperty[Any]] = []
        names: list[str] = []
        for i, part in enumerate(parts):
            name = pk_name(model) if part == "pk" else part
            prop = mapper.attrs.get(name) if not name.startswith("_") else None
            if isinstance(prop, RelationshipProperty):
                relations.append(prop)
                names.append(name)
                model = prop.mapper.class_
                mapper = prop.mapper
                continue
            if isinstance(prop, ColumnProperty):
                path = _Path(relations, names, model, name, parts[i + 1 :])
                return self._check_tail(path, lookups, context)
            if relations and part in _LOOKUP_CHOICES:
                # The path ends at a relation (``author=obj``, ``posts__isnull=True``).
                return self._check_tail(
                    _Path(relations, names, model, None, parts[i:]), lookups, context
                )
            raise FieldError(model, part, self.choices(model), context=context)
        return _Path(relations, names, model, None, [])

    def _check_tail(self, path: _Path, lookups: bool, context: str) -> _Path:
        tail = path.tail
        for i, part in enumerate(tail):
            last = i == len(tail) - 1
            if part in TRANSFORMS or (last and lookups and part in LOOKUPS):
                continue
            if not lookups:
                # order_by()/values()/F(): only transforms (``created_at__year``) may follow.
                choices = sorted(TRANSFORMS)
                raise FieldError(path.model, part, choices, kind="transform", context=context)
            raise FieldError(path.model, part, _LOOKUP_CHOICES, kind="lookup", context=context)
        return path

    def column(self, path: str, *, context: str = "") -> ColumnElement[Any]:
        """Return the column (or annotation) that ``path`` names, joining relations as needed."""
        parsed = self.parse(path, lookups=False, context=context)
        column, _ = self._resolve(parsed)
        return column

    def _resolve(self, path: _Path) -> tuple[ColumnElement[Any], bool]:
        """Return the column for a parsed path and whether it may be NULL."""
        if path.annotation:
            name = path.field or ""  # an annotation path always names one
            if name in self.aggregate_annotations:
                self.flags.aggregate = True
            column = self.annotations[name]
            nullable = True
        else:
            column, nullable = self._field_column(path)
        for name in path.tail:
            if name in TRANSFORMS:
                if not _is_temporal(column):
                    lookups = sorted(LOOKUPS)
                    context = f"{path.field}__{name}"
                    raise FieldError(path.model, name, lookups, kind="lookup", context=context)
                column = TRANSFORMS[name](column)
        return column, nullable

    def _field_column(self, path: _Path) -> tuple[ColumnElement[Any], bool]:
        relations = list(path.relations)
        field = path.field
        if relations:
            last = relations[-1]
            fk = _local_fk(last)
            target_pk = pk_name(last.mapper.class_)
            if fk is not None and field in (None, target_pk):
                # ``author`` / ``author__id`` is the local foreign key: no join needed.
                entity = self._entity_for(relations[:-1], path.names[:-1])
                column = getattr(entity, _attr_name(last.parent, fk))
                joined = len(relations) > 1
                return column, joined or _nullable(column)
        entity = self._entity_for(relations, path.names)
        name = field if field is not None else pk_name(path.model)
        column = getattr(entity, name)
        return column, bool(relations) or _nullable(column)

    def _entity_for(self, relations: list[RelationshipProperty[Any]], names: list[str]) -> Any:
        """Return the model or join alias at the end of ``relations``, joining as needed."""
        entity = self.entity
        for i, rel in enumerate(relations):
            key = "__".join(names[: i + 1])
            join = self.joins.get(key)
            if join is None:
                alias = aliased(rel.mapper.class_)
                join = _Join(alias, getattr(entity, rel.key).of_type(alias))
                self.joins[key] = join
            entity = join.alias
        return entity

    def apply_joins(self, stmt: Select[Any]) -> Select[Any]:
        """Return ``stmt`` with the LEFT OUTER JOINs the resolved paths need, in order."""
        for join in self.joins.values():
            stmt = stmt.outerjoin(join.alias, join.onclause)
        return stmt

    # -- to-many subqueries ----------------------------------------------------

    def related_subquery(
        self, relations: list[RelationshipProperty[Any]], names: list[str], *, grouping: bool
    ) -> tuple[Resolver, Any, list[ColumnElement[bool]]]:
        """Return a resolver on the far side of a to-many hop, its FROM and its correlation.

        ``relations`` are to-one hops followed by one to-many hop; the to-one hops
        are joined in this statement and the subquery is correlated to their end.
        """
        parent = self._entity_for(relations[:-1], names[:-1])
        rel = relations[-1]
        target_model = rel.mapper.class_
        target = aliased(target_model)
        sub = Resolver(target_model, entity=target, outer=self.outer, base=self.base)
        sub.grouping = grouping
        # The relationship's own join condition between the two aliases (with an
        # alias of the secondary table for many-to-many), custom primaryjoins included.
        correlation = [getattr(parent, rel.key).of_type(target).expression]
        return sub, target, correlation

    def _exists(self, path: _Path, index: int, items: list[Any]) -> ColumnElement[bool]:
        """Return ``EXISTS`` over the to-many hop ``path.relations[index]`` with ``items`` in it."""
        sub, from_, correlation = self.related_subquery(
            path.relations[: index + 1], path.names[: index + 1], grouping=False
        )
        conditions = [sub.compile(item) for item in items]
        stmt = select(literal(1)).select_from(from_).where(*correlation, *conditions)
        return correlated(sub.apply_joins(stmt), sub.entity).exists()

    def split_many(
        self, key: str, context: str = "", *, lookups: bool = True
    ) -> tuple[_Path, int, str] | None:
        """Return ``(path, index of the first to-many hop, key relative to it)`` or None."""
        if self.many_as_join:
            return None
        path = self.parse(key, lookups=lookups, context=context)
        index = path.first_many()
        if index is None:
            return None
        rest = [*path.names[index + 1 :]]
        if path.field is not None:
            rest.append(path.field)
        elif len(path.relations) == index + 1:
            rest.append("pk")
        return path, index, "__".join([*rest, *path.tail])

    # -- aggregates ------------------------------------------------------------

    def aggregate(self, agg: Aggregate) -> ColumnElement[Any]:
        """Return the SQL for ``agg``: a plain aggregate, or a correlated subquery per row."""
        source = agg.expression
        context = f"{type(agg).__name__}()"
        if isinstance(source, str) and source != "*" and not self.grouping:
            split = self.split_many(source, context, lookups=False)
            if split is not None:
                path, index, rest = split
                names = path.names[: index + 1]
                sub, from_, correlation = self.related_subquery(
                    path.relations[: index + 1], names, grouping=True
                )
                prefix = "__".join(names)
                condition = None
                if agg.filter is not None:
                    rebased = self._rebase(agg.filter, prefix, path.relations[index])
                    condition = sub.compile_joined(rebased)
                call = agg.sql(sub.column(rest, context=context), condition)
                # As in Django, filter() calls before annotate() on the same
                # relation restrict the related rows the aggregate sees.
                prior = [
                    sub.compile_joined(self._rebase(Q(*leaves), prefix, path.relations[index]))
                    for leaves in self._prior_leaves(prefix)
                ]
                stmt = select(call).select_from(from_).where(*correlation, *prior)
                stmt = correlated(sub.apply_joins(stmt), sub.entity)
                result: ColumnElement[Any] = stmt.scalar_subquery()
                return result
        column: ColumnElement[Any] | None
        if isinstance(source, Expression):
            column = source.resolve(self)
        elif source == "*":
            column = None
        else:
            column = self.column(source, context=context)
        condition = None if agg.filter is None else self.compile_joined(agg.filter)
        self.plain_aggregates += 1
        return agg.sql(column, condition)

    def _prior_leaves(self, prefix: str) -> list[list[tuple[str, Any]]]:
        """Return, per earlier filter() call, its ANDed lookups through ``prefix``."""
        found = []
        for item in self.prior_filters:
            if not isinstance(item, Q) or item.negated or item.connector != Q.AND:
                continue
            leaves = [
                child
                for child in _flatten_and(item)
                if isinstance(child, tuple) and child[0].startswith(prefix + "__")
            ]
            if leaves:
                found.append(leaves)
        return found

    def compile_joined(self, item: Any) -> ColumnElement[bool]:
        """Compile ``item`` with to-many paths as joins (for an aggregate's ``filter=``)."""
        previous, self.many_as_join = self.many_as_join, True
        try:
            return self.compile(item)
        finally:
            self.many_as_join = previous

    def _rebase(self, item: Any, prefix: str, rel: RelationshipProperty[Any]) -> Any:
        """Rewrite a filter Q for a subquery on ``prefix``: its paths lose the prefix.

        Other conditions name the outer row and stay bound to this resolver.
        """
        if isinstance(item, Q):
            q = Q()
            q.connector = item.connector
            q.negated = item.negated
            q.children = [self._rebase(child, prefix, rel) for child in item.children]
            return q
        if isinstance(item, tuple):
            key, value = item
            if key == prefix:
                return ("pk", value)
            if key.startswith(prefix + "__"):
                rest = key[len(prefix) + 2 :]
                head = rest.split("__")[0]
                if head in _LOOKUP_CHOICES and head not in rel.mapper.attrs:
                    rest = f"pk__{rest}"
                return (rest, value)
        return _Bound(self, item)

    # -- conditions ----------------------------------------------------------

    def condition(self, key: str, value: Any, *, negated: bool = False) -> ColumnElement[bool]:
        """Return the condition for one keyword lookup (``name__icontains="jo"``)."""
        context = f"filter({key}=...)"
        if (
            key.endswith("__in")
            and isinstance(value, Iterable)
            and not isinstance(value, str | bytes | list | tuple | Expression | ColumnElement)
            and not _is_queryset(value)
        ):
            value = list(value)  # a set or generator: read once, checked below
        _check_nul(key, value)
        split = self.split_many(key, context)
        if split is not None:
            path, index, rest = split
            if rest == "pk__isnull":
                # ``posts__isnull=True``: no related row at all.
                if not isinstance(value, bool):
                    raise TypeError(f"The 'isnull' lookup takes True or False, got {value!r}.")
                exists = self._exists(path, index, [])
                return not_(exists) if value else exists
            return self._exists(path, index, [(rest, value)])
        path = self.parse(key, lookups=True, context=context)
        column, nullable = self._resolve(path)
        if isinstance(column, QueryableAttribute) and isinstance(column.property, ColumnProperty):
            # The attribute's column: the same SQL as comparing the attribute, without
            # the ORM comparator's proxy hops (about 40% of building a lookup).
            column = column.expression
        lookup = path.tail[-1] if path.tail and path.tail[-1] in LOOKUPS else "exact"
        if value is None and lookup not in ("exact", "iexact"):
            raise ValueError(
                f"Cannot use None as a value for {key}; use {key.rpartition('__')[0]}"
                "__isnull=True to match NULL."
            )
        if isinstance(value, Expression):
            value = value.resolve(self.base)
        elif _is_queryset(value):
            value = self._in_subquery(value)
        elif lookup in ("in", "range") and isinstance(value, list | tuple):
            value = [v.resolve(self.base) if isinstance(v, Expression) else v for v in value]
        else:
            value = _plain(value)
        cond = LOOKUPS[lookup](column, value)
        if negated and lookup != "isnull" and value is not None and nullable:
            # SQL's NOT (col = x) is NULL, not TRUE, where col IS NULL; Django's
            # exclude() keeps those rows, so the negated leaf also requires NOT NULL.
            cond = and_(cond, column.is_not(None))
        return cond

    def subquery_entity(self, model: type[Any]) -> Any:
        """Return what a subquery over ``model`` inside this query selects from.

        The model itself, so plain SQLAlchemy conditions on it keep working; an
        alias when an enclosing query already uses the model's table, which
        SQLAlchemy would otherwise correlate away.
        """
        table = model.__table__
        resolver: Resolver | None = self
        while resolver is not None:
            if resolver.entity is resolver.model and resolver.model.__table__ is table:
                return aliased(model)
            resolver = resolver.outer
        return model

    def _in_subquery(self, queryset: Any) -> Select[Any]:
        """Return a QuerySet used as a value (``author__in=qs``) as a correlated SELECT."""
        if queryset.state.kind == "model":
            queryset = queryset.values_list("pk", flat=True)
        inner = Resolver(
            queryset.model, entity=self.base.subquery_entity(queryset.model), outer=self.base
        )
        stmt: Select[Any] = queryset._select(resolver=inner)
        if len(stmt.selected_columns) != 1:
            raise TypeError(
                f"A QuerySet used as a lookup value must select one column, "
                f"got {len(stmt.selected_columns)}; use values_list('field', flat=True)."
            )
        return correlated(stmt, inner.entity)

    def compile(self, item: Any, *, negated: bool = False) -> ColumnElement[bool]:
        """Return the boolean expression for a ``Q``, an expression or a ``(key, value)`` pair."""
        if isinstance(item, Q):
            inner_negated = negated ^ item.negated
            if item.connector == Q.AND:
                parts = self._compile_and(_flatten_and(item), inner_negated)
            else:
                parts = [self.compile(child, negated=inner_negated) for child in item.children]
            if not parts:
                combined: ColumnElement[bool] = true()
            elif len(parts) == 1:
                combined = parts[0]
            elif item.connector == Q.AND:
                combined = and_(*parts)
            else:
                combined = or_(*parts)
            return not_(combined) if item.negated else combined
        if isinstance(item, tuple):
            key, value = item
            return self.condition(key, value, negated=negated)
        if isinstance(item, Expression):
            return item.resolve(self)
        if isinstance(item, ColumnElement):
            return item
        if isinstance(item, bool):
            return true() if item else false()
        raise TypeError(
            f"filter() takes SQLAlchemy expressions, Q objects and keyword lookups, got {item!r}."
        )

    def _compile_and(self, children: list[Any], negated: bool) -> list[ColumnElement[bool]]:
        """Compile ANDed children; lookups through one to-many relation share one EXISTS."""
        # A str in ``parts`` marks where a grouped EXISTS goes (keeps the written order).
        parts: list[ColumnElement[bool] | str] = []
        groups: dict[str, tuple[_Path, int, list[Any]]] = {}
        for child in children:
            if isinstance(child, tuple):
                key, value = child
                split = self.split_many(key, f"filter({key}=...)")
                if split is not None and split[2] != "pk__isnull":
                    path, index, rest = split
                    prefix = "__".join(path.names[: index + 1])
                    group = groups.get(prefix)
                    if group is None:
                        groups[prefix] = (path, index, [(rest, value)])
                        parts.append(prefix)
                    else:
                        group[2].append((rest, value))
                    continue
            parts.append(self.compile(child, negated=negated))
        return [self._exists(*groups[part]) if isinstance(part, str) else part for part in parts]


class _Bound(Expression):
    """A condition compiled by a given resolver (an outer-row condition inside a subquery)."""

    def __init__(self, resolver: Resolver, item: Any) -> None:
        self.resolver = resolver
        self.item = item

    def resolve(self, resolver: Resolver) -> ColumnElement[Any]:
        """Compile the condition on the resolver it was bound to."""
        return self.resolver.compile(self.item)


def correlated(stmt: Select[Any], own: Any) -> Select[Any]:
    """Return ``stmt`` correlated to every enclosing query, not only the nearest one.

    SQLAlchemy auto-correlates a subquery to its immediately enclosing SELECT;
    an ``OuterRef`` or a path inside a nested EXISTS may name a table two levels
    up. The subquery's own FROMs are fresh aliases, never in an enclosing query.
    """
    return stmt.correlate_except(own)


def _check_nul(key: str, value: Any) -> None:
    """Raise ``ValueError`` when a string value (or one in a list) holds a NUL character."""
    values = value if isinstance(value, list | tuple) else (value,)
    for item in values:
        if isinstance(item, str) and "\x00" in item:
            raise ValueError(
                f"filter({key}=...) got {item!r}, which contains a NUL character ('\\x00'); "
                "NUL characters cannot be stored or compared in text (PostgreSQL rejects them)."
            )


def _is_queryset(value: Any) -> bool:
    from flash_db.query import QuerySet

    return isinstance(value, QuerySet)


def _flatten_and(q: Q) -> list[Any]:
    """Return the children of an AND ``Q``, with non-negated AND sub-``Q``s merged in."""
    children: list[Any] = []
    for child in q.children:
        if isinstance(child, Q) and not child.negated and child.connector == Q.AND:
            children.extend(_flatten_and(child))
        else:
            children.append(child)
    return children


def _local_fk(rel: RelationshipProperty[Any]) -> Any:
    """Return the single local foreign-key column of a many-to-one relation, or None."""
    if rel.direction is not RelationshipDirection.MANYTOONE or rel.secondary is not None:
        return None
    if not isinstance(rel.primaryjoin, BinaryExpression):
        return None  # a custom join condition with more criteria needs the join
    pairs = list(rel.local_remote_pairs or ())
    if len(pairs) != 1:
        return None
    return pairs[0][0]


def _is_temporal(column: ColumnElement[Any]) -> bool:
    """Return whether ``column`` holds dates, datetimes or times (date-part transforms apply)."""
    kind = column.type
    impl = getattr(kind, "impl", kind)  # a TypeDecorator such as AwareDateTime
    return isinstance(impl, Date | DateTime | Time)


def _nullable(column: ColumnElement[Any]) -> bool:
    inner = getattr(column, "expression", column)
    return bool(getattr(inner, "nullable", True)) if isinstance(inner, ColumnClause) else True
