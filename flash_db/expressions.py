"""Q, F and the expression objects that QuerySets resolve against a model at run time.

Expressions hold names (``F("author__name")``), not SQL: a QuerySet resolves
them when a terminal method builds the statement, so an unknown name raises
``FieldError`` before anything is sent.
"""

from __future__ import annotations

import decimal
import operator
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy import (
    ColumnElement,
    Dialect,
    Float,
    Numeric,
    TypeDecorator,
    case,
    cast,
    func,
    literal,
    not_,
    type_coerce,
)
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql.elements import UnaryExpression
from sqlalchemy.types import TypeEngine

from flash_db.constructs import EmptyResult, Mod, Power, is_empty

if TYPE_CHECKING:
    from flash_db.resolver import Resolver

__all__ = [
    "Aggregate",
    "Avg",
    "Case",
    "Combined",
    "Count",
    "Exists",
    "Expression",
    "F",
    "Max",
    "Min",
    "OrderBy",
    "OuterRef",
    "Q",
    "Queryable",
    "Subquery",
    "Sum",
    "Value",
    "When",
    "as_expression",
    "as_type",
]


class Expression:
    """Something a QuerySet turns into a SQL expression for its model."""

    #: Whether the expression aggregates rows (moves a filter to HAVING).
    contains_aggregate: bool = False

    def resolve(self, resolver: Resolver) -> ColumnElement[Any]:
        """Return the SQLAlchemy expression for this node on ``resolver``'s model."""
        raise NotImplementedError

    def _combine(self, other: Any, op: Callable[[Any, Any], Any], reverse: bool) -> Combined:
        other_expr = other if isinstance(other, Expression) else Value(other)
        if reverse:
            return Combined(other_expr, op, self)
        return Combined(self, op, other_expr)

    def __add__(self, other: Any) -> Combined:
        return self._combine(other, operator.add, False)

    def __radd__(self, other: Any) -> Combined:
        return self._combine(other, operator.add, True)

    def __sub__(self, other: Any) -> Combined:
        return self._combine(other, operator.sub, False)

    def __rsub__(self, other: Any) -> Combined:
        return self._combine(other, operator.sub, True)

    def __mul__(self, other: Any) -> Combined:
        return self._combine(other, operator.mul, False)

    def __rmul__(self, other: Any) -> Combined:
        return self._combine(other, operator.mul, True)

    def __truediv__(self, other: Any) -> Combined:
        return self._combine(other, operator.truediv, False)

    def __rtruediv__(self, other: Any) -> Combined:
        return self._combine(other, operator.truediv, True)

    def __mod__(self, other: Any) -> Combined:
        return self._combine(other, _modulo, False)

    def __rmod__(self, other: Any) -> Combined:
        return self._combine(other, _modulo, True)

    def __pow__(self, other: Any) -> Combined:
        return self._combine(other, _power, False)

    def __rpow__(self, other: Any) -> Combined:
        return self._combine(other, _power, True)

    def __neg__(self) -> Combined:
        return Combined(Value(0), operator.sub, self)

    def asc(self, *, nulls_first: bool = False, nulls_last: bool = False) -> OrderBy:
        """Order ascending by this expression."""
        return OrderBy(self, descending=False, nulls_first=nulls_first, nulls_last=nulls_last)

    def desc(self, *, nulls_first: bool = False, nulls_last: bool = False) -> OrderBy:
        """Order descending by this expression."""
        return OrderBy(self, descending=True, nulls_first=nulls_first, nulls_last=nulls_last)


def _power(base: Any, exponent: Any) -> ColumnElement[Any]:
    return Power(base, exponent)


def _modulo(dividend: Any, divisor: Any) -> ColumnElement[Any]:
    # Typed as SQLAlchemy types ``a % b`` (the construct's SQL depends on the dialect).
    return type_coerce(Mod(dividend, divisor), operator.mod(dividend, divisor).type)


def as_type(output_field: Any, context: str) -> TypeEngine[Any] | None:
    """Return a SQLAlchemy type given as an instance or a class (``String``, ``Integer()``)."""
    if output_field is None or isinstance(output_field, TypeEngine):
        return output_field
    if isinstance(output_field, type) and issubclass(output_field, TypeEngine):
        return output_field()
    raise TypeError(
        f"{context} takes a SQLAlchemy type as output_field (String(), Integer, ...), "
        f"got {output_field!r}."
    )


def as_expression(arg: Any) -> Expression:
    """Return a function argument as an expression: a string names a field, as in Django.

    ``Lower("name")`` is ``Lower(F("name"))``; other plain values are ``Value(x)``
    (a bound parameter); SQLAlchemy expressions are used as they are.
    """
    if isinstance(arg, Expression):
        return arg
    if isinstance(arg, str | InstrumentedAttribute):
        return F(arg)
    if isinstance(arg, ColumnElement):
        return _SQL(arg)
    return Value(arg)


class Value(Expression):
    """A literal value, always sent as a bound parameter.

    ``output_field`` (a SQLAlchemy type) types the parameter, as Django's does.
    """

    def __init__(self, value: Any, output_field: Any = None) -> None:
        if isinstance(value, Expression):
            raise TypeError(f"Value() takes a plain value, got the expression {value!r}.")
        self.value = value
        self.output_field = as_type(output_field, "Value()")

    def resolve(self, resolver: Resolver) -> ColumnElement[Any]:
        """Return the value as a bound parameter."""
        if self.output_field is not None:
            return literal(self.value, self.output_field)
        return literal(self.value)

    def __repr__(self) -> str:
        return f"Value({self.value!r})"


class _SQL(Expression):
    """A SQLAlchemy expression standing where a Flash DB expression is expected."""

    def __init__(self, element: ColumnElement[Any]) -> None:
        self.element = element

    def resolve(self, resolver: Resolver) -> ColumnElement[Any]:
        """Return the expression itself."""
        return self.element

    def __repr__(self) -> str:
        return f"_SQL({self.element!r})"


class F(Expression):
    """A reference to a field of the model (``F("price")``, ``F("author__name")``)."""

    def __init__(self, name: str | InstrumentedAttribute[Any]) -> None:
        if isinstance(name, InstrumentedAttribute):
            name = name.key
        if not isinstance(name, str):
            raise TypeError(f"F() takes a field name or a model attribute, got {name!r}.")
        self.name = name

    def resolve(self, resolver: Resolver) -> ColumnElement[Any]:
        """Return the column (joining relations as needed)."""
        return resolver.column(self.name, context="F()")

    def __repr__(self) -> str:
        return f"F({self.name!r})"


class OuterRef(F):
    """A field of the enclosing query, inside ``Exists(...)`` or ``Subquery(...)``."""

    def resolve(self, resolver: Resolver) -> ColumnElement[Any]:
        """Return the column of the enclosing query's model."""
        if resolver.outer is None:
            raise ValueError(
                f"{self!r} refers to an enclosing query; use it inside Exists() or Subquery()."
            )
        return resolver.outer.column(self.name, context="OuterRef()")

    def __repr__(self) -> str:
        return f"OuterRef({self.name!r})"


class Combined(Expression):
    """Two expressions joined by an arithmetic operator."""

    def __init__(self, lhs: Expression, op: Callable[[Any, Any], Any], rhs: Expression) -> None:
        self.lhs = lhs
        self.op = op
        self.rhs = rhs
        self.contains_aggregate = lhs.contains_aggregate or rhs.contains_aggregate

    def resolve(self, resolver: Resolver) -> ColumnElement[Any]:
        """Return ``lhs <op> rhs``."""
        lhs, rhs = self.lhs.resolve(resolver), self.rhs.resolve(resolver)
        result: ColumnElement[Any] = self.op(lhs, rhs)
        kind = result.type
        if (
            isinstance(kind, Numeric)
            and not isinstance(kind, Float | FullDecimal)
            and kind.asdecimal
        ):
            # SQLAlchemy gives ``price / 3`` the column's Numeric(8, 2), which SQLite's
            # reading rounds to 2 places; Django's Decimal is not rounded.
            result = type_coerce(result, FullDecimal())
        if is_empty(lhs) or is_empty(rhs):
            return EmptyResult(result)  # as Django: arithmetic on it is over no rows too
        return result


class OrderBy:
    """An ordering on an expression, with optional NULLS FIRST/LAST."""

    def __init__(
        self,
        expression: Expression,
        *,
        descending: bool,
        nulls_first: bool = False,
        nulls_last: bool = False,
    ) -> None:
        if nulls_first and nulls_last:
            raise ValueError("nulls_first and nulls_last are mutually exclusive.")
        self.expression = expression
        self.descending = descending
        self.nulls_first = nulls_first
        self.nulls_last = nulls_last

    def reversed(self) -> OrderBy:
        """Return the opposite ordering (NULLS placement flips too, as in Django)."""
        return OrderBy(
            self.expression,
            descending=not self.descending,
            nulls_first=self.nulls_last,
            nulls_last=self.nulls_first,
        )

    def resolve(self, resolver: Resolver) -> UnaryExpression[Any]:
        """Return the ORDER BY element."""
        column = self.expression.resolve(resolver)
        ordered = column.desc() if self.descending else column.asc()
        if self.nulls_first:
            ordered = ordered.nulls_first()
        elif self.nulls_last:
            ordered = ordered.nulls_last()
        return ordered


class Q:
    """A filter condition: keyword lookups and expressions, combined with ``&``, ``|``, ``~``."""

    AND = "AND"
    OR = "OR"
    XOR = "XOR"

    def __init__(self, *conditions: Any, **lookups: Any) -> None:
        self.children: list[Any] = [*conditions, *sorted(lookups.items())]
        self.connector = Q.AND
        self.negated = False
        #: Made by ``&``, ``|``, ``^`` or ``~`` (Django squashes the operands of those
        #: into the new node; the resolver's join promotion reads the tree as Django's).
        self.combined = False

    def _new(self, connector: str, children: list[Any], negated: bool = False) -> Q:
        q = Q()
        q.connector = connector
        q.children = children
        q.negated = negated
        q.combined = True
        return q

    def __and__(self, other: Any) -> Q:
        if not isinstance(other, Q | ColumnElement | Exists):
            return NotImplemented
        return self._new(Q.AND, [self, other])

    def __or__(self, other: Any) -> Q:
        if not isinstance(other, Q | ColumnElement | Exists):
            return NotImplemented
        return self._new(Q.OR, [self, other])

    def __xor__(self, other: Any) -> Q:
        """Return a Q true when an odd number of its operands are (Django's ``^``)."""
        if not isinstance(other, Q | ColumnElement | Exists):
            return NotImplemented
        return self._new(Q.XOR, [self, other])

    def __invert__(self) -> Q:
        if self.negated and self.connector == Q.AND and len(self.children) == 1:
            (inner,) = self.children
            if isinstance(inner, Q):
                # ~~q is q, as in Django (its ~ flips a flag): a to-many lookup in it
                # then shares the filter() call's EXISTS with the others.
                return inner
        return self._new(Q.AND, [self], negated=True)

    def __bool__(self) -> bool:
        return bool(self.children)

    def __repr__(self) -> str:
        inner = f" {self.connector} ".join(repr(c) for c in self.children)
        return f"{'NOT ' if self.negated else ''}Q({inner})"


class Aggregate(Expression):
    """An SQL aggregate over a field or expression, optionally with ``filter=Q(...)``.

    In ``annotate()`` an aggregate across a to-many relation (``Count("posts")``)
    is a correlated subquery per row, so several of them never multiply each
    other's rows and they can be filtered in WHERE. Over the query's own rows
    (``values("author_id").annotate(n=Count("id"))``, ``aggregate()``) it is a
    plain aggregate with GROUP BY, and filters on it move to HAVING.
    """

    function: ClassVar[str] = ""
    contains_aggregate = True
    #: The value over no rows (``COUNT`` is 0, the others NULL).
    empty_value: ClassVar[Any] = None

    def __init__(
        self,
        expression: str | Expression | InstrumentedAttribute[Any],
        *,
        distinct: bool = False,
        filter: Q | None = None,
    ) -> None:
        if isinstance(expression, InstrumentedAttribute):
            expression = expression.key
        if not isinstance(expression, str | Expression):
            raise TypeError(
                f"{type(self).__name__}() takes a field name or an expression, got {expression!r}."
            )
        if filter is not None and not isinstance(filter, Q):
            raise TypeError(f"{type(self).__name__}(filter=...) takes a Q object, got {filter!r}.")
        if distinct and expression == "*":
            raise ValueError(f"{type(self).__name__}('*', distinct=True) is not valid SQL.")
        self.expression = expression
        self.distinct = distinct
        self.filter = filter

    @property
    def default_alias(self) -> str:
        """Return Django's name for a positional aggregate (``Count("tags")``: ``tags__count``)."""
        if isinstance(self.expression, F):
            return f"{self.expression.name}__{type(self).__name__.lower()}"
        if isinstance(self.expression, str) and self.expression != "*":
            return f"{self.expression}__{type(self).__name__.lower()}"
        raise TypeError(f"Complex aggregates require an alias: name {self!r} (name=...).")

    def resolve(self, resolver: Resolver) -> ColumnElement[Any]:
        """Return the aggregate (or a correlated subquery computing it) for ``resolver``'s rows."""
        return resolver.aggregate(self)

    def sql(self, column: ColumnElement[Any] | None, condition: Any) -> ColumnElement[Any]:
        """Return ``FUNCTION([DISTINCT] column) [FILTER (WHERE condition)]``."""
        if column is None:
            call: Any = func.count()
        else:
            argument = column.distinct() if self.distinct else column
            if self.function == "count":
                call = func.count(argument)
            else:
                call = getattr(func, self.function)(argument, type_=column.type)
        if condition is not None:
            call = call.filter(condition)
        if self.function == "avg" and column is not None:
            kind = column.type
            if not isinstance(kind, Numeric) or isinstance(kind, Float):
                # PostgreSQL's avg() of integers is numeric; Django's Avg is a float.
                return cast(call, Float)
            # Not rounded to the column's scale: Django's full-precision Decimal.
            call = getattr(func, self.function)(argument, type_=FullDecimal())
            if condition is not None:
                call = call.filter(condition)
        result: ColumnElement[Any] = call
        return result

    def __repr__(self) -> str:
        extra = ", distinct=True" if self.distinct else ""
        if self.filter is not None:
            extra += f", filter={self.filter!r}"
        return f"{type(self).__name__}({self.expression!r}{extra})"


class FullDecimal(TypeDecorator[Decimal]):
    """A Decimal computed from Numeric values (``Avg()``, ``F("price") / 3``), unrounded.

    PostgreSQL's numeric result is read as it is. SQLite's is a float; it becomes
    a Decimal of its 15 significant digits (what SQLite holds), as Django does,
    instead of being rounded to the column's scale (``Numeric(8, 2)``'s type
    would make ``price / 3`` of 12.50 read as 4.17; Django's is 4.16666666666667).
    """

    impl = Numeric
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        """Read SQLite's float as a float (converted below), PostgreSQL's numeric as a Decimal."""
        if dialect.name == "sqlite":
            return dialect.type_descriptor(Numeric(asdecimal=False))
        return dialect.type_descriptor(Numeric())

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        """Return ``value`` as a Decimal (15 significant digits from a float)."""
        if value is None or isinstance(value, Decimal):
            return value
        if isinstance(value, float):
            return _FIFTEEN_DIGITS.create_decimal_from_float(value)
        return Decimal(value)


_FIFTEEN_DIGITS = decimal.Context(prec=15)


class Count(Aggregate):
    """``COUNT(field)`` (``Count("*")`` counts rows, ``Count("posts")`` related rows)."""

    function = "count"
    empty_value = 0


class Sum(Aggregate):
    """``SUM(field)``; None over no rows."""

    function = "sum"


class Avg(Aggregate):
    """``AVG(field)`` as a float (Decimal for ``Numeric`` columns); None over no rows."""

    function = "avg"


class Min(Aggregate):
    """``MIN(field)``."""

    function = "min"


class Max(Aggregate):
    """``MAX(field)``."""

    function = "max"


class Queryable:
    """A query that can stand inside another one: what ``Exists()``, ``Subquery()`` and
    ``field__in=...`` take (a ``QuerySet``: its model and its state).

    The resolver of the enclosing statement compiles it (``Resolver.subquery``),
    so this layer never builds a statement itself.
    """

    __slots__ = ()

    model: type[Any]
    state: Any


class Exists(Expression):
    """``EXISTS (subquery)`` over a QuerySet, for ``filter`` and ``annotate``; ``~`` negates."""

    def __init__(self, queryset: Queryable, *, negated: bool = False) -> None:
        if not isinstance(queryset, Queryable):
            raise TypeError(f"Exists() takes a QuerySet, got {queryset!r}.")
        self.queryset = queryset
        self.negated = negated

    def resolve(self, resolver: Resolver) -> ColumnElement[Any]:
        """Return ``[NOT] EXISTS (...)`` correlated through ``OuterRef``s."""
        stmt = resolver.subquery(self.queryset, ordered=False)
        exists = stmt.exists()
        return not_(exists) if self.negated else exists

    def __invert__(self) -> Exists:
        return Exists(self.queryset, negated=not self.negated)

    def __and__(self, other: Any) -> Q:
        return Q(self, other)

    def __or__(self, other: Any) -> Q:
        return Q(self) | Q(other)

    def __xor__(self, other: Any) -> Q:
        """Return a Q true when exactly one side is (``Exists(...) ^ Q(...)``, as in Django)."""
        if not isinstance(other, Q | ColumnElement | Exists):
            return NotImplemented
        return Q(self) ^ Q(other)  # Django's tree: the other side stays a node of its own

    def __rxor__(self, other: Any) -> Q:
        if not isinstance(other, Q | ColumnElement):
            return NotImplemented
        return Q(other) ^ self

    def __repr__(self) -> str:
        return f"{'~' if self.negated else ''}Exists({self.queryset.model.__name__})"


class Subquery(Expression):
    """A scalar subquery: a ``values()``/``values_list()`` QuerySet of one column."""

    def __init__(self, queryset: Queryable) -> None:
        if not isinstance(queryset, Queryable):
            raise TypeError(f"Subquery() takes a QuerySet, got {queryset!r}.")
        if queryset.state.kind == "model":
            raise TypeError(
                "Subquery() takes a QuerySet of one column: use .values('field') or "
                ".values_list('field', flat=True)."
            )
        self.queryset = queryset

    def resolve(self, resolver: Resolver) -> ColumnElement[Any]:
        """Return ``(SELECT ...)`` correlated through ``OuterRef``s."""
        stmt = resolver.subquery(self.queryset, ordered=True)
        count = len(stmt.selected_columns)
        if count != 1:
            raise TypeError(f"Subquery() needs a QuerySet of exactly one column, got {count}.")
        result: ColumnElement[Any] = stmt.scalar_subquery()
        return result

    def __repr__(self) -> str:
        return f"Subquery({self.queryset.model.__name__})"


class When(Expression):
    """One branch of :class:`Case`: ``When(Q(...) | lookups, then=expr)``.

    The condition is anything ``filter()`` takes (a ``Q``, lookups, ``Exists``,
    a SQLAlchemy condition); ``then`` is an expression, a string names a field
    (as in Django: ``then=Value("text")`` for a string).
    """

    def __init__(self, condition: Any = None, then: Any = None, **lookups: Any) -> None:
        if lookups:
            condition = Q(**lookups) if condition is None else Q(condition, **lookups)
        if condition is None or (isinstance(condition, Q) and not condition):
            raise TypeError("When() needs a condition: a Q object, an expression or lookups.")
        if not isinstance(condition, Q | Expression | ColumnElement):
            raise TypeError(
                f"When() takes a Q object, an expression or lookups as its condition, "
                f"got {condition!r}."
            )
        self.condition = condition
        self.result = as_expression(then)
        self.contains_aggregate = self.result.contains_aggregate or (
            isinstance(condition, Expression) and condition.contains_aggregate
        )

    def resolve(self, resolver: Resolver) -> ColumnElement[Any]:
        """A When is resolved by its Case."""
        raise TypeError("When() is used inside Case(When(...), default=...).")

    def __repr__(self) -> str:
        return f"When({self.condition!r}, then={self.result!r})"


class Case(Expression):
    """``CASE WHEN ... THEN ... ELSE default END``; ``output_field`` is a SQLAlchemy type."""

    def __init__(self, *cases: When, default: Any = None, output_field: Any = None) -> None:
        for item in cases:
            if not isinstance(item, When):
                raise TypeError(f"Case() takes When() objects as positional arguments: {item!r}.")
        self.cases = cases
        self.default = as_expression(default)
        self.output_field = as_type(output_field, "Case()")
        self.contains_aggregate = self.default.contains_aggregate or any(
            item.contains_aggregate for item in cases
        )

    def resolve(self, resolver: Resolver) -> ColumnElement[Any]:
        """Return the CASE expression (just the default when there is no When)."""
        if not self.cases:
            result = self.default.resolve(resolver)
        else:
            plain_null = isinstance(self.default, Value) and self.default.value is None
            default = None if plain_null else self.default.resolve(resolver)  # no ELSE: NULL
            whens = [
                (resolver.compile(item.condition), item.result.resolve(resolver))
                for item in self.cases
            ]
            result = case(*whens, else_=default)
        if self.output_field is not None:
            return type_coerce(result, self.output_field)
        return result

    def __repr__(self) -> str:
        return f"Case({', '.join(map(repr, self.cases))}, default={self.default!r})"
