"""The oracle's classes of differences: the deliberate ones, the known open ones, new ones.

A *deliberate* difference is one Flash DB's docs declare (docs/querying.md,
"Deliberate differences from Django"). It is recognised by proof, not by
pattern: the query is rewritten into Django's spelling of Flash DB's rule
(``Mode``), Django runs it, and only if that answer is Flash DB's answer is the
difference deliberate. Anything else is a mismatch.

A *known open* class is a wrong answer or crash found by the oracle and being
fixed (issue 14); it is matched on the tags of the smallest query that still
shows the difference. Everything else is *new*, named by those tags.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from tests.oracle.generator import PLAIN, Mode, Query

#: Names of flash_db the generator uses when they exist (being added by issue 14).
OPTIONAL_NAMES = (
    "Case",
    "When",
    "Value",
    "Lower",
    "Upper",
    "Length",
    "Coalesce",
    "Concat",
    "Now",
    "Trunc",
    "Extract",
    "Cast",
    "Abs",
    "Greatest",
    "Least",
    "NullIf",
    "Round",
    "Substr",
    "Replace",
    "Trim",
    "TruncDate",
)
OPTIONAL_METHODS = ("alias", "union", "intersection", "difference", "dates", "datetimes")
OPTIONAL_TRANSFORMS = ("iso_year", "quarter", "week", "iso_week_day", "minute", "second", "time")


@dataclass(frozen=True)
class Deliberate:
    """A documented difference: when it can apply and Django's spelling of Flash DB's rule."""

    name: str
    explanation: str
    example: str
    tags: frozenset[str]  # any of these in the query
    backends: frozenset[str] = frozenset({"sqlite", "postgresql"})
    rewrite: Mode = PLAIN

    def applies(self, query: Query, backend: str) -> bool:
        """Return whether the query uses what this difference is about, on this backend."""
        return backend in self.backends and bool(self.tags & query.tags())

    def mode(self, query: Query) -> Mode:
        """Return the rewrite that makes Django answer by Flash DB's rule."""
        if self.rewrite.exists_form:
            return replace(self.rewrite, exists_form=query.model)
        if self.rewrite.xor_join:
            return replace(self.rewrite, xor_join=query.model)
        return self.rewrite


DELIBERATE = [
    Deliberate(
        "to-many filter is EXISTS",
        "A to-many path in filter()/exclude() (or an F() through one) is a correlated "
        "EXISTS: the conditions of one call hold for one related row, as on Django's "
        "join, but parent rows are never duplicated, and exclude() is the exact "
        "complement of filter() with the same arguments. Django joins, so it returns a "
        "parent once per matching child, and its exclude() may match different "
        "children per condition.",
        "Author.objects.filter(books__pages__gt=100).count()  # Django counts an author "
        "once per book, Flash DB once",
        frozenset({"filter:to-many", "F:to-many"}),
        rewrite=Mode(exists_form="?"),
    ),
    Deliberate(
        "nullable to-one path under Q ^ Q keeps the row",
        "Under Q ^ Q a lookup through a nullable to-one relation (its path, an F() or "
        "the foreign key's column) is false for a row without the related row, and the "
        "row stays (a LEFT OUTER JOIN); Django's join promotion knows AND and OR only: "
        "an & inside the ^ that names the relation makes its join INNER, dropping such "
        "rows whatever the other operands say.",
        "Book.objects.filter(Q(publisher__city='Oslo', pages__gt=0) ^ Q(pages__gt=100))  "
        "# Django leaves out the books without a publisher",
        frozenset({"Q^"}),
        rewrite=Mode(xor_join="?"),
    ),
    Deliberate(
        "true division",
        "`/` between expressions is true division, as in Python 3, also between integer "
        "columns; Django sends the database's `/`, which truncates integers.",
        'Book.objects.filter(pages__lt=F("pages") / 2 + 1)',
        frozenset({"F/"}),
        rewrite=Mode(true_div=True),
    ),
    Deliberate(
        "SQLite text: case as on PostgreSQL",
        "On SQLite, Django's contains/startswith/endswith are LIKE, which ignores ASCII "
        "case, its i-lookups fold only ASCII letters and its Lower()/Upper() are SQLite's "
        "ASCII-only lower()/upper(); Flash DB's lookups are case-sensitive and fold "
        "every letter, and its Lower()/Upper() fold every letter (as on PostgreSQL).",
        'Book.objects.filter(title__contains="alpha")  # Django on SQLite also finds "ALPHA"',
        frozenset({"text-lookup", "func:Lower", "func:Upper"}),
        backends=frozenset({"sqlite"}),
        rewrite=Mode(like_regex=True, sqlite_fold=True),
    ),
]


#: Where Django is no oracle: its docs say that combining aggregates over several
#: to-many joins "will yield the wrong results" (each join multiplies the rows the
#: others count). Flash DB computes each aggregate on its own (a correlated
#: subquery). Such differences are counted under this name and not failed.
DJANGO_MULTIPLIES = "Django multiplies aggregates over several to-many joins"

#: Where SQLite computes AVG()/SUM() in floating point, averages that are equal in
#: decimal differ in their last bits; Flash DB reads them as Decimals of 15 significant
#: digits (equal again), Django orders by the bits: the same rows, ordered apart only
#: among such ties.
FLOAT_TIES = "SQLite: floating-point aggregates order equal values apart"


@dataclass(frozen=True)
class KnownOpen:
    """A class of differences matched on its smallest query's tags.

    ``kind`` is ``"known-open"`` for Flash DB wrong answers or crashes being fixed,
    and ``"django-wrong"`` where the difference is Django's wrong answer, shown
    by Django contradicting itself (its own ``count()`` of the same QuerySet, or
    rows it should not repeat); ``status`` says how. Only ``known-open`` ones count
    as failing queries.
    """

    name: str
    requires: tuple[frozenset[str], ...]  # all tags of one of these sets
    verdicts: frozenset[str]
    backends: frozenset[str] = frozenset({"sqlite", "postgresql"})
    message: str = ""  # a part of Flash DB's error message
    #: The smallest query known to show it, in the oracle's spelling: a QuerySet, or
    #: one ending in ``.count()`` or ``.aggregate(...)`` (run through both ORMs).
    reproduction: str = ""
    status: str = "open: being fixed in issue 14"
    kind: str = "known-open"

    def matches(self, tags: frozenset[str], verdict: str, backend: str, error: str | None) -> bool:
        """Return whether a smallest failing query belongs to this class."""
        return (
            verdict in self.verdicts
            and backend in self.backends
            and any(r <= tags for r in self.requires)
            and (not self.message or self.message in (error or ""))
        )


MISMATCH = frozenset({"mismatch"})
CRASH = frozenset({"flash-error"})
POSTGRESQL = frozenset({"postgresql"})


def _tags(*sets: str) -> tuple[frozenset[str], ...]:
    return tuple(frozenset(s.split()) for s in sets)


#: Classes still differing on main: Flash DB's being fixed (``known-open``; each
#: disappears from here when its fix lands) and Django's wrong answers (``django-wrong``).
KNOWN_OPEN: list[KnownOpen] = [
    KnownOpen(
        "alias() of an aggregate whose filter= has an empty IN, ordered by: Django returns no row",
        _tags("alias agg:filter in:empty"),
        MISMATCH,
        reproduction=(
            'Review.objects.alias(a0=Count("book", filter=Q(book__tags__name__in=[])))'
            '.order_by("a0")'
        ),
        status=(
            "Django's answer is wrong (its own count() of the same QuerySet is 160): "
            "the empty IN raises EmptyResultSet while the ORDER BY compiles the alias"
        ),
        kind="django-wrong",
    ),
    KnownOpen(
        "values() of a union()/difference() with an empty query: Django repeats rows",
        _tags(
            "union+values in:empty",
            "union+values_list in:empty",
            "difference+values in:empty",
            "difference+values_list in:empty",
        ),
        MISMATCH,
        reproduction=(
            "Book.objects.difference(Book.objects.filter(Q(reviews__stars__in=[])))"
            ".values('publisher_id').count()"
        ),
        status=(
            "Django's answer is wrong: it leaves the empty query out of the SQL, and "
            "with it the EXCEPT/UNION that makes the rows distinct (90 rows for 8 distinct "
            "publisher_id values); Flash DB sends the set operation"
        ),
        kind="django-wrong",
    ),
    KnownOpen(
        "PostgreSQL: the same, with a filter PostgreSQL refuses: only Django sends no query",
        _tags("alias agg:filter in:empty"),
        CRASH,
        POSTGRESQL,
        message="operator does not exist",
        reproduction=(
            'Tag.objects.filter(books__created__lte=F("id"))'
            '.alias(a0=Avg("id", filter=Q(id__in=[]))).order_by("-a0")'
        ),
        status=(
            "Django answers [] only because the empty IN in the ordered alias makes it "
            "send no query (its count() sends it, and PostgreSQL refuses timestamp <= integer "
            "there too)"
        ),
        kind="django-wrong",
    ),
    KnownOpen(
        "exclude() of isnull=True, then a lookup through the same nullable relation: "
        "Django keeps neither answer for a row without it",
        _tags("exclude hop:nullable-one isnull-nullable neg:lookup:isnull"),
        MISMATCH,
        reproduction=(
            "Book.objects.exclude(Q(publisher__pk__isnull=True), publisher__name__contains='x')"
            ".count()"
        ),
        status=(
            "Django's answer is wrong: its filter() with the same arguments counts 0 of the "
            "90 books, this exclude() 80 (the 10 without a publisher are in neither), and "
            "with the two lookups the other way round exclude() counts 90. Django decides "
            "the second lookup's IS NOT NULL while the join is still INNER, before the "
            "first one's isnull=True makes it LEFT OUTER; Flash DB's exclude() is the "
            "complement of its filter(): 90"
        ),
        kind="django-wrong",
    ),
]


def name_of(tags: frozenset[str], verdict: str, error: str | None) -> str:
    """Return a name for a new class: Flash DB's error, or the tags of its smallest query."""
    if error and verdict == "flash-error":
        message = re.split(r"Choices are|\[SQL|\(Background", error)[0]
        message = re.sub(r"\(sqlalchemy[.\w]*\) ", "", message)
        message = re.sub(r"'[^']*'|\"[^\"]*\"|\d+", "_", message).strip(" .")
        return f"{verdict} {message[:100]}"
    telling = sorted(
        t
        for t in tags
        if not t.startswith(("kind:", "terminal:", "via:", "neg:kind:", "neg:via:", "neg:hop:"))
        and t not in ("filter", "order_by", "values_list", "hop:one")
    )
    return f"{verdict}: " + (" ".join(telling) if telling else "(plain)")
