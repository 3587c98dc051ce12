"""Q, F and the expression objects that QuerySets resolve against a model at run time.

Expressions hold names (``F("author__name")``), not SQL: a QuerySet resolves
them when a terminal method builds the statement, so an unknown name raises
``FieldError`` before anything is sent.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, literal
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql.elements import UnaryExpression

if TYPE_CHECKING:
    from flash_db.lookups import Resolver

__all__ = ["Combined", "Expression", "F", "OrderBy", "Q", "Value"]


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

    def __neg__(self) -> Combined:
        return Combined(Value(0), operator.sub, self)

    def asc(self, *, nulls_first: bool = False, nulls_last: bool = False) -> OrderBy:
        """Order ascending by this expression."""
        return OrderBy(self, descending=False, nulls_first=nulls_first, nulls_last=nulls_last)

    def desc(self, *, nulls_first: bool = False, nulls_last: bool = False) -> OrderBy:
        """Order descending by this expression."""
        return OrderBy(self, descending=True, nulls_first=nulls_first, nulls_last=nulls_last)


class Value(Expression):
    """A literal value, always sent as a bound parameter."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def resolve(self, resolver: Resolver) -> ColumnElement[Any]:
        """Return the value as a bound parameter."""
        return literal(self.value)

    def __repr__(self) -> str:
        return f"Value({self.value!r})"


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


class Combined(Expression):
    """Two expressions joined by an arithmetic operator."""

    def __init__(self, lhs: Expression, op: Callable[[Any, Any], Any], rhs: Expression) -> None:
        self.lhs = lhs
        self.op = op
        self.rhs = rhs
        self.contains_aggregate = lhs.contains_aggregate or rhs.contains_aggregate

    def resolve(self, resolver: Resolver) -> ColumnElement[Any]:
        """Return ``lhs <op> rhs``."""
        result: ColumnElement[Any] = self.op(self.lhs.resolve(resolver), self.rhs.resolve(resolver))
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

    def __init__(self, *conditions: Any, **lookups: Any) -> None:
        self.children: list[Any] = [*conditions, *sorted(lookups.items())]
        self.connector = Q.AND
        self.negated = False

    def _new(self, connector: str, children: list[Any], negated: bool = False) -> Q:
        q = Q()
        q.connector = connector
        q.children = children
        q.negated = negated
        return q

    def __and__(self, other: Any) -> Q:
        if not isinstance(other, Q | ColumnElement):
            return NotImplemented
        return self._new(Q.AND, [self, other])

    def __or__(self, other: Any) -> Q:
        if not isinstance(other, Q | ColumnElement):
            return NotImplemented
        return self._new(Q.OR, [self, other])

    def __invert__(self) -> Q:
        return self._new(Q.AND, [self], negated=True)

    def __bool__(self) -> bool:
        return bool(self.children)

    def __repr__(self) -> str:
        inner = f" {self.connector} ".join(repr(c) for c in self.children)
        return f"{'NOT ' if self.negated else ''}Q({inner})"
