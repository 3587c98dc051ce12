"""The lookup table: ``exact``, ``icontains``, ``in``, ``range`` ... as SQLAlchemy conditions.

Each lookup takes a column (or any SQL expression) and a value and returns a
boolean expression; every value becomes a bound parameter. Transforms
(``year``, ``date``, ...) turn a date/datetime column into the part compared.

Values that no database could take are settled before any SQL exists, as in
Django: an integer outside its column's range (SmallInteger 16 bits, Integer 32,
BigInteger 64; every integer column holds 64 bits on SQLite) can never be
equal to a stored value, so ``exact``/``in`` drop it (``age=2**40`` matches no
row) and ``gt``/``gte``/``lt``/``lte``/``range`` become always false or "is not
NULL". A string with a NUL character or a lone surrogate raises ``InvalidValue``
(a ``ValueError``: PostgreSQL cannot store or compare one; SQLite follows for
consistency). A ``regex``/``iregex`` pattern must be valid for Python's ``re``
and for RE2, the linear-time engine that runs it on SQLite (see
``flash_db.sqlite``): backreferences and lookaround raise ``ValueError`` on
both databases, so that one pattern means one thing everywhere. PostgreSQL's
ARE syntax is close to Python's but not equal: a pattern Python accepts may
still be read differently (or rejected) by PostgreSQL. Pattern lookups on enum or
number columns compare their text, as in Django. On a JSON column the value of
``exact``/``in`` is one JSON document each (a list is a value, not a list of
them) and ``None`` is the JSON null, as Django's ``JSONField`` has it; it also
takes ``has_key``, ``has_keys`` and ``has_any_keys``, and keys and indexes
(``data__owner__name__icontains``, ``data__tags__0``: :func:`key_lookup`).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import operator
import re
import uuid
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    ARRAY,
    JSON,
    BigInteger,
    Boolean,
    ColumnElement,
    Date,
    DateTime,
    Enum,
    Float,
    Integer,
    Numeric,
    Select,
    String,
    Time,
    TypeDecorator,
    Uuid,
    and_,
    case,
    cast,
    false,
    func,
    literal,
    or_,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapper
from sqlalchemy.sql.elements import ColumnClause

from flash_db import constructs, sqlite
from flash_db.exceptions import InvalidValue
from flash_db.fields import integer_range, pk_name

__all__ = [
    "CONVERTED",
    "EXACT_TYPES",
    "EXPECTED",
    "INT64",
    "KEY_LOOKUPS",
    "LOOKUPS",
    "LOOKUP_CHOICES",
    "TRANSFORMS",
    "check_nul",
    "convert",
    "json_keys",
    "key_lookup",
    "key_value",
    "outside",
    "plain",
    "sendable",
    "takes_as_is",
    "value_kind",
]

LookupFn = Callable[[ColumnElement[Any], Any], ColumnElement[bool]]


def _escape_like(value: Any) -> str:
    text = str(value)
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _text(value: Any) -> ColumnElement[str]:
    return literal(str(value), String())


def _escape_like_sql(value: ColumnElement[Any]) -> ColumnElement[str]:
    """Return an expression's text with LIKE's wildcards escaped, in SQL (``contains=F(...)``).

    As Django: the referenced column's ``\\``, ``%`` and ``_`` match themselves.
    """
    text: ColumnElement[str] = value if _is_text(value) else cast(value, String())
    for char in ("\\", "%", "_"):
        text = func.replace(text, literal(char, String()), literal("\\" + char, String()))
    return text


def _is_text(value: ColumnElement[Any]) -> bool:
    kind = getattr(value.type, "impl", value.type)
    return isinstance(kind, String) and not isinstance(kind, Enum)


def _like(pattern: str, *, ci: bool) -> LookupFn:
    def lookup(col: ColumnElement[Any], value: Any) -> ColumnElement[bool]:
        construct = constructs.ILike if ci else constructs.Like
        if isinstance(value, ColumnElement):
            # An expression (F("name")): its value, escaped, between the wildcards.
            before, _, after = pattern.partition("{}")
            sql = _escape_like_sql(value)
            if before:
                sql = literal(before, String()) + sql  # || on both databases
            if after:
                sql = sql + literal(after, String())
            return construct(col, sql)
        return construct(col, _text(pattern.format(_escape_like(value))))

    return lookup


def _iexact(col: ColumnElement[Any], value: Any) -> ColumnElement[bool]:
    if value is None:
        return col.is_(None)
    other = value if isinstance(value, ColumnElement) else _text(value)
    result: ColumnElement[bool] = constructs.Fold(col) == constructs.Fold(other)
    return result


def _bound(col: ColumnElement[Any], value: Any) -> Any:
    """Return ``value``, with True/False as bound parameters (SQLAlchemy would inline them).

    A JSON column's value is a bound parameter of its type: the JSON document of
    the value (SQLAlchemy would bind a string as text, which is no JSON).
    """
    if isinstance(value, bool) or (_is_json(col) and not isinstance(value, ColumnElement)):
        return literal(value, col.type)
    return _wide(col, value)


def _is_json(col: ColumnElement[Any]) -> bool:
    return isinstance(getattr(col.type, "impl", col.type), JSON)


INT64 = (-(2**63), 2**63 - 1)


def _column_range(col: ColumnElement[Any]) -> tuple[int, int] | None:
    """Return the range of a table column or date part; None for annotations and non-integers.

    An aggregate's declared type says little of its values (``sum()`` of an
    integer column is a bigint on PostgreSQL), so annotations are left alone.
    """
    inner = getattr(col, "expression", col)
    if not isinstance(inner, ColumnClause | constructs.DatePart):
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
    if bounds is None or not outside(bounds, value):
        return value
    return literal(value, Numeric() if outside(INT64, value) else BigInteger())


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def outside(bounds: tuple[int, int], value: Any) -> bool:
    return _is_int(value) and not bounds[0] <= value <= bounds[1]


def _ranged(
    col: ColumnElement[Any], value: Any, op: str, compare: Callable[[], ColumnElement[bool]]
) -> ColumnElement[bool]:
    """Return ``compare()``, or its known outcome when ``value`` is outside the column's range.

    As in Django: no stored value equals such a number, and every (non-NULL)
    stored value is below a number above the range and above one below it.
    """
    bounds = _column_range(col)
    if bounds is None or not outside(bounds, value):
        return compare()
    # Never true: equal to it, or above a number above the range (below one below it).
    never = op == "exact" or (op in ("gt", "gte")) == (value > bounds[1])
    settled: ColumnElement[bool] = false() if never else col.is_not(None)
    if bounds == INT64 or outside(INT64, value):
        return settled
    return constructs.OnSQLite(settled, compare())  # SQLite's integer columns all hold 64 bits


def _exact(col: ColumnElement[Any], value: Any) -> ColumnElement[bool]:
    if value is None:
        if _is_json(col):
            # As Django's JSONField: None is the JSON null ("isnull" is SQL NULL).
            result: ColumnElement[bool] = col == literal(JSON.NULL, col.type)
            return result
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
    # As Django: None equals nothing, so it is left out (exclude(x__in=[None]) keeps every row).
    items = [plain(item) for item in value if item is not None]
    if _is_json(col):
        # Each item is a JSON document (a list or dict is one value, not a list of them).
        return _in_list(col, [literal(item, col.type) for item in items])
    bounds = _column_range(col)
    if bounds is None:
        return _in_list(col, [_wide(col, item) for item in items])
    # A number outside the column's range equals no stored value: leave it out.
    portable = [item for item in items if not outside(bounds, item)]
    wide = [item for item in items if not outside(INT64, item)]
    if bounds == INT64 or len(wide) == len(portable):
        return _in_list(col, portable)
    return constructs.OnSQLite(_in_list(col, portable), _in_list(col, wide))


def _in_list(col: ColumnElement[Any], items: list[Any]) -> ColumnElement[bool]:
    """Return ``col IN (items)``; FALSE itself for no items.

    As Django's empty ``IN`` (``EmptyResultSet``): the constant folds where it
    stands (``x AND FALSE`` is FALSE, ``NOT FALSE`` is TRUE), so a provably empty
    WHERE is ``WHERE false`` and the conditions it makes moot are never sent
    (PostgreSQL would still type-check them: ``created >= pages`` raises).
    """
    return col.in_(items) if items else false()


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
    if bounds is None or not (outside(bounds, low) or outside(bounds, high)):
        return between(None)
    if bounds == INT64:
        return between(bounds)
    return constructs.OnSQLite(between(bounds), between(INT64))


def _isnull(col: ColumnElement[Any], value: Any) -> ColumnElement[bool]:
    if not isinstance(value, bool):
        raise TypeError(f"The 'isnull' lookup takes True or False, got {value!r}.")
    return col.is_(None) if value else col.is_not(None)


def _pattern(value: Any, lookup: str, flags: int = 0) -> ColumnElement[str]:
    """Return a regular expression as a bound parameter, after checking it can run everywhere.

    Python's ``re`` reads it as PostgreSQL nearly does; RE2 runs it on SQLite.
    """
    if isinstance(value, ColumnElement):
        return value  # an expression (F("pattern")): the database reads it
    text = str(value)
    try:
        re.compile(text, flags)
        sqlite.compile_pattern(text, bool(flags & re.IGNORECASE))
    except (re.error, sqlite.PatternError) as error:
        raise ValueError(
            f"Invalid regular expression {text!r} for the '{lookup}' lookup: {error}. "
            "Patterns must suit Python's re (PostgreSQL reads them as POSIX AREs, which "
            "are close) and RE2, which runs them on SQLite in linear time: no "
            "backreferences or lookaround."
        ) from None
    return _text(text)


def _regex(col: ColumnElement[Any], value: Any) -> ColumnElement[bool]:
    return constructs.Regex(col, _pattern(value, "regex"))


def _iregex(col: ColumnElement[Any], value: Any) -> ColumnElement[bool]:
    return constructs.IRegex(col, _pattern(value, "iregex", re.IGNORECASE))


def _json_path(key: str) -> str:
    """Return SQLite's JSON path of a top-level key, ``$."name"`` (``"0"`` too, as in Django)."""
    return "$." + json.dumps(key)


def _not_json(name: str, col: ColumnElement[Any]) -> TypeError:
    """Return the error for a JSON-only lookup on another column."""
    return TypeError(
        f"The '{name}' lookup is for JSON columns; {getattr(col, 'key', col)!r} is not one."
    )


def _has_keys(name: str) -> LookupFn:
    """Return Django's ``has_key``/``has_keys``/``has_any_keys`` lookup of a JSON column.

    PostgreSQL's ``?`` (a top-level key, or a string in a top-level array); on
    SQLite, a value at the key's path (``json_type(...) IS NOT NULL``), as
    Django asks each database.
    """

    def lookup(col: ColumnElement[Any], value: Any) -> ColumnElement[bool]:
        if not _is_json(col):
            raise _not_json(name, col)
        if name == "has_key":
            keys = [value]
        elif isinstance(value, list | tuple) and value:
            keys = list(value)
        else:
            raise TypeError(f"The '{name}' lookup takes a non-empty list of keys, got {value!r}.")
        texts = [str(key) for key in keys]
        on_postgresql = [col.op("?", is_comparison=True)(_text(key)) for key in texts]
        on_sqlite = [func.json_type(col, _text(_json_path(key))).is_not(None) for key in texts]
        combine = or_ if name == "has_any_keys" else and_
        return constructs.OnSQLite(combine(*on_postgresql), combine(*on_sqlite))

    return lookup


def _json_containment(name: str) -> LookupFn:
    """Return Django's ``contains``/``contained_by`` of a JSON column (``contains`` of text too).

    PostgreSQL's ``jsonb`` ``@>``/``<@`` (the column and the value as ``jsonb``); on
    SQLite, ``flash_json_contains()`` with PostgreSQL's rules (``flash_db.sqlite``),
    where Django refuses the lookups.
    """
    text_contains = _like("%{}%", ci=False)

    def lookup(col: ColumnElement[Any], value: Any) -> ColumnElement[bool]:
        if not _is_json(col):
            if name == "contains":
                return text_contains(col, value)
            raise _not_json(name, col)
        if isinstance(value, ColumnElement | Select):
            raise TypeError(f"The JSON '{name}' lookup takes a value, got {value!r}.")
        try:
            document = json.dumps(value)
        except (TypeError, ValueError) as error:
            raise TypeError(
                f"The JSON '{name}' lookup takes a JSON value (dict, list, str, number, "
                f"bool), got {value!r}: {error}"
            ) from None
        column, other = cast(col, JSONB()), cast(_text(document), JSONB())
        on_postgresql = column.op("@>" if name == "contains" else "<@", is_comparison=True)(other)
        pair = (col, _text(document)) if name == "contains" else (_text(document), col)
        on_sqlite = func.flash_json_contains(*pair, type_=Integer()) == 1
        return constructs.OnSQLite(on_postgresql, on_sqlite)

    return lookup


LOOKUPS: dict[str, LookupFn] = {
    "exact": _exact,
    "iexact": _iexact,
    "contains": _json_containment("contains"),
    "contained_by": _json_containment("contained_by"),
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
    "has_key": _has_keys("has_key"),
    "has_keys": _has_keys("has_keys"),
    "has_any_keys": _has_keys("has_any_keys"),
}

#: Transforms: ``created_at__year=2024``, ``created_at__date__gte=...``, ``created_at__week=1``.
TRANSFORMS: dict[str, Callable[[ColumnElement[Any]], ColumnElement[Any]]] = {
    "date": constructs.DateOf,
    "time": constructs.TimeOf,
    **constructs.DATE_PARTS,
}

LOOKUP_CHOICES = sorted({*LOOKUPS, *TRANSFORMS})

# -- JSON key transforms (``data__key``, ``data__a__0__lt``) ---------------------------

#: The lookups after a JSON key, as Django's KeyTransform registers them.
KEY_LOOKUPS = frozenset(
    {
        "exact",
        "iexact",
        "icontains",
        "startswith",
        "istartswith",
        "endswith",
        "iendswith",
        "regex",
        "iregex",
        "in",
        "gt",
        "gte",
        "lt",
        "lte",
        "isnull",
    }
)
_NOT_ON_KEYS = frozenset({"contains", "contained_by", "has_key", "has_keys", "has_any_keys"})
_TEXT_KEY_LOOKUPS = frozenset(KEY_LOOKUPS - {"exact", "in", "gt", "gte", "lt", "lte", "isnull"})
#: What SQLite's json_type() says of the values json_extract() cannot tell apart.
_JSON_DATATYPES = ("null", "true", "false")


def json_keys(tail: list[str]) -> tuple[list[str], str]:
    """Return ``(keys, lookup)`` of the parts after a JSON column (no keys: a plain lookup).

    As Django: every part is a key except a last one naming a key lookup
    (``data__owner__name__icontains``: keys ``owner``, ``name``); a lone lookup
    of the column itself (``data__has_key``, ``data__isnull``) is no key.
    """
    if len(tail) == 1 and tail[0] in LOOKUPS:
        return [], tail[0]  # a lookup of the column itself (data__has_key, data__in)
    if len(tail) > 1 and tail[-1] in _NOT_ON_KEYS:
        raise TypeError(
            f"The '{tail[-1]}' lookup on a JSON key ({'__'.join(tail[:-1])}) is not supported; "
            f"after a key come: {', '.join(sorted(KEY_LOOKUPS))}."
        )
    if tail and tail[-1] in KEY_LOOKUPS:
        return tail[:-1], tail[-1]
    return tail, "exact"


def _sqlite_path(keys: list[str]) -> str:
    """Return SQLite's JSON path of ``keys``: ``$."a"[0]`` (an integer is an array index)."""
    parts = ["$"]
    for key in keys:
        try:
            parts.append(f"[{int(key)}]")
        except ValueError:
            parts.append("." + json.dumps(key))
    return "".join(parts)


def _pg_key(col: ColumnElement[Any], keys: list[str], *, text: bool) -> ColumnElement[Any]:
    """Return PostgreSQL's ``col -> key`` (``#>`` for a path; ``->>``/``#>>`` as text)."""
    kind: Any = String() if text else col.type
    if len(keys) > 1:
        path = literal(keys, ARRAY(String()))
        return col.op("#>>" if text else "#>", return_type=kind)(path)
    key: Any
    try:
        key = literal(int(keys[0]), Integer())  # an array index, as Django
    except ValueError:
        key = _text(keys[0])
    return col.op("->>" if text else "->", return_type=kind)(key)


def _sqlite_key(col: ColumnElement[Any], keys: list[str]) -> ColumnElement[Any]:
    """Return SQLite's value at ``keys``: json_extract(), or json_type()'s null/true/false."""
    path = _text(_sqlite_path(keys))
    kind = func.json_type(col, path)
    result: ColumnElement[Any] = case(
        (kind.in_([_text(name) for name in _JSON_DATATYPES]), kind),
        else_=func.json_extract(col, path),
    )
    return result


def _sqlite_value(value: Any) -> ColumnElement[Any]:
    """Return a value as SQLite's key values compare with it (as Django's KeyTransformExact)."""
    document = json.dumps(value)
    if document in _JSON_DATATYPES:
        return _text(document)
    result: ColumnElement[Any] = func.json_extract(_text(document), _text("$"))
    return result


def key_value(col: ColumnElement[Any], keys: list[str]) -> ColumnElement[Any]:
    """Return the value at ``keys`` of a JSON column (``values("data__owner__name")``).

    As Django's ``KeyTransform``: PostgreSQL's ``->``/``#>`` (a ``jsonb`` value),
    SQLite's ``json_extract()`` (``json_type()`` for null, true and false).
    """
    return constructs.JsonKeyValue(_pg_key(col, keys, text=False), _sqlite_key(col, keys))


def key_lookup(
    col: ColumnElement[Any], keys: list[str], lookup: str, value: Any
) -> ColumnElement[bool]:
    """Return the condition ``<JSON column>__<keys>__<lookup>=value``, as Django's KeyTransform.

    ``exact``/``in``/comparisons compare JSON values (``None`` is the JSON null),
    the text lookups the key's text, ``isnull`` whether the key is there.
    """
    pg: ColumnElement[bool]
    lite: ColumnElement[bool]
    if lookup == "isnull":
        if not isinstance(value, bool):
            raise TypeError(f"The 'isnull' lookup takes True or False, got {value!r}.")
        # As Django: the key's value IS NULL on PostgreSQL (no key, or no document);
        # on SQLite json_type() at the key's path (the JSON null is there).
        at_key = _pg_key(col, keys, text=False)
        kind = func.json_type(col, _text(_sqlite_path(keys)))
        pg = at_key.is_(None) if value else at_key.is_not(None)
        lite = kind.is_(None) if value else kind.is_not(None)
        return constructs.OnSQLite(pg, lite)
    if lookup in _TEXT_KEY_LOOKUPS:
        pg = LOOKUPS[lookup](_pg_key(col, keys, text=True), value)
        lite = LOOKUPS[lookup](_sqlite_key(col, keys), value)
        return constructs.OnSQLite(pg, lite)
    if isinstance(value, ColumnElement | Select):
        raise TypeError(f"A JSON key lookup ({lookup}) takes a value, got {value!r}.")
    on_pg = _pg_key(col, keys, text=False)
    on_sqlite = _sqlite_key(col, keys)
    if lookup == "in":
        if isinstance(value, str | bytes) or not isinstance(value, Iterable):
            raise TypeError(f"The 'in' lookup takes an iterable of values, got {value!r}.")
        items = [item for item in value if item is not None]  # as Django: None equals nothing
        pg = on_pg.in_([literal(item, col.type) for item in items])
        lite = on_sqlite.in_([_sqlite_value(item) for item in items])
        return constructs.OnSQLite(pg, lite)
    if lookup == "exact":
        pg = on_pg == literal(JSON.NULL if value is None else value, col.type)
        lite = on_sqlite == _sqlite_value(value)
        return constructs.OnSQLite(pg, lite)
    if value is None:
        raise ValueError(f"Cannot use None as a value for the '{lookup}' lookup of a JSON key.")
    compare = {"gt": operator.gt, "gte": operator.ge, "lt": operator.lt, "lte": operator.le}
    op = compare[lookup]
    pg = op(on_pg, literal(value, col.type))
    lite = op(on_sqlite, literal(value))
    return constructs.OnSQLite(pg, lite)


def plain(value: Any) -> Any:
    """Return a model instance's primary key, any other value unchanged."""
    mapper = getattr(type(value), "__mapper__", None)
    if isinstance(mapper, Mapper):
        return getattr(value, pk_name(type(value)))
    return value


def check_nul(model: type[Any], key: str, value: Any) -> None:
    """Raise ``InvalidValue`` when a string value (or one in a list) cannot be sent as text.

    A NUL character (PostgreSQL cannot store or compare one; SQLite follows for
    consistency) or a lone surrogate (no UTF-8 encoding exists for it, so no
    driver can send it).
    """
    values = value if isinstance(value, list | tuple) else (value,)
    for item in values:
        if isinstance(item, str) and not sendable(item):
            raise InvalidValue(
                model,
                key,
                item,
                "text without NUL characters ('\\x00') or lone surrogates: no database "
                "can compare one",
            )


def sendable(text: str) -> bool:
    """Return whether ``text`` has no NUL character and encodes as UTF-8."""
    if "\x00" in text:
        return False
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# -- values to the column's type (before any SQL) ---------------------------------------

#: What each kind of column takes, said in InvalidValue's message.
EXPECTED = {
    "int": "an integer",
    "float": "a number",
    "decimal": "a decimal number",
    "bool": "True or False",
    "date": "a date (a datetime.date or an ISO 8601 string, 'YYYY-MM-DD')",
    "datetime": "a datetime (a datetime.datetime or an ISO 8601 string)",
    "time": "a time (a datetime.time or an ISO 8601 string, 'HH:MM[:SS]')",
    "uuid": "a UUID (a uuid.UUID or its string)",
    "text": "text",
}
#: The Python types each kind takes as they are (the statement templates' check).
EXACT_TYPES: dict[str, frozenset[type]] = {
    "int": frozenset({int}),
    "float": frozenset({float, int}),
    "decimal": frozenset({Decimal, int, float}),
    "bool": frozenset({bool}),
    "date": frozenset({dt.date}),
    "datetime": frozenset({dt.datetime}),
    "time": frozenset({dt.time}),
    "uuid": frozenset({uuid.UUID}),
    "text": frozenset({str}),
}
_AS_IS: dict[tuple[str, type], bool] = {}


def takes_as_is(kind: str, value_type: type) -> bool:
    """Return whether a column of ``kind`` takes values of ``value_type`` unconverted.

    Subclasses count (asyncpg's UUID, a ``str`` enum), except ``bool`` for
    numbers and ``datetime`` for dates.
    """
    if value_type in EXACT_TYPES[kind]:
        return True
    found = _AS_IS.get((kind, value_type))
    if found is None:
        found = issubclass(value_type, tuple(EXACT_TYPES[kind])) and not (
            (kind != "bool" and issubclass(value_type, bool))
            or (kind == "date" and issubclass(value_type, dt.datetime))
        )
        _AS_IS[(kind, value_type)] = found
    return found


#: Lookups whose value is converted to the column's type (as Django's get_prep_value).
CONVERTED = frozenset({"exact", "gt", "gte", "lt", "lte", "in", "range"})


def value_kind(kind: Any) -> str | None:
    """Return the kind of value a column type takes (``"int"``, ``"text"``, ...), or None.

    A ``TypeDecorator`` takes what its ``impl`` takes. Enum, JSON, binary and
    other types are None: their values are not converted.
    """
    kind = getattr(kind, "impl", kind) if isinstance(kind, TypeDecorator) else kind
    if isinstance(kind, Boolean):
        return "bool"
    if isinstance(kind, Integer):
        return "int"
    if isinstance(kind, Float):
        return "float"
    if isinstance(kind, Numeric):
        return "decimal"
    if isinstance(kind, DateTime):
        return "datetime"
    if isinstance(kind, Date):
        return "date"
    if isinstance(kind, Time):
        return "time"
    if isinstance(kind, Uuid):
        return "uuid"
    if isinstance(kind, String) and not isinstance(kind, Enum):
        return "text"
    return None


def convert(kind: str, value: Any, *, round_up: bool = False) -> Any:
    """Return ``value`` as a column of ``kind`` takes it; raise ValueError/TypeError if it cannot.

    As Django: ``"40"`` for an integer is 40, ``5`` for text is ``"5"``, an ISO
    string for a date is the date; a float for an integer is truncated, or
    rounded up for ``gte``/``lt`` (``round_up``) so the same rows match.
    """
    if takes_as_is(kind, type(value)):
        return value
    if kind == "text":
        return str(value)  # as Django's CharField: title__gt=5 compares with "5"
    if kind == "int":
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, float):
            return math.ceil(value) if round_up else int(value)  # inf, nan: raise
        if isinstance(value, Decimal):
            return int(value)
        if isinstance(value, str):
            return int(value.strip())
        raise ValueError(value)
    if kind == "float":
        if isinstance(value, bool):
            return float(value)
        if isinstance(value, Decimal | str):
            return float(value)
        raise ValueError(value)
    if kind == "decimal":
        if isinstance(value, str):
            number = Decimal(value.strip())
            if not number.is_finite():
                raise ValueError(value)
            return number
        raise ValueError(value)
    if kind == "bool":
        if value in (0, 1) and isinstance(value, int):
            return bool(value)
        if isinstance(value, str) and value in _BOOL_TEXT:
            return _BOOL_TEXT[value]
        raise ValueError(value)
    if kind == "date":
        if isinstance(value, dt.datetime):
            if value.tzinfo is not None:
                value = value.astimezone(dt.UTC)
            return value.date()
        if isinstance(value, str):
            return dt.date.fromisoformat(value.strip())
        raise ValueError(value)
    if kind == "datetime":
        if isinstance(value, dt.date):
            return dt.datetime(value.year, value.month, value.day)
        if isinstance(value, str):
            text = value.strip()
            if len(text) == 10:
                return convert(kind, dt.date.fromisoformat(text))
            return dt.datetime.fromisoformat(text)
        raise ValueError(value)
    if kind == "time":
        if isinstance(value, str):
            return dt.time.fromisoformat(value.strip())
        raise ValueError(value)
    if kind == "uuid":
        if isinstance(value, str):
            return uuid.UUID(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return uuid.UUID(int=value)
        raise ValueError(value)
    return value


_BOOL_TEXT = {"t": True, "True": True, "1": True, "f": False, "False": False, "0": False}
