"""Random queries as small trees, rendered to code that Django and Flash DB both run.

A ``Query`` is a model name, a list of builder ``Step``s and a ``Terminal``. Its
``chain()`` is one Python expression (``Book.objects.filter(...).order_by(...)``)
that evaluates to a Django QuerySet in Django's namespace and to a Flash DB
QuerySet in Flash DB's (see ``tests.oracle.run``); the terminal is applied
outside the code because the two call it differently (``qs.count()`` against
``await qs.count(db)``). Every node carries *tags* (``lookup:icontains``,
``hop:many``, ``F``, ``exclude`` ...) that name what the query uses: the
shrinker removes nodes while a difference persists, and the tags of the
smallest failing query name its class.

The generator only emits a name Flash DB has (``Features``): the expressions
and lookups being added by other work turn on by themselves when they exist.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from tests.oracle.data import BASE_TIME, JSON_VALUES, rows

# -- the schema, as the generator sees it ---------------------------------------------

#: Values for the JSON column's contains= (parts of documents the data holds) and
#: contained_by= (documents around them).
JSON_FRAGMENTS: list[Any] = [
    {"a": 1},
    {"tags": ["sf"]},
    {"nested": {"k": 1.5}},
    ["sf"],
    [1, 3],
    1,
    "alpha",
    True,
    {},
    [],
    {"b": None},
]
JSON_WHOLES: list[Any] = [
    {"a": 1, "b": "x", "tags": ["sf", "x"]},
    [1, 2, 3, "sf", "fantasy"],
    {"a": 2, "b": "y", "tags": ["sf", "x"], "nested": {"k": 1.5}},
    "alpha",
    {},
    [],
]

#: Field kinds: int, float, decimal, text, bool, date, datetime, json; "?" marks nullable.
FIELDS: dict[str, dict[str, str]] = {
    "Publisher": {"id": "int", "name": "text", "city": "text?", "founded": "date"},
    "Author": {
        "id": "int",
        "name": "text",
        "age": "int?",
        "rating": "float?",
        "joined": "datetime",
        "born": "date?",
        "bio": "text?",
        "active": "bool",
    },
    "Book": {
        "id": "int",
        "title": "text",
        "pages": "int",
        "other_num": "int?",
        "another_num": "int?",
        "price": "decimal",
        "rating": "float",
        "published": "date",
        "created": "datetime",
        "in_print": "bool",
        "extra": "json?",
        "author_id": "int",
        "publisher_id": "int?",
    },
    "Review": {
        "id": "int",
        "stars": "int",
        "body": "text?",
        "posted": "datetime",
        "book_id": "int",
    },
    "Tag": {"id": "int", "name": "text"},
}

#: Relations: name -> (target model, hop): one (not null), one? (nullable), many, m2m.
RELATIONS: dict[str, dict[str, tuple[str, str]]] = {
    "Publisher": {"books": ("Book", "many")},
    "Author": {"books": ("Book", "many")},
    "Book": {
        "author": ("Author", "one"),
        "publisher": ("Publisher", "one?"),
        "reviews": ("Review", "many"),
        "tags": ("Tag", "m2m"),
    },
    "Review": {"book": ("Book", "one")},
    "Tag": {"books": ("Book", "m2m")},
}

TABLE_OF = {
    "Publisher": "oracle_publishers",
    "Author": "oracle_authors",
    "Book": "oracle_books",
    "Review": "oracle_reviews",
    "Tag": "oracle_tags",
}

NUMERIC = {"int", "float", "decimal"}
#: Django's lookup class for each case-insensitive lookup (compared on Upper()).
_CI_LOOKUPS = {
    "iexact": "Exact",
    "icontains": "Contains",
    "istartswith": "StartsWith",
    "iendswith": "EndsWith",
}
#: The regex each LIKE-based lookup means (``{}`` is the escaped value).
LIKE_PATTERNS = {
    "iexact": "^{}$",
    "contains": "{}",
    "icontains": "{}",
    "startswith": "^{}",
    "istartswith": "^{}",
    "endswith": "{}$",
    "iendswith": "{}$",
}
TEXT_LOOKUPS = [
    "exact",
    "iexact",
    "contains",
    "icontains",
    "startswith",
    "istartswith",
    "endswith",
    "iendswith",
]
DATE_PARTS = ["year", "month", "day", "week_day"]
DATETIME_PARTS = [*DATE_PARTS, "hour"]
#: ``Cast()`` targets per source kind: the types both ORMs name, spelled as SQLAlchemy
#: types (Django's namespace maps them to its fields) with the result's kind.
CAST_TARGETS: dict[str, list[tuple[str, str]]] = {
    "int": [("Float()", "float"), ("Text()", "text"), ("Numeric(10, 2)", "decimal")],
    "float": [("Integer()", "int"), ("Text()", "text"), ("Numeric(10, 2)", "decimal")],
    "decimal": [("Integer()", "int"), ("Float()", "float"), ("Text()", "text")],
    "bool": [("Integer()", "int")],
    "date": [("Text()", "text"), ("Date()", "date")],
    "datetime": [("Date()", "date"), ("Text()", "text")],
}
#: Key paths and values for lookups on the JSON field's keys (the data's documents have them).
JSON_KEY_PATHS = [
    ["a"],
    ["b"],
    ["tags"],
    ["tags", "0"],
    ["tags", "1"],
    ["nested", "k"],
    ["nested", "deep", "z"],
    ["nested", "deep"],
    ["0"],
    ["1"],
    ["z"],
]
JSON_KEY_VALUES: list[Any] = [1, 2, "1", "x", "y", None, "sf", 1.5, True, ["sf", "x"]]
#: The kinds of ``datetimes()`` and ``dates()``.
DATETIME_KINDS = ["year", "month", "week", "day", "hour", "minute", "second"]
DATE_KINDS = ["year", "month", "week", "day"]
#: Transforms another branch is adding; generated only when Flash DB has them.
NEW_DATE_PARTS = ["iso_year", "quarter", "week", "iso_week_day"]
NEW_DATETIME_PARTS = ["minute", "second"]


def base_kind(kind: str) -> str:
    """Return the kind without its nullable mark."""
    return kind.rstrip("?")


@dataclass(frozen=True)
class Features:
    """What the Flash DB under test offers beyond the base language (probed at run time)."""

    names: frozenset[str] = frozenset()  # top-level names of flash_db: "Case", "Lower", ...
    transforms: frozenset[str] = frozenset()  # extra lookups: "quarter", "time", ...
    methods: frozenset[str] = frozenset()  # QuerySet methods: "alias", "union", ...
    operators: frozenset[str] = frozenset()  # "^" (Q xor), "%", "**" (on F)


# -- the tree --------------------------------------------------------------------------


def literal(value: Any) -> str:
    """Return Python code for a literal value (the namespaces import what it names)."""
    if isinstance(value, Decimal):
        return f'Decimal("{value}")'
    if isinstance(value, datetime):
        return (
            f"datetime({value.year}, {value.month}, {value.day}, {value.hour}, "
            f"{value.minute}, {value.second}, {value.microsecond}, tzinfo=UTC)"
        )
    if isinstance(value, date):
        return f"date({value.year}, {value.month}, {value.day})"
    if isinstance(value, list):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    if isinstance(value, tuple):
        return "(" + ", ".join(literal(v) for v in value) + ")"
    return repr(value)


@dataclass(frozen=True)
class Mode:
    """How to render a query: as written, or rewritten for one deliberate difference."""

    true_div: bool = False  # spell ``/`` as Django's true division (``* 1.0 /``)
    like_regex: bool = False  # text lookups as regex (case-sensitive / Unicode-folding)
    exists_form: str | None = None  # to-many filter()/exclude() as ``pk__in`` of that model
    #: The calls before the step being rendered that its ``pk__in`` query repeats (the
    #: annotations its conditions may name, and the filters those annotations see).
    exists_prior: str = ""
    sqlite_fold: bool = False  # Django on a SQLite connection whose LOWER/UPPER fold Unicode
    xor_join: str | None = None  # nullable to-one lookups under ^ as ``pk__in`` of that model
    #: With ``xor_join``: only the lookups that reach no to-many relation (a to-many
    #: lookup's row is shared with the call's other lookups, which ``pk__in`` would cut).
    xor_to_one: bool = False
    #: Instead of ``xor_join``: each ``^`` node ORed with a lookup no row matches
    #: through the nullable relation (``publisher_id < 0``), whose vote makes Django's
    #: join promotion take that join back to LEFT OUTER after an ``&`` inside the
    #: ``^`` made it INNER. The to-many rows the operands share stay shared.
    xor_promote: str = ""


PLAIN = Mode()

#: Per model, a lookup through its nullable to-one relation that no row matches
#: (``Mode.xor_promote``): ids are positive.
XOR_PROMOTE = {"Book": "publisher__pk__lt=0"}

#: The tags of a lookup that reaches a to-many relation: its path, or an F() in its value.
TO_MANY = frozenset({"filter:to-many", "F:to-many"})


@dataclass(frozen=True)
class Expr:
    """A value expression: a literal, an ``F()`` or arithmetic (rendered two ways for ``/``)."""

    code: str
    tags: frozenset[str] = frozenset()
    # The same expression with true division spelled out for Django (``* 1.0 /``).
    true_div_code: str | None = None
    # A lookup inside (``filter=Q(...)``, ``When(...)``): prefix, lookup, suffix.
    inner: tuple[str, Leaf, str] | None = None

    def render(self, mode: Mode = PLAIN) -> str:
        """Return the expression's code (rewritten for ``mode`` where it differs)."""
        if self.inner is not None:
            prefix, leaf, suffix = self.inner
            condition = leaf.positional(mode) or leaf.render(mode)
            if mode.exists_form and prefix == "Case(When(" and TO_MANY & leaf.all_tags():
                # Flash DB's rule: the condition is EXISTS over the related rows.
                inner = f"{mode.exists_form}.objects.filter({condition})"
                condition = f'pk__in={inner}.values("pk")'
            return prefix + condition + suffix
        return self.true_div_code if mode.true_div and self.true_div_code else self.code


@dataclass(frozen=True)
class Leaf:
    """One lookup: ``path__lookup=value``."""

    key: str
    value: Expr
    tags: frozenset[str]
    raw: Any = None  # the literal value of a text lookup (for the regex rewrite)

    def positional(self, mode: Mode = PLAIN, negated: bool = False) -> str | None:
        """Return the lookup as a positional expression where ``mode`` rewrites it so.

        ``negated``: the lookup is under an odd number of negations (``exclude()``,
        ``~Q``), where Django's lookup has its NULL rule.
        """
        path, _, lookup = self.key.rpartition("__")
        if mode.like_regex and "F" in self.value.tags and lookup in _CI_LOOKUPS:
            # Django's i-lookups against F() on SQLite are LIKE; spell Flash DB's rule.
            rhs = self.value.render(mode)
            expression = f'{_CI_LOOKUPS[lookup]}(Upper("{path}"), Upper({rhs}))'
            # A lookup expression has none of the NULL rule of Django's negated lookup
            # (NOT (a LIKE b AND a IS NOT NULL AND b IS NOT NULL), b a plain F()):
            # the isnull=False lookups bring it back where the lookup is negated.
            # Django adds the F()'s IS NOT NULL only for a nullable column, not for a
            # NOT NULL one through a nullable relation (publisher__name).
            plain_f = re.fullmatch(r'F\("(\w+)"\)', rhs)
            names = dict.fromkeys([path])
            if plain_f is not None and "F:nullable-field" in self.value.tags:
                names[plain_f.group(1)] = None
            if not negated:
                return expression
            return ", ".join([expression, *(f"{name}__isnull=False" for name in names)])
        return None

    def render(self, mode: Mode = PLAIN) -> str:
        """Return ``key=value``."""
        if mode.like_regex and isinstance(self.raw, str):
            path, _, lookup = self.key.rpartition("__")
            if lookup in LIKE_PATTERNS:
                pattern = LIKE_PATTERNS[lookup].format(re.escape(self.raw))
                flag = "i" if lookup.startswith("i") else ""
                return f"{path}__{flag}regex={pattern!r}"
        return f"{self.key}={self.value.render(mode)}"

    def all_tags(self) -> frozenset[str]:
        """Return the tags of the lookup and its value."""
        return self.tags | self.value.tags


@dataclass(frozen=True)
class Not:
    """``~node``."""

    child: Node


@dataclass(frozen=True)
class Combo:
    """``a & b``, ``a | b`` or ``a ^ b``."""

    op: str
    children: tuple[Node, ...]


@dataclass(frozen=True)
class ExistsNode:
    """``Exists(Related.objects.filter(<link to the outer row>, <lookup>))`` in a ``Q`` tree."""

    model: str  # the related model the subquery reads
    link: str  # the lookup tying it to the outer row: 'book_id=OuterRef("pk")'
    leaf: Leaf  # a lookup on the related model (to-one paths only)

    def render(self, mode: Mode = PLAIN) -> str:
        """Return ``Exists(...)`` (positional arguments before the keyword link)."""
        inner = self.leaf.positional(mode)
        args = f"{inner}, {self.link}" if inner else f"{self.link}, {self.leaf.render(mode)}"
        return f"Exists({self.model}.objects.filter({args}))"

    def all_tags(self) -> frozenset[str]:
        """Return ``Exists`` and the inner lookup's tags (to-one paths: no to-many tag)."""
        return frozenset({"Exists"}) | self.leaf.all_tags()


Node = Leaf | Not | Combo | ExistsNode

#: Exists() subqueries per model: (related model, the lookup tying it to the outer row).
EXISTS_LINKS: dict[str, list[tuple[str, str]]] = {
    "Publisher": [("Book", 'publisher_id=OuterRef("pk")')],
    "Author": [("Book", 'author_id=OuterRef("pk")')],
    "Book": [("Review", 'book_id=OuterRef("pk")'), ("Author", 'pk=OuterRef("author_id")')],
    "Review": [("Book", 'pk=OuterRef("book_id")')],
}


def render_node(node: Node, mode: Mode = PLAIN, in_xor: bool = False, neg: bool = False) -> str:
    """Return code for a ``Q`` tree (``neg``: under an odd number of negations)."""
    if isinstance(node, Leaf):
        code = f"Q({node.positional(mode, neg) or node.render(mode)})"
        tags = node.all_tags()
        if (
            in_xor
            and mode.xor_join
            and "hop:nullable-one" in tags
            and not (mode.xor_to_one and TO_MANY & tags)
        ):
            # Flash DB's rule: a row without the related row is there, its lookup false
            # (Django inner-joins a nullable relation under ^, dropping the row).
            plain = f"Q({node.positional(mode) or node.render(mode)})"
            inner = f"{mode.xor_join}.objects.filter({plain})"
            return f'Q(pk__in={inner}.values("pk"))'
        return code
    if isinstance(node, ExistsNode):
        return node.render(mode)
    if isinstance(node, Not):
        return f"~{render_node(node.child, mode, in_xor, not neg)}"
    xor = in_xor or node.op == "^"
    parts = (render_node(c, mode, xor, neg) for c in node.children)
    code = "(" + f" {node.op} ".join(parts) + ")"
    if node.op == "^" and not in_xor and mode.xor_promote:
        return f"({code} | Q({mode.xor_promote}))"
    return code


def node_tags(node: Node, neg: bool = False) -> frozenset[str]:
    """Return the tags of a ``Q`` tree; a lookup under negation also gets ``neg:`` tags."""
    if isinstance(node, Leaf):
        tags = node.all_tags()
        return tags | {f"neg:{t}" for t in tags} if neg else tags
    if isinstance(node, ExistsNode):
        tags = node.all_tags()
        return tags | {f"neg:{t}" for t in tags} if neg else tags
    if isinstance(node, Not):
        return node_tags(node.child, not neg) | {"Q~"}
    return frozenset({f"Q{node.op}"}).union(*(node_tags(c, neg) for c in node.children))


def _and_operands(nodes: tuple[Node, ...]) -> list[Node]:
    """Return ``nodes`` with each top-level ``a & b`` split into its operands."""
    out: list[Node] = []
    for node in nodes:
        if isinstance(node, Combo) and node.op == "&":
            out.extend(_and_operands(node.children))
        else:
            out.append(node)
    return out


def _args(items: list[tuple[Node, bool]], mode: Mode, neg: bool = False) -> str:
    """Return filter() arguments: Q trees (and rewritten lookups) first, then keywords."""
    positional, keywords = [], []
    for node, is_q in items:
        if is_q:
            positional.append(render_node(node, mode, neg=neg))
        elif isinstance(node, Leaf) and (p := node.positional(mode, neg)):
            positional.append(p)
        elif isinstance(node, Leaf):
            keywords.append(node.render(mode))
    return ", ".join(positional + _unique_keywords(keywords))


def _unique_keywords(keywords: list[str]) -> list[str]:
    """Return ``key=value`` arguments; a key a rewrite made twice goes in a ``Q()``.

    ``name__iendswith=..., name__iregex=...`` both become ``name__iregex`` in the
    regex spelling of the SQLite text rule; one call cannot repeat a keyword.
    """
    seen: set[str] = set()
    out = []
    for keyword in keywords:
        key = keyword.partition("=")[0]
        out.append(keyword if key not in seen else f"Q({keyword})")
        seen.add(key)
    return [k for k in out if k.startswith("Q(")] + [k for k in out if not k.startswith("Q(")]


@dataclass(frozen=True)
class Step:
    """One builder call."""

    method: str  # filter, exclude, annotate, alias, order_by, distinct, values, values_list, slice
    nodes: tuple[Node, ...] = ()  # filter/exclude: positional Q objects
    leaves: tuple[Leaf, ...] = ()  # filter/exclude: keyword lookups
    named: tuple[tuple[str, Expr], ...] = ()  # annotate/alias
    names: tuple[str, ...] = ()  # order_by/values/values_list
    flat: bool = False
    bounds: tuple[int, int] = (0, 0)
    tags: frozenset[str] = frozenset()
    inner: tuple[Step, ...] = ()  # union/intersection/difference: the other QuerySet's steps
    exprs: tuple[Expr, ...] = ()  # values_list(): expressions after the names

    def render(self, mode: Mode = PLAIN) -> str:
        """Return ``.method(...)`` (or ``[a:b]``)."""
        if self.method in ("filter", "exclude"):
            neg = self.method == "exclude"
            args = [render_node(n, mode, neg=neg) for n in self.nodes]
            args += [p for leaf in self.leaves if (p := leaf.positional(mode, neg))]
            args += _unique_keywords(
                [leaf.render(mode) for leaf in self.leaves if not leaf.positional(mode)]
            )
            if mode.exists_form and TO_MANY & self.all_tags():
                # The conditions that walk a to-many path (or name one in F()) go into
                # one EXISTS (pk__in); the others (own columns, annotations) stay in the
                # outer query.
                # The operands of a top-level & are conditions of their own: one on an
                # annotation stays on the outer query's rows (annotate() through a to-many
                # relation has a row per related row), as in Flash DB.
                items = [(n, True) for n in _and_operands(self.nodes)]
                items += [(leaf, False) for leaf in self.leaves]
                many = [i for i in items if TO_MANY & node_tags(i[0])]
                rest = [i for i in items if i not in many]
                inner = f"{mode.exists_form}.objects{mode.exists_prior}.filter({_args(many, mode)})"
                exists = f'pk__in={inner}.values("pk")'
                outer = _args(rest, mode, neg)
                return f".{self.method}({outer + ', ' if outer else ''}{exists})"
            return f".{self.method}({', '.join(args)})"
        if self.method in ("annotate", "alias"):
            args = [f"{k}={e.render(mode)}" for k, e in self.named]
            return f".{self.method}({', '.join(args)})"
        if self.method in ("order_by", "values"):
            return f".{self.method}({', '.join(repr(n) for n in self.names)})"
        if self.method == "values_list":
            flat = ", flat=True" if self.flat else ""
            args = [repr(n) for n in self.names] + [e.render(mode) for e in self.exprs]
            return f".values_list({', '.join(args)}{flat})"
        if self.method in ("union", "intersection", "difference"):
            other = _render_steps(self.inner, mode) or ".all()"
            keep = ", all=True" if self.flat else ""
            return f".{self.method}({self.names[0]}.objects{other}{keep})"
        if self.method in ("dates", "datetimes"):
            order = f", order={self.names[2]!r}" if self.names[2:] == ("DESC",) else ""
            return f".{self.method}({self.names[0]!r}, {self.names[1]!r}{order})"
        if self.method == "distinct":
            return ".distinct()"
        if self.method == "slice":
            return f"[{self.bounds[0]}:{self.bounds[1]}]"
        raise AssertionError(self.method)

    def all_tags(self) -> frozenset[str]:
        """Return the tags of this call and everything in it."""
        tags = self.tags | {self.method}
        neg = self.method == "exclude"
        for n in self.nodes:
            tags |= node_tags(n, neg)
        for leaf in self.leaves:
            tags |= node_tags(leaf, neg)
        if self.method == "filter" and "neg:filter:to-many" in tags:
            tags |= {"filter~to-many"}
        for e in (*(e for _, e in self.named), *self.exprs):
            tags |= e.tags
        for step in self.inner:
            tags |= step.all_tags()
        return tags


def _render_steps(steps: tuple[Step, ...], mode: Mode) -> str:
    """Return the calls of ``steps``; a rewritten ``pk__in`` query repeats the calls before.

    Those are the filter()/exclude()/annotate()/alias() calls up to the rewritten one
    (its conditions may name their annotations), until the rows change shape.
    """
    rendered = []
    prior: str | None = ""  # None once the rows changed shape (values(), a slice, ...)
    for step in steps:
        code = step.render(replace(mode, exists_prior=prior or ""))
        rendered.append(code)
        if prior is None:
            continue
        if step.method in ("filter", "exclude", "annotate", "alias"):
            prior += code
        elif step.method not in ("order_by", "distinct"):
            prior = None
    return "".join(rendered)


@dataclass(frozen=True)
class Terminal:
    """How the QuerySet is run: rows, count, exists, first or aggregate."""

    kind: str
    named: tuple[tuple[str, Expr], ...] = ()

    def all_tags(self) -> frozenset[str]:
        """Return the terminal's tags."""
        tags = frozenset({f"terminal:{self.kind}"})
        for _, e in self.named:
            tags |= e.tags
        return tags


@dataclass(frozen=True)
class Query:
    """A generated query: ``model.objects`` + steps, run by the terminal."""

    model: str
    steps: tuple[Step, ...]
    terminal: Terminal
    #: Whether the rows come in one defined order (compare lists, not multisets).
    ordered: bool = False

    def chain(self, mode: Mode = PLAIN) -> str:
        """Return the QuerySet expression."""
        return f"{self.model}.objects{_render_steps(self.steps, mode) or '.all()'}"

    def attrs(self) -> tuple[str, ...]:
        """Return the annotation names set on model instances (read back from each row)."""
        return tuple(k for s in self.steps if s.method == "annotate" for k, _ in s.named)

    def tags(self) -> frozenset[str]:
        """Return every tag of the query."""
        tags = set(self.terminal.all_tags())
        # Django's documented wrong results: an aggregate over rows that another
        # to-many join multiplied. Collect the joins and who owns them.
        terminal_aggs = [e for _, e in self.terminal.named]
        aggregates: list[Expr] = list(terminal_aggs)
        filter_hops: set[str] = set()
        other_joins = 0
        deep_filter = False
        for s in self.steps:
            step_tags = s.all_tags()
            tags |= step_tags
            if s.method in ("values", "values_list", "order_by"):
                if any(_is_to_many(self.model, n.lstrip("-")) for n in s.names):
                    tags.add(f"{s.method}:to-many")
                    other_joins += 1
                elif any({"F:to-many", "when:to-many"} & e.tags for e in s.exprs):
                    other_joins += 1  # values_list(Least("books__x", ...)): joined and grouped
            elif s.method in ("filter", "exclude"):
                hops = {t[4:] for t in step_tags if t.startswith("via:")}
                if "F:to-many" in step_tags:  # an F() through a to-many relation joins it too
                    hops.add("F")
                if hops and filter_hops:  # another filter() on a to-many path: a new join
                    other_joins += 1
                if hops and any(e not in terminal_aggs for e in aggregates):
                    # a to-many filter after an aggregate annotate(): Django joins anew
                    other_joins += 1
                filter_hops |= hops
                if hops and "hop:many-many" in step_tags:
                    # books__reviews__x: the second to-many join multiplies the rows
                    # an aggregate over the first one (Count("books")) counts.
                    deep_filter = True
            elif s.method in ("annotate", "alias"):
                for _, e in s.named:
                    if any(t.startswith("agg:") for t in e.tags):
                        aggregates.append(e)
                    elif {"F:to-many", "when:to-many"} & e.tags:
                        other_joins += 1
        averaged = {k for s in self.steps for k, e in s.named if "agg:float" in e.tags}
        if any(
            s.method == "order_by" and any(n.lstrip("-") in averaged for n in s.names)
            for s in self.steps
        ):
            tags.add("order:float-aggregate")
        grouped = [s for s in self.steps if s.method == "values"]
        if grouped and "group-by" in tags:
            allowed = set(grouped[0].names) | {k for s in self.steps for k, _ in s.named}
            for s in self.steps:
                if s.method == "order_by" and any(n.lstrip("-") not in allowed for n in s.names):
                    tags.add("order-outside-group")
        if aggregates:
            agg_hops = [t[4:] for e in aggregates for t in e.tags if t.startswith("via:")]
            plain = len(agg_hops) < len(aggregates)  # an aggregate of the row's own columns
            if (
                other_joins
                or len(filter_hops | set(agg_hops)) >= 2
                or (agg_hops and len(aggregates) >= 2)
                or (filter_hops and plain)
                or (
                    deep_filter
                    and any(
                        "hop:many-many" not in e.tags
                        for e in aggregates
                        if any(t.startswith("via:") for t in e.tags)
                    )
                )
            ):
                tags.add("multi-join-aggregate")
        return frozenset(tags)

    def shape(self) -> str:
        """Return "model", "dict", "tuple" or "flat": what one row is."""
        for s in reversed(self.steps):
            if s.method in ("dates", "datetimes"):
                return "flat"
            if s.method == "values":
                return "dict"
            if s.method == "values_list":
                return "flat" if s.flat else "tuple"
        return "model"

    def django_code(self, mode: Mode = PLAIN) -> str:
        """Return the Django spelling of the whole query (the reproduction)."""
        chain = self.chain(mode)
        kind = self.terminal.kind
        if kind == "rows":
            return f"list({chain})"
        if kind == "aggregate":
            args = ", ".join(f"{k}={e.render(mode)}" for k, e in self.terminal.named)
            return f"{chain}.aggregate({args})"
        return f"{chain}.{kind}()"

    def flash_code(self) -> str:
        """Return the Flash DB spelling of the whole query (the reproduction)."""
        chain = self.chain()
        kind = self.terminal.kind
        if kind == "rows":
            return f"await {chain}.fetch(db)"
        if kind == "aggregate":
            args = ", ".join(f"{k}={e.code}" for k, e in self.terminal.named)
            return f"await {chain}.aggregate(db, {args})"
        return f"await {chain}.{kind}(db)"

    def size(self) -> int:
        """Return a measure of the query's size (the shrinker makes it smaller)."""
        return len(self.django_code())


# -- value pools from the data set ------------------------------------------------------


def _pools() -> dict[tuple[str, str], list[Any]]:
    data = rows()
    pools: dict[tuple[str, str], list[Any]] = {}
    for model, table in TABLE_OF.items():
        for name in FIELDS[model]:
            pools[model, name] = [r[name] for r in data[table]]
    return pools


POOLS = _pools()


#: Functions the generator may use: (names Flash DB must have, argument kinds, note).
_FUNCTIONS: list[tuple[tuple[str, ...], set[str], str]] = [
    (("Lower",), {"text"}, ""),
    (("Upper",), {"text"}, ""),
    (("Length",), {"text"}, ""),
    (("Trim",), {"text"}, ""),
    (("Concat", "Value"), {"text"}, ""),
    (("Substr",), {"text"}, ""),
    (("Replace", "Value"), {"text"}, ""),
    (("Coalesce", "Value"), {"int"}, ""),
    (("Greatest", "Value"), {"int"}, ""),
    (("Least", "Value"), {"int"}, ""),
    (("NullIf", "Value"), {"int"}, ""),
    (("Abs",), {"int", "float"}, ""),
    (("Round",), {"float"}, ""),
    (("Extract",), {"date", "datetime"}, ""),
    (("Trunc",), {"date", "datetime"}, ""),
    (("TruncDate",), {"datetime"}, ""),
    (("Case", "When", "Value"), {"int"}, ""),
    *[(("Cast",), set(CAST_TARGETS), "")] * 3,  # new: more often than the others
]


# -- the generator ----------------------------------------------------------------------


@dataclass
class _Scope:
    """What later steps may refer to: annotation names and their kinds."""

    annotations: dict[str, str] = field(default_factory=dict)
    aggregate_annotations: set[str] = field(default_factory=set)
    to_many_rows: bool = False  # a to-many hop in values/order_by/annotate multiplies rows
    values_fields: tuple[str, ...] | None = None
    aliases: set[str] = field(default_factory=set)  # alias() names: not in values()


class Generator:
    """Make random queries from a seed; ``features`` gates the names Flash DB may lack."""

    def __init__(self, seed: int, features: Features | None = None) -> None:
        self.rng = random.Random(seed)
        self.features = features or Features()

    # paths ---------------------------------------------------------------------------

    def path(
        self, model: str, max_hops: int = 2, kinds: set[str] | None = None, to_one: bool = False
    ) -> tuple[str, str, str, list[str]]:
        """Return (path, target model, field kind, hop kinds) of a random field path."""
        rng = self.rng
        for _ in range(50):
            parts: list[str] = []
            hops: list[str] = []
            current = model
            while len(hops) < max_hops and rng.random() < 0.4:
                choices = [
                    (n, th)
                    for n, th in RELATIONS[current].items()
                    if not to_one or th[1] in ("one", "one?")
                ]
                if not choices:
                    break
                name, (target, hop) = rng.choice(choices)
                parts.append(name)
                hops.append(hop)
                current = target
            fname, kind = rng.choice(list(FIELDS[current].items()))
            if kinds is not None and base_kind(kind) not in kinds:
                continue
            if fname == "id" and parts and rng.random() < 0.5:
                fname = "pk"
            parts.append(fname)
            if fname.endswith("_id") and kind.endswith("?"):
                hops.append("fk?")
            return "__".join(parts), current, kind, hops
        return "id", model, "int", []

    @staticmethod
    def hop_tags(hops: list[str], where: str) -> frozenset[str]:
        """Return tags naming the relation hops of a path used in ``where``."""
        tags = set()
        for hop in hops:
            if hop == "fk?":
                # A nullable foreign key's own column (publisher_id): Django resolves it
                # through the relation, whose join a lookup beside it may make INNER.
                tags.add("hop:nullable-one")
                continue
            h = "many" if hop in ("many", "m2m") else "one"
            tags.add(f"hop:{h}")
            if hop == "m2m":
                tags.add("hop:m2m")
            if hop == "one?":
                tags.add("hop:nullable-one")
        if any(h in ("many", "m2m") for h in hops):
            tags.add(f"{where}:to-many")
        if sum(h in ("many", "m2m") for h in hops) >= 2:
            tags.add("hop:many-many")
        return frozenset(tags)

    # values ---------------------------------------------------------------------------

    def sample(self, model: str, fname: str, kind: str) -> Any:
        """Return a value for comparisons with a field: mostly one the data holds."""
        rng = self.rng
        pool = [
            v
            for v in POOLS.get((model, "id" if fname == "pk" else fname), [])
            if isinstance(
                v, int | float | Decimal | str | date | dict | list
            )  # not None, JSON null
        ]
        k = base_kind(kind)
        if pool and rng.random() < 0.75:
            value = rng.choice(pool)
        elif k == "int":
            value = rng.choice([0, 1, -1, 7, 100, 2**31 - 1, 30])  # 2**31 - 1: the integer's edge
        elif k == "float":
            value = rng.choice([0.0, 2.5, 4.75, -1.0, 3.3])
        elif k == "decimal":
            value = Decimal(rng.choice(["0.00", "12.50", "12.5", "99.95", "100.00"]))
        elif k == "text":
            value = rng.choice(["alpha", "ΟΔΟΣ", "ς", "ß", "%", "_", "zzz", ""])
        elif k == "bool":
            value = rng.random() < 0.5
        elif k == "date":
            value = date(2020, 1, 1) + timedelta(days=rng.randrange(-900, 900))
        elif k == "json":
            value = rng.choice([v for v in JSON_VALUES if isinstance(v, dict | list | str | bool)])
        else:
            value = BASE_TIME + timedelta(days=rng.randrange(-400, 400), microseconds=1)
        if k == "text" and isinstance(value, str) and rng.random() < 0.5:
            value = self.text_variant(value)
        return value

    def text_variant(self, text: str) -> str:
        """Return a case variant or a piece of ``text``."""
        rng = self.rng
        choice = rng.randrange(6)
        if choice == 0:
            return text.upper()
        if choice == 1:
            return text.lower()
        if choice == 2:
            return text.swapcase()
        if not text:
            return text
        i = rng.randrange(len(text))
        j = rng.randrange(i, len(text) + 1)
        return text[:j] if choice == 3 else text[i:] if choice == 4 else text[i:j]

    def regex(self, model: str, fname: str) -> str:
        """Return a pattern both POSIX and Python read the same way."""
        text = self.sample(model, fname, "text")
        word = re.sub(r"[^A-Za-z0-9 ]", "", str(text))[:5] or "a"
        return self.rng.choice([f"^{word}", f"{word}$", word, f"{word[:1]}.", f"[ab]{word[-1:]}"])

    # F expressions -----------------------------------------------------------------------

    def f_expr(self, model: str, kind: str, where: str) -> Expr | None:
        """Return ``F(path)`` (maybe with arithmetic) of a field comparable with ``kind``."""
        rng = self.rng
        k = base_kind(kind)
        kinds = NUMERIC if k in NUMERIC else {k}
        path, _, fkind, hops = self.path(model, max_hops=1, kinds=kinds)
        if k in NUMERIC and base_kind(fkind) != k and base_kind(fkind) != "int":
            # Django refuses mixed float/decimal arithmetic; comparing them is fine.
            pass
        tags = {"F"} | self.hop_tags(hops, "F")
        if fkind.endswith("?") or "hop:nullable-one" in tags:
            tags.add("F:nullable")
        if fkind.endswith("?"):
            tags.add("F:nullable-field")  # the column itself (not only its relation)
        code = f'F("{path}")'
        div_code = None
        if k in NUMERIC and rng.random() < 0.4:
            op = rng.choice(["+", "-", "*", "/"])
            n = rng.choice([1, 2, 3])
            tags.add(f"F{op}")
            if op == "/":
                div_code = f"({code} * 1.0 / {n})"
            code = f"({code} {op} {n})"
            extra_ops = [o for o in ("%", "**") if o in self.features.operators]
            if extra_ops and rng.random() < 0.2:
                op2 = rng.choice(extra_ops)
                tags.add(f"F{op2}")
                code = f"({code} {op2} 2)"
                div_code = None if div_code is None else f"({div_code} {op2} 2.0)"
        return Expr(code, frozenset(tags), div_code)

    # database functions (generated only where Flash DB has them) ------------------------

    def function(self, model: str) -> tuple[Expr, str]:
        """Return a database function, ``Case``/``When`` or ``Value`` expression and its kind."""
        rng = self.rng
        have = self.features.names
        makers = [m for m in _FUNCTIONS if all(n in have for n in m[0])]
        if not makers:
            return Expr('F("id")'), "int"
        names, kinds, _ = rng.choice(makers)
        path, _, kind, hops = self.path(model, max_hops=1, kinds=kinds)
        if base_kind(kind) not in kinds:  # the model has no such column near it
            return Expr('F("id")'), "int"
        tags = {f"func:{n}" for n in names} | self.hop_tags(hops, "F")
        p = f'"{path}"'
        k = base_kind(kind)
        name = names[0]
        if name in ("Lower", "Upper", "Length", "Trim", "Abs", "TruncDate"):
            code, out = (
                f"{name}({p})",
                {"Length": "int", "Abs": k, "TruncDate": "date"}.get(name, "text"),
            )
        elif name == "Concat":
            code, out = f'Concat({p}, Value("-"), {p})', "text"
        elif name == "Substr":
            code, out = f"Substr({p}, {rng.choice([1, 2])}, {rng.choice([1, 3])})", "text"
        elif name == "Replace":
            code, out = f'Replace({p}, Value("a"), Value("ß"))', "text"
        elif name == "Coalesce":
            other = rng.choice(["Value(0)", p])
            code, out = f"Coalesce({p}, {other})", k
        elif name in ("Greatest", "Least"):
            code, out = f"{name}({p}, Value({rng.choice([0, 5, 100])}))", k
        elif name == "NullIf":
            code, out = f"NullIf({p}, Value({rng.choice([0, 1, 5])}))", k
        elif name == "Round":
            code, out = f"Round({p})", k
        elif name == "Extract":
            part = rng.choice(["year", "month", "day", "quarter", "week_day"])
            code, out = f'Extract({p}, "{part}")', "int"
        elif name == "Trunc":
            part = rng.choice(["year", "month", "day"])
            code, out = f'Trunc({p}, "{part}")', k
        elif name == "Cast":
            target, out = rng.choice(CAST_TARGETS[k])
            code = f"Cast({p}, {target})"
            tags.add(f"cast:{k}->{out}")
        else:  # Case / When / Value (a to-many path in When() is a join in Django)
            leaf = self.leaf(model, to_one=rng.random() < 0.6)
            tags |= leaf.all_tags()
            if TO_MANY & leaf.all_tags():
                tags.add("when:to-many")  # Django: a row per related row; Flash DB: EXISTS
            suffix = f", then=Value({rng.choice([1, 2])})), default=Value({rng.choice([0, 3])}))"
            return Expr(
                f"Case(When({leaf.render()}{suffix}",
                frozenset(tags),
                inner=("Case(When(", leaf, suffix),
            ), "int"
        return Expr(code, frozenset(tags)), out

    def cast_to(self, model: str, kind: str) -> Expr | None:
        """Return ``Cast(path, type)`` of a field near ``model`` cast to ``kind``, if any."""
        sources = {src for src, targets in CAST_TARGETS.items() if kind in {t[1] for t in targets}}
        if not sources:
            return None
        path, _, src, hops = self.path(model, max_hops=1, kinds=sources, to_one=True)
        if base_kind(src) not in sources:
            return None
        target = next(t for t, out in CAST_TARGETS[base_kind(src)] if out == kind)
        tags = {"func:Cast", f"cast:{base_kind(src)}->{kind}"} | self.hop_tags(hops, "F")
        return Expr(f'Cast("{path}", {target})', frozenset(tags))

    # lookups ---------------------------------------------------------------------------------

    def leaf(
        self, model: str, allow_annotations: dict[str, str] | None = None, to_one: bool = False
    ) -> Leaf:
        """Return a random lookup on ``model`` (or on an annotation in scope)."""
        rng = self.rng
        text = {k: v for k, v in (allow_annotations or {}).items() if v == "text"}
        if text and rng.random() < 0.2:
            name = rng.choice(list(text))
            op = rng.choice(["exact", "icontains", "startswith", "gt", "isnull"])
            word = rng.choice(
                ["alpha", "ALPHA", "a", "\u039f", "\u03c2", "", "x"]
            )  # Greek capital omicron, final sigma
            lookup_value = (rng.random() < 0.5) if op == "isnull" else word
            text_tags = {"annotation-lookup", f"lookup:{op}", "annotation:text"}
            if op in LIKE_PATTERNS:
                # LIKE in Django on SQLite: the documented text difference, proved by
                # the regex rewrite as for a field's lookups.
                text_tags.add("text-lookup")
                return Leaf(f"{name}__{op}", Expr(literal(word)), frozenset(text_tags), word)
            return Leaf(f"{name}__{op}", Expr(literal(lookup_value)), frozenset(text_tags))
        numeric = {k: v for k, v in (allow_annotations or {}).items() if v in NUMERIC}
        if numeric and rng.random() < 0.3:
            name, kind = rng.choice(list(numeric.items()))
            op = rng.choice(["exact", "gt", "gte", "lt", "lte", "in", "isnull"])
            value: Any
            if op == "in":
                value = [rng.choice([0, 1, 2, 3, 5]) for _ in range(rng.randrange(1, 4))]
            elif op == "isnull":
                value = rng.random() < 0.5
            else:
                value = rng.choice([0, 1, 2, 3, 5, 100])
            return Leaf(
                f"{name}__{op}",
                Expr(literal(value)),
                frozenset({"annotation-lookup", f"lookup:{op}"}),
            )
        path, target, kind, hops = self.path(model, to_one=to_one)
        fname = path.rsplit("__", 1)[-1]
        k = base_kind(kind)
        tags = set(self.hop_tags(hops, "filter")) | {f"kind:{k}"}
        if any(h in ("many", "m2m") for h in hops):
            tags.add(f"via:{path.split('__')[0]}")
        nullable = kind.endswith("?") or any(h != "one" for h in hops)
        if kind.endswith("?"):
            tags.add("nullable")
        choices = (
            ["exact", "in", "isnull"]
            if k in ("bool", "json")
            else ["exact", "gt", "gte", "lt", "lte", "in", "range", "isnull"]
        )
        if fname.endswith("_id"):
            choices.remove("range")  # Django has no range on a foreign key
        if k == "text":
            choices += TEXT_LOOKUPS[1:] * 2 + ["regex", "iregex"]
        if k == "json":
            choices += ["has_key", "has_keys", "has_any_keys", "contains", "contained_by"]
            choices += ["key"] * 4
        if k in ("date", "datetime"):
            choices += ["part"] * 3
            if k == "datetime":
                choices.append("date")
        op = rng.choice(choices)
        if op == "part":
            parts = DATE_PARTS if k == "date" else DATETIME_PARTS
            parts = parts + [
                p
                for p in (NEW_DATE_PARTS + (NEW_DATETIME_PARTS if k == "datetime" else []))
                if p in self.features.transforms
            ]
            part = rng.choice(parts)
            sub = rng.choice(["exact", "exact", "gt", "lte", "in"])
            sample = self.sample(target, fname, kind)
            val = _part(sample, part)
            tags |= {f"transform:{part}", f"lookup:{sub}"}
            value = [val, val + 1] if sub == "in" else val
            key = f"{path}__{part}" + ("" if sub == "exact" else f"__{sub}")
            return Leaf(key, Expr(literal(value)), frozenset(tags))
        if op == "date":
            sample = self.sample(target, fname, kind)
            tags.add("transform:date")
            return Leaf(f"{path}__date", Expr(literal(sample.date())), frozenset(tags))
        if op == "key":
            return self.json_key_leaf(path, tags)
        tags.add(f"lookup:{op}")
        if k == "json" and op in ("contains", "contained_by"):
            # PostgreSQL's jsonb @> / <@ (Django refuses them on SQLite).
            fragments = JSON_FRAGMENTS if op == "contains" else JSON_WHOLES
            value = rng.choice(fragments)
            return Leaf(f"{path}__{op}", Expr(literal(value)), frozenset(tags))
        if op.startswith("has_"):
            keys = ["a", "b", "tags", "nested", "sf", "0", "z"]
            value = rng.choice(keys) if op == "has_key" else rng.sample(keys, rng.randrange(1, 4))
            return Leaf(f"{path}__{op}", Expr(literal(value)), frozenset(tags))
        if op == "isnull":
            value = rng.random() < 0.5
            if nullable:
                tags.add("isnull-nullable")
            if "filter:to-many" in tags:
                tags.add("isnull:to-many")
            return Leaf(f"{path}__isnull", Expr(literal(value)), frozenset(tags))
        if op in ("regex", "iregex"):
            return Leaf(f"{path}__{op}", Expr(literal(self.regex(target, fname))), frozenset(tags))
        if op == "in":
            values = [self.sample(target, fname, kind) for _ in range(rng.randrange(0, 4))]
            if rng.random() < 0.15:
                values.append(None)
                tags.add("in:None")
            if all(v is None for v in values):
                tags.add("in:empty")  # Django drops None from an IN: [None] is empty too
            return Leaf(f"{path}__in", Expr(literal(values)), frozenset(tags))
        if op == "range":
            a, b = sorted(
                [self.sample(target, fname, kind), self.sample(target, fname, kind)], key=_sort_key
            )
            return Leaf(f"{path}__range", Expr(literal((a, b))), frozenset(tags))
        key = path if op == "exact" and rng.random() < 0.5 else f"{path}__{op}"
        if "Cast" in self.features.names and op != "exact" and rng.random() < 0.1:
            cast = self.cast_to(model, base_kind(kind))
            if cast is not None:
                return Leaf(key, cast, frozenset(tags))
        if k not in ("bool", "json") and rng.random() < 0.25:
            f = self.f_expr(model, kind, "filter")
            if f is not None:
                if k == "text" and "F:to-many" not in f.tags:
                    tags.add("F:text-lookup")
                if k == "text" and op != "exact":
                    tags.add("text-lookup")
                return Leaf(key, f, frozenset(tags))
        now = k == "datetime" and op in ("lt", "gt") and "Now" in self.features.names
        if now and rng.random() < 0.15:
            return Leaf(key, Expr("Now()", frozenset({"func:Now"})), frozenset(tags))
        if op == "exact" and nullable and rng.random() < 0.2:
            tags.add("value:None")
            if "filter:to-many" in tags:
                tags.add("None:to-many")
            return Leaf(key, Expr("None"), frozenset(tags))
        value = self.sample(target, fname, kind)
        if k == "text" and op != "exact":
            tags.add("text-lookup")
        if k == "text" and set(str(value)) & set("σςΣ"):
            tags.add("value:sigma")
        raw = value if k == "text" else None
        return Leaf(key, Expr(literal(value)), frozenset(tags), raw)

    def json_key_leaf(self, path: str, tags: set[str]) -> Leaf:
        """Return a lookup on keys of a JSON field: ``extra__tags__0="sf"``, ``extra__a__gt=1``."""
        rng = self.rng
        keys = rng.choice(JSON_KEY_PATHS)
        lookup = rng.choice(
            # Not "contains": on a key it is JSON containment in Django (PostgreSQL only).
            ["exact"] * 3
            + ["isnull", "in", "gt", "gte", "lt", "lte", "regex"]
            + [name for name in TEXT_LOOKUPS[1:] if name != "contains"]
        )
        tags |= {"json-key", f"lookup:{lookup}"} | ({"json-key:path"} if len(keys) > 1 else set())
        key = f"{path}__{'__'.join(keys)}"
        raw = None
        value: Any
        if lookup == "isnull":
            value = rng.random() < 0.5
        elif lookup == "in":
            value = rng.sample(JSON_KEY_VALUES, rng.randrange(1, 4))
        elif lookup in ("gt", "gte", "lt", "lte"):
            value = rng.choice([0, 1, 2, 1.5, "1", "x"])
        elif lookup == "regex":
            value = rng.choice(["^s", "x$", "^[12]", "a"])
        elif lookup == "exact":
            value = rng.choice(JSON_KEY_VALUES)
            if value is None:
                tags.add("value:None")
        else:
            value = raw = rng.choice(["x", "X", "s", "SF", "1", "y", "fantasy"])
            tags.add("text-lookup")
        if lookup != "exact" or rng.random() < 0.5:
            key += f"__{lookup}"
        return Leaf(key, Expr(literal(value)), frozenset(tags), raw)

    def node(self, model: str, depth: int, scope: _Scope) -> Node:
        """Return a random ``Q`` tree."""
        rng = self.rng
        if model in EXISTS_LINKS and rng.random() < 0.06:
            related, link = rng.choice(EXISTS_LINKS[model])
            return ExistsNode(related, link, self.leaf(related, to_one=True))
        if depth <= 0 or rng.random() < 0.45:
            return self.leaf(model, scope.annotations if not scope.values_fields else None)
        if rng.random() < 0.25:
            return Not(self.node(model, depth - 1, scope))
        ops = ["&", "|"] + (["^"] if "^" in self.features.operators else [])
        return Combo(
            rng.choice(ops),
            tuple(self.node(model, depth - 1, scope) for _ in range(rng.randrange(2, 4))),
        )

    def filter_step(self, model: str, scope: _Scope) -> Step:
        """Return a ``filter()`` or ``exclude()`` call."""
        rng = self.rng
        method = "exclude" if rng.random() < 0.3 else "filter"
        nodes = tuple(self.node(model, 2, scope) for _ in range(rng.randrange(0, 2)))
        leaves: dict[str, Leaf] = {}
        for _ in range(rng.randrange(0 if nodes else 1, 3)):
            leaf = self.leaf(model, scope.annotations if not scope.values_fields else None)
            leaves.setdefault(leaf.key, leaf)
        return Step(method, nodes=nodes, leaves=tuple(leaves.values()))

    # aggregates -------------------------------------------------------------------------------

    def aggregate(self, model: str, scope: _Scope) -> tuple[Expr, str]:
        """Return an aggregate expression and its result kind."""
        rng = self.rng
        func = rng.choice(["Count", "Count", "Sum", "Avg", "Min", "Max"])
        kinds = (
            {"int", "float", "decimal"}
            if func in ("Sum", "Avg")
            else {"int", "float", "decimal", "text", "date", "datetime"}
        )
        if func == "Count":
            kinds |= {"bool"}
        path, _, kind, hops = self.path(model, kinds=kinds)
        if func == "Count" and rng.random() < 0.3 and RELATIONS[model]:
            path = rng.choice(list(RELATIONS[model]))
            hop = RELATIONS[model][path][1]
            hops = [hop]
        tags = {f"agg:{func}"} | self.hop_tags(hops, "agg")
        if any(h in ("many", "m2m") for h in hops):
            tags.add(f"via:{path.split('__')[0]}")
        args = [f'"{path}"']
        if rng.random() < 0.25 and func in ("Count", "Sum", "Avg"):
            args.append("distinct=True")
            tags.add("agg:distinct")
        inner = None
        if rng.random() < 0.2:
            leaf = self.leaf(model)
            inner = (f"{func}({', '.join(args)}, filter=Q(", leaf, "))")
            args.append(f"filter=Q({leaf.render()})")
            tags |= {"agg:filter"} | leaf.all_tags()
        if func == "Avg" and base_kind(kind) == "decimal":
            tags.add("agg:Avg-decimal")
        if func == "Avg" or (func == "Sum" and base_kind(kind) in ("float", "decimal")):
            tags.add("agg:float")  # a value in floating point on SQLite (ties may round apart)
        out = "int" if func == "Count" else ("float" if func == "Avg" else base_kind(kind))
        return Expr(f"{func}({', '.join(args)})", frozenset(tags), inner=inner), out

    # whole queries ------------------------------------------------------------------------------

    def query(self) -> Query:
        """Return a random query."""
        rng = self.rng
        model = rng.choice(["Book", "Book", "Author", "Review", "Publisher", "Tag"])
        special = self.features.methods & {
            "union",
            "intersection",
            "difference",
            "dates",
            "datetimes",
        }
        if special and rng.random() < 0.08:
            return self.special_query(model, sorted(special))
        scope = _Scope()
        steps: list[Step] = []
        attrs: list[str] = []
        for _ in range(rng.randrange(0, 3)):
            steps.append(self.filter_step(model, scope))
        shape_roll = rng.random()
        if shape_roll < 0.25:
            # values(...).annotate(aggregate): GROUP BY
            names = self.value_names(model, scope)
            steps.append(Step("values", names=names, tags=frozenset({"values"})))
            scope.values_fields = names
            if rng.random() < 0.7:
                agg, kind = self.aggregate(model, scope)
                steps.append(Step("annotate", named=(("n", agg),), tags=frozenset({"group-by"})))
                scope.annotations["n"] = kind
                scope.aggregate_annotations.add("n")
                if rng.random() < 0.4 and kind in NUMERIC:
                    steps.append(
                        Step(
                            "filter",
                            leaves=(
                                Leaf(
                                    "n__gt",
                                    Expr(literal(rng.choice([0, 1, 2]))),
                                    frozenset({"having"}),
                                ),
                            ),
                        )
                    )
        elif shape_roll < 0.55:
            for i in range(rng.randrange(1, 3)):
                name = f"a{i}"
                if rng.random() < 0.7:
                    agg, kind = self.aggregate(model, scope)
                    scope.aggregate_annotations.add(name)
                elif self.features.names and rng.random() < 0.6:
                    agg, kind = self.function(model)
                    if {"F:to-many", "when:to-many"} & agg.tags:
                        scope.to_many_rows = True
                else:
                    f_kind = rng.choice(["int", "float", "decimal"])
                    agg = self.f_expr(model, f_kind, "annotate") or Expr('F("id")')
                    kind = "float"
                    if "F:to-many" in agg.tags:
                        scope.to_many_rows = True
                method = "annotate"
                if "alias" in self.features.methods and rng.random() < 0.3:
                    method = "alias"  # usable in filter()/order_by(), not returned
                    scope.aliases.add(name)
                steps.append(Step(method, named=((name, agg),)))
                scope.annotations[name] = kind
                attrs.append(name)
            if rng.random() < 0.5:
                steps.append(self.filter_step(model, scope))
        ordered = False
        if rng.random() < 0.5:
            names = self.order_names(model, scope)
            total = rng.random() < 0.7
            if total:
                names = (*names, rng.choice(["pk", "-pk", "id"]))
            steps.append(Step("order_by", names=names))
            ordered = total
        if rng.random() < 0.12:
            steps.append(Step("distinct"))
        if rng.random() < 0.15 and scope.values_fields is None:
            names = self.value_names(model, scope)
            exprs: tuple[Expr, ...] = ()
            if self.features.names and rng.random() < 0.3:
                # An expression among the columns, named as Django names it (lower1, ...).
                expr, _ = self.function(model)
                exprs = (expr,)
                if {"F:to-many", "when:to-many"} & expr.tags:
                    scope.to_many_rows = True
            flat = len(names) + len(exprs) == 1 and rng.random() < 0.5
            tags = frozenset({"values_list(expression)"}) if exprs else frozenset()
            steps.append(Step("values_list", names=names, flat=flat, exprs=exprs, tags=tags))
            if any("__" in n and _is_to_many(model, n) for n in names):
                scope.to_many_rows = True
        if scope.to_many_rows:
            ordered = False
        roll = rng.random()
        terminal: Terminal
        if roll < 0.5:
            terminal = Terminal("rows")
            if ordered and rng.random() < 0.3:
                a = rng.randrange(0, 5)
                steps.append(Step("slice", bounds=(a, a + rng.randrange(1, 8))))
        elif roll < 0.68:
            terminal = Terminal("count")
        elif roll < 0.76:
            terminal = Terminal("exists")
        elif (
            roll < 0.86
            and (ordered or not any(s.method == "order_by" for s in steps))
            and not scope.to_many_rows
            and (ordered or not scope.aggregate_annotations)
        ):
            terminal = Terminal("first")
        else:
            named = []
            for i in range(rng.randrange(1, 3)):
                agg, _ = self.aggregate(model, scope)
                named.append((f"x{i}", agg))
            terminal = Terminal("aggregate", tuple(named))
        return Query(model, tuple(steps), terminal, ordered=ordered)

    def special_query(self, model: str, methods: list[str]) -> Query:
        """Return a set operation (union/intersection/difference) or a dates() query."""
        rng = self.rng
        method = rng.choice(methods)
        scope = _Scope()
        steps = [self.filter_step(model, scope)]
        if method in ("dates", "datetimes"):
            # dates() takes date and datetime fields (truncated in UTC), datetimes() datetimes.
            wanted = {"date", "datetime"} if method == "dates" else {"datetime"}
            dated = [(m, f) for m in FIELDS for f, k in FIELDS[m].items() if base_kind(k) in wanted]
            mine = [f for m, f in dated if m == model]
            if mine:
                fname = rng.choice(mine)
            else:
                model, fname = rng.choice(dated)
                steps = [self.filter_step(model, scope)]
            kind = rng.choice(DATE_KINDS if method == "dates" else DATETIME_KINDS)
            order = rng.choice(["ASC", "DESC"])
            tags = frozenset(
                {method, f"{method}:{kind}", f"{method}:{base_kind(FIELDS[model][fname])}"}
            )
            steps.append(Step(method, names=(fname, kind, order), tags=tags))
            if rng.random() < 0.3:
                a = rng.randrange(0, 4)
                steps.append(Step("slice", bounds=(a, a + rng.randrange(1, 6))))
            return Query(
                model, tuple(steps), Terminal(rng.choice(["rows", "rows", "count"])), ordered=True
            )
        other = (self.filter_step(model, _Scope()),)
        every = method == "union" and rng.random() < 0.3
        steps.append(Step(method, names=(model,), inner=other, flat=every))
        if rng.random() < 0.35:
            # values()/values_list() of the combined rows: each query selects those columns.
            names: list[str] = []
            for _ in range(rng.randrange(1, 3)):
                path = self.path(model, max_hops=1, to_one=True)[0]
                if path not in names:
                    names.append(path)
            chosen = rng.choice(["values", "values_list"])
            flat = chosen == "values_list" and len(names) == 1 and rng.random() < 0.5
            tags = frozenset({f"{method}+{chosen}"})
            steps.append(Step(chosen, names=tuple(names), flat=flat, tags=tags))
            if rng.random() < 0.5:
                steps.append(Step("order_by", names=(rng.choice(["", "-"]) + names[0],)))
            # Not one defined order (the first column may repeat): compared as multisets.
            return Query(model, tuple(steps), Terminal(rng.choice(["rows", "rows", "count"])))
        ordered = rng.random() < 0.5
        if ordered:
            steps.append(Step("order_by", names=(rng.choice(["pk", "-pk"]),)))
            if rng.random() < 0.4:
                a = rng.randrange(0, 4)
                steps.append(Step("slice", bounds=(a, a + rng.randrange(1, 6))))
        terminal = Terminal(rng.choice(["rows", "rows", "count"]))
        return Query(model, tuple(steps), terminal, ordered=ordered)

    def value_names(self, model: str, scope: _Scope) -> tuple[str, ...]:
        """Return 1-3 field paths for values()/values_list()."""
        names: list[str] = []
        for _ in range(self.rng.randrange(1, 4)):
            path, _, _, hops = self.path(model, max_hops=1)
            if any(h in ("many", "m2m") for h in hops):
                scope.to_many_rows = True
            path = self.json_key(path)
            if path not in names:
                names.append(path)
        for name in scope.annotations:
            if name in scope.aliases:
                continue
            if self.rng.random() < 0.3 and name not in names:
                names.append(name)
        return tuple(names)

    def json_key(self, path: str) -> str:
        """Return ``path``, or a key into it when it is the JSON column (``extra__a``)."""
        if path.rsplit("__", 1)[-1] != "extra" or self.rng.random() < 0.4:
            return path
        return f"{path}__{self.rng.choice(['a', 'b', 'tags', 'tags__0', 'nested__k', 'z'])}"

    def order_names(self, model: str, scope: _Scope) -> tuple[str, ...]:
        """Return 1-2 ordering terms (fields, related paths, annotations; maybe descending)."""
        names: list[str] = []
        for _ in range(self.rng.randrange(1, 3)):
            if scope.annotations and self.rng.random() < 0.3:
                name = self.rng.choice(list(scope.annotations))
            elif scope.values_fields and self.rng.random() < 0.5:
                name = self.rng.choice(scope.values_fields)
            else:
                name, _, _, hops = self.path(model, max_hops=1)
                if any(h in ("many", "m2m") for h in hops):
                    scope.to_many_rows = True
                name = self.json_key(name)
            name = ("-" if self.rng.random() < 0.4 else "") + name
            if name.lstrip("-") not in [n.lstrip("-") for n in names]:
                names.append(name)
        return tuple(names)

    def queries(self, n: int) -> Iterator[Query]:
        """Yield ``n`` random queries."""
        for _ in range(n):
            yield self.query()


def _is_to_many(model: str, path: str) -> bool:
    current = model
    for part in path.split("__")[:-1]:
        if part not in RELATIONS[current]:
            return False  # a JSON column's keys follow (extra__a)
        target, hop = RELATIONS[current][part]
        if hop in ("many", "m2m"):
            return True
        current = target
    return False


def _part(value: Any, part: str) -> int:
    if not isinstance(value, date):
        return 1
    if part == "week_day":
        return value.isoweekday() % 7 + 1
    if part == "iso_week_day":
        return value.isoweekday()
    if part == "iso_year":
        return value.isocalendar()[0]
    if part == "week":
        return value.isocalendar()[1]
    if part == "quarter":
        return (value.month - 1) // 3 + 1
    return int(getattr(value, part))


def _sort_key(value: Any) -> Any:
    return (str(type(value)), value)


# -- shrinking ---------------------------------------------------------------------------------


def smaller(query: Query) -> Iterator[Query]:
    """Yield queries one step smaller than ``query`` (the shrinker keeps those that still fail)."""
    for candidate in _candidates(query):
        fixed = _consistent(query, candidate)
        if fixed is not None:
            yield fixed


def _consistent(original: Query, query: Query) -> Query | None:
    """Return ``query`` with its ordering flag recomputed, or None if its answer is not defined."""
    orders = [s for s in query.steps if s.method == "order_by"]
    total = bool(orders) and orders[-1].names[-1] in ("pk", "-pk", "id")
    # dates()/datetimes() order their distinct values themselves.
    total = total or any(s.method in ("dates", "datetimes") for s in query.steps)
    ordered = original.ordered and total
    sliced = any(s.method == "slice" for s in query.steps)
    if (sliced and not ordered) or (query.terminal.kind == "first" and orders and not ordered):
        return None
    return replace(query, ordered=ordered)


def _candidates(query: Query) -> Iterator[Query]:
    steps = query.steps
    for i in range(len(steps)):
        yield replace(query, steps=steps[:i] + steps[i + 1 :])
    if query.terminal.kind == "aggregate" and len(query.terminal.named) > 1:
        for i in range(len(query.terminal.named)):
            named = query.terminal.named[:i] + query.terminal.named[i + 1 :]
            yield replace(query, terminal=Terminal("aggregate", named))
    if query.terminal.kind in ("first", "exists", "aggregate"):
        yield replace(query, terminal=Terminal("count"))
    for i, step in enumerate(steps):
        for new in _smaller_step(step):
            yield replace(query, steps=(*steps[:i], new, *steps[i + 1 :]))


def _smaller_step(step: Step) -> Iterator[Step]:
    if step.method in ("filter", "exclude"):
        total = len(step.nodes) + len(step.leaves)
        for i in range(len(step.nodes)):
            if total > 1:
                yield replace(step, nodes=step.nodes[:i] + step.nodes[i + 1 :])
            for sub in _smaller_node(step.nodes[i]):
                if isinstance(sub, Leaf):
                    rest = step.nodes[:i] + step.nodes[i + 1 :]
                    if sub.key not in {leaf.key for leaf in step.leaves}:
                        yield replace(step, nodes=rest, leaves=(*step.leaves, sub))
                yield replace(step, nodes=(*step.nodes[:i], sub, *step.nodes[i + 1 :]))
        if total > 1:
            for i in range(len(step.leaves)):
                yield replace(step, leaves=step.leaves[:i] + step.leaves[i + 1 :])
        if step.method == "exclude":
            yield replace(step, method="filter")
    if step.method in ("order_by", "values", "values_list") and len(step.names) > 1:
        for i in range(len(step.names)):
            names = step.names[:i] + step.names[i + 1 :]
            yield replace(step, names=names, flat=step.flat and len(names) == 1)


def _smaller_node(node: Node) -> Iterator[Node]:
    if isinstance(node, Not):
        yield node.child
        for sub in _smaller_node(node.child):
            yield Not(sub)
    elif isinstance(node, Combo):
        yield from node.children
        for i, child in enumerate(node.children):
            for sub in _smaller_node(child):
                yield Combo(node.op, (*node.children[:i], sub, *node.children[i + 1 :]))
