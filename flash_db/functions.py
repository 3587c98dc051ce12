"""Database functions, as Django's ``django.db.models.functions``: ``Lower``, ``Trunc``, ...

Each is an :class:`~flash_db.expressions.Expression`, usable wherever one is
(``annotate``, ``filter``, ``order_by``, ``values``, ``update``, inside other
functions). As in Django, a string argument names a field (``Lower("name")``);
a literal string is ``Value("text")``, always a bound parameter. The SQL differs
per database where the databases differ (``flash_db.constructs``); the answers
are Django's. Names given as strings (``Extract(field, "quarter")``,
``Trunc(field, "month")``) are checked against a fixed table and only that
table's constants reach the SQL.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy import ColumnElement as SQLExpression
from sqlalchemy import (
    Date,
    DateTime,
    Enum,
    Float,
    Integer,
    Numeric,
    String,
    Time,
    cast,
    func,
    type_coerce,
)
from sqlalchemy.types import TypeEngine

from flash_db import constructs
from flash_db.exceptions import FieldError
from flash_db.expressions import Expression, Value, as_expression, as_type

if TYPE_CHECKING:
    from flash_db.resolver import Resolver

__all__ = [
    "Abs",
    "Cast",
    "Coalesce",
    "Concat",
    "Extract",
    "ExtractDay",
    "ExtractHour",
    "ExtractIsoWeekDay",
    "ExtractIsoYear",
    "ExtractMinute",
    "ExtractMonth",
    "ExtractQuarter",
    "ExtractSecond",
    "ExtractWeek",
    "ExtractWeekDay",
    "ExtractYear",
    "Func",
    "Greatest",
    "LTrim",
    "Least",
    "Length",
    "Lower",
    "Now",
    "NullIf",
    "RTrim",
    "Random",
    "Replace",
    "Round",
    "Substr",
    "Trim",
    "Trunc",
    "TruncDate",
    "TruncDay",
    "TruncHour",
    "TruncMinute",
    "TruncMonth",
    "TruncQuarter",
    "TruncSecond",
    "TruncTime",
    "TruncWeek",
    "TruncYear",
    "Upper",
]


def _impl(column: SQLExpression[Any]) -> Any:
    kind = column.type
    return getattr(kind, "impl", kind)  # a TypeDecorator (AwareDateTime) or the type


def _is_text(column: SQLExpression[Any]) -> bool:
    kind = _impl(column)
    return isinstance(kind, String) and not isinstance(kind, Enum)


class Func(Expression):
    """A SQL function over expressions; subclasses say which and how many arguments it takes."""

    #: The SQL function (through SQLAlchemy's ``func``) when :meth:`sql` is not overridden.
    function: ClassVar[str] = ""
    #: The number of arguments, or None for "at least :attr:`min_args`".
    arity: ClassVar[int | None] = None
    min_args: ClassVar[int] = 1

    def __init__(self, *expressions: Any, output_field: Any = None) -> None:
        name = type(self).__name__
        if self.arity is not None and len(expressions) != self.arity:
            raise TypeError(
                f"{name}() takes {self.arity} argument{'s' * (self.arity != 1)}, "
                f"got {len(expressions)}."
            )
        if self.arity is None and len(expressions) < self.min_args:
            raise TypeError(f"{name}() takes at least {self.min_args} expressions.")
        self.source_expressions = [as_expression(e) for e in expressions]
        self.output_field = as_type(output_field, f"{name}()")
        self.contains_aggregate = any(e.contains_aggregate for e in self.source_expressions)

    def resolve(self, resolver: Resolver) -> SQLExpression[Any]:
        """Return the function call on the resolved arguments."""
        result = self.sql([e.resolve(resolver) for e in self.source_expressions], resolver)
        if self.output_field is not None:
            return type_coerce(result, self.output_field)
        return result

    def sql(self, args: list[SQLExpression[Any]], resolver: Resolver) -> SQLExpression[Any]:
        """Return the SQL of the call; the first argument's type is the result's."""
        result: SQLExpression[Any] = getattr(func, self.function)(*args, type_=args[0].type)
        return result

    def __repr__(self) -> str:
        args = ", ".join(map(repr, self.source_expressions))
        return f"{type(self).__name__}({args})"


# -- text ---------------------------------------------------------------------------


class Lower(Func):
    """``LOWER(text)``, Unicode-aware on SQLite too."""

    arity = 1

    def sql(self, args: list[SQLExpression[Any]], resolver: Resolver) -> SQLExpression[Any]:
        """Return the lower-cased text."""
        return constructs.Lower(args[0])


class Upper(Func):
    """``UPPER(text)``, Unicode-aware on SQLite too."""

    arity = 1

    def sql(self, args: list[SQLExpression[Any]], resolver: Resolver) -> SQLExpression[Any]:
        """Return the upper-cased text."""
        return constructs.Upper(args[0])


class Length(Func):
    """The number of characters of a text (NULL for NULL)."""

    arity = 1

    def sql(self, args: list[SQLExpression[Any]], resolver: Resolver) -> SQLExpression[Any]:
        """Return ``length(text)`` as an integer."""
        (arg,) = args
        text = arg if _is_text(arg) else cast(arg, String())
        result: SQLExpression[Any] = func.length(text, type_=Integer())
        return result


class Concat(Func):
    """The texts joined; a NULL counts as the empty string, as in Django."""

    min_args = 2

    def sql(self, args: list[SQLExpression[Any]], resolver: Resolver) -> SQLExpression[Any]:
        """Return ``COALESCE(a, '') || COALESCE(b, '') ...`` (non-text arguments as text)."""
        return constructs.Concat(*args)


class Substr(Func):
    """``SUBSTR(text, pos[, length])``: ``pos`` counts from 1."""

    def __init__(self, expression: Any, pos: Any, length: Any = None) -> None:
        if isinstance(pos, int) and pos < 1:
            raise ValueError(f"Substr()'s pos must be greater than 0, got {pos!r}.")
        args = (expression, pos) if length is None else (expression, pos, length)
        super().__init__(*args)

    def sql(self, args: list[SQLExpression[Any]], resolver: Resolver) -> SQLExpression[Any]:
        """Return ``substr(text, pos[, length])``."""
        text = args[0] if _is_text(args[0]) else cast(args[0], String())
        result: SQLExpression[Any] = func.substr(text, *args[1:], type_=String())
        return result


class Replace(Func):
    """Every ``text`` in the expression replaced by ``replacement`` (``Value("")`` by default)."""

    def __init__(self, expression: Any, text: Any, replacement: Any = None) -> None:
        super().__init__(expression, text, Value("") if replacement is None else replacement)

    def sql(self, args: list[SQLExpression[Any]], resolver: Resolver) -> SQLExpression[Any]:
        """Return ``replace(expression, text, replacement)``."""
        result: SQLExpression[Any] = func.replace(*args, type_=String())
        return result


class Trim(Func):
    """The text without leading and trailing spaces."""

    arity = 1
    function = "trim"


class LTrim(Func):
    """The text without leading spaces."""

    arity = 1
    function = "ltrim"


class RTrim(Func):
    """The text without trailing spaces."""

    arity = 1
    function = "rtrim"


# -- comparison and conversion ------------------------------------------------------


class Coalesce(Func):
    """The first of the expressions that is not NULL."""

    min_args = 2
    function = "coalesce"


class NullIf(Func):
    """NULL when the two expressions are equal, else the first."""

    arity = 2
    function = "nullif"


class Greatest(Func):
    """The largest of the expressions.

    As in Django, a NULL argument makes the result NULL on SQLite, while
    PostgreSQL's ``GREATEST`` ignores NULLs.
    """

    min_args = 2

    def sql(self, args: list[SQLExpression[Any]], resolver: Resolver) -> SQLExpression[Any]:
        """Return ``GREATEST(...)`` (``max(...)`` on SQLite)."""
        return type_coerce(constructs.Greatest(*args), args[0].type)


class Least(Func):
    """The smallest of the expressions (NULL handling as :class:`Greatest`)."""

    min_args = 2

    def sql(self, args: list[SQLExpression[Any]], resolver: Resolver) -> SQLExpression[Any]:
        """Return ``LEAST(...)`` (``min(...)`` on SQLite)."""
        return type_coerce(constructs.Least(*args), args[0].type)


class Cast(Func):
    """The expression converted to a SQLAlchemy type: ``Cast("views", String())``.

    ``Date``/``Time``/``DateTime`` casts of datetimes take the UTC date or time of
    timezone-aware columns, and are computed on SQLite's text as Django does.
    """

    def __init__(self, expression: Any, output_field: Any) -> None:
        target = as_type(output_field, "Cast()")
        if target is None:
            raise TypeError("Cast() needs a SQLAlchemy type: Cast('field', Integer()).")
        super().__init__(expression)
        self.target: TypeEngine[Any] = target

    def sql(self, args: list[SQLExpression[Any]], resolver: Resolver) -> SQLExpression[Any]:
        """Return ``CAST(expression AS type)`` (a date function for temporal types on SQLite)."""
        (arg,) = args
        target = self.target
        impl = getattr(target, "impl", target)
        if isinstance(impl, DateTime):
            on_sqlite = func.strftime("%Y-%m-%d %H:%M:%f", arg)
            return type_coerce(constructs.ForSQLite(cast(arg, target), on_sqlite), target)
        if isinstance(impl, Date):
            return type_coerce(constructs.DateOf(arg), target)
        if isinstance(impl, Time):
            return type_coerce(constructs.TimeOf(arg), target)
        return cast(arg, target)

    def __repr__(self) -> str:
        return f"Cast({self.source_expressions[0]!r}, {self.target!r})"


# -- numbers ------------------------------------------------------------------------


class Abs(Func):
    """The absolute value."""

    arity = 1
    function = "abs"


class Round(Func):
    """The number rounded to ``precision`` decimal places (0 by default)."""

    def __init__(self, expression: Any, precision: int = 0) -> None:
        if not isinstance(precision, int) or isinstance(precision, bool):
            raise TypeError(f"Round()'s precision must be an integer, got {precision!r}.")
        super().__init__(expression)
        self.precision = precision

    def sql(self, args: list[SQLExpression[Any]], resolver: Resolver) -> SQLExpression[Any]:
        """Return ``round(x, precision)``, typed like ``x``."""
        (arg,) = args
        kind = _impl(arg)
        if isinstance(kind, Integer):
            # An integer's round() is a REAL on SQLite and numeric on PostgreSQL.
            return cast(func.round(arg, self.precision), arg.type)
        if isinstance(kind, Float) or not isinstance(kind, Numeric):
            # PostgreSQL rounds to places only numerics; the result is a float again.
            rounded = func.round(cast(arg, Numeric()), self.precision)
            return cast(rounded, Float())
        result: SQLExpression[Any] = func.round(arg, self.precision, type_=arg.type)
        return result

    def __repr__(self) -> str:
        return f"Round({self.source_expressions[0]!r}, {self.precision!r})"


class Random(Func):
    """A random number from 0 to 1 (``order_by("?")`` orders by it)."""

    arity = 0

    def sql(self, args: list[SQLExpression[Any]], resolver: Resolver) -> SQLExpression[Any]:
        """Return ``random()``."""
        result: SQLExpression[Any] = func.random(type_=Float())
        return result


# -- dates and times ----------------------------------------------------------------


class Now(Func):
    """The current date and time, aware in UTC (the statement's start on PostgreSQL)."""

    arity = 0

    def sql(self, args: list[SQLExpression[Any]], resolver: Resolver) -> SQLExpression[Any]:
        """Return ``statement_timestamp()`` (a UTC ``strftime`` on SQLite)."""
        return constructs.Now()


def _check_temporal(column: SQLExpression[Any], function: str) -> Any:
    kind = _impl(column)
    if not isinstance(kind, Date | DateTime | Time):
        raise ValueError(
            f"{function} takes a date, datetime or time expression, got one of type {kind!r}."
        )
    return kind


class Extract(Func):
    """A part of a date, datetime or time: ``Extract("created_at", "quarter")``.

    The parts are Django's lookup names (``year``, ``iso_year``, ``quarter``,
    ``month``, ``week``, ``day``, ``week_day``, ``iso_week_day``, ``hour``,
    ``minute``, ``second``); ``week`` is the ISO-8601 week number and timezone-aware
    datetimes are read in UTC.
    """

    lookup_name: ClassVar[str] = ""

    def __init__(self, expression: Any, lookup_name: str | None = None) -> None:
        name = lookup_name if lookup_name is not None else self.lookup_name
        if not isinstance(name, str) or not name:
            raise TypeError(f"Extract() takes a part name such as 'year', got {name!r}.")
        super().__init__(expression)
        self.part = name

    def sql(self, args: list[SQLExpression[Any]], resolver: Resolver) -> SQLExpression[Any]:
        """Return the part as an integer."""
        part = constructs.DATE_PARTS.get(self.part)
        if part is None:
            context = f"{type(self).__name__}()"
            raise FieldError(
                resolver.model, self.part, constructs.DATE_PARTS, kind="lookup", context=context
            )
        (arg,) = args
        kind = _check_temporal(arg, f"{type(self).__name__}()")
        if isinstance(kind, Time) and self.part not in ("hour", "minute", "second"):
            raise ValueError(f"Cannot extract {self.part!r} from a time.")
        return part(arg)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.source_expressions[0]!r}, {self.part!r})"


class _ExtractPart(Extract):
    """An :class:`Extract` of a fixed part: ``ExtractYear("created_at")``."""

    def __init__(self, expression: Any) -> None:
        super().__init__(expression, self.lookup_name)


class ExtractYear(_ExtractPart):
    """The year."""

    lookup_name = "year"


class ExtractIsoYear(_ExtractPart):
    """The ISO-8601 week-numbering year."""

    lookup_name = "iso_year"


class ExtractQuarter(_ExtractPart):
    """The quarter, 1 to 4."""

    lookup_name = "quarter"


class ExtractMonth(_ExtractPart):
    """The month, 1 to 12."""

    lookup_name = "month"


class ExtractWeek(_ExtractPart):
    """The ISO-8601 week number, 1 to 53."""

    lookup_name = "week"


class ExtractDay(_ExtractPart):
    """The day of the month."""

    lookup_name = "day"


class ExtractWeekDay(_ExtractPart):
    """The week day, 1 = Sunday ... 7 = Saturday (Django's ``week_day``)."""

    lookup_name = "week_day"


class ExtractIsoWeekDay(_ExtractPart):
    """The ISO-8601 week day, 1 = Monday ... 7 = Sunday."""

    lookup_name = "iso_week_day"


class ExtractHour(_ExtractPart):
    """The hour."""

    lookup_name = "hour"


class ExtractMinute(_ExtractPart):
    """The minute."""

    lookup_name = "minute"


class ExtractSecond(_ExtractPart):
    """The whole seconds."""

    lookup_name = "second"


_TRUNC_KINDS = (*constructs.TRUNC_KINDS, "date", "time")
_TIME_KINDS = ("hour", "minute", "second")


class Trunc(Func):
    """A date, datetime or time truncated: ``Trunc("created_at", "month")``.

    Kinds: ``year``, ``quarter``, ``month``, ``week`` (to its Monday), ``day``,
    ``hour``, ``minute``, ``second``, and ``date``/``time`` (the date or time of
    a datetime). The result has the expression's type, or ``output_field``
    (``Date()`` gives the date of a truncated datetime). Timezone-aware
    datetimes are truncated in UTC.
    """

    kind: ClassVar[str] = ""

    def __init__(self, expression: Any, kind: str | None = None, output_field: Any = None) -> None:
        name = kind if kind is not None else self.kind
        if not isinstance(name, str) or not name:
            raise TypeError(f"Trunc() takes a kind such as 'month', got {name!r}.")
        super().__init__(expression)
        self.trunc_kind = name
        self.target = as_type(output_field, f"{type(self).__name__}()")

    def resolve(self, resolver: Resolver) -> SQLExpression[Any]:
        """Return the truncated value (``output_field`` applied here, not by :class:`Func`)."""
        return self.sql([e.resolve(resolver) for e in self.source_expressions], resolver)

    def sql(self, args: list[SQLExpression[Any]], resolver: Resolver) -> SQLExpression[Any]:
        """Return the truncation, typed like the expression (or as ``output_field``)."""
        name = type(self).__name__
        if self.trunc_kind not in _TRUNC_KINDS:
            raise FieldError(
                resolver.model, self.trunc_kind, _TRUNC_KINDS, kind="lookup", context=f"{name}()"
            )
        (arg,) = args
        kind = _check_temporal(arg, f"{name}()")
        is_time = isinstance(kind, Time)
        is_date = isinstance(kind, Date) and not isinstance(kind, DateTime)
        if self.trunc_kind == "date" or self.trunc_kind == "time":
            if not isinstance(kind, DateTime):
                raise ValueError(f"{name}() takes a datetime, got {kind!r}.")
            if self.trunc_kind == "date":
                return constructs.DateOf(arg)
            return constructs.TimeOf(arg)
        if is_time and self.trunc_kind not in _TIME_KINDS:
            raise ValueError(f"Cannot truncate a time to {self.trunc_kind!r}.")
        if is_date and self.trunc_kind in _TIME_KINDS:
            raise ValueError(f"Cannot truncate a date to {self.trunc_kind!r}.")
        truncated = type_coerce(constructs.TRUNC_KINDS[self.trunc_kind](arg), arg.type)
        target = self.target
        impl = getattr(target, "impl", target)
        to_date = isinstance(impl, Date) and not isinstance(impl, DateTime)
        if target is not None and to_date and not is_date:
            return type_coerce(constructs.DateOf(truncated), target)
        return truncated if target is None else type_coerce(truncated, target)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.source_expressions[0]!r}, {self.trunc_kind!r})"


class _TruncTo(Trunc):
    """A :class:`Trunc` of a fixed kind: ``TruncMonth("created_at", output_field=None)``."""

    def __init__(self, expression: Any, output_field: Any = None) -> None:
        super().__init__(expression, self.kind, output_field)


class TruncYear(_TruncTo):
    """To the first day of the year."""

    kind = "year"


class TruncQuarter(_TruncTo):
    """To the first day of the quarter."""

    kind = "quarter"


class TruncMonth(_TruncTo):
    """To the first day of the month."""

    kind = "month"


class TruncWeek(_TruncTo):
    """To the Monday of the ISO week."""

    kind = "week"


class TruncDay(_TruncTo):
    """To midnight (a date stays the same date)."""

    kind = "day"


class TruncHour(_TruncTo):
    """To the hour."""

    kind = "hour"


class TruncMinute(_TruncTo):
    """To the minute."""

    kind = "minute"


class TruncSecond(_TruncTo):
    """To the second."""

    kind = "second"


class TruncDate(_TruncTo):
    """The date of a datetime (UTC for timezone-aware ones)."""

    kind = "date"


class TruncTime(_TruncTo):
    """The time of a datetime (UTC for timezone-aware ones)."""

    kind = "time"
